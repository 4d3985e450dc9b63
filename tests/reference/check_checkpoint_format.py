#!/usr/bin/env python3
"""Files minitrain writes must open with the official `safetensors` package (pip install safetensors numpy),
so that minitrain's writer cannot drift from the format. Run by ctest (tests/parity/CMakeLists.txt); exits
77 (ctest: skipped) when the package is not installed. CI (.ci/run) installs it first.

1. write_pattern_checkpoint's file, whose every value is known in closed form: the names (model.<nanoGPT
   name>, optim.<parameter>.exp_avg / .exp_avg_sq), dtypes, shapes, every value bit for bit and the metadata.
2. A fresh train_gpt checkpoint: names, dtypes and shapes from its own config metadata, finite values, the
   tied lm_head, and the same values as a plain reading of the bytes (json + numpy, no package).
3. export_gpt's model.safetensors: exactly nanoGPT's state-dict names; then the same tensors written back
   by safetensors.numpy.save_file must load in minitrain (`sample --import`) and give the same text.
"""
import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile

try:
    import numpy as np
    from safetensors import safe_open
    from safetensors.numpy import save_file
except ImportError as e:
    print("skipped: %s (pip install safetensors numpy)" % e)
    sys.exit(77)

FAILURES = []


def check(condition, message):
    if not condition:
        FAILURES.append(message)
        print("FAIL: " + message)


def run(cmd):
    done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if done.returncode != 0:
        raise SystemExit("%s failed (%d):\n%s" % (" ".join(cmd), done.returncode, done.stdout))
    return done.stdout


def nanogpt_shapes(cfg):
    """{name: shape} of nanoGPT's GPT.state_dict() for a config dict (block_size, vocab_size, n_layer, n_embd,
    bias)."""
    C, V, T, bias = cfg["n_embd"], cfg["vocab_size"], cfg["block_size"], cfg["bias"]
    shapes = {"transformer.wte.weight": (V, C), "transformer.wpe.weight": (T, C), "lm_head.weight": (V, C)}
    layers = [("ln_1", (C,), C), ("attn.c_attn", (3 * C, C), 3 * C), ("attn.c_proj", (C, C), C),
              ("ln_2", (C,), C), ("mlp.c_fc", (4 * C, C), 4 * C), ("mlp.c_proj", (C, 4 * C), C)]
    for i in range(cfg["n_layer"]):
        for module, weight, out in layers:
            shapes["transformer.h.%d.%s.weight" % (i, module)] = weight
            if bias:
                shapes["transformer.h.%d.%s.bias" % (i, module)] = (out,)
    shapes["transformer.ln_f.weight"] = (C,)
    if bias:
        shapes["transformer.ln_f.bias"] = (C,)
    return shapes


def checkpoint_shapes(cfg):
    """model.* and optim.* names of a minitrain checkpoint; the tied lm_head has no optimizer slots of its own."""
    model = nanogpt_shapes(cfg)
    out = {"model." + k: v for k, v in model.items()}
    for name, shape in model.items():
        if name != "lm_head.weight":
            out["optim.%s.exp_avg" % name] = shape
            out["optim.%s.exp_avg_sq" % name] = shape
    return out


def pattern(name, shape):
    key = sum(name.encode("utf-8")) % 97
    i = np.arange(int(np.prod(shape)), dtype=np.int64)
    return (((7 * i + key) % 101 - 50) / np.float32(64)).astype(np.float32).reshape(shape)


def open_all(path):
    with safe_open(path, framework="np") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, f.metadata() or {}


def raw_read(path):
    """The tensors by the format's definition (8-byte length, JSON header, little-endian data)."""
    blob = open(path, "rb").read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    header.pop("__metadata__", None)
    kinds = {"F32": "<f4", "F64": "<f8"}
    return {k: np.frombuffer(blob[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]],
                             dtype=kinds[v["dtype"]]).reshape(v["shape"]) for k, v in header.items()}


def check_layout(label, tensors, expected_shapes):
    check(set(tensors) == set(expected_shapes), "%s: names differ: missing %s, unexpected %s" % (
        label, sorted(set(expected_shapes) - set(tensors)), sorted(set(tensors) - set(expected_shapes))))
    for name, t in tensors.items():
        check(t.dtype == np.float32, "%s: %s has dtype %s" % (label, name, t.dtype))
        if name in expected_shapes:
            check(tuple(t.shape) == tuple(expected_shapes[name]),
                  "%s: %s has shape %s, expected %s" % (label, name, t.shape, expected_shapes[name]))


