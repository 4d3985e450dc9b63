#!/usr/bin/python3
"""Writes minitrain's PyTorch parity fixtures into tests/reference/fixtures/ (or checks them with --check).

    /usr/bin/python3 tests/reference/make_fixtures.py           # regenerate
    /usr/bin/python3 tests/reference/make_fixtures.py --check   # regenerate in memory, compare bytes

Needs only torch (Debian 12's python3-torch runs under /usr/bin/python3). The committed files were made
with torch 1.13.1 (Debian 12 python3-torch 1.13.1+dfsg-4, torch.__version__ "1.13.0a0") on x86-64; the
version is also in every file's metadata ("torch"). The C++ tests in tests/parity/ read these files with
minitrain's own safetensors reader and do not need Python.

Reproducibility: every random number comes from a seeded torch.Generator (or torch.manual_seed just
before the one op that draws from the global generator), torch runs on one thread with deterministic
algorithms, and the writer (st_io.py) fixes the byte layout, so running the script again rewrites the
same bytes. A different torch version or CPU may change the last bits of some values: --check then
reports which files differ (the tolerances of the C++ tests are far above such changes).

Files (each in float64 and float32, see the module that builds it):
  ops_*         every op in core/include/minitrain/core/ops.h   (fixtures_ops.py)
  index_ops_*   ops on int64/bool tensors: comparisons, argmax, gather, topk, ... (fixtures_index_ops.py)
  modules_*     Linear, LayerNorm, Embedding, attention, MLP, Block (fixtures_modules.py)
  gpt_*         2-layer GPT: logits, loss, every gradient         (fixtures_gpt.py)
  train_*       10 training steps of that GPT: losses             (fixtures_gpt.py)
  adamw_*       AdamW + schedule + clipping, 10 steps             (fixtures_adamw.py)
  nanogpt_state_dict  a float32 state dict as PyTorch writes it   (fixtures_gpt.py)
"""
import argparse
import os
import platform
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import fixtures_adamw  # noqa: E402
import fixtures_gpt  # noqa: E402
import fixtures_index_ops  # noqa: E402
import fixtures_modules  # noqa: E402
import fixtures_ops  # noqa: E402
import st_io  # noqa: E402

OUT_DIR = os.path.join(HERE, "fixtures")
DTYPES = {"f64": torch.float64, "f32": torch.float32}


def _provenance(dtype_name):
    return {"generator": "tests/reference/make_fixtures.py", "torch": torch.__version__,
            "python": platform.python_version(), "threads": "1", "dtype": dtype_name}


def build_all():
    """{file name: bytes} of every fixture."""
    files = {}
    for short, dtype in DTYPES.items():
        groups = {
            "ops": (fixtures_ops.fixture(dtype), {}),
            "index_ops": (fixtures_index_ops.fixture(dtype), {}),
            "modules": fixtures_modules.fixture(dtype),
            "gpt": fixtures_gpt.gpt_fixture(dtype),
            "train": fixtures_gpt.train_fixture(dtype),
            "adamw": fixtures_adamw.fixture(dtype),
        }
        for group, (tensors, metadata) in groups.items():
            meta = dict(_provenance(short), **metadata)
            files["%s_%s.safetensors" % (group, short)] = st_io.serialize(tensors, meta)
    tensors, metadata = fixtures_gpt.state_dict_fixture()
    files["nanogpt_state_dict.safetensors"] = st_io.serialize(tensors, metadata)
    return files


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed files, write nothing")
    parser.add_argument("--out_dir", default=OUT_DIR)
    args = parser.parse_args()

    torch.set_num_threads(1)  # one summation order for every reduction and gemm
    torch.use_deterministic_algorithms(True)
    files = build_all()
    total = sum(len(b) for b in files.values())
    if args.check:
        differ = []
        for name, blob in sorted(files.items()):
            path = os.path.join(args.out_dir, name)
            same = os.path.exists(path) and open(path, "rb").read() == blob
            print("%-34s %8d bytes  %s" % (name, len(blob), "identical" if same else "DIFFERS"))
            if not same:
                differ.append(name)
        print("torch %s: %d files, %d bytes; %s" % (torch.__version__, len(files), total,
                                                    "all identical" if not differ else "%d differ" % len(differ)))
        return 1 if differ else 0
    os.makedirs(args.out_dir, exist_ok=True)
    for name, blob in sorted(files.items()):
        with open(os.path.join(args.out_dir, name), "wb") as f:
            f.write(blob)
    print("torch %s: wrote %d files, %d bytes, to %s" % (torch.__version__, len(files), total, args.out_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
