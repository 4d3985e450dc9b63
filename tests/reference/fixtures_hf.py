#!/opt/torch-current/bin/python
"""Small random GPT-2 models in Hugging Face's layout, and transformers' logits and loss for them:
tests/reference/fixtures/hf_gpt2_tiny/, hf_gpt2_hub_layout/ and hf_gpt2_reference.safetensors.

    /opt/torch-current/bin/python tests/reference/fixtures_hf.py           # regenerate
    /opt/torch-current/bin/python tests/reference/fixtures_hf.py --check   # compare bytes, write nothing

Needs torch and transformers (the venv /opt/torch-current has both; Debian's torch 1.13 has no
transformers). tests/parity/test_hf_gpt2.cpp reads the files with minitrain's own reader; no Python at test
time.

- hf_gpt2_tiny/: GPT2LMHeadModel(GPT2Config(n_layer=2, n_head=2, n_embd=32, vocab_size=101, n_positions=24))
  from torch.manual_seed(0), written by save_pretrained(safe_serialization=True) exactly as transformers
  writes it (config.json, generation_config.json, model.safetensors: "transformer." names, no lm_head.weight,
  Conv1D weights (in, out)). Activation gelu_new, dropout 0.1 (the defaults).
- hf_gpt2_hub_layout/: a second model (seed 1; activation "gelu", scale_attn_weights false, dropout 0) in the
  layout of the hub's `gpt2` file: names without "transformer.", the causal-mask buffers h.<i>.attn.bias
  (float32 (1, 1, 24, 24)) and h.<i>.attn.masked_bias, and lm_head.weight (the tied embedding) present.
  Written with st_io from the model's state_dict; config.json by GPT2Config.to_json_file.
- hf_gpt2_reference.safetensors: for each model <m> ("tiny", "hub_layout"): <m>.idx (I64 (2, 24): token ids),
  <m>.logits (F32 (2, 24, 101): the model's float32 logits in eval mode), <m>.loss (F32 []: its loss with
  labels=idx, i.e. next-token cross-entropy over positions 0..22), and <m>.logits_f64 (the same model in
  float64, for measuring how far torch's own float32 result is from the exact one). Metadata: the torch
  and transformers versions.
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
SHAPE = dict(n_layer=2, n_head=2, n_embd=32, vocab_size=101, n_positions=24, bos_token_id=None,
             eos_token_id=None)


def _model(seed, **config):
    from transformers import GPT2Config, GPT2LMHeadModel
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(GPT2Config(**SHAPE, **config))
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


def _write_hub_layout(model, directory):
    """The hub's gpt2 layout: no "transformer." prefix, mask buffers, lm_head.weight present."""
    os.makedirs(directory, exist_ok=True)
    n_pos = model.config.n_positions
    tensors = {}
    for name, t in model.state_dict().items():
        short = name[len("transformer."):] if name.startswith("transformer.") else name
        tensors[short] = t.detach().clone().contiguous()
    for i in range(model.config.n_layer):
        tensors["h.%d.attn.bias" % i] = torch.tril(torch.ones(n_pos, n_pos)).reshape(1, 1, n_pos, n_pos)
        tensors["h.%d.attn.masked_bias" % i] = torch.tensor(-1e4)
    assert torch.equal(tensors["lm_head.weight"], tensors["wte.weight"])
    st_io.save(os.path.join(directory, "model.safetensors"), tensors, {"format": "pt"})
    model.config.to_json_file(os.path.join(directory, "config.json"))


def build_all(out_dir):
    import transformers
    idx_gen = torch.Generator().manual_seed(7)
    idx = torch.randint(0, SHAPE["vocab_size"], (2, SHAPE["n_positions"]), generator=idx_gen)
    out = {}

    tiny = _model(0)
    tiny.save_pretrained(os.path.join(out_dir, "hf_gpt2_tiny"), safe_serialization=True)
    _reference(tiny, "tiny", idx, out)

    hub = _model(1, activation_function="gelu", scale_attn_weights=False, resid_pdrop=0.0, embd_pdrop=0.0,
                 attn_pdrop=0.0)
    _write_hub_layout(hub, os.path.join(out_dir, "hf_gpt2_hub_layout"))
    _reference(hub, "hub_layout", idx, out)

    meta = {"generator": "tests/reference/fixtures_hf.py", "torch": torch.__version__,
            "transformers": transformers.__version__, "python": platform.python_version(), "threads": "1"}
    st_io.save(os.path.join(out_dir, "hf_gpt2_reference.safetensors"), out, meta)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed files, write nothing")
    parser.add_argument("--out_dir", default=OUT_DIR)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    names = ["hf_gpt2_tiny", "hf_gpt2_hub_layout", "hf_gpt2_reference.safetensors"]
    work = tempfile.mkdtemp(prefix="fixtures_hf_")
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
