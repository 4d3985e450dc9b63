#include <minitrain/data/toy_corpus.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <stdexcept>
#include <utility>

namespace minitrain::data {

namespace {

// Word classes. The three noun classes hold the same nouns with different separators.
enum Class { kDet, kAdj, kNoun, kNounComma, kNounStop, kPron, kVerb, kPrep, kConj, kNumClasses };

const char* const kDets[] = {"the", "a", "this", "that", "every", "my", "his", "her", "our", "one", "no", "each"};
// Adjectives and nouns start with a consonant, so "a" reads right in front of them.
const char* const kAdjs[] = {"small", "red",  "big",   "green", "dark",  "quiet",  "young",
                             "cold",  "bright", "slow", "tall",  "brave", "wise",  "poor",
                             "proud", "grey", "wild",  "gentle", "strange", "kind"};
const char* const kNouns[] = {"man",  "woman", "dog",  "cat",   "king",   "queen",  "house", "river",
                              "tree", "child", "bird", "ship",  "door",   "road",   "town",  "horse",
                              "sea",  "hill",  "fire", "stone", "wind",   "night",  "garden", "letter",
                              "sword", "bell", "boat", "wall",  "field",  "song"};
const char* const kProns[] = {"he", "she", "it", "nobody"};
const char* const kVerbs[] = {"sees",  "takes",   "finds",  "loves",  "hears", "holds",  "keeps",
                              "meets", "follows", "watches", "leaves", "calls", "brings", "fears",
                              "knows", "wants",   "builds", "opens",  "carries", "remembers"};
const char* const kPreps[] = {"in", "on", "by", "near", "under", "with", "from", "over", "behind", "beside"};
const char* const kConjs[] = {"and", "but", "so", "yet", "while"};

// The grammar: for each class, its successor classes and their integer weights.
struct ClassWeight {
  Class next;
  int64_t weight;
};
const std::vector<ClassWeight>& successor_classes(int cls) {
  static const std::array<std::vector<ClassWeight>, kNumClasses> table = {{
      /* kDet      */ {{kAdj, 4}, {kNoun, 3}, {kNounComma, 1}, {kNounStop, 2}},
      /* kAdj      */ {{kAdj, 1}, {kNoun, 4}, {kNounComma, 1}, {kNounStop, 4}},
      /* kNoun     */ {{kVerb, 3}, {kPrep, 3}},
      /* kNounComma*/ {{kConj, 1}},
      /* kNounStop */ {{kDet, 3}, {kPron, 2}},
      /* kPron     */ {{kVerb, 1}},
      /* kVerb     */ {{kDet, 3}, {kPrep, 1}},
      /* kPrep     */ {{kDet, 1}},
      /* kConj     */ {{kDet, 1}, {kPron, 1}},
  }};
  return table[static_cast<std::size_t>(cls)];
}

// Within a successor class: every member has weight 1, the favourites get these bonuses.
constexpr std::array<int64_t, 3> kFavouriteBonus = {8, 4, 2};

// Picks an index with probability weights[i] / total, from one randint.
std::size_t pick(const std::vector<int64_t>& weights, int64_t total, Generator& gen) {
  int64_t r = gen.randint(0, total);
  for (std::size_t i = 0; i < weights.size(); ++i) {
    if (r < weights[i]) return i;
    r -= weights[i];
  }
  throw std::logic_error("ToyCorpus: weights do not add up to their total");
}

double entropy_of_row_probabilities(const std::vector<double>& p) {
  double h = 0.0;
  for (double q : p)
    if (q > 0.0) h -= q * std::log(q);
  return h;
}

// The Bayes-optimal next-character predictor for text of a ToyCorpus: a forward filter whose hidden
// state is (token, position in the token), with the first character of a token split by whether it
// is capitalised (i.e. whether the token before ended a sentence). Beliefs are dense vectors.
class CharFilter {
 public:
  explicit CharFilter(const ToyCorpus& corpus) : corpus_(corpus), n_(corpus.num_tokens()) {
    for (int64_t s = 0; s < n_; ++s) {
      const std::string& text = corpus.token_text(s);
      base_.push_back(static_cast<int64_t>(emit_.size()));
      const auto first = static_cast<int64_t>(emit_.size());
      for (std::size_t k = 0; k < text.size(); ++k) {
        if (k == 0) {  // lower case, then capitalised
          emit_.push_back(text[0]);
          emit_.push_back(static_cast<char>(text[0] - 'a' + 'A'));
        } else {
          emit_.push_back(text[k]);
        }
      }
      for (std::size_t k = 0; k < text.size(); ++k) {
        const int64_t next = k + 1 < text.size() ? first + 1 + static_cast<int64_t>(k) + 1 : -1;
        next_.push_back(next);
        if (k == 0) next_.push_back(next);
        token_of_.push_back(s);
        if (k == 0) token_of_.push_back(s);
      }
      std::vector<std::pair<int64_t, double>> successors;
      for (int64_t t = 0; t < n_; ++t) {
        const double p = corpus.transition_probability(s, t);
        if (p > 0.0) successors.emplace_back(t, p);
      }
      successors_.push_back(std::move(successors));
    }
  }

