// make_corpus: writes the toy corpus (see minitrain/data/toy_corpus.h) to a file and prints its
// entropy. With no options it reproduces data/corpus/toy.txt:
//   make_corpus data/corpus/toy.txt
//   make_corpus out.txt --seed 7 --chars 5000000
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <iostream>
#include <stdexcept>
#include <string>
#include <utility>

#include <minitrain/data/toy_corpus.h>

namespace {

void usage(std::ostream& os) {
  os << "usage: make_corpus OUTPUT [--seed N] [--chars N]\n"
        "  writes the toy corpus to OUTPUT and prints its entropy per character\n"
        "  --seed N   text seed (default "
     << minitrain::data::kToyCorpusSeed
     << ")\n"
        "  --chars N  length in characters (default "
     << minitrain::data::kToyCorpusChars << ")\n";
}

// The whole argument as a number, or an error naming the option.
template <class T>
T parse_number(const std::string& option, const std::string& value) {
  std::size_t used = 0;
  long long parsed = 0;
  try {
    parsed = std::stoll(value, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != value.size() || value.empty() || parsed < 0)
    throw std::invalid_argument(option + " needs a non-negative integer, got '" + value + "'");
  return static_cast<T>(parsed);
}

}  // namespace

int main(int argc, char** argv) {
  using namespace minitrain::data;
  std::string output;
  uint64_t seed = kToyCorpusSeed;
  int64_t n_chars = kToyCorpusChars;
  try {
    for (int i = 1; i < argc; ++i) {
      const std::string arg = argv[i];
      if (arg == "-h" || arg == "--help") {
        usage(std::cout);
        return 0;
      }
      if (arg == "--seed" || arg == "--chars") {
        if (i + 1 >= argc) throw std::invalid_argument(arg + " needs a value");
        const std::string value = argv[++i];
        if (arg == "--seed")
          seed = parse_number<uint64_t>(arg, value);
        else
          n_chars = parse_number<int64_t>(arg, value);
      } else if (!arg.empty() && arg[0] == '-') {
        throw std::invalid_argument("unknown option '" + arg + "'");
      } else if (output.empty()) {
        output = arg;
      } else {
        throw std::invalid_argument("more than one output file ('" + output + "', '" + arg + "')");
      }
    }
    if (output.empty()) throw std::invalid_argument("no output file given");
  } catch (const std::exception& e) {
    std::cerr << "make_corpus: " << e.what() << "\n";
    usage(std::cerr);
    return 2;
  }

  try {
    const ToyCorpus corpus;
    const std::string text = corpus.generate(seed, n_chars);
    std::ofstream out(output, std::ios::binary);
    if (!out) throw std::runtime_error("cannot open '" + output + "' for writing");
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    out.close();
    if (!out) throw std::runtime_error("error while writing '" + output + "'");

    const double h_token = corpus.entropy_per_token();
    const double chars = corpus.mean_chars_per_token();
    const double h_char = corpus.entropy_per_char();
    std::printf("wrote %lld characters (seed %llu) to %s\n", static_cast<long long>(text.size()),
                static_cast<unsigned long long>(seed), output.c_str());
    std::printf("tokens (word + separator): %lld\n", static_cast<long long>(corpus.num_tokens()));
    std::printf("entropy rate:              %.6f nats/token\n", h_token);
    std::printf("mean token length:         %.6f chars\n", chars);
    std::printf("entropy per character:     %.6f nats (%.6f bits)\n", h_char, h_char / std::log(2.0));
    std::printf("words without context:     %.6f nats/char (tokens drawn independently from pi)\n",
                corpus.unigram_entropy_per_char());
    // The best loss averaged over a block, for a model that sees only the block (nanoGPT's eval).
    for (const auto& [block, windows] : {std::pair<int64_t, int64_t>{64, 20000}, {256, 5000}}) {
      double standard_error = 0.0;
      const double floor = corpus.block_loss_floor(block, windows, 0, &standard_error);
      std::printf("best mean loss, block %3lld: %.4f +- %.4f nats/char (Monte Carlo, %lld windows)\n",
                  static_cast<long long>(block), floor, standard_error, static_cast<long long>(windows));
    }
  } catch (const std::exception& e) {
    std::cerr << "make_corpus: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
