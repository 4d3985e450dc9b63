#!/usr/bin/env python3
"""Writes the seed corpus for fuzz/safetensors_fuzz.cpp into fuzz/corpus/ (standard library only).

Valid files in the layout the reference writer uses (metadata first, header padded with spaces to a
multiple of 8), a few dtypes and shapes, and a handful of near-misses that the reader must reject, so
the fuzzer starts next to every check. Run from anywhere: python3 fuzz/make_seed_corpus.py
"""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")


def header_bytes(header, pad=True):
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    if pad:
        text += b" " * ((8 - len(text) % 8) % 8)
    return text


def file_bytes(header, data, pad=True, length=None):
    text = header_bytes(header, pad)
    return struct.pack("<Q", len(text) if length is None else length) + text + data


def tensors_file(tensors, metadata=None):
    """tensors: list of (name, dtype, shape, raw bytes), stored in the given order."""
    header, data = {}, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    return header, data


def f32(*values):
    return struct.pack("<%df" % len(values), *values)


def f64(*values):
    return struct.pack("<%dd" % len(values), *values)


def main():
    os.makedirs(CORPUS, exist_ok=True)
    seeds = {}

    header, data = tensors_file(
        [("h.0.attn.weight", "F64", [2, 2], f64(1.0, -2.0, 0.5, 1e300)),
         ("wte.weight", "F32", [3, 2], f32(0.0, -0.0, 1.5, -3.25, float("inf"), 7.0)),
         ("scalar", "F32", [], f32(3.0)),
         ("empty", "F32", [2, 0, 3], b"")],
        metadata={"format": "pt", "step": "100"})
    seeds["valid_mixed.safetensors"] = file_bytes(header, data)
    seeds["valid_unpadded.safetensors"] = file_bytes(header, data, pad=False)
    seeds["valid_empty.safetensors"] = file_bytes({}, b"")
    seeds["valid_metadata_only.safetensors"] = file_bytes({"__metadata__": {"k": "v\u00e9"}}, b"")

    header, data = tensors_file(
        [("half", "F16", [4], struct.pack("<4H", 0x3C00, 0xC000, 0x0001, 0x7C00)),
         ("bf", "BF16", [2], struct.pack("<2H", 0x3F80, 0xFF80))])
    seeds["valid_f16_bf16.safetensors"] = file_bytes(header, data)

    # Near-misses: each trips one check.
    header, data = tensors_file([("w", "F32", [3, 4], f32(*range(12)))])
    good = file_bytes(header, data)
    seeds["bad_truncated.safetensors"] = good[:-5]
    seeds["bad_trailing.safetensors"] = good + b"\0"
    seeds["bad_header_length.safetensors"] = file_bytes(header, data, length=1 << 40)
    seeds["bad_size_mismatch.safetensors"] = file_bytes(
        {"w": {"dtype": "F32", "shape": [3, 4], "data_offsets": [0, 44]}}, data[:44])
    seeds["bad_dtype.safetensors"] = file_bytes(
        {"w": {"dtype": "I64", "shape": [6], "data_offsets": [0, 48]}}, data)
    seeds["bad_overlap.safetensors"] = file_bytes(
        {"a": {"dtype": "F32", "shape": [8], "data_offsets": [0, 32]},
         "b": {"dtype": "F32", "shape": [8], "data_offsets": [16, 48]}}, data)
    seeds["bad_shape_overflow.safetensors"] = file_bytes(
        {"w": {"dtype": "F32", "shape": [1 << 32, 1 << 32], "data_offsets": [0, 48]}}, data)
    seeds["bad_metadata.safetensors"] = file_bytes({"__metadata__": {"step": 100}}, b"")
    seeds["bad_json.safetensors"] = struct.pack("<Q", 9) + b'{"w":{"d}'

    for name, content in sorted(seeds.items()):
        with open(os.path.join(CORPUS, name), "wb") as f:
            f.write(content)
    print("wrote %d seeds to %s" % (len(seeds), CORPUS))


if __name__ == "__main__":
    main()
