#!/opt/torch-current/bin/python
"""Golden values for attention with masks, from torch.nn.functional.scaled_dot_product_attention and
torch.nn.MultiheadAttention: tests/reference/fixtures/sdpa_f64.safetensors and sdpa_f32.safetensors.

    /opt/torch-current/bin/python tests/reference/fixtures_sdpa.py           # regenerate
    /opt/torch-current/bin/python tests/reference/fixtures_sdpa.py --check   # compare bytes, write nothing

SDPA exists only in torch >= 2.0, so this script runs under a current torch (a venv in /opt/torch-current;
it needs torch only: st_io.py writes the files), not under Debian's torch 1.13 that make_fixtures.py uses.
It is therefore not registered in make_fixtures.py. The torch version is in each file's metadata ("torch").
tests/parity/test_sdpa_parity.cpp reads the files; no Python is needed at test time.

For an SDPA case "c" the file holds c.in.0..2 (q, k, v; c.in.3 when the mask is a differentiable float
mask), c.mask (BOOL: true = take part, or the float mask), c.grad_out, c.out, c.grad_in.K (the gradient of
sum(out * grad_out)), and metadata "c.scale", "c.causal" (0/1). For the module case "mha_*" it holds the
inputs query/key (value = key), the masks, the parameters under minitrain's names (c_attn.weight = torch's
in_proj_weight, c_proj = out_proj) and every gradient.

The float32 file holds torch's float64 results on the float32-rounded inputs, rounded once to float32 (as
fixtures_ops.py does where torch's float32 kernel is far from the exact value): torch's float32 CPU
attention (a flash kernel) is itself up to ~1e-6 of the largest value away from the exact result, which
by itself used 95% of the float32 parity limit in one case. The comparison then measures minitrain alone.

Two places where minitrain defines what torch leaves to the version:
- A query row whose keys are all masked: minitrain outputs zeros with zero gradients; torch's SDPA gives NaN
  in some versions (and the NaN reaches dK and dV through the softmax backward). Here such rows are
  unmasked for torch's call and their output is then replaced by zeros with torch.where, so torch computes
  every other row and its gradients, and the dead rows are zeros by construction (metadata
  "c.dead_rows" counts them; "c.torch_nan" says whether this torch gave NaN there without the fix).
- causal with Tq != Tk: minitrain aligns the causal mask bottom-right (query i sees keys j <= i + Tk - Tq,
  what a KV cache needs); torch's is_causal aligns it top-left. Causal cases with a mask or with
  Tq != Tk therefore pass torch the explicit bottom-right boolean mask; is_causal=True is used only for
  square unmasked cases, where both agree.
"""
import argparse
import os
import platform
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import st_io  # noqa: E402

OUT_DIR = os.path.join(HERE, "fixtures")
DTYPES = {"f64": torch.float64, "f32": torch.float32}
NEG_INF = float("-inf")


def _bools(rows):
    return torch.tensor(rows, dtype=torch.bool)


def _cases(gen):
    """(name, q, k, v, mask or None, mask_is_input, scale, causal); float64 values from one generator."""
    def randn(*shape):
        return torch.randn(shape, generator=gen, dtype=torch.float64)

    c = []
    c.append(("no_mask_cross_lengths", randn(2, 2, 3, 4), randn(2, 2, 5, 4), randn(2, 2, 5, 3), None, False, 0.5, False))
    c.append(("causal_square", randn(2, 2, 4, 4), randn(2, 2, 4, 4), randn(2, 2, 4, 4), None, False, 0.6, True))
    c.append(("causal_kv_longer", randn(1, 2, 2, 4), randn(1, 2, 5, 4), randn(1, 2, 5, 4), None, False, 0.6, True))
    c.append(("causal_queries_longer", randn(1, 2, 5, 4), randn(1, 2, 3, 4), randn(1, 2, 3, 4), None, False, 0.6, True))
    c.append(("bool_2d_dead_row", randn(2, 2, 3, 4), randn(2, 2, 5, 4), randn(2, 2, 5, 3),
              _bools([[1, 0, 1, 1, 0], [0, 0, 0, 0, 0], [0, 1, 1, 0, 1]]), False, 0.5, False))
    c.append(("key_padding_4d_dead_batch", randn(2, 2, 3, 4), randn(2, 2, 4, 4), randn(2, 2, 4, 2),
              _bools([[1, 1, 1, 0], [0, 0, 0, 0]]).reshape(2, 1, 1, 4), False, 0.6, False))
    c.append(("bool_per_head_and_causal", randn(2, 2, 4, 4), randn(2, 2, 4, 4), randn(2, 2, 4, 4),
              torch.rand((2, 2, 4, 4), generator=gen) < 0.7, False, 0.7, True))
    c.append(("float_mask_differentiable", randn(2, 2, 3, 4), randn(2, 2, 5, 4), randn(2, 2, 5, 3),
              randn(2, 1, 3, 5), True, 0.5, False))
    c.append(("float_mask_inf_and_causal", randn(2, 3, 4), randn(2, 3, 4), randn(2, 3, 2),
              torch.tensor([[0.5, NEG_INF, -1.0], [NEG_INF, NEG_INF, NEG_INF], [2.0, 0.0, NEG_INF]],
                           dtype=torch.float64), False, 0.5, True))
    c.append(("query_rows_off", randn(2, 2, 3, 4), randn(2, 2, 4, 4), randn(2, 2, 4, 3),
              _bools([[1, 0, 1], [0, 1, 1]]).reshape(2, 1, 3, 1), False, 0.5, False))
    return c


