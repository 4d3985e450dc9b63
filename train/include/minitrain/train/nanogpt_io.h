// Moving GPT weights between minitrain and PyTorch in nanoGPT's layout (github.com/karpathy/nanoGPT).
//
// A nanoGPT state dict file is a safetensors file holding exactly the tensors of nanoGPT's
// GPT.state_dict(): transformer.wte.weight, transformer.wpe.weight, transformer.h.<i>.{ln_1, attn.c_attn,
// attn.c_proj, ln_2, mlp.c_fc, mlp.c_proj}.{weight, bias}, transformer.ln_f.{weight, bias} and
// lm_head.weight (the tied token embedding, stored under both names as state_dict() lists it), float32.
// Its metadata holds "config": nanoGPT's GPTConfig as JSON ({"block_size", "vocab_size", "n_layer",
// "n_head", "n_embd", "dropout", "bias"}), so `GPT(GPTConfig(**json.loads(config)))` rebuilds the model in
// PyTorch, and optionally "tokenizer" (a character vocabulary, CharTokenizer::to_string()).
//
// minitrain's parameter names are nanoGPT's, so the conversion is a renaming-free copy plus the checks
// that the architectures agree: nanoGPT has GELU in its erf form, learned positions and 1/sqrt(head size)
// attention scaling; a minitrain model configured otherwise cannot be exported.
#pragma once

#include <minitrain/nn/gpt.h>
#include <minitrain/train/imported_gpt.h>

#include <map>
#include <memory>
#include <string>

namespace minitrain::train {

// nanoGPT's GPTConfig fields as JSON. Throws std::invalid_argument when `config` is not nanoGPT's
// architecture (activation, positional encoding or attention scale differ).
std::string nanogpt_config_to_json(const nn::GPTConfig& config);
// The fields above (all required; other keys are ignored) -> a minitrain config of that architecture.
nn::GPTConfig nanogpt_config_from_json(const std::string& json);

// The model's tensors under nanoGPT's names, as contiguous float32 copies (lm_head.weight included).
nn::StateDict nanogpt_state_dict(const nn::GPT& model);

// Writes nanogpt_state_dict(model) to `path` (atomically) with "format": "pt", "config" and
// "minitrain.gpt_config" (the full minitrain config) in the metadata, plus `extra_metadata`.
void export_nanogpt(const std::string& path, const nn::GPT& model,
                    const std::map<std::string, std::string>& extra_metadata = {});

// Builds a GPT from nanoGPT-named tensors. The config comes from `config_json` (nanoGPT's fields); when it
// is empty, it is read off the shapes (vocab_size and n_embd from wte, block_size from wpe, n_layer from
// the h.<i> entries, bias from ln_f.bias) with `n_head` given by the caller (the shapes do not tell it).
// Accepted as PyTorch writes them: the causal-mask buffers "*.attn.bias" of nanoGPT without flash
// attention are dropped; lm_head.weight may be absent (it is wte's) but, if present, must equal
// transformer.wte.weight. Every other tensor must be there with the right shape (strict loading). The
// model takes the dtype of transformer.wte.weight. Errors are std::invalid_argument naming `source` and
// the tensor or field involved.
std::unique_ptr<nn::GPT> gpt_from_nanogpt(const nn::StateDict& tensors, const std::string& config_json,
                                          int64_t n_head, const std::string& source);

// Reads a nanoGPT state dict file (config from its "config" metadata, else inferred with `n_head`).
ImportedGPT import_nanogpt(const std::string& path, int64_t n_head = 0);

}  // namespace minitrain::train
