#!/usr/bin/python3
"""Checks that GPT weights cross between minitrain and PyTorch both ways. Needs torch (Debian's
python3-torch under /usr/bin/python3 is enough) and a minitrain build with the examples:

    ./scripts/build.sh Release && /usr/bin/python3 tests/reference/check_export.py [--build build]

minitrain -> PyTorch: train_gpt trains a small model for a few steps (once without biases, as train_gpt's
default, once with), export_gpt writes model.safetensors and a probe file (token ids and minitrain's
logits); the file is loaded into the nanoGPT-architecture GPT of nanogpt_model.py with
load_state_dict(strict=True) and its logits are compared with minitrain's.

PyTorch -> minitrain: a GPT trained briefly in PyTorch is saved as a state dict (nanoGPT names, config and vocabulary
in the metadata); `sample --import` continues a prompt greedily in C++ and the text must equal PyTorch's
own greedy continuation (the context cropped to block_size, as nanoGPT's generate does).

Logits are compared with the C++ tests' criterion (tests/parity/parity.h): float32, relative error <= 1e-5,
with elements below 16 ulps of the largest / 1e-5 measured against that floor. Exit status 0 when all agree.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import nanogpt_model as ng  # noqa: E402
import st_io  # noqa: E402

LIMIT = 1e-5


def relative_error(actual, expected):
    """The C++ tests' measure: |a - r| / max(|r|, 16 ulps of max|r| / limit), float32 ulps."""
    a, r = actual.double(), expected.double()
    floor = 16 * 2.0 ** -24 * r.abs().max() / LIMIT
    return ((a - r).abs() / torch.maximum(r.abs(), floor)).max().item()


def run(cmd):
    print("$ " + " ".join(cmd))
    done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if done.returncode != 0:
        raise SystemExit("failed (%d):\n%s" % (done.returncode, done.stdout))
    return done.stdout


def minitrain_to_pytorch(build, work, bias):
    out_dir = os.path.join(work, "bias" if bias else "no_bias")
    run([os.path.join(build, "examples", "train_gpt"), "--max_iters", "30", "--eval_interval", "30", "--eval_iters", "1",
         "--n_layer", "2", "--n_head", "4", "--n_embd", "64", "--block_size", "32", "--bias", str(bias).lower(),
         "--sample_chars", "0", "--out_dir", out_dir])
    model_file, probe_file = os.path.join(out_dir, "model.safetensors"), os.path.join(out_dir, "probe.safetensors")
    run([os.path.join(build, "examples", "export_gpt"), "--out_dir", out_dir, "--probe", probe_file])

    tensors, meta = st_io.load(model_file)
    model = ng.GPT(ng.GPTConfig(**json.loads(meta["config"])))
    model.load_state_dict(tensors, strict=True)  # exactly nanoGPT's names and shapes, lm_head included
    model.eval()
    probe, _ = st_io.load(probe_file)
    with torch.no_grad():
        logits, _ = model(probe["idx"].long())
    err = relative_error(logits, probe["logits"])
    print("minitrain -> PyTorch (bias=%s): %d tensors loaded strictly, logits %s, worst relative error %.2g (limit %g)"
          % (bias, len(tensors), tuple(logits.shape), err, LIMIT))
    return err <= LIMIT


def greedy(model, ids, new_tokens):
    block = model.config.block_size
    with torch.no_grad():
        for _ in range(new_tokens):
            logits, _ = model(torch.tensor([ids[-block:]]))
            ids.append(int(logits[0, -1].argmax()))
    return ids


def pytorch_to_minitrain(build, work):
    text = "the quick brown fox jumps over the lazy dog. THE END!"
    vocab = "".join(sorted(set(text)))
    torch.manual_seed(42)
    model = ng.GPT(ng.GPTConfig(block_size=24, vocab_size=len(vocab), n_layer=2, n_head=2, n_embd=32, bias=True))
    # A short training run in PyTorch on the sentence, so the continuation is text rather than one repeated
    # character, and the greedy choices are far from ties.
    data = torch.tensor([vocab.index(c) for c in text * 4])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(150):
        starts = torch.randint(0, len(data) - 25, (8,))
        x = torch.stack([data[s:s + 24] for s in starts])
        y = torch.stack([data[s + 1:s + 25] for s in starts])
        _, loss = model(x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    path = os.path.join(work, "from_pytorch.safetensors")
    st_io.save(path, model.state_dict(), {"format": "pt", "config": json.dumps(model.config.as_dict()),
                                         "tokenizer": vocab})
    prompt, new_tokens = "the lazy", 40  # 8 + 40 > block_size 24: the context is cropped
    expected = "".join(vocab[i] for i in greedy(model, [vocab.index(c) for c in prompt], new_tokens))
    out = run([os.path.join(build, "examples", "sample"), "--import", path, "--prompt", prompt,
               "--max_new_tokens", str(new_tokens), "--temperature", "0"])
    got = out[:-1] if out.endswith("\n") else out
    same = got == expected
    print("PyTorch -> minitrain: greedy continuation %s\n  PyTorch:   %r\n  minitrain: %r"
          % ("identical" if same else "DIFFERS", expected, got))
    return same


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build", default=os.path.join(REPO, "build"), help="minitrain build directory")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print("torch %s" % torch.__version__)
    with tempfile.TemporaryDirectory(prefix="minitrain_check_export_") as work:
        results = [minitrain_to_pytorch(args.build, work, bias=False), minitrain_to_pytorch(args.build, work, bias=True),
                   pytorch_to_minitrain(args.build, work)]
    print("all agree" if all(results) else "MISMATCH")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
