"""Reading and writing safetensors files with the standard library and torch only.

The fixture scripts must not need the `safetensors` package (Debian does not ship it), and the files they
write must be byte-identical from run to run, so this writer fixes every choice the format leaves open:
"__metadata__" first, then the tensors sorted by name in the JSON; the data section holds the tensors in
name order with no gaps; the header is padded with spaces to a multiple of 8 bytes. F32, F64, I64 and BOOL
are written and read (the dtypes minitrain's reader loads). The older fixture files store token ids as F64
(exact below 2**53) and are kept that way so that they stay byte-identical.

Format (https://github.com/huggingface/safetensors): an 8-byte little-endian header length N, N bytes of
JSON {"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}}, then the data.
"""
import json
import os
import struct

import torch

_CODES = {torch.float32: ("F32", "f"), torch.float64: ("F64", "d"), torch.int64: ("I64", "q"),
          torch.bool: ("BOOL", "?")}
_FROM_CODE = {"F32": (torch.float32, "f", 4), "F64": (torch.float64, "d", 8), "I64": (torch.int64, "q", 8),
              "BOOL": (torch.bool, "?", 1)}


def _raw_bytes(t):
    """Little-endian row-major bytes of a tensor of one of _CODES' dtypes (struct keeps this numpy-free)."""
    code, fmt = _CODES[t.dtype]
    values = t.detach().contiguous().reshape(-1).tolist()
    return code, struct.pack("<%d%s" % (len(values), fmt), *values)


def serialize(tensors, metadata=None):
    """tensors: {name: torch tensor (float32, float64, int64 or bool)}; metadata: {str: str}. Returns the bytes."""
    header, chunks, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in sorted(metadata.items())}
    for name in sorted(tensors):
        t = tensors[name]
        if t.dtype not in _CODES:
            raise TypeError("%s: only float32/float64/int64/bool can be written, got %s" % (name, t.dtype))
        code, raw = _raw_bytes(t)
        header[name] = {"dtype": code, "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(chunks)


def save(path, tensors, metadata=None):
    with open(path, "wb") as f:
        f.write(serialize(tensors, metadata))


def write_or_check(files, out_dir, check):
    """files: {file name: bytes}. Writes each into out_dir, or with `check` compares it with the file there and
    writes nothing. Prints one line per file; returns how many differ (0 when writing)."""
    differ = 0
    for name, blob in sorted(files.items()):
        path = os.path.join(out_dir, name)
        if check:
            with open(path, "rb") if os.path.exists(path) else open(os.devnull, "rb") as f:
                same = f.read() == blob
            differ += not same
            print("%-32s %8d bytes  %s" % (name, len(blob), "identical" if same else "DIFFERS"))
        else:
            with open(path, "wb") as f:
                f.write(blob)
            print("wrote %s (%d bytes)" % (path, len(blob)))
    return differ


def _files(root):
    """Every file under root, as paths relative to it, sorted."""
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)


def write_or_check_tree(work, out_dir, names, check):
    """The files generated under `work` (directories such as save_pretrained writes, or single files) copied
    to out_dir, or with `check` compared with the committed ones; with `check`, a committed file inside one of
    the directories `names` that is no longer generated counts as differing too. Prints one line per file;
    returns how many differ (0 when writing)."""
    differ = 0
    for path in _files(work):
        mine, committed = os.path.join(work, path), os.path.join(out_dir, path)
        with open(mine, "rb") as f:
            blob = f.read()
        if check:
            same = os.path.exists(committed) and open(committed, "rb").read() == blob
            differ += not same
            print("%-48s %8d bytes  %s" % (path, len(blob), "identical" if same else "DIFFERS"))
        else:
            os.makedirs(os.path.dirname(committed) or ".", exist_ok=True)
            with open(committed, "wb") as f:
                f.write(blob)
            print("wrote %s (%d bytes)" % (committed, len(blob)))
    if check:
        extra = [p for n in names if os.path.isdir(os.path.join(out_dir, n))
                 for p in _files(os.path.join(out_dir, n)) if not os.path.exists(os.path.join(work, n, p))]
        for p in extra:
            print("%-48s committed but no longer generated" % p)
        differ += len(extra)
    return differ


def load(path):
    """Returns ({name: tensor}, metadata). F32, F64, I64 and BOOL; enough checks for files we trust."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    data = blob[8 + n:]
    metadata = header.pop("__metadata__", {})
    tensors = {}
    for name, info in header.items():
        if info["dtype"] not in _FROM_CODE:
            raise ValueError("%s: %s: dtype %s is not F32/F64/I64/BOOL" % (path, name, info["dtype"]))
        dtype, fmt, size = _FROM_CODE[info["dtype"]]
        begin, end = info["data_offsets"]
        count = (end - begin) // size
        values = struct.unpack("<%d%s" % (count, fmt), data[begin:end])
        tensors[name] = torch.tensor(values, dtype=dtype).reshape(info["shape"])
    return tensors, metadata
