// write_llama_export DIR [--bias] [--tied]: a random minitrain Llama-style GPT (grouped-query attention,
// every parameter drawn, norm gains included, so a misplaced tensor shows) exported with export_hf_llama to
// DIR, and DIR/../<name of DIR>.logits.safetensors holding "idx" (I64 (2, 16)) and "logits" (F32, the
// model's own float32 logits in eval mode), for tests/reference/check_hf_llama_export.py to compare with
// what transformers computes from the exported directory.
#include <minitrain/core/factory.h>
#include <minitrain/core/ops.h>
#include <minitrain/core/safetensors.h>
#include <minitrain/nn/gpt.h>
#include <minitrain/train/hf_llama.h>

#include <filesystem>
#include <iostream>
#include <string>

using namespace minitrain;

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: write_llama_export DIR [--bias] [--tied]\n";
    return 2;
  }
  try {
    nn::GPTConfig sizes;
    sizes.block_size = 16, sizes.vocab_size = 53, sizes.n_layer = 2, sizes.n_head = 4, sizes.n_kv_head = 2;
    sizes.n_embd = 32, sizes.seed = 3;
    nn::GPTConfig config = nn::llama_style(sizes);
    config.mlp_hidden = 40;
    config.rope_theta = 50000.0;
    config.norm_eps = 1e-6;
    for (int i = 2; i < argc; ++i) {
      const std::string flag = argv[i];
      if (flag == "--bias") config.bias = true;
      else if (flag == "--tied") config.tie_embeddings = true;
      else throw std::invalid_argument("unknown flag " + flag);
    }
    nn::GPT model(config);
    Generator gen(11);
    {
      NoGradGuard no_grad;
      for (auto& [name, p] : model.named_parameters()) {
        const bool gain = p.dim() == 1 && name.find("ln_") != std::string::npos;
        p.copy_(add(mul(randn(p.shape(), gen), 0.1), gain ? 1.0 : 0.0));
      }
    }
    const std::string dir = argv[1];
    train::export_hf_llama(model, dir);
    model.eval();
    NoGradGuard no_grad;
    const Tensor idx = randint(0, config.vocab_size, {2, config.block_size}, gen);
    const std::filesystem::path out = std::filesystem::path(dir).parent_path() /
                                      (std::filesystem::path(dir).filename().string() + ".logits.safetensors");
    save_safetensors(out.string(), {{"idx", idx}, {"logits", model.forward(idx)}}, {});
    std::cout << "wrote " << dir << " and " << out.string() << "\n";
  } catch (const std::exception& e) {
    std::cerr << "write_llama_export: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
