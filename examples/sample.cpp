// sample: loads a train_gpt checkpoint and generates text from a prompt.
//
//   ./build/examples/sample --out_dir out --prompt "The dog" --max_new_tokens 300 --temperature 0.8 --top_k 10
#include <minitrain/data/char_tokenizer.h>
#include <minitrain/nn/gpt.h>
#include <minitrain/train/checkpoint.h>
#include <minitrain/train/gpt_config_io.h>

#include <CLI/CLI.hpp>

#include <filesystem>
#include <iostream>

using namespace minitrain;

int main(int argc, char** argv) {
  std::string out_dir = "out", prompt = "\n";
  int64_t max_new_tokens = 300, top_k = 0;
  double temperature = 0.8;
  uint64_t seed = 1337;
  CLI::App app{"Generate text from a minitrain GPT checkpoint"};
  app.add_option("--out_dir", out_dir, "directory holding ckpt.safetensors")->capture_default_str();
  app.add_option("--prompt", prompt, "text to continue (every character must be in the vocabulary)");
  app.add_option("--max_new_tokens", max_new_tokens, "characters to generate")->check(CLI::NonNegativeNumber)->capture_default_str();
  app.add_option("--temperature", temperature, "0 is greedy")->check(CLI::NonNegativeNumber)->capture_default_str();
  app.add_option("--top_k", top_k, "sample among the k likeliest (0: all)")->check(CLI::NonNegativeNumber)->capture_default_str();
  app.add_option("--seed", seed, "sampling seed")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  try {
    train::CheckpointContents c = train::load_checkpoint((std::filesystem::path(out_dir) / "ckpt.safetensors").string());
    const data::CharTokenizer tokenizer = data::CharTokenizer::from_string(c.metadata.at("tokenizer"));
    nn::GPT model(train::gpt_config_from_json(c.metadata.at("gpt_config")));
    model.load_state_dict(c.model);
    std::vector<int64_t> ids = tokenizer.encode(prompt);
    if (ids.empty()) throw std::invalid_argument("--prompt is empty");
    Generator gen(seed);
    std::cout << tokenizer.decode(model.generate(ids, max_new_tokens, temperature, top_k, gen)) << "\n";
  } catch (const std::exception& e) {
    std::cerr << "sample: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
