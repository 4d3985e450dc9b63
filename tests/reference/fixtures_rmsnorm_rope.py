#!/opt/torch-current/bin/python
"""Golden values for RMSNorm (torch.nn.RMSNorm) and rotary position embeddings (Hugging Face transformers'
apply_rotary_pos_emb, "rotate_half", and Meta's original Llama complex-number form):
tests/reference/fixtures/rmsnorm_rope_f64.safetensors and rmsnorm_rope_f32.safetensors.

    /opt/torch-current/bin/python tests/reference/fixtures_rmsnorm_rope.py           # regenerate
    /opt/torch-current/bin/python tests/reference/fixtures_rmsnorm_rope.py --check   # compare bytes, write nothing

torch.nn.RMSNorm exists only in torch >= 2.4 and the rotary code comes from transformers, so this script
runs under the current torch in /opt/torch-current (st_io.py writes the files), like fixtures_sdpa.py, and
is not registered in make_fixtures.py. The torch and transformers versions are in each file's metadata.
tests/parity/test_rmsnorm_rope_parity.cpp reads the files; no Python is needed at test time.

Every value is drawn in float64 from one generator; the float32 file holds the same draws rounded to
float32, and torch computes each case in the file's dtype (its own float32 kernels: these ops are a few
roundings per element, far inside the float32 parity limit).

RMSNorm case "rms_*": rms_X.in, rms_X.weight (affine cases), rms_X.grad_out, rms_X.out, rms_X.grad_in,
rms_X.grad_weight; metadata rms_X.eps ("none" for torch's default eps=None, i.e. finfo(dtype).eps, chosen by
torch at forward time) and rms_X.affine (0/1). The "tiny" cases scale x by sqrt(finfo(dtype).eps), so that the
mean square is of the size of the default eps and a wrong default shows.

Rotary case "rope_*": q and k (rope_X.q, rope_X.k) rotated with the same tables, rope_X.cos and rope_X.sin
(T, D/2): cos and sin of (start + t) * theta^(-2i/D), computed in float64 (as minitrain's rotary_tables;
transformers computes the angles in float32, which at T = 7 changes nothing that matters here, and at long
contexts is a known loss of precision of its own) and rounded to the file's dtype. The outputs rope_X.q_out,
rope_X.k_out, the upstream gradients rope_X.q_grad_out, rope_X.k_grad_out and the input gradients
rope_X.q_grad, rope_X.k_grad. Metadata: rope_X.layout ("halves" = transformers, "interleaved" = Meta),
rope_X.seq_dim (-2 for (B, H, T, D), -3 for (B, T, H, D)), rope_X.theta, rope_X.start.
- halves: transformers.models.llama.modeling_llama.apply_rotary_pos_emb(q, k, cos, sin, unsqueeze_dim), with
  cos and sin duplicated to (1, T, D) by torch.cat((freqs, freqs), -1) as LlamaRotaryEmbedding does.
- interleaved: Meta's llama/model.py: q viewed as complex pairs (torch.view_as_complex of (..., D/2, 2)), times
  freqs_cis = torch.polar(1, angle) reshaped to broadcast over (B, T, H, D/2), back with torch.view_as_real
  and flattened. Its cos and sin tables are the real and imaginary parts of freqs_cis (rounded to the file's
  dtype first). Cases with seq_dim -2 transpose (B, H, T, D) to Meta's (B, T, H, D) and back.
"""
import argparse
import os
import platform
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import st_io  # noqa: E402

OUT_DIR = os.path.join(HERE, "fixtures")
DTYPES = {"f64": torch.float64, "f32": torch.float32}


def _randn(gen, *shape):
    return torch.randn(shape, generator=gen, dtype=torch.float64)


def _rms_case(name, shape, affine, eps, tiny, dtype, gen, out, meta):
    """torch.nn.RMSNorm over the last dim of `shape`, weight drawn around 1, eps a number or None."""
    width = shape[-1]
    scale = torch.finfo(dtype).eps ** 0.5 if tiny else 1.0
    x = (_randn(gen, *shape) * scale).to(dtype).requires_grad_(True)
    m = torch.nn.RMSNorm(width, eps=eps, elementwise_affine=affine, dtype=dtype)
    if affine:
        with torch.no_grad():
            m.weight.copy_((1.0 + 0.5 * _randn(gen, width)).to(dtype))
    y = m(x)
    grad_out = _randn(gen, *shape).to(dtype)
    y.backward(grad_out)
    out[name + ".in"] = x.detach()
    out[name + ".grad_out"] = grad_out
    out[name + ".out"] = y.detach()
    out[name + ".grad_in"] = x.grad
    if affine:
        out[name + ".weight"] = m.weight.detach()
        out[name + ".grad_weight"] = m.weight.grad
    meta[name + ".eps"] = "none" if eps is None else repr(eps)
    meta[name + ".affine"] = "1" if affine else "0"


def _angles(head_dim, start, length, theta):
    """(length, head_dim / 2) float64 angles (start + t) * theta^(-2i / head_dim)."""
    positions = torch.arange(start, start + length, dtype=torch.float64)
    exponents = torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim
    return positions[:, None] * torch.pow(torch.tensor(theta, dtype=torch.float64), -exponents)[None, :]


def _halves(q, k, cos, sin, seq_dim):
    """transformers' apply_rotary_pos_emb, with its (batch, T, D) tables made by cat((freqs, freqs), -1)."""
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb
    cos_full = torch.cat((cos, cos), dim=-1)[None]  # (1, T, D)
    sin_full = torch.cat((sin, sin), dim=-1)[None]
    return apply_rotary_pos_emb(q, k, cos_full, sin_full, unsqueeze_dim=1 if seq_dim == -2 else 2)


