// Hugging Face's GPT-2 (transformers' GPT2LMHeadModel) in and out of minitrain's GPT.
//
// A GPT-2 directory, as save_pretrained writes it and as the hub serves `gpt2`, holds
//   config.json        GPT2Config: "model_type": "gpt2", n_embd, n_layer, n_head, n_positions, vocab_size,
//                      layer_norm_epsilon, activation_function, the three dropout rates, ...
//   model.safetensors  transformer.wte.weight (vocab, C), transformer.wpe.weight (n_positions, C),
//                      transformer.h.<i>.{ln_1, attn.c_attn, attn.c_proj, ln_2, mlp.c_fc, mlp.c_proj}.
//                      {weight, bias}, transformer.ln_f.{weight, bias}; the hub's `gpt2` names them without
//                      "transformer." and adds the attention-mask buffers h.<i>.attn.bias (and, in older
//                      files, attn.masked_bias). The four matrices of each block are Conv1D weights, stored
//                      (in, out): the transpose of minitrain's Linear (out, in). lm_head.weight is absent
//                      when tied (save_pretrained drops it) and its own tensor when tie_word_embeddings is false.
// The names are otherwise minitrain's (nanoGPT copied GPT-2's), so the layout is: this list of tensors,
// which of them are transposed, and the config.json fields. It lives in hf_gpt2.cpp and nowhere else.
//
// layer_norm_epsilon is GPTConfig::norm_eps and tie_word_embeddings GPTConfig::tie_embeddings.
// What minitrain cannot represent is refused with one line naming config.json and the field: an MLP
// width other than 4 n_embd (n_inner), per-layer attention scaling (scale_attn_by_inverse_layer_idx),
// cross-attention, dropout rates that differ (minitrain has one), an activation other than
// gelu_new / gelu_pytorch_tanh (GELU, tanh form), gelu (erf form) and relu. reorder_and_upcast_attn only
// changes the order of float16 operations and is accepted. scale_attn_weights false is attention_scale 1.
#pragma once

#include <minitrain/nn/gpt.h>
#include <minitrain/train/imported_gpt.h>

#include <map>
#include <string>

namespace minitrain::train {

// The GPTConfig that a GPT-2 config.json (its text) describes. Required: model_type "gpt2", n_embd,
// n_layer, n_head, n_positions, vocab_size; every other field takes GPT2Config's default when absent, as
// in transformers. Throws std::invalid_argument "<source>: '<field>' ..." for a missing, ill-typed or
// unrepresentable field.
nn::GPTConfig gpt2_config_from_hf(const std::string& config_json, const std::string& source = "config.json");

// config.json for `config` (GPT2LMHeadModel, every field GPT2Config has that bears on the model), or
// std::invalid_argument naming what GPT-2 cannot express: no biases, positions other than learned,
// RMSNorm, a gated MLP or one not 4 n_embd wide, grouped-query attention, QK-norm, logit soft-capping, an
// attention scale other than 1/sqrt(head size) or 1.
std::string gpt2_config_to_hf(const nn::GPTConfig& config);

// Reads a GPT-2 directory into a float32 GPT. The config is read and every tensor's name, dtype (F32,
// F64, F16 or BF16) and shape checked against it before the model is allocated; then each tensor is read
// straight into its parameter, so the weights are never held twice (peak memory: the model plus one
// block's largest matrix). With a tied head, lm_head.weight, when present, must equal the token embedding. Every value must
// be finite. Errors are std::invalid_argument, one line naming the file and the field or tensor. The
// metadata is model.safetensors' (e.g. "tokenizer", which export_hf_gpt2 writes for character models).
// `settings` replaces the dropout rate and seed (training settings, not weights) before the model is built.
ImportedGPT load_hf_gpt2(const std::string& dir, const ImportSettings& settings = {});

// Writes `model` as a GPT-2 directory (created when missing): config.json and model.safetensors under
// save_pretrained's names (lm_head.weight left out when tied), float32, {"format": "pt"} plus `extra_metadata`
// in the file's metadata. Each file is replaced atomically, the weights first. Refuses what
// gpt2_config_to_hf refuses.
void export_hf_gpt2(const nn::GPT& model, const std::string& dir,
                    const std::map<std::string, std::string>& extra_metadata = {});

}  // namespace minitrain::train