def _keep_mask(mask, tq, tk, causal, dtype):
    """The float additive form of the mask and causal together, shape broadcastable to (..., tq, tk)."""
    total = torch.zeros(tq, tk, dtype=dtype)
    if causal:
        total = total.masked_fill(torch.ones(tq, tk, dtype=torch.bool).triu(1 + tk - tq), NEG_INF)
    if mask is not None:
        total = total + (torch.zeros(mask.shape, dtype=dtype).masked_fill(~mask, NEG_INF)
                         if mask.dtype == torch.bool else mask)
    return total


def _sdpa_case(name, q, k, v, mask, mask_is_input, scale, causal, dtype, gen, out, meta):
    tq, tk = q.shape[-2], k.shape[-2]
    store, dtype = dtype, torch.float64  # values rounded to `store`, computed in float64 (see the header)
    inputs = [t.to(store).to(dtype).requires_grad_(True) for t in (q, k, v)]
    mask_t = None if mask is None else (mask if mask.dtype == torch.bool else mask.to(store).to(dtype))
    if mask_is_input:
        mask_t = mask_t.clone().requires_grad_(True)
        inputs.append(mask_t)
    with torch.no_grad():
        full = _keep_mask(None if mask_t is None else mask_t.detach(), tq, tk, causal, dtype)
        full = full.expand(*q.shape[:-2], tq, tk)
        dead = torch.isneginf(full).all(dim=-1, keepdim=True)  # (..., tq, 1): rows with no key
    if causal and mask is None and tq == tk:
        y = F.scaled_dot_product_attention(inputs[0], inputs[1], inputs[2], is_causal=True, scale=scale)
        raw_nan = False
    else:
        if mask_t is None or mask_t.dtype == torch.bool:
            keep = ~torch.isneginf(full)  # mask and causal as one bool mask (true = take part)
            with torch.no_grad():
                raw = F.scaled_dot_product_attention(inputs[0], inputs[1], inputs[2], attn_mask=keep, scale=scale)
            raw_nan = bool(torch.isnan(raw).any())
            safe = keep | dead  # a dead row attends to every key for torch, then is zeroed below
        else:
            causal_part = _keep_mask(None, tq, tk, causal, dtype)
            with torch.no_grad():
                raw = F.scaled_dot_product_attention(inputs[0], inputs[1], inputs[2],
                                                     attn_mask=mask_t.detach() + causal_part, scale=scale)
            raw_nan = bool(torch.isnan(raw).any())
            safe = torch.where(dead, torch.zeros((), dtype=dtype), mask_t + causal_part)
        y = F.scaled_dot_product_attention(inputs[0], inputs[1], inputs[2], attn_mask=safe, scale=scale)
    y = torch.where(dead, torch.zeros((), dtype=dtype), y)
    grad_out = torch.randn(y.shape, generator=gen, dtype=torch.float64).to(store)
    y.backward(grad_out.to(dtype))
    out[name + ".out"] = y.detach().to(store)
    out[name + ".grad_out"] = grad_out
    for i, t in enumerate(inputs):
        out["%s.in.%d" % (name, i)] = t.detach().to(store)
        out["%s.grad_in.%d" % (name, i)] = (t.grad if t.grad is not None else torch.zeros_like(t)).to(store)
    if mask is not None and not mask_is_input:
        out[name + ".mask"] = mask_t if mask_t.dtype == torch.bool else mask_t.to(store)
    meta[name + ".scale"] = repr(scale)
    meta[name + ".causal"] = "1" if causal else "0"
    meta[name + ".dead_rows"] = str(int(dead.sum()))
    meta[name + ".torch_nan"] = "1" if raw_nan else "0"