  std::size_t num_states() const { return emit_.size(); }

  // A character position drawn uniformly from a stationary text: token s at position k has
  // probability pi_s / L, and its first character is capitalised when the previous token ended a
  // sentence.
  std::vector<double> stationary_belief() const {
    const std::vector<double> pi = corpus_.stationary_distribution();
    double length = 0.0;
    for (int64_t s = 0; s < n_; ++s) length += pi[static_cast<std::size_t>(s)] * static_cast<double>(corpus_.token_text(s).size());
    std::vector<double> belief(num_states(), 0.0);
    for (int64_t s = 0; s < n_; ++s) {
      const auto b = static_cast<std::size_t>(base_[static_cast<std::size_t>(s)]);
      const double mass = pi[static_cast<std::size_t>(s)] / length;
      for (std::size_t k = 1; k < corpus_.token_text(s).size(); ++k) belief[b + 1 + k] = mass;
      belief[b] = mass;  // split below
    }
    for (int64_t r = 0; r < n_; ++r) {
      if (!corpus_.ends_sentence(r)) continue;
      for (const auto& [t, p] : successors_[static_cast<std::size_t>(r)]) {
        const double capitalised = pi[static_cast<std::size_t>(r)] * p / length;
        const auto b = static_cast<std::size_t>(base_[static_cast<std::size_t>(t)]);
        belief[b] -= capitalised;
        belief[b + 1] += capitalised;
      }
    }
    for (double& p : belief) p = std::max(p, 0.0);  // rounding
    return belief;
  }

  // The start of the token that follows `previous`.
  std::vector<double> after_token(int64_t previous) const {
    std::vector<double> belief(num_states(), 0.0);
    spread(belief, previous, 1.0);
    return belief;
  }

  // Conditions `belief` on the next character being c, moves it one character on, returns -log P(c).
  double observe(std::vector<double>& belief, char c) const {
    double total = 0.0;
    for (std::size_t i = 0; i < belief.size(); ++i)
      if (emit_[i] == c) total += belief[i];
    if (!(total > 0.0))
      throw std::logic_error(std::string("ToyCorpus: character '") + c + "' has probability 0 under the filter");
    std::vector<double> next(belief.size(), 0.0);
    for (std::size_t i = 0; i < belief.size(); ++i) {
      if (emit_[i] != c || belief[i] == 0.0) continue;
      const double w = belief[i] / total;
      if (next_[i] >= 0)
        next[static_cast<std::size_t>(next_[i])] += w;
      else
        spread(next, token_of_[i], w);
    }
    belief.swap(next);
    return -std::log(total);
  }

 private:
  // Adds `mass` times the distribution of the token after `previous` (at its first character).
  void spread(std::vector<double>& belief, int64_t previous, double mass) const {
    const std::size_t capitalised = corpus_.ends_sentence(previous) ? 1 : 0;
    for (const auto& [t, p] : successors_[static_cast<std::size_t>(previous)])
      belief[static_cast<std::size_t>(base_[static_cast<std::size_t>(t)]) + capitalised] += mass * p;
  }

