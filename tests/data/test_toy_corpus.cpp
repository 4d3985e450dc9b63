// The toy corpus: determinism, the committed file, unambiguous segmentation and its entropy.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <minitrain/data/toy_corpus.h>

#include "error_of.h"

#ifndef MINITRAIN_DATA_DIR
#error "MINITRAIN_DATA_DIR must name the data/corpus folder"
#endif

namespace minitrain::data {
namespace {


// The closed-form value documented in data/corpus/README.md.
constexpr double kDocumentedEntropyPerChar = 0.609820;

TEST(ToyCorpus, SameSeedSameTextDifferentSeedDifferentText) {
  const std::string a = generate_toy_corpus(7, 20000);
  EXPECT_EQ(a.size(), 20000u);
  EXPECT_EQ(a, generate_toy_corpus(7, 20000));
  EXPECT_NE(a, generate_toy_corpus(8, 20000));
  // A shorter text is a prefix of a longer one.
  EXPECT_EQ(generate_toy_corpus(7, 1234), a.substr(0, 1234));
  EXPECT_EQ(generate_toy_corpus(7, 0), "");
  EXPECT_THROW(generate_toy_corpus(7, -1), std::invalid_argument);
}

TEST(ToyCorpus, RegeneratingReproducesTheCommittedFile) {
  const std::string path = std::string(MINITRAIN_DATA_DIR) + "/toy.txt";
  std::ifstream in(path, std::ios::binary);
  ASSERT_TRUE(in) << "cannot open " << path;
  std::ostringstream buffer;
  buffer << in.rdbuf();
  const std::string committed = buffer.str();
  ASSERT_EQ(committed.size(), static_cast<std::size_t>(kToyCorpusChars));
  const std::string regenerated = generate_toy_corpus();
  std::size_t first_difference = 0;
  while (first_difference < committed.size() && committed[first_difference] == regenerated[first_difference])
    ++first_difference;
  EXPECT_EQ(first_difference, committed.size())
      << "the regenerated corpus differs from " << path << " from byte " << first_difference
      << " on; regenerate it with make_corpus and update data/corpus/README.md";
}

TEST(ToyCorpus, TextLooksLikeSentences) {
  const std::string text = generate_toy_corpus(3, 50000);
  const std::string first_line = text.substr(0, text.find('\n'));
  EXPECT_GE(first_line.size(), 5u);
  std::size_t line_start = 0, lines = 0;
  while (true) {
    const std::size_t end = text.find('\n', line_start);
    if (end == std::string::npos) break;
    const std::string line = text.substr(line_start, end - line_start);
    ASSERT_FALSE(line.empty());
    EXPECT_TRUE(line.front() >= 'A' && line.front() <= 'Z') << line;
    EXPECT_EQ(line.back(), '.') << line;
    for (std::size_t i = 1; i < line.size(); ++i)
      EXPECT_TRUE((line[i] >= 'a' && line[i] <= 'z') || line[i] == ' ' || line[i] == ',' || line[i] == '.') << line;
    ++lines;
    line_start = end + 1;
  }
  EXPECT_GT(lines, 500u);
}

TEST(ToyCorpus, ParseIsTheInverseOfRender) {
  const ToyCorpus corpus;
  const std::string text = corpus.generate(11, 100000);
  std::size_t consumed = 0;
  const std::vector<int64_t> tokens = corpus.parse(text, &consumed);
  EXPECT_GT(consumed, text.size() - 20);  // only the cut last token is left out
  EXPECT_EQ(corpus.render(tokens), text.substr(0, consumed));
  // ... and the tokens are the chain's own samples.
  const std::vector<int64_t> sampled = corpus.sample_tokens(11, static_cast<int64_t>(tokens.size()));
  EXPECT_EQ(tokens, sampled);
}

TEST(ToyCorpus, ParseRejectsTextTheChainCannotProduce) {
  const ToyCorpus corpus;
  const std::string lower = error_of<std::invalid_argument>([&] { corpus.parse("the dog.\n"); });
  EXPECT_NE(lower.find("offset 0"), std::string::npos) << lower;
  const std::string unknown = error_of<std::invalid_argument>([&] { corpus.parse("The zebra sees"); });
  EXPECT_NE(unknown.find("'zebra ' at offset 4"), std::string::npos) << unknown;
  const std::string grammar = error_of<std::invalid_argument>([&] { corpus.parse("The dog.\nHe the "); });
  EXPECT_NE(grammar.find("'the ' at offset 12 cannot follow 'he '"), std::string::npos) << grammar;
  std::size_t consumed = 0;
  EXPECT_EQ(corpus.parse("The dog.\nHe sees", &consumed).size(), 3u);
  EXPECT_EQ(consumed, 12u);
}

TEST(ToyCorpus, TransitionsAreDistributionsWithFavourites) {
  const ToyCorpus corpus;
  const int64_t n = corpus.num_tokens();
  EXPECT_EQ(n, 161);
  for (int64_t from = ToyCorpus::kStart; from < n; ++from) {
    double total = 0.0, entropy = 0.0;
    int64_t support = 0;
    for (int64_t to = 0; to < n; ++to) {
      const double p = corpus.transition_probability(from, to);
      total += p;
      if (p > 0.0) entropy -= p * std::log(p), ++support;
    }
    EXPECT_NEAR(total, 1.0, 1e-12) << "row " << from;
    // Favourite successors make every token's next word far from uniform over the allowed ones: its
    // perplexity is well below the number of allowed successors. The start row has no favourites.
    const double uniformity = std::exp(entropy) / static_cast<double>(support);
    if (from == ToyCorpus::kStart) {
      EXPECT_GT(uniformity, 0.9);
    } else {
      EXPECT_LT(uniformity, 0.8) << "token '" << corpus.token_text(from) << "'";
    }
  }
}

TEST(ToyCorpus, StationaryDistributionIsStationary) {
  const ToyCorpus corpus;
  const std::vector<double> pi = corpus.stationary_distribution();
  const int64_t n = corpus.num_tokens();
  ASSERT_EQ(static_cast<int64_t>(pi.size()), n);
  double sum = 0.0;
  for (int64_t t = 0; t < n; ++t) {
    double next = 0.0;
    for (int64_t s = 0; s < n; ++s) next += pi[static_cast<std::size_t>(s)] * corpus.transition_probability(s, t);
    EXPECT_NEAR(next, pi[static_cast<std::size_t>(t)], 1e-13) << corpus.token_text(t);
    EXPECT_GT(pi[static_cast<std::size_t>(t)], 0.0);
    sum += pi[static_cast<std::size_t>(t)];
  }
  EXPECT_NEAR(sum, 1.0, 1e-13);
}

TEST(ToyCorpus, ClosedFormEntropy) {
  const ToyCorpus corpus;
  EXPECT_NEAR(corpus.entropy_per_char(), corpus.entropy_per_token() / corpus.mean_chars_per_token(), 1e-15);
  EXPECT_NEAR(toy_corpus_entropy_per_char(), kDocumentedEntropyPerChar, 1e-6);
  // Context helps: the previous word carries information.
  EXPECT_LT(corpus.entropy_per_char() + 0.2, corpus.unigram_entropy_per_char());
}

// Statistics of a long sample, from the text alone: parse, then count word bigrams.
struct Empirical {
  double conditional_entropy_per_token = 0.0;  // plug-in estimate from bigram counts
  double model_loss_per_token = 0.0;           // mean -log P(token | previous) under the chain
  double chars_per_token = 0.0;
};

Empirical measure(const ToyCorpus& corpus, const std::string& text) {
  std::size_t consumed = 0;
  const std::vector<int64_t> tokens = corpus.parse(text, &consumed);
  std::map<std::pair<int64_t, int64_t>, double> pair_counts;
  std::map<int64_t, double> from_counts;
  double loss = 0.0;
  for (std::size_t i = 1; i < tokens.size(); ++i) {
    pair_counts[{tokens[i - 1], tokens[i]}] += 1.0;
    from_counts[tokens[i - 1]] += 1.0;
    loss -= std::log(corpus.transition_probability(tokens[i - 1], tokens[i]));
  }
  const double n = static_cast<double>(tokens.size() - 1);
  Empirical e;
  for (const auto& [pair, count] : pair_counts)
    e.conditional_entropy_per_token -= count / n * std::log(count / from_counts[pair.first]);
  e.model_loss_per_token = loss / n;
  e.chars_per_token = static_cast<double>(consumed) / static_cast<double>(tokens.size());
  return e;
}

TEST(ToyCorpus, EmpiricalEntropyMatchesClosedForm) {
  const ToyCorpus corpus;
  const std::string text = corpus.generate(2024, 2000000);  // about 390k tokens
  const Empirical e = measure(corpus, text);
  EXPECT_NEAR(e.chars_per_token, corpus.mean_chars_per_token(), 0.005);
  // The plug-in estimate is biased low by about (#observed bigrams - #tokens) / (2 N), here about
  // 0.007 nats/token = 0.0014 nats/char; the sampling noise is a few 1e-4 nats/char. For scale, words
  // drawn uniformly within their class instead of with favourites would give about 0.68.
  EXPECT_NEAR(e.conditional_entropy_per_token / e.chars_per_token, corpus.entropy_per_char(), 0.003);
  EXPECT_NEAR(e.model_loss_per_token / e.chars_per_token, corpus.entropy_per_char(), 0.0015);
}

TEST(ToyCorpus, BlockLossFloorWithOneCharacterIsTheCharacterUnigramEntropy) {
  // A window of one character carries no context: the best prediction is the character frequencies.
  const ToyCorpus corpus;
  const std::string text = corpus.generate(99, 1000000);
  std::map<char, double> counts;
  for (char c : text) counts[c] += 1.0;
  double unigram = 0.0;
  for (const auto& [c, count] : counts) {
    const double p = count / static_cast<double>(text.size());
    unigram -= p * std::log(p);
  }
  double standard_error = 0.0;
  const double floor = corpus.block_loss_floor(1, 20000, 4, &standard_error);
  EXPECT_GT(standard_error, 0.0);
  EXPECT_NEAR(floor, unigram, 4 * standard_error + 0.002) << "standard error " << standard_error;
}

TEST(ToyCorpus, BlockLossFloorApproachesTheEntropyAsBlocksGrow) {
  const ToyCorpus corpus;
  const double h = corpus.entropy_per_char();
  double se16 = 0.0, se64 = 0.0;
  const double floor16 = corpus.block_loss_floor(16, 1000, 1, &se16);
  const double floor64 = corpus.block_loss_floor(64, 1000, 2, &se64);
  EXPECT_GT(floor16, floor64 + 0.1);
  EXPECT_GT(floor64, h + 0.05);
  // floor(T) = h + E(T) / T with the excess entropy E(T) already converged at T = 16 (about 4.7 nats).
  EXPECT_NEAR((floor16 - h) * 16, (floor64 - h) * 64, 4 * (16 * se16 + 64 * se64) + 0.05);
  // The value quoted in data/corpus/README.md for a GPT with a 64-character context.
  EXPECT_NEAR(floor64, 0.6824, 4 * se64 + 0.0005);
  EXPECT_THROW(corpus.block_loss_floor(0), std::invalid_argument);
  EXPECT_THROW(corpus.block_loss_floor(64, 0), std::invalid_argument);
}

}  // namespace
}  // namespace minitrain::data
