// A bundled toy corpus with a known entropy: English-like text from a first-order Markov chain over
// word tokens, so a model's loss can be compared with the best loss any model can reach.
//
// Tokens. 107 real English words in 7 classes (determiners, adjectives, nouns, pronouns, verbs,
// prepositions, conjunctions). Every token is a word followed by exactly one separator: "dog " ,
// "dog, " (nouns only) or "dog.\n" (nouns only, ends the sentence), 161 tokens in all. The first word
// of each line is capitalised ("The", "He"); that is a function of the previous token, so it adds no
// randomness. Because separators (' ' and '\n') occur only as the last character of a token, the
// text splits back into tokens in exactly one way (see parse()).
//
// Transitions. A fixed class grammar (e.g. a determiner is followed by an adjective or a noun), and
// within the next class each token has 3 favourite successors with weights 1+8, 1+4, 1+2 while the
// other members of the class keep weight 1. The favourites are drawn once from
// Generator(kToyCorpusStructureSeed), so the chain is the same on every platform. All weights are
// integers and sampling uses Generator::randint only, so a seed fixes the text byte for byte.
//
// Entropy. With pi the stationary distribution of the chain (power iteration, in double) the entropy
// rate is H = -sum_s pi_s sum_t P(t|s) log P(t|s) nats per token, and the mean token length is
// L = sum_s pi_s len(s) characters. Since text <-> token sequence is a bijection, the text's entropy
// per character is exactly H / L: no character-level model can have a lower expected loss.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include <minitrain/core/random.h>

namespace minitrain::data {

inline constexpr uint64_t kToyCorpusStructureSeed = 20240611;  // draws the favourite successors
inline constexpr uint64_t kToyCorpusSeed = 1337;               // the text of data/corpus/toy.txt
inline constexpr int64_t kToyCorpusChars = 1000000;            // its length in characters (= bytes)

class ToyCorpus {
 public:
  ToyCorpus();  // builds the (fixed) chain

  int64_t num_tokens() const { return static_cast<int64_t>(tokens_.size()); }
  const std::string& token_text(int64_t token) const;  // lower-case, with its separator: "dog, "
  bool ends_sentence(int64_t token) const;             // its separator is ".\n"
  // P(to | from); from == kStart is the start of the text (a sentence start).
  static constexpr int64_t kStart = -1;
  double transition_probability(int64_t from, int64_t to) const;

  std::vector<double> stationary_distribution() const;  // pi, by power iteration
  double entropy_per_token() const;                     // H, nats per token
  double mean_chars_per_token() const;                  // L
  double entropy_per_char() const;                      // H / L, nats per character
  // For comparison: entropy per character if tokens were drawn independently from pi, i.e. what
  // is left to learn for a model that spells the words but ignores which word came before.
  double unigram_entropy_per_char() const;
  // The lowest expected loss, averaged over the block_size positions of a window that starts at a
  // random character, of any model that sees only that window (a GPT with context block_size
  // scored on every position, as nanoGPT's estimate_loss does). It is above entropy_per_char()
  // because the first characters of a window are predicted without the words before it:
  // floor(T) = H/L + E(T)/T, where E(T) -> the text's excess entropy. Computed with the exact
  // Bayes-optimal predictor (a forward filter over (token, position) states) on n_windows random
  // windows of a sample drawn with `seed`: a Monte Carlo estimate whose standard error is stored in
  // *standard_error when given (about 0.001 for block_size 64 and 2000 windows).
  double block_loss_floor(int64_t block_size, int64_t n_windows = 2000, uint64_t seed = 0,
                          double* standard_error = nullptr) const;

  // Exactly n_chars characters (ASCII, so also bytes): the rendered tokens of the chain started at
  // a sentence start, cut after n_chars. A shorter text with the same seed is a prefix of a longer.
  std::string generate(uint64_t seed, int64_t n_chars) const;
  std::vector<int64_t> sample_tokens(uint64_t seed, int64_t n_tokens) const;
  std::string render(const std::vector<int64_t>& tokens) const;  // capitalises sentence starts
  // The inverse of render: the complete tokens of `text` (a trailing partial token is left out and
  // *consumed says where it starts). Throws std::invalid_argument naming the offset when the text
  // is not a sequence of tokens or uses a transition of probability 0.
  std::vector<int64_t> parse(const std::string& text, std::size_t* consumed = nullptr) const;

 private:
  struct Branch {                  // one class of successors of a token
    int64_t weight = 0;            // of this class among the token's successor classes
    std::vector<int64_t> targets;  // the class's tokens
    std::vector<int64_t> weights;  // their weights within the class
    int64_t total = 0;             // sum of weights
  };
  struct Row {
    std::vector<Branch> branches;
    int64_t total = 0;  // sum of branch weights
  };
  const Row& row(int64_t from) const;
  int64_t sample_next(int64_t from, Generator& gen) const;
  void append_token(std::string& out, int64_t token, bool sentence_start) const;

  std::vector<std::string> tokens_;
  std::vector<int> class_of_;
  std::vector<Row> rows_;
  Row start_;
  std::unordered_map<std::string, int64_t> id_of_;
};

// Shorthands for the default corpus (the chain is built once).
std::string generate_toy_corpus(uint64_t seed = kToyCorpusSeed, int64_t n_chars = kToyCorpusChars);
double toy_corpus_entropy_per_char();  // nats per character

}  // namespace minitrain::data
