#!/opt/torch-current/bin/python
"""minitrain's Hugging Face GPT-2 export must load in transformers as save_pretrained's own output does, and
give minitrain's logits. Run by ctest (tests/parity/CMakeLists.txt); exits 77 (ctest: skipped) when torch or
transformers cannot be imported (CI does not install transformers; /opt/torch-current has both).

For each case, train_gpt trains a small GPT with biases (GPT-2 has them) for a few steps, export_gpt
--format hf-gpt2 --probe writes the directory and minitrain's logits for two random sequences, and then:
- GPT2LMHeadModel.from_pretrained(dir, output_loading_info=True) reports no missing, unexpected or
  mismatched keys and no error messages;
- the config it read is the model's (sizes, activation, attention scaling);
- its float32 logits on the probe's tokens equal minitrain's within 1e-5 relative (with an absolute floor of
  16 ulps of the largest logit, as tests/parity/parity.h explains);
- model.safetensors carries {"format": "pt"} and the character vocabulary ("tokenizer").

    /opt/torch-current/bin/python tests/reference/check_hf_export.py --train_gpt build/examples/train_gpt \
        --export_gpt build/examples/export_gpt
"""
import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile

try:
    import torch
    import transformers
    from transformers import GPT2LMHeadModel
except ImportError as e:
    print("skipped: %s (needs torch and transformers, e.g. /opt/torch-current/bin/python)" % e)
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import st_io  # noqa: E402

LIMIT = 1e-5
FAILURES = []


def check(condition, message):
    print(("ok:   " if condition else "FAIL: ") + message)
    if not condition:
        FAILURES.append(message)


def run(cmd):
    done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if done.returncode != 0:
        raise SystemExit("%s failed (%d):\n%s" % (" ".join(cmd), done.returncode, done.stdout))
    return done.stdout


def relative_error(actual, expected):
    """max |a - r| / max(|r|, floor), floor = 16 ulps of the largest |r| / LIMIT (tests/parity/parity.h)."""
    a, r = actual.double(), expected.double()
    floor = 16 * 2.0 ** -24 * r.abs().max().item() / LIMIT
    return ((a - r).abs() / r.abs().clamp(min=floor)).max().item()


def safetensors_metadata(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(n)).get("__metadata__", {})


def check_case(name, flags, args, work):
    out_dir = os.path.join(work, name)
    run([args.train_gpt, "--overwrite", "--max_iters", "30", "--eval_interval", "30", "--eval_iters", "2",
         "--n_layer", "2", "--n_head", "2", "--n_embd", "32", "--block_size", "16", "--bias", "true",
         "--sample_chars", "0", "--threads", "1", "--out_dir", out_dir] + flags)
    hf_dir, probe_file = os.path.join(out_dir, "hf"), os.path.join(out_dir, "probe.safetensors")
    run([args.export_gpt, "--out_dir", out_dir, "--format", "hf-gpt2", "--probe", probe_file])

    model, info = GPT2LMHeadModel.from_pretrained(hf_dir, output_loading_info=True)
    model.eval()
    for key in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs"):
        check(not info.get(key), "%s: from_pretrained %s: %s" % (name, key, sorted(info.get(key) or [])))
    with open(os.path.join(hf_dir, "config.json")) as f:
        written = json.load(f)
    for key in ("n_layer", "n_head", "n_embd", "n_positions", "vocab_size", "activation_function",
                "scale_attn_weights", "layer_norm_epsilon"):
        check(getattr(model.config, key) == written[key],
              "%s: config %s read as %r (written %r)" % (name, key, getattr(model.config, key), written[key]))
    meta = safetensors_metadata(os.path.join(hf_dir, "model.safetensors"))
    check(meta.get("format") == "pt", "%s: model.safetensors metadata format %r" % (name, meta.get("format")))
    check(len(meta.get("tokenizer", "")) == written["vocab_size"],
          "%s: the character vocabulary has %d entries" % (name, len(meta.get("tokenizer", ""))))

    probe, _ = st_io.load(probe_file)
    with torch.no_grad():
        logits = model(probe["idx"].long()).logits
    err = relative_error(logits, probe["logits"])
    check(err <= LIMIT, "%s: transformers' logits vs minitrain's: relative error %.2g (limit %g)" % (name, err, LIMIT))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train_gpt", required=True)
    parser.add_argument("--export_gpt", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print("torch %s, transformers %s" % (torch.__version__, transformers.__version__))
    with tempfile.TemporaryDirectory(prefix="check_hf_export_") as work:
        check_case("gelu_scaled", [], args, work)
        check_case("unscaled_attention", ["--attention_scale", "1"], args, work)  # scale_attn_weights false
    if FAILURES:
        print("%d check(s) failed" % len(FAILURES))
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
