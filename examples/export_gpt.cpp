// export_gpt: writes a train_gpt checkpoint's model as a nanoGPT state dict that PyTorch loads with
// GPT.load_state_dict(..., strict=True) (see train/include/minitrain/train/nanogpt_io.h for the layout), or
// with --format hf-gpt2 as a Hugging Face GPT-2 directory that transformers loads with
// GPT2LMHeadModel.from_pretrained (train/include/minitrain/train/hf_gpt2.h; the model needs biases:
// train_gpt --bias true), or with --format hf-llama as a LlamaForCausalLM directory
// (train/include/minitrain/train/hf_llama.h; the model needs the Llama architecture: train_gpt --preset llama).
//
//   ./build/examples/export_gpt --out_dir out                       # -> out/model.safetensors
//   ./build/examples/export_gpt --out_dir out --output m.safetensors --probe probe.safetensors
//   ./build/examples/export_gpt --out_dir out --format hf-gpt2      # -> out/hf/{config.json, model.safetensors}
//   ./build/examples/export_gpt --out_dir out --format hf-llama     # the same, LlamaForCausalLM
//
// --probe also writes a few token sequences ("idx", float64 ids) and minitrain's logits for them
// ("logits", float32, eval mode), so tests/reference/check_export.py can compare PyTorch's logits.
// The reverse direction, a PyTorch-written state dict into minitrain, is `sample --import FILE`.
#include <minitrain/core/factory.h>
#include <minitrain/core/safetensors.h>
#include <minitrain/nn/gpt.h>
#include <minitrain/train/checkpoint.h>
#include <minitrain/train/gpt_config_io.h>
#include <minitrain/train/hf_gpt2.h>
#include <minitrain/train/hf_llama.h>
#include <minitrain/train/nanogpt_io.h>

#include <CLI/CLI.hpp>

#include <csignal>
#include <filesystem>
#include <iostream>

using namespace minitrain;

namespace {

// Two sequences of block_size random ids and the model's logits for them; `config` (the export format's
// config JSON) goes into the metadata.
void write_probe(nn::GPT& model, const std::string& path, const std::string& config) {
  const int64_t B = 2, T = model.config().block_size;
  Generator gen(2024);
  Tensor idx = randint(0, model.config().vocab_size, {B, T}, gen);
  model.eval();
  NoGradGuard no_grad;
  Tensor logits = model.forward(idx).to(DType::Float32);
  save_safetensors(path, {{"idx", idx.to(DType::Float64)}, {"logits", logits}},
                   {{"config", config}});
}

// Whether two paths name one file: the same file on disk when both exist, else the same normalised path
// (so "out/./ckpt.safetensors" and "out/ckpt.safetensors" agree before either exists).
bool same_file(const std::string& a, const std::string& b) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::exists(a, ec) && fs::exists(b, ec)) return fs::equivalent(a, b, ec);
  return fs::weakly_canonical(fs::absolute(a), ec) == fs::weakly_canonical(fs::absolute(b), ec);
}

}  // namespace

int main(int argc, char** argv) {
  std::string out_dir = "out", output, probe, format = "nanogpt";
  CLI::App app{"Export a minitrain GPT checkpoint as a nanoGPT (PyTorch) state dict in safetensors"};
  app.add_option("--out_dir", out_dir, "directory holding ckpt.safetensors")->capture_default_str();
  app.add_option("--format", format, "nanogpt: one safetensors state dict; hf-gpt2 / hf-llama: a Hugging Face "
                 "GPT2LMHeadModel / LlamaForCausalLM directory")
      ->check(CLI::IsMember({"nanogpt", "hf-gpt2", "hf-llama"}))->capture_default_str();
  app.add_option("--output", output,
                 "file to write (default: <out_dir>/model.safetensors); with --format hf-* the directory "
                 "(default: <out_dir>/hf)");
  app.add_option("--probe", probe, "also write probe tokens and minitrain's logits to this file");
  CLI11_PARSE(app, argc, argv);
  std::signal(SIGXFSZ, SIG_IGN);  // past `ulimit -f`, a clear write error instead of a silent kill
  try {
    const std::string ckpt = (std::filesystem::path(out_dir) / "ckpt.safetensors").string();
    const bool hf = format == "hf-gpt2" || format == "hf-llama";
    if (output.empty()) output = (std::filesystem::path(out_dir) / (hf ? "hf" : "model.safetensors")).string();
    // The files written: the state dict, or the directory's model.safetensors and config.json.
    const std::string weights = hf ? (std::filesystem::path(output) / "model.safetensors").string() : output;
    const std::string hf_config = (std::filesystem::path(output) / "config.json").string();
    // The export must never replace the training checkpoint it reads, nor the probe the export itself.
    if (!hf && same_file(output, ckpt))
      throw std::invalid_argument("--output " + output + " is the training checkpoint " + ckpt);
    if (hf && (same_file(weights, ckpt) || same_file(hf_config, ckpt)))
      throw std::invalid_argument("--output " + output + " would replace the training checkpoint " + ckpt);
    if (!probe.empty() && same_file(probe, ckpt))
      throw std::invalid_argument("--probe " + probe + " is the training checkpoint " + ckpt);
    if (!probe.empty() && same_file(probe, weights))
      throw std::invalid_argument("--probe " + probe + " is the same file as --output " + weights);
    if (!probe.empty() && hf && same_file(probe, hf_config))
      throw std::invalid_argument("--probe " + probe + " is the same file as " + hf_config);
    const train::CheckpointContents c = train::load_checkpoint(ckpt);
    const nn::GPTConfig config = train::gpt_config_from_json(c.metadata_value("gpt_config"));
    train::check_config_matches_tensors(config, c.model, c.path);  // before the model is allocated
    nn::GPT model(config);
    model.load_state_dict(c.model);
    std::map<std::string, std::string> extra;
    if (c.metadata.count("tokenizer")) extra["tokenizer"] = c.metadata.at("tokenizer");
    std::string config_json;
    if (format == "hf-gpt2") {
      config_json = train::gpt2_config_to_hf(model.config());  // refuses a model GPT-2 cannot express first
      train::export_hf_gpt2(model, output, extra);
      std::cout << "wrote " << output << " (config.json and model.safetensors: GPT2LMHeadModel, config "
                << config_json << ")\n";
    } else if (format == "hf-llama") {
      config_json = train::llama_config_to_hf(model.config());  // refuses a model Llama cannot express first
      train::export_hf_llama(model, output, extra);
      std::cout << "wrote " << output << " (config.json and model.safetensors: LlamaForCausalLM, config "
                << config_json << ")\n";
    } else {
      config_json = train::nanogpt_config_to_json(model.config());
      train::export_nanogpt(output, model, extra);
      std::cout << "wrote " << output << " (" << model.state_dict().size() << " tensors, nanoGPT names, config "
                << config_json << ")\n";
    }
    if (!probe.empty()) {
      write_probe(model, probe, config_json);
      std::cout << "wrote " << probe << " (probe tokens and minitrain's logits)\n";
    }
  } catch (const std::exception& e) {
    std::cerr << "export_gpt: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