def _interleaved(q, k, freqs_cis, seq_dim):
    """Meta's apply_rotary_emb on (B, T, H, D): complex pairs times freqs_cis (T, D/2) broadcast over B, H."""
    def apply(x):
        if seq_dim == -2:
            x = x.transpose(1, 2)  # (B, H, T, D) -> Meta's (B, T, H, D)
        x_c = torch.view_as_complex(x.reshape(*x.shape[:-1], -1, 2))
        f = freqs_cis.view(1, x_c.shape[1], 1, x_c.shape[-1])
        y = torch.view_as_real(x_c * f).flatten(3)
        return y.transpose(1, 2) if seq_dim == -2 else y
    return apply(q), apply(k)


def _rope_case(name, layout, shape, seq_dim, theta, start, dtype, gen, out, meta):
    head_dim, length = shape[-1], shape[seq_dim]
    angles = _angles(head_dim, start, length, theta)
    if layout == "halves":
        cos, sin = angles.cos().to(dtype), angles.sin().to(dtype)
    else:
        freqs_cis = torch.polar(torch.ones_like(angles), angles)
        freqs_cis = freqs_cis.to(torch.complex64 if dtype == torch.float32 else torch.complex128)
        cos, sin = freqs_cis.real.contiguous(), freqs_cis.imag.contiguous()
    q = _randn(gen, *shape).to(dtype).requires_grad_(True)
    k = _randn(gen, *shape).to(dtype).requires_grad_(True)
    q_out, k_out = _halves(q, k, cos, sin, seq_dim) if layout == "halves" else _interleaved(q, k, freqs_cis, seq_dim)
    q_grad_out, k_grad_out = _randn(gen, *shape).to(dtype), _randn(gen, *shape).to(dtype)
    torch.autograd.backward([q_out, k_out], [q_grad_out, k_grad_out])
    for part, value in (("q", q.detach()), ("k", k.detach()), ("cos", cos), ("sin", sin), ("q_out", q_out.detach()),
                        ("k_out", k_out.detach()), ("q_grad_out", q_grad_out), ("k_grad_out", k_grad_out),
                        ("q_grad", q.grad), ("k_grad", k.grad)):
        out["%s.%s" % (name, part)] = value
    meta[name + ".layout"] = layout
    meta[name + ".seq_dim"] = str(seq_dim)
    meta[name + ".theta"] = repr(theta)
    meta[name + ".start"] = str(start)


def fixture(dtype, seed=17):
    gen = torch.Generator().manual_seed(seed)
    out, meta = {}, {}
    _rms_case("rms_affine_eps_given", (3, 5, 13), True, 1e-5, False, dtype, gen, out, meta)
    _rms_case("rms_affine_eps_none", (3, 5, 13), True, None, False, dtype, gen, out, meta)
    _rms_case("rms_affine_eps_none_tiny", (7, 9), True, None, True, dtype, gen, out, meta)
    _rms_case("rms_plain_eps_given", (7, 33), False, 1e-6, False, dtype, gen, out, meta)
    _rms_case("rms_plain_eps_none_tiny", (5, 3, 11), False, None, True, dtype, gen, out, meta)
    _rms_case("rms_plain_eps_given_tiny", (4, 6), False, 1e-6, True, dtype, gen, out, meta)
    # Odd batch and heads, T = 7, D = 8 and 16, theta 1e4 (Llama 2) and 5e5 (Llama 3), positions from 0 or
    # continuing at 5 (a KV cache), both layouts in (B, H, T, D) and (B, T, H, D).
    _rope_case("rope_halves_d8_bhtd", "halves", (3, 5, 7, 8), -2, 10000.0, 0, dtype, gen, out, meta)
    _rope_case("rope_halves_d16_bhtd_start5", "halves", (1, 3, 7, 16), -2, 500000.0, 5, dtype, gen, out, meta)
    _rope_case("rope_halves_d8_bthd", "halves", (3, 7, 5, 8), -3, 500000.0, 0, dtype, gen, out, meta)
    _rope_case("rope_halves_d16_bthd_start5", "halves", (3, 7, 1, 16), -3, 10000.0, 5, dtype, gen, out, meta)
    _rope_case("rope_interleaved_d8_bthd", "interleaved", (3, 7, 5, 8), -3, 10000.0, 0, dtype, gen, out, meta)
    _rope_case("rope_interleaved_d16_bthd_start5", "interleaved", (1, 7, 3, 16), -3, 500000.0, 5, dtype, gen, out, meta)
    _rope_case("rope_interleaved_d8_bhtd", "interleaved", (3, 5, 7, 8), -2, 500000.0, 0, dtype, gen, out, meta)
    _rope_case("rope_interleaved_d16_bhtd_start5", "interleaved", (3, 1, 7, 16), -2, 10000.0, 5, dtype, gen, out, meta)
    return out, meta


def build_all():
    import transformers
    files = {}
    for short, dtype in DTYPES.items():
        tensors, meta = fixture(dtype)
        meta.update({"generator": "tests/reference/fixtures_rmsnorm_rope.py", "torch": torch.__version__,
                     "transformers": transformers.__version__, "python": platform.python_version(), "threads": "1",
                     "dtype": short})
        files["rmsnorm_rope_%s.safetensors" % short] = st_io.serialize(tensors, meta)
    return files


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed files, write nothing")
    parser.add_argument("--out_dir", default=OUT_DIR)
    args = parser.parse_args()
    if not hasattr(torch.nn, "RMSNorm"):
        sys.exit("fixtures_rmsnorm_rope.py needs torch >= 2.4 (torch.nn.RMSNorm); this is " + torch.__version__)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    files = build_all()
    differ = st_io.write_or_check(files, args.out_dir, args.check)
    print("torch %s" % torch.__version__)
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
