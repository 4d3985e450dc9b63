"""Reading and writing safetensors files with the standard library and torch only.

The fixture scripts must not need the `safetensors` package (Debian does not ship it), and the files they
write must be byte-identical from run to run, so this writer fixes every choice the format leaves open:
"__metadata__" first, then the tensors sorted by name in the JSON; the data section holds the tensors in
name order with no gaps; the header is padded with spaces to a multiple of 8 bytes. Only F32 and F64 are
written (minitrain's reader loads those two); integer data such as token ids is stored as F64, which holds
every integer below 2**53 exactly.

Format (https://github.com/huggingface/safetensors): an 8-byte little-endian header length N, N bytes of
JSON {"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}}, then the data.
"""
import json
import struct

import torch

_CODES = {torch.float32: ("F32", "f"), torch.float64: ("F64", "d")}
_FROM_CODE = {"F32": (torch.float32, "f", 4), "F64": (torch.float64, "d", 8)}


def _raw_bytes(t):
    """Little-endian row-major bytes of a float32/float64 tensor (struct keeps this numpy-free)."""
    code, fmt = _CODES[t.dtype]
    values = t.detach().contiguous().reshape(-1).tolist()
    return code, struct.pack("<%d%s" % (len(values), fmt), *values)


def serialize(tensors, metadata=None):
    """tensors: {name: torch tensor (float32 or float64)}; metadata: {str: str}. Returns the file's bytes."""
    header, chunks, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in sorted(metadata.items())}
    for name in sorted(tensors):
        t = tensors[name]
        if t.dtype not in _CODES:
            raise TypeError("%s: only float32/float64 can be written, got %s" % (name, t.dtype))
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


def load(path):
    """Returns ({name: tensor}, metadata). F32 and F64 only; enough checks for files we trust."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    data = blob[8 + n:]
    metadata = header.pop("__metadata__", {})
    tensors = {}
    for name, info in header.items():
        if info["dtype"] not in _FROM_CODE:
            raise ValueError("%s: %s: dtype %s is not F32/F64" % (path, name, info["dtype"]))
        dtype, fmt, size = _FROM_CODE[info["dtype"]]
        begin, end = info["data_offsets"]
        count = (end - begin) // size
        values = struct.unpack("<%d%s" % (count, fmt), data[begin:end])
        tensors[name] = torch.tensor(values, dtype=dtype).reshape(info["shape"])
    return tensors, metadata