def _mha_case(name, causal, dtype, gen, out, meta):
    """torch.nn.MultiheadAttention (batch_first) as cross-attention with a key padding mask (true = ignore,
    torch's convention there) and a bool attn_mask, given to torch inverted: nn.MultiheadAttention reads a
    bool attn_mask as true = NOT allowed, minitrain (like SDPA) as true = take part. No row is fully masked."""
    B, T, S, E, H = 2, 3, 5, 8, 2
    store, dtype = dtype, torch.float64  # values rounded to `store`, computed in float64 (see the header)
    torch.manual_seed(0)  # only the construction; the weights are redrawn below
    m = torch.nn.MultiheadAttention(E, H, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_((torch.randn(p.shape, generator=gen, dtype=torch.float64) * 0.4).to(store))
    query = torch.randn((B, T, E), generator=gen, dtype=torch.float64).to(store).to(dtype).requires_grad_(True)
    memory = torch.randn((B, S, E), generator=gen, dtype=torch.float64).to(store).to(dtype).requires_grad_(True)
    padding = _bools([[0, 0, 0, 1, 1], [0, 0, 0, 0, 1]])        # (B, S): true = padding
    take_part = _bools([[1, 1, 0, 1, 1], [1, 0, 1, 1, 1], [0, 1, 1, 1, 1]])  # (T, S): true = take part
    if causal:  # bottom-right causal part folded into the mask
        take_part = take_part & ~torch.ones(T, S, dtype=torch.bool).triu(1 + S - T)
    y, _ = m(query, memory, memory, key_padding_mask=padding, attn_mask=~take_part, need_weights=False)
    grad_out = torch.randn(y.shape, generator=gen, dtype=torch.float64).to(store)
    y.backward(grad_out.to(dtype))
    names = {"in_proj_weight": "c_attn.weight", "in_proj_bias": "c_attn.bias", "out_proj.weight": "c_proj.weight",
             "out_proj.bias": "c_proj.bias"}
    for torch_name, p in m.named_parameters():
        out["%s.param.%s" % (name, names[torch_name])] = p.detach().to(store)
        out["%s.grad.param.%s" % (name, names[torch_name])] = p.grad.to(store)
    out[name + ".query"] = query.detach().to(store)
    out[name + ".memory"] = memory.detach().to(store)
    out[name + ".key_padding_mask"] = padding
    out[name + ".attn_mask"] = take_part
    out[name + ".grad_out"] = grad_out
    out[name + ".out"] = y.detach().to(store)
    out[name + ".grad.query"] = query.grad.to(store)
    out[name + ".grad.memory"] = memory.grad.to(store)
    meta[name + ".n_head"] = str(H)


def fixture(dtype, seed=13):
    gen = torch.Generator().manual_seed(seed)
    out, meta = {}, {}
    for case in _cases(gen):
        _sdpa_case(*case, dtype=dtype, gen=gen, out=out, meta=meta)
    _mha_case("mha_cross_key_padding", False, dtype, gen, out, meta)
    return out, meta


def build_all():
    files = {}
    for short, dtype in DTYPES.items():
        tensors, meta = fixture(dtype)
        meta.update({"generator": "tests/reference/fixtures_sdpa.py", "torch": torch.__version__,
                     "python": platform.python_version(), "threads": "1", "dtype": short})
        files["sdpa_%s.safetensors" % short] = st_io.serialize(tensors, meta)
    return files


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed files, write nothing")
    parser.add_argument("--out_dir", default=OUT_DIR)
    args = parser.parse_args()
    if int(torch.__version__.split(".")[0]) < 2:
        sys.exit("fixtures_sdpa.py needs torch >= 2.0 (scaled_dot_product_attention); this is " + torch.__version__)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    files = build_all()
    differ = st_io.write_or_check(files, args.out_dir, args.check)
    print("torch %s" % torch.__version__)
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
