// sample: loads a train_gpt checkpoint (or, with --import, a nanoGPT state dict written by PyTorch; with
// --init_from, a Hugging Face model directory) and generates text from a prompt.
//
//   ./build/examples/sample --out_dir out --prompt "The dog" --max_new_tokens 300 --temperature 0.8 --top_k 10
//   ./build/examples/sample --import model.safetensors --prompt "The dog"   # needs "tokenizer" in its metadata
//   ./build/examples/sample --init_from out/hf --prompt "The dog"          # export_gpt --format hf-gpt2
#include <minitrain/data/char_tokenizer.h>
#include <minitrain/nn/gpt.h>
#include <minitrain/train/checkpoint.h>
#include <minitrain/train/gpt_config_io.h>
#include <minitrain/train/hf_checkpoint.h>
#include <minitrain/train/nanogpt_io.h>

#include "cli_checks.h"

#include <CLI/CLI.hpp>

#include <filesystem>
#include <iostream>
#include <memory>

using namespace minitrain;

int main(int argc, char** argv) {
  std::string out_dir = "out", prompt = "\n", import_path, init_from;
  int64_t max_new_tokens = 300, top_k = 0, n_head = 0;
  double temperature = 0.8;
  uint64_t seed = 1337;
  CLI::App app{"Generate text from a minitrain GPT checkpoint"};
  app.add_option("--out_dir", out_dir, "directory holding ckpt.safetensors")->capture_default_str();
  app.add_option("--prompt", prompt, "text to continue (every character must be in the vocabulary)");
  app.add_option("--max_new_tokens", max_new_tokens, "characters to generate")
      ->check(examples::integer_in(0, 10'000'000))->capture_default_str();
  app.add_option("--temperature", temperature, "0 is greedy")->check(examples::number_in(0, 1e6))->capture_default_str();
  app.add_option("--top_k", top_k, "sample among the k likeliest (0: all)")
      ->check(examples::integer_in(0, int64_t{1} << 31))->capture_default_str();
  app.add_option("--seed", seed, "sampling seed")->check(examples::seed_value())->capture_default_str();
  app.add_option("--import", import_path, "a nanoGPT state dict (safetensors, e.g. written by PyTorch) instead of a checkpoint");
  app.add_option("--init_from", init_from,
                 "a Hugging Face model directory (config.json + model.safetensors; model_type gpt2) instead of a "
                 "checkpoint; its tokenizer must be a character vocabulary (BPE tokenizers come with issue #16)")
      ->excludes(app.get_option("--import"));
  app.add_option("--n_head", n_head, "with --import: heads, when the file has no \"config\" metadata")
      ->check(examples::integer_in(1, int64_t{1} << 20));
  CLI11_PARSE(app, argc, argv);
  try {
    std::unique_ptr<nn::GPT> model;
    std::string vocabulary, source;
    if (!init_from.empty()) {
      train::ImportedGPT imported = train::load_hf_checkpoint(init_from);
      auto it = imported.metadata.find("tokenizer");
      if (it == imported.metadata.end())
        throw std::invalid_argument(
            init_from + ": model.safetensors has no character vocabulary (\"tokenizer\" in its metadata, which "
            "export_gpt --format hf-gpt2 writes); this model's vocabulary of " +
            std::to_string(imported.model->config().vocab_size) +
            " tokens needs its own tokenizer (GPT-2's BPE arrives with issue #16), so ids cannot become text");
      model = std::move(imported.model);
      vocabulary = it->second;
      source = init_from;
    } else if (!import_path.empty()) {
      train::ImportedGPT imported = train::import_nanogpt(import_path, n_head);
      auto it = imported.metadata.find("tokenizer");
      if (it == imported.metadata.end())
        throw std::invalid_argument(import_path + ": no \"tokenizer\" in the metadata (the characters of the vocabulary, "
                                    "in id order), so token ids cannot be turned into text");
      model = std::move(imported.model);
      vocabulary = it->second;
      source = import_path;
    } else {
      const train::CheckpointContents c =
          train::load_checkpoint((std::filesystem::path(out_dir) / "ckpt.safetensors").string());
      const nn::GPTConfig config = train::gpt_config_from_json(c.metadata_value("gpt_config"));
      vocabulary = c.metadata_value("tokenizer");
      train::check_config_matches_tensors(config, c.model, c.path);  // before the model is allocated
      model = std::make_unique<nn::GPT>(config);
      model->load_state_dict(c.model);
      source = c.path;
    }
    const data::CharTokenizer tokenizer = data::CharTokenizer::from_string(vocabulary);
    // Every id the model can produce must decode (checked before generating, not after).
    if (tokenizer.vocab_size() != model->config().vocab_size)
      throw std::invalid_argument(source + ": the tokenizer has " + std::to_string(tokenizer.vocab_size()) +
                                  " characters but the model " + std::to_string(model->config().vocab_size) + " tokens");
    std::vector<int64_t> ids = tokenizer.encode(prompt);
    if (ids.empty()) throw std::invalid_argument("--prompt is empty");
    Generator gen(seed);
    std::cout << tokenizer.decode(model->generate(ids, max_new_tokens, temperature, top_k, gen)) << "\n";
  } catch (const std::exception& e) {
    std::cerr << "sample: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
