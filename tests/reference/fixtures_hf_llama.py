#!/opt/torch-current/bin/python
"""Small random Llama models in Hugging Face's layout, and transformers' logits and loss for them:
tests/reference/fixtures/hf_llama_gqa/, hf_llama_mqa_tied/ and hf_llama_reference.safetensors.

    /opt/torch-current/bin/python tests/reference/fixtures_hf_llama.py           # regenerate
    /opt/torch-current/bin/python tests/reference/fixtures_hf_llama.py --check   # compare bytes, write nothing

Needs torch and transformers (the venv /opt/torch-current). tests/parity/test_hf_llama.cpp reads the files
with minitrain's own reader; no Python at test time.

Both are LlamaForCausalLM(LlamaConfig(hidden_size=32, num_hidden_layers=2, intermediate_size=48,
vocab_size=67, max_position_embeddings=32, rms_norm_eps=1e-6, num_attention_heads=4)), written by
save_pretrained(safe_serialization=True) exactly as transformers writes them (config.json,
generation_config.json, model.safetensors). transformers initialises every RMSNorm gain to 1 and every
bias to 0, where a misplaced tensor would not show: after construction every parameter is redrawn
(matrices N(0, 0.1), gains 1 + N(0, 0.1), biases N(0, 0.1)) from the model's seed.
- hf_llama_gqa/: seed 0, grouped-query attention (num_key_value_heads 2), untied head (lm_head.weight
  present), rope_theta 10000, no biases.
- hf_llama_mqa_tied/: seed 1, multi-query attention (num_key_value_heads 1), tie_word_embeddings true (no
  lm_head.weight), rope_theta 500000, attention_bias and mlp_bias true (every Linear but the head has a
  bias: minitrain's bias option exactly).
- hf_llama_reference.safetensors: for each model <m> ("gqa", "mqa_tied"): <m>.idx (I64 (2, 32): token
  ids), <m>.logits (F32 (2, 32, 67): float32 logits in eval mode), <m>.loss (F32 []: the loss with
  labels=idx, next-token cross-entropy over positions 0..30) and <m>.logits_f64 (the same model in float64).
  Metadata: the torch and transformers versions.
"""
import argparse
import os
import platform
import shutil
import sys
import tempfile

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import st_io  # noqa: E402

OUT_DIR = os.path.join(HERE, "fixtures")
SHAPE = dict(hidden_size=32, num_hidden_layers=2, intermediate_size=48, vocab_size=67, max_position_embeddings=32,
             rms_norm_eps=1e-6, num_attention_heads=4, bos_token_id=None, eos_token_id=None)
MODELS = {
    "gqa": dict(seed=0, num_key_value_heads=2, tie_word_embeddings=False, rope_theta=10000.0),
    "mqa_tied": dict(seed=1, num_key_value_heads=1, tie_word_embeddings=True, rope_theta=500000.0,
                     attention_bias=True, mlp_bias=True),
}


def _model(seed, rope_theta, **config):
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(seed)
    cfg = LlamaConfig(**SHAPE, **config, rope_parameters={"rope_type": "default", "rope_theta": rope_theta})
    model = LlamaForCausalLM(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("layernorm.weight") or name == "model.norm.weight":
                p.copy_(1 + 0.1 * torch.randn_like(p))
            else:
                p.copy_(0.1 * torch.randn_like(p))
    model.eval()
    return model


def _reference(model, name, idx, out):
    with torch.no_grad():
        result = model(idx, labels=idx)
        out[name + ".idx"] = idx
        out[name + ".logits"] = result.logits.float()
        out[name + ".loss"] = result.loss.float().reshape(())
        out[name + ".logits_f64"] = model.double()(idx).logits
        model.float()


def build_all(out_dir):
    import transformers
    idx_gen = torch.Generator().manual_seed(7)
    idx = torch.randint(0, SHAPE["vocab_size"], (2, SHAPE["max_position_embeddings"]), generator=idx_gen)
    out = {}
    for name, config in MODELS.items():
        model = _model(**config)
        model.save_pretrained(os.path.join(out_dir, "hf_llama_" + name), safe_serialization=True)
        _reference(model, name, idx, out)
    meta = {"generator": "tests/reference/fixtures_hf_llama.py", "torch": torch.__version__,
            "transformers": transformers.__version__, "python": platform.python_version(), "threads": "1"}
    st_io.save(os.path.join(out_dir, "hf_llama_reference.safetensors"), out, meta)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed files, write nothing")
    parser.add_argument("--out_dir", default=OUT_DIR)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    names = ["hf_llama_" + n for n in MODELS] + ["hf_llama_reference.safetensors"]
    work = tempfile.mkdtemp(prefix="fixtures_hf_llama_")
    differ = 0
    try:
        build_all(work)
        differ = st_io.write_or_check_tree(work, args.out_dir, names, args.check)
    finally:
        shutil.rmtree(work)
    import transformers
    print("torch %s, transformers %s" % (torch.__version__, transformers.__version__))
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