  const ToyCorpus& corpus_;
  int64_t n_;
  std::vector<int64_t> base_;      // per token: its (first character, lower case) state; +1 capitalised
  std::vector<char> emit_;         // per state: the character it emits
  std::vector<int64_t> next_;      // per state: the state after it in its token, -1 at the token's end
  std::vector<int64_t> token_of_;  // per state
  std::vector<std::vector<std::pair<int64_t, double>>> successors_;
};

}  // namespace

ToyCorpus::ToyCorpus() {
  std::array<std::vector<int64_t>, kNumClasses> members;
  auto add_words = [&](const auto& words, Class cls, const char* separator) {
    for (const char* word : words) {
      members[cls].push_back(num_tokens());
      tokens_.push_back(std::string(word) + separator);
      class_of_.push_back(cls);
    }
  };
  add_words(kDets, kDet, " ");
  add_words(kAdjs, kAdj, " ");
  add_words(kNouns, kNoun, " ");
  add_words(kNouns, kNounComma, ", ");
  add_words(kNouns, kNounStop, ".\n");
  add_words(kProns, kPron, " ");
  add_words(kVerbs, kVerb, " ");
  add_words(kPreps, kPrep, " ");
  add_words(kConjs, kConj, " ");
  for (int64_t id = 0; id < num_tokens(); ++id) id_of_.emplace(tokens_[static_cast<std::size_t>(id)], id);

  Generator gen(kToyCorpusStructureSeed);
  auto make_row = [&](int cls, bool favourites) {
    Row row;
    for (const ClassWeight& cw : successor_classes(cls)) {
      Branch branch;
      branch.weight = cw.weight;
      branch.targets = members[cw.next];
      branch.weights.assign(branch.targets.size(), 1);
      if (favourites) {
        // Partial Fisher-Yates: the first kFavouriteBonus.size() positions of a random permutation.
        std::vector<std::size_t> order(branch.targets.size());
        for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
        for (std::size_t k = 0; k < kFavouriteBonus.size() && k < order.size(); ++k) {
          const auto j = static_cast<std::size_t>(
              gen.randint(static_cast<int64_t>(k), static_cast<int64_t>(order.size())));
          std::swap(order[k], order[j]);
          branch.weights[order[k]] += kFavouriteBonus[k];
        }
      }
      for (int64_t w : branch.weights) branch.total += w;
      row.total += branch.weight;
      row.branches.push_back(std::move(branch));
    }
    return row;
  };
  for (int64_t id = 0; id < num_tokens(); ++id) rows_.push_back(make_row(class_of_[static_cast<std::size_t>(id)], true));
  start_ = make_row(kNounStop, false);  // a sentence start, words uniform within their class
}

const std::string& ToyCorpus::token_text(int64_t token) const {
  if (token < 0 || token >= num_tokens())
    throw std::invalid_argument("ToyCorpus: token " + std::to_string(token) + " is out of range [0, " +
                                std::to_string(num_tokens()) + ")");
  return tokens_[static_cast<std::size_t>(token)];
}

bool ToyCorpus::ends_sentence(int64_t token) const {
  token_text(token);  // range check
  return class_of_[static_cast<std::size_t>(token)] == kNounStop;
}

const ToyCorpus::Row& ToyCorpus::row(int64_t from) const {
  if (from == kStart) return start_;
  token_text(from);  // range check
  return rows_[static_cast<std::size_t>(from)];
}

double ToyCorpus::transition_probability(int64_t from, int64_t to) const {
  const Row& r = row(from);
  token_text(to);  // range check
  for (const Branch& branch : r.branches)
    for (std::size_t i = 0; i < branch.targets.size(); ++i)
      if (branch.targets[i] == to)
        return static_cast<double>(branch.weight) / static_cast<double>(r.total) *
               static_cast<double>(branch.weights[i]) / static_cast<double>(branch.total);
  return 0.0;
}

std::vector<double> ToyCorpus::stationary_distribution() const {
  // Power iteration on the lazy chain (P + I) / 2: same stationary distribution, and aperiodic
  // whatever P is, so the iteration converges.
  const auto n = static_cast<std::size_t>(num_tokens());
  std::vector<double> pi(n, 1.0 / static_cast<double>(n)), next(n);
  for (int iteration = 0; iteration < 100000; ++iteration) {
    for (std::size_t t = 0; t < n; ++t) next[t] = 0.5 * pi[t];
    for (std::size_t s = 0; s < n; ++s) {
      const Row& r = rows_[s];
      for (const Branch& branch : r.branches) {
        const double mass = 0.5 * pi[s] * static_cast<double>(branch.weight) / static_cast<double>(r.total) /
                            static_cast<double>(branch.total);
        for (std::size_t i = 0; i < branch.targets.size(); ++i)
          next[static_cast<std::size_t>(branch.targets[i])] += mass * static_cast<double>(branch.weights[i]);
      }
    }
    double sum = 0.0, change = 0.0;
    for (double p : next) sum += p;
    for (std::size_t t = 0; t < n; ++t) {
      next[t] /= sum;
      change += std::fabs(next[t] - pi[t]);
    }
    pi.swap(next);
    if (change < 1e-15) return pi;
  }
  throw std::runtime_error("ToyCorpus: the power iteration for the stationary distribution did not converge");
}

double ToyCorpus::entropy_per_token() const {
  const std::vector<double> pi = stationary_distribution();
  double h = 0.0;
  for (int64_t s = 0; s < num_tokens(); ++s) {
    std::vector<double> p;
    const Row& r = rows_[static_cast<std::size_t>(s)];
    for (const Branch& branch : r.branches)
      for (int64_t w : branch.weights)
        p.push_back(static_cast<double>(branch.weight) / static_cast<double>(r.total) * static_cast<double>(w) /
                    static_cast<double>(branch.total));
    h += pi[static_cast<std::size_t>(s)] * entropy_of_row_probabilities(p);
  }
  return h;
}

double ToyCorpus::mean_chars_per_token() const {
  const std::vector<double> pi = stationary_distribution();
  double length = 0.0;
  for (std::size_t s = 0; s < pi.size(); ++s) length += pi[s] * static_cast<double>(tokens_[s].size());
  return length;
}

double ToyCorpus::entropy_per_char() const { return entropy_per_token() / mean_chars_per_token(); }

double ToyCorpus::unigram_entropy_per_char() const {
  return entropy_of_row_probabilities(stationary_distribution()) / mean_chars_per_token();
}

double ToyCorpus::block_loss_floor(int64_t block_size, int64_t n_windows, uint64_t seed,
                                   double* standard_error) const {
  if (block_size <= 0)
    throw std::invalid_argument("ToyCorpus::block_loss_floor: block_size must be positive, got " +
                                std::to_string(block_size));
  if (n_windows <= 0)
    throw std::invalid_argument("ToyCorpus::block_loss_floor: n_windows must be positive, got " +
                                std::to_string(n_windows));
  // A sample past a burn-in, so that windows start at (nearly) stationary positions, long enough
  // for the windows to overlap little.
  constexpr int64_t kBurnIn = 1000;
  const int64_t sample_chars = std::max<int64_t>({200000, 4 * block_size, n_windows * block_size});
  Generator gen(seed);
  std::string text;
  std::vector<int64_t> sampled, starts;  // token and its first character's offset
  int64_t previous = kStart;
  while (static_cast<int64_t>(sampled.size()) < kBurnIn + 1 ||
         static_cast<int64_t>(text.size()) - starts[kBurnIn] < sample_chars) {
    const int64_t token = sample_next(previous, gen);
    starts.push_back(static_cast<int64_t>(text.size()));
    append_token(text, token, previous == kStart || ends_sentence(previous));
    sampled.push_back(previous = token);
  }
  const CharFilter filter(*this);
  const std::vector<double> stationary = filter.stationary_belief();
  // For each window: the loss of the predictor that sees only the window, minus the loss of the one
  // that also knows everything before it (whose expected loss per character is exactly H / L).
  double sum = 0.0, sum_squares = 0.0;  // of each window's excess, in nats per character
  for (int64_t w = 0; w < n_windows; ++w) {
    const int64_t position = gen.randint(starts[kBurnIn], static_cast<int64_t>(text.size()) - block_size + 1);
    const auto i = static_cast<std::size_t>(std::upper_bound(starts.begin(), starts.end(), position) - starts.begin() - 1);
    std::vector<double> blind = stationary;
    std::vector<double> informed = filter.after_token(sampled[i - 1]);
    for (int64_t j = starts[i]; j < position; ++j) filter.observe(informed, text[static_cast<std::size_t>(j)]);
    double excess = 0.0;
    for (int64_t t = 0; t < block_size; ++t) {
      const char c = text[static_cast<std::size_t>(position + t)];
      excess += filter.observe(blind, c) - filter.observe(informed, c);
    }
    excess /= static_cast<double>(block_size);
    sum += excess;
    sum_squares += excess * excess;
  }
  const auto n = static_cast<double>(n_windows);
  const double mean = sum / n;
  if (standard_error != nullptr)
    *standard_error = n > 1 ? std::sqrt(std::max(0.0, (sum_squares - n * mean * mean) / (n - 1)) / n) : 0.0;
  return entropy_per_char() + mean;
}

int64_t ToyCorpus::sample_next(int64_t from, Generator& gen) const {
  const Row& r = row(from);
  std::vector<int64_t> branch_weights;
  branch_weights.reserve(r.branches.size());
  for (const Branch& branch : r.branches) branch_weights.push_back(branch.weight);
  const Branch& branch = r.branches[pick(branch_weights, r.total, gen)];
  return branch.targets[pick(branch.weights, branch.total, gen)];
}

void ToyCorpus::append_token(std::string& out, int64_t token, bool sentence_start) const {
  const std::string& text = tokens_[static_cast<std::size_t>(token)];
  out += text;
  if (sentence_start) {
    char& first = out[out.size() - text.size()];
    first = static_cast<char>(first - 'a' + 'A');  // every token starts with a lower-case ASCII letter
  }
}

std::vector<int64_t> ToyCorpus::sample_tokens(uint64_t seed, int64_t n_tokens) const {
  if (n_tokens < 0)
    throw std::invalid_argument("ToyCorpus::sample_tokens: n_tokens must be >= 0, got " + std::to_string(n_tokens));
  Generator gen(seed);
  std::vector<int64_t> out;
  out.reserve(static_cast<std::size_t>(n_tokens));
  int64_t previous = kStart;
  for (int64_t i = 0; i < n_tokens; ++i) out.push_back(previous = sample_next(previous, gen));
  return out;
}

std::string ToyCorpus::generate(uint64_t seed, int64_t n_chars) const {
  if (n_chars < 0)
    throw std::invalid_argument("ToyCorpus::generate: n_chars must be >= 0, got " + std::to_string(n_chars));
  Generator gen(seed);
  std::string out;
  out.reserve(static_cast<std::size_t>(n_chars) + 16);
  int64_t previous = kStart;
  while (static_cast<int64_t>(out.size()) < n_chars) {
    const int64_t token = sample_next(previous, gen);
    append_token(out, token, previous == kStart || ends_sentence(previous));
    previous = token;
  }
  out.resize(static_cast<std::size_t>(n_chars));
  return out;
}

std::string ToyCorpus::render(const std::vector<int64_t>& tokens) const {
  std::string out;
  int64_t previous = kStart;
  for (int64_t token : tokens) {
    token_text(token);  // range check
    append_token(out, token, previous == kStart || ends_sentence(previous));
    previous = token;
  }
  return out;
}

std::vector<int64_t> ToyCorpus::parse(const std::string& text, std::size_t* consumed) const {
  std::vector<int64_t> out;
  std::size_t offset = 0;
  int64_t previous = kStart;
  while (offset < text.size()) {
    const std::size_t end = text.find_first_of(" \n", offset);
    if (end == std::string::npos) break;  // a partial token at the end
    std::string chunk = text.substr(offset, end + 1 - offset);
    const bool sentence_start = previous == kStart || ends_sentence(previous);
    if (sentence_start) {
      if (chunk[0] < 'A' || chunk[0] > 'Z')
        throw std::invalid_argument("ToyCorpus::parse: expected a capitalised word at offset " +
                                    std::to_string(offset) + " (the start of a sentence), got '" + chunk + "'");
      chunk[0] = static_cast<char>(chunk[0] - 'A' + 'a');
    }
    const auto it = id_of_.find(chunk);
    if (it == id_of_.end())
      throw std::invalid_argument("ToyCorpus::parse: '" + text.substr(offset, end + 1 - offset) +
                                  "' at offset " + std::to_string(offset) + " is not a token of the toy corpus");
    if (transition_probability(previous, it->second) <= 0.0)
      throw std::invalid_argument("ToyCorpus::parse: '" + text.substr(offset, end + 1 - offset) +
                                  "' at offset " + std::to_string(offset) + " cannot follow " +
                                  (previous == kStart ? std::string("the start of the text")
                                                      : "'" + token_text(previous) + "'"));
    out.push_back(it->second);
    previous = it->second;
    offset = end + 1;
  }
  if (consumed != nullptr) *consumed = offset;
  return out;
}

namespace {
const ToyCorpus& default_corpus() {
  static const ToyCorpus corpus;
  return corpus;
}
}  // namespace

std::string generate_toy_corpus(uint64_t seed, int64_t n_chars) { return default_corpus().generate(seed, n_chars); }

double toy_corpus_entropy_per_char() {
  static const double entropy = default_corpus().entropy_per_char();
  return entropy;
}

}  // namespace minitrain::data
