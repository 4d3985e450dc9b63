// Hugging Face's Llama (transformers' LlamaForCausalLM) in and out of minitrain's GPT.
//
// A Llama directory, as save_pretrained writes it, holds
//   config.json        LlamaConfig: "model_type": "llama", hidden_size, intermediate_size, num_hidden_layers,
//                      num_attention_heads, num_key_value_heads, head_dim, rms_norm_eps, the rotary base
//                      (rope_parameters.rope_theta in transformers 5, a top-level rope_theta before),
//                      max_position_embeddings, vocab_size, tie_word_embeddings, attention_bias, mlp_bias,
//                      hidden_act, attention_dropout, ...
//   model.safetensors  model.embed_tokens.weight, model.layers.<i>.{input_layernorm,
//                      self_attn.{q,k,v,o}_proj, post_attention_layernorm, mlp.{gate,up,down}_proj}.weight
//                      (and .bias of the projections with attention_bias / mlp_bias), model.norm.weight,
//                      lm_head.weight (absent when tie_word_embeddings is true).
// minitrain's GPT with nn::llama_style's options is the same function: RMSNorm, rotary positions, SwiGLU,
// grouped-query attention. Its fused matrices hold Llama's separately stored ones as row blocks:
// attn.c_attn.weight = [q_proj; k_proj; v_proj], mlp.c_fc.weight = [gate_proj; up_proj]; each tensor of the
// file is read straight into its block. The layout lives in hf_llama.cpp and nowhere else.
//
// Rotary layout: transformers' Llama rotates with rotate_half, pairing channel j of a head with j + d/2
// (RotaryLayout::Halves), and HF checkpoints store q_proj / k_proj rows in that order, so they load with no
// permutation. Meta's original checkpoints pair channels 2j and 2j+1 (RotaryLayout::Interleaved);
// transformers' convert_llama_weights_to_hf.py permutes their q/k rows into the halves order. minitrain
// reads only HF directories and exports only Halves models: an Interleaved model is refused, not permuted.
//
// What minitrain cannot represent is refused with one line naming config.json and the field: head_dim other
// than hidden_size / num_attention_heads, rope scaling (a rope_type other than "default", or
// partial_rotary_factor other than 1), hidden_act other than silu (or its alias swish), attention_bias
// differing from mlp_bias (minitrain's bias option puts a bias in every projection or in none; both true is
// exactly minitrain's bias with RMSNorm). attention_dropout becomes GPTConfig::dropout: minitrain's one rate
// also drops the embedding and residual branches, so a non-zero rate is the same model in eval mode but a
// different regulariser in training. pretraining_tp only split matrix products in old transformers (the same
// function) and is accepted.
#pragma once

#include <minitrain/nn/gpt.h>
#include <minitrain/train/imported_gpt.h>

#include <map>
#include <string>

namespace minitrain::train {

// The GPTConfig that a Llama config.json (its text) describes. Required: model_type "llama", hidden_size,
// intermediate_size, num_hidden_layers, num_attention_heads, max_position_embeddings (-> block_size),
// vocab_size; every other field takes LlamaConfig's default when absent or null, as in transformers
// (num_key_value_heads = num_attention_heads, rms_norm_eps 1e-6, rope_theta 10000, tie_word_embeddings
// false). Throws std::invalid_argument "<source>: '<field>' ..." for a missing, ill-typed or unrepresentable
// field.
nn::GPTConfig llama_config_from_hf(const std::string& config_json, const std::string& source = "config.json");

// config.json for `config` (LlamaForCausalLM; the rotary base both as rope_parameters and as rope_theta, so
// transformers 4 and 5 read it), or std::invalid_argument "Llama export: ..." naming what Llama cannot
// express: LayerNorm, positions other than rotary, the Interleaved rotary layout, an MLP that is not SwiGLU,
// QK-norm, logit soft-capping, an attention scale other than 1/sqrt(head size).
std::string llama_config_to_hf(const nn::GPTConfig& config);

// Reads a Llama directory into a float32 GPT. The config is read and every tensor's name, dtype (F32, F64,
// F16 or BF16) and shape checked against it before the model is allocated; then each tensor is read
// straight into its parameter or its row block of one, so the weights are never held twice. With a tied
// head, lm_head.weight, when present, must equal the token embedding. The rotary inv_freq buffers of older
// files are ignored. Every value must be finite. Errors are std::invalid_argument, one line naming the file
// and the field or tensor. `settings` replaces the dropout rate and seed before the model is built.
ImportedGPT load_hf_llama(const std::string& dir, const ImportSettings& settings = {});

// Writes `model` as a Llama directory (created when missing): config.json and model.safetensors under
// save_pretrained's names (lm_head.weight only when untied), float32, {"format": "pt"} plus `extra_metadata`.
// Each file is replaced atomically, the weights first. Refuses what llama_config_to_hf refuses.
void export_hf_llama(const nn::GPT& model, const std::string& dir,
                     const std::map<std::string, std::string>& extra_metadata = {});

}  // namespace minitrain::train