def pattern_checkpoint(args, work):
    path = os.path.join(work, "pattern.safetensors")
    run([args.pattern_writer, path])
    tensors, meta = open_all(path)
    cfg = json.loads(meta["gpt_config"])
    check_layout("pattern checkpoint", tensors, checkpoint_shapes(cfg))
    for name, t in tensors.items():
        source = "model.transformer.wte.weight" if name == "model.lm_head.weight" else name  # tied
        check(np.array_equal(t, pattern(source, t.shape)), "pattern checkpoint: values of %s" % name)
    check(meta.get("iter") == "42" and meta.get("optimizer.steps") == "7" and meta.get("minitrain.format") == "1",
          "pattern checkpoint: metadata %s" % meta)
    check(len(meta.get("rng.data", "")) == 64 and meta.get("tokenizer") == "abcdefghijk",
          "pattern checkpoint: rng/tokenizer metadata %s" % meta)
    print("pattern checkpoint: %d tensors, names, dtypes, shapes and every value as written" % len(tensors))


def train_gpt_checkpoint(args, work):
    out_dir = os.path.join(work, "run")
    run([args.train_gpt, "--max_iters", "3", "--eval_interval", "3", "--eval_iters", "1", "--n_layer", "2",
         "--n_head", "2", "--n_embd", "16", "--block_size", "16", "--bias", "true", "--sample_chars", "0",
         "--out_dir", out_dir])
    path = os.path.join(out_dir, "ckpt.safetensors")
    tensors, meta = open_all(path)
    cfg = json.loads(meta["gpt_config"])
    check_layout("train_gpt checkpoint", tensors, checkpoint_shapes(cfg))
    raw = raw_read(path)
    for name, t in tensors.items():
        check(np.isfinite(t).all(), "train_gpt checkpoint: %s has non-finite values" % name)
        check(np.array_equal(t, raw[name]), "train_gpt checkpoint: %s differs from the raw bytes" % name)
    check(np.array_equal(tensors["model.lm_head.weight"], tensors["model.transformer.wte.weight"]),
          "train_gpt checkpoint: lm_head.weight is not the tied wte weight")
    check(meta.get("iter") == "3" and meta.get("optimizer.steps") == "3", "train_gpt checkpoint: metadata %s" % meta)
    print("train_gpt checkpoint: %d tensors, names, dtypes, shapes, values and metadata" % len(tensors))
    return out_dir, cfg


def exported_state_dict(args, out_dir, cfg):
    path = os.path.join(out_dir, "model.safetensors")
    run([args.export_gpt, "--out_dir", out_dir, "--output", path])
    tensors, meta = open_all(path)
    check_layout("export", tensors, nanogpt_shapes(cfg))
    exported_cfg = json.loads(meta["config"])
    check(exported_cfg == {k: cfg[k] for k in exported_cfg} and set(exported_cfg) ==
          {"block_size", "vocab_size", "n_layer", "n_head", "n_embd", "dropout", "bias"},
          "export: config metadata %s" % exported_cfg)
    # The official writer's file (its own header order and padding) must load in minitrain, same model.
    rewritten = os.path.join(out_dir, "rewritten.safetensors")
    save_file(tensors, rewritten, metadata=meta)
    sample = [args.sample, "--prompt", "The ", "--max_new_tokens", "30", "--temperature", "0"]
    a = run(sample + ["--import", path])
    b = run(sample + ["--import", rewritten])
    check(a == b, "export: minitrain samples differently from the file save_file wrote: %r vs %r" % (a, b))
    print("export: %d tensors with nanoGPT's names; save_file's copy loads in minitrain and samples the same"
          % len(tensors))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for tool in ("pattern_writer", "train_gpt", "export_gpt", "sample"):
        parser.add_argument("--" + tool, required=True)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="minitrain_format_") as work:
        pattern_checkpoint(args, work)
        out_dir, cfg = train_gpt_checkpoint(args, work)
        exported_state_dict(args, out_dir, cfg)
    import safetensors
    print("safetensors %s, numpy %s: %s" % (safetensors.__version__, np.__version__,
                                            "all checks passed" if not FAILURES else "%d failures" % len(FAILURES)))
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
