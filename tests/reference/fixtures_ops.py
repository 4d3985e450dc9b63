"""Golden values for every op in minitrain's core (core/include/minitrain/core/ops.h).

The cases mirror tests/core/test_gradcheck_ops.cpp (broadcasting, transposed views, size-1 dims, extreme
inputs); tests/parity/test_ops_parity.cpp has the C++ side of each case under the same name. For a case
"c" the file holds:
  c.in.K        the differentiable inputs (K = 0, 1, ...)
  c.ids / c.mask  non-differentiable arguments, as float tensors (ids are exact integers)
  c.grad_out    a fixed random upstream gradient (a uniform one hides softmax/LayerNorm bugs)
  c.out         torch's output
  c.grad_in.K   torch's gradient of sum(out * grad_out) with respect to c.in.K

Where minitrain defines something torch leaves open, the case computes minitrain's rule with torch calls
(documented at the case): a fully masked softmax row is zeros, not NaN; dropout masks come from different
generators, so only what both frameworks keep is compared (attention with dropout is left out for the same
reason; tests/nn compares minitrain's fused and composed attention under dropout). Where torch's float32
kernel is far from the exact value (LayerNorm of rows with mean 1e4), the float32 reference is the same call
in float64, rounded. Attention is written out with torch ops: torch 1.13 has no fused attention function.
"""
import torch
import torch.nn.functional as F

NEG_INF = float("-inf")


class Inputs:
    """Random float64 inputs from one seeded generator (the case order fixes every value)."""

    def __init__(self, seed):
        self.gen = torch.Generator().manual_seed(seed)

    def randn(self, *shape, scale=1.0, shift=0.0):
        return torch.randn(tuple(shape), generator=self.gen, dtype=torch.float64) * scale + shift

    def away_from_zero(self, *shape):  # |x| >= 0.3: log, division and relu's kink stay far away
        u = torch.rand(*shape, generator=self.gen, dtype=torch.float64)
        sign = torch.where(torch.rand(*shape, generator=self.gen, dtype=torch.float64) < 0.5, -1.0, 1.0)
        return (0.3 + u) * sign

    def positive(self, *shape):
        return torch.rand(*shape, generator=self.gen, dtype=torch.float64) + 0.5


def _T(t):
    return t.transpose(0, 1)


def _fully_masked_softmax(x, mask):
    """softmax with minitrain's rule for rows that are entirely masked: zeros and a zero gradient."""
    dead = mask.all(dim=-1, keepdim=True)
    safe = x.masked_fill(mask, NEG_INF).masked_fill(dead, 0.0)
    return torch.where(dead, torch.zeros_like(x), torch.softmax(safe, dim=-1))


def _attention(q, k, v, scale, causal):
    """softmax(q·kᵀ·scale, causal) · v; query i sees keys j <= i + (Tk - Tq), as minitrain's fused kernel."""
    scores = (q @ k.transpose(-2, -1)) * scale
    if causal:
        tq, tk = q.shape[-2], k.shape[-2]
        future = torch.ones(tq, tk, dtype=torch.bool).triu(1 + tk - tq)
        scores = scores.masked_fill(future, NEG_INF)
    return torch.softmax(scores, dim=-1) @ v


def cases(r):
    """(name, inputs, aux, fn, exact_in_float32): fn(inputs, aux) -> output, inputs are leaves requiring grad."""
    c = []

    def add(name, inputs, fn, exact_in_float32=False, **aux):
        """exact_in_float32: torch's float32 kernel is itself far from the exact value, so the float32 file
        gets the same torch call made in float64 on the float32 inputs, rounded once to float32."""
        c.append((name, inputs, aux, fn, exact_in_float32))

    # elementwise binary, broadcasting and transposed operands
    add("add_broadcast", [r.randn(2, 3), r.randn(3)], lambda i, a: i[0] + i[1])
    add("add_size1_dims", [r.randn(2, 1, 3), r.randn(4, 1)], lambda i, a: i[0] + i[1])
    add("sub_transposed", [r.randn(3, 2), r.randn(2, 3)], lambda i, a: _T(i[0]) - i[1])
    add("mul_broadcast", [r.randn(4, 3), r.randn(4, 1)], lambda i, a: i[0] * i[1])
    add("mul_transposed", [r.randn(3, 4), r.randn(3, 4)], lambda i, a: _T(i[0]) * _T(i[1]))
    add("div", [r.randn(2, 3), r.away_from_zero(3)], lambda i, a: i[0] / i[1])
    add("neg", [r.randn(5)], lambda i, a: -i[0])
    # scalar forms
    add("add_scalar", [r.randn(3, 2)], lambda i, a: i[0] + 1.5)
    add("mul_scalar", [r.randn(3, 2)], lambda i, a: i[0] * -2.5)
    add("rsub_scalar", [r.randn(3, 2)], lambda i, a: 3.0 - i[0])
    add("rdiv_scalar", [r.away_from_zero(3, 2)], lambda i, a: 2.0 / i[0])
    add("pow_fractional", [r.positive(4)], lambda i, a: torch.pow(i[0], 2.5))
    add("pow_cube_negative_base", [r.randn(4)], lambda i, a: torch.pow(i[0], 3.0))
    # elementwise functions
    add("exp", [r.randn(2, 3)], lambda i, a: torch.exp(i[0]))
    add("log", [r.positive(2, 3)], lambda i, a: torch.log(i[0]))
    add("sqrt", [r.positive(2, 3)], lambda i, a: torch.sqrt(i[0]))
    add("rsqrt", [r.positive(2, 3)], lambda i, a: torch.rsqrt(i[0]))
    add("tanh", [r.randn(2, 3)], lambda i, a: torch.tanh(i[0]))
    add("sigmoid", [r.randn(2, 3, scale=3.0)], lambda i, a: torch.sigmoid(i[0]))
    add("relu_away_from_kink", [r.away_from_zero(3, 3)], lambda i, a: torch.relu(i[0]))
    add("gelu_erf", [r.randn(3, 4, scale=2.0)], lambda i, a: F.gelu(i[0]))
    add("gelu_tanh", [r.randn(3, 4, scale=2.0)], lambda i, a: F.gelu(i[0], approximate="tanh"))
    add("tanh_transposed", [r.randn(3, 4)], lambda i, a: torch.tanh(_T(i[0])))
    # reductions; minitrain's var(correction=1) is torch's unbiased=True, correction=0 is unbiased=False
    add("sum_all", [r.randn(2, 3, 4)], lambda i, a: i[0].sum())
    add("sum_dims_keepdim", [r.randn(2, 3, 4)], lambda i, a: i[0].sum(dim=(0, 2), keepdim=True))
    add("sum_transposed", [r.randn(3, 4)], lambda i, a: _T(i[0]).sum(dim=1))
    add("mean_dim", [r.randn(2, 3, 4)], lambda i, a: i[0].mean(dim=-1))
    add("var_dim_keepdim", [r.randn(3, 5)], lambda i, a: i[0].var(dim=1, unbiased=True, keepdim=True))
    add("var_all_biased", [r.randn(3, 5)], lambda i, a: i[0].var(unbiased=False))
    add("max_dim", [r.randn(3, 5)], lambda i, a: i[0].max(dim=1).values)
    add("max_dim0_keepdim", [r.randn(4, 3)], lambda i, a: i[0].max(dim=0, keepdim=True).values)
    # matmul: 2-D, transposed operands, batched with broadcast batch dims, size-1
    add("matmul_2d", [r.randn(3, 4), r.randn(4, 5)], lambda i, a: i[0] @ i[1])
    add("matmul_transposed", [r.randn(4, 3), r.randn(5, 4)], lambda i, a: _T(i[0]) @ _T(i[1]))
    add("matmul_batched_broadcast", [r.randn(2, 1, 3, 4), r.randn(3, 4, 2)], lambda i, a: i[0] @ i[1])
    add("matmul_batched_transposed", [r.randn(2, 3, 4), r.randn(2, 5, 4)],
        lambda i, a: i[0] @ i[1].transpose(-1, -2))
    add("matmul_size1", [r.randn(1, 4), r.randn(4, 1)], lambda i, a: i[0] @ i[1])
    add("matmul_large_k", [r.randn(8, 96), r.randn(96, 7)], lambda i, a: i[0] @ i[1])
    # softmax family, incl. extreme logits and masks
    add("softmax_last", [r.randn(3, 5, scale=2.0)], lambda i, a: torch.softmax(i[0], -1))
    add("softmax_dim0", [r.randn(4, 3, scale=2.0)], lambda i, a: torch.softmax(i[0], 0))
    add("softmax_extreme_1e4", [r.randn(3, 4, scale=1e4)], lambda i, a: torch.softmax(i[0], -1))
    add("log_softmax", [r.randn(3, 5, scale=2.0)], lambda i, a: torch.log_softmax(i[0], 1))
    add("log_softmax_extreme_1e4", [r.randn(3, 4, scale=1e4)], lambda i, a: torch.log_softmax(i[0], -1))
    causal4 = torch.ones(4, 4).triu(1)
    add("softmax_causal_masked", [r.randn(2, 4, 4)],
        lambda i, a: torch.softmax(i[0].masked_fill(a["mask"].bool(), NEG_INF), -1), mask=causal4)
    rows = torch.tensor([[1.0, 1.0, 1.0], [0.0, 1.0, 0.0]])  # row 0 entirely masked
    add("softmax_fully_masked_row", [r.randn(2, 3)],
        lambda i, a: _fully_masked_softmax(i[0], a["mask"].bool()), mask=rows)
    # masking and selection
    add("masked_fill_broadcast", [r.randn(2, 3)],
        lambda i, a: i[0].masked_fill(a["mask"].bool(), 0.5), mask=torch.tensor([1.0, 0.0, 1.0]))
    add("where_broadcast", [r.randn(2, 2), r.randn(2)],
        lambda i, a: torch.where(a["mask"].bool(), i[0], i[1]), mask=torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    # embedding (repeated ids scatter-add; row 2 and 4 unused get exactly 0) and cross-entropy
    add("embedding_repeated_ids", [r.randn(5, 4)], lambda i, a: F.embedding(a["ids"].long(), i[0]),
        ids=torch.tensor([[1.0, 3.0, 1.0], [0.0, 1.0, 3.0]]))
    add("cross_entropy", [r.randn(4, 3)], lambda i, a: F.cross_entropy(i[0], a["ids"].long()),
        ids=torch.tensor([0.0, 2.0, 1.0, 2.0]))
    add("cross_entropy_3d_ignore_index", [r.randn(2, 2, 4)],
        lambda i, a: F.cross_entropy(i[0].reshape(-1, 4), a["ids"].long().reshape(-1), ignore_index=-100),
        ids=torch.tensor([[1.0, -100.0], [0.0, 3.0]]))
    add("cross_entropy_extreme_1e4", [r.randn(3, 4, scale=1e4)],
        lambda i, a: F.cross_entropy(i[0], a["ids"].long()), ids=torch.tensor([0.0, 1.0, 2.0]))
    add("cross_entropy_wide", [r.randn(6, 65, scale=3.0)],
        lambda i, a: F.cross_entropy(i[0], a["ids"].long()), ids=torch.tensor([0.0, 64.0, 7.0, 7.0, 33.0, 12.0]))
    # layer norm (biased variance, eps 1e-5): plain, large-mean rows, constant rows, no affine
    ln = lambda x, w, b: F.layer_norm(x, (x.shape[-1],), w, b, 1e-5)  # noqa: E731
    add("layer_norm", [r.randn(3, 6), r.randn(6, scale=0.5, shift=1.0), r.randn(6)], lambda i, a: ln(*i))
    # Rows with a mean of 1e4: torch's float32 LayerNorm keeps float32 statistics and is 4e-4 away from the
    # exact result; minitrain's are in double (1.7e-8 away), so the float32 reference is computed in float64.
    add("layer_norm_mean_1e4", [r.randn(2, 5, shift=1e4), r.randn(5, scale=0.5, shift=1.0), r.randn(5)],
        lambda i, a: ln(*i), exact_in_float32=True)
    # constant rows of exactly representable values: the mean is exact, so the output is exactly 0 in both
    # frameworks (variance 0, rstd 1/sqrt(eps)) and the gradient is the well-defined rstd-scaled projection
    constant = torch.tensor([[3.0] * 4, [-0.75] * 4], dtype=torch.float64)
    add("layer_norm_constant_rows", [constant, r.randn(4)], lambda i, a: ln(i[0], i[1], None))
    add("layer_norm_no_affine_transposed", [r.randn(5, 3)], lambda i, a: ln(_T(i[0]), None, None))
    # dropout: torch's mask; the C++ side compares the entries both frameworks keep
    add("dropout", [r.randn(4, 5)], lambda i, a: F.dropout(i[0], p=0.3, training=True))
    # attention (minitrain's fused kernel): causal, queries at the end of longer keys, non-causal transposed
    add("attention_causal", [r.randn(2, 4, 3), r.randn(2, 4, 3), r.randn(2, 4, 2)],
        lambda i, a: _attention(i[0], i[1], i[2], 0.5, True))
    add("attention_kv_cache_rows", [r.randn(2, 2, 3), r.randn(2, 5, 3), r.randn(2, 5, 3)],
        lambda i, a: _attention(i[0], i[1], i[2], 0.6, True))
    add("attention_not_causal_transposed", [r.randn(2, 3, 4), r.randn(2, 5, 3), r.randn(2, 5, 2)],
        lambda i, a: _attention(i[0].transpose(-1, -2), i[1], i[2], 0.4, False))
    # shape ops
    add("reshape", [r.randn(2, 6), r.randn(4)], lambda i, a: i[0].reshape(3, -1) * i[1])
    add("reshape_of_transposed", [r.randn(3, 4)], lambda i, a: _T(i[0]).reshape(-1))
    add("permute", [r.randn(2, 3, 4), r.randn(4, 1, 3)], lambda i, a: i[0].permute(2, 0, 1) * i[1])
    add("narrow_slice", [r.randn(3, 4)],
        lambda i, a: i[0].narrow(0, 1, 2).narrow(1, 1, 2) + i[0][1:3].narrow(1, 0, 2))
    add("cat", [r.randn(2, 3), r.randn(2, 1)], lambda i, a: torch.cat([i[0], i[1], i[0]], 1))
    add("stack", [r.randn(2, 3), r.randn(3, 2)], lambda i, a: torch.stack([i[0], _T(i[1])], 0))

    def split_chunk(i, a):
        parts = torch.split(i[0], 2, dim=1)
        halves = torch.chunk(i[0], 2, dim=0)
        return parts[0] * parts[2].expand(3, 2) + halves[0].narrow(1, 0, 2).sum(dim=0, keepdim=True)

    add("split_chunk", [r.randn(3, 5)], split_chunk)
    add("unsqueeze_squeeze_expand", [r.randn(3, 4), r.randn(2, 1)],
        lambda i, a: i[0].unsqueeze(1).expand(3, 2, 4).squeeze(0) * i[1])
    add("broadcast_to", [r.randn(3, 1)], lambda i, a: torch.broadcast_to(i[0], (2, 3, 4)))
    add("contiguous_clone", [r.randn(3, 4)], lambda i, a: _T(i[0]).contiguous().clone() * 2.0)

    # --- abs, clamp, minimum/maximum, pow with a tensor exponent, cumsum, std, min, amax/amin, norm.
    # Inputs from a generator of their own, so that every case above keeps its values (and upstream
    # gradient) byte for byte. Random cases stay away from the kinks, as the gradient checks do; the "_at_"
    # cases put exact values on them, where minitrain follows torch's choice of gradient.
    n = Inputs(40)

    def steer_clear(x, kinks, gap=0.1):
        """x with every element closer than gap to a kink pushed out to kink ± gap."""
        for k in kinks:
            near = (x - k).abs() < gap
            x = torch.where(near, torch.where(x < k, x.new_full((), k - gap), x.new_full((), k + gap)), x)
        return x

    def exact(*rows):
        return torch.tensor(rows, dtype=torch.float64)

    add("abs_away_from_kink", [n.away_from_zero(3, 4)], lambda i, a: torch.abs(i[0]))
    add("abs_at_zero", [exact(-1.5, 0.0, 2.0, -0.0)], lambda i, a: torch.abs(i[0]))
    add("clamp_both_bounds", [steer_clear(n.randn(4, 5), [-0.5, 0.7])], lambda i, a: torch.clamp(i[0], -0.5, 0.7))
    add("clamp_min_only", [steer_clear(n.randn(3, 4), [0.2])], lambda i, a: torch.clamp(i[0], min=0.2))
    add("clamp_max_only_transposed", [steer_clear(n.randn(4, 3), [-0.1])],
        lambda i, a: torch.clamp(_T(i[0]), max=-0.1))
    add("clamp_at_bounds", [exact(-2.0, -0.5, 0.0, 0.75, 2.0)], lambda i, a: torch.clamp(i[0], -0.5, 0.75))
    add("clamp_min_above_max", [exact(-2.0, 0.0, 2.0)], lambda i, a: torch.clamp(i[0], 1.0, -1.0))
    add("maximum_broadcast", [n.randn(2, 3), n.randn(3)], lambda i, a: torch.maximum(i[0], i[1]))
    add("minimum_transposed_size1", [n.randn(3, 2), n.randn(2, 1)], lambda i, a: torch.minimum(_T(i[0]), i[1]))
    add("maximum_ties", [exact([1.0, 2.0, 3.0], [0.5, -1.0, 4.0]), exact(2.0, 2.0, 1.0)],
        lambda i, a: torch.maximum(i[0], i[1]))
    add("minimum_ties", [exact([1.0, 2.0, 3.0], [0.5, -1.0, 4.0]), exact(2.0, 2.0, 1.0)],
        lambda i, a: torch.minimum(i[0], i[1]))
    add("pow_tensor_exponent_broadcast", [n.positive(2, 3), n.randn(3)], lambda i, a: torch.pow(i[0], i[1]))
    add("pow_tensor_base_broadcast", [n.positive(3, 1), n.randn(3, 4)], lambda i, a: torch.pow(i[0], i[1]))
    add("pow_tensor_negative_base", [n.away_from_zero(3, 4)],
        lambda i, a: torch.pow(i[0], torch.tensor([2.0, 3.0, 0.0, -1.0], dtype=i[0].dtype)))
    # base 0 with exponents 0 and 2, and exponent 0 with base 2: the masked gradients (all finite)
    add("pow_tensor_at_zero", [exact(0.0, 0.0, 2.0, 1.5), exact(0.0, 2.0, 0.0, 1.0)],
        lambda i, a: torch.pow(i[0], i[1]))
    add("cumsum_last", [n.randn(2, 3, 4)], lambda i, a: torch.cumsum(i[0], -1))
    add("cumsum_dim0_transposed", [n.randn(3, 5)], lambda i, a: torch.cumsum(_T(i[0]), 0))
    add("cumsum_middle", [n.randn(2, 4, 3)], lambda i, a: torch.cumsum(i[0], 1))
    add("mean_two_dims_keepdim", [n.randn(2, 3, 4)], lambda i, a: i[0].mean(dim=(0, 2), keepdim=True))
    add("var_two_dims", [n.randn(3, 2, 4)], lambda i, a: i[0].var(dim=(0, -1), unbiased=True))
    add("std_dim_keepdim", [n.randn(3, 5)], lambda i, a: i[0].std(dim=1, unbiased=True, keepdim=True))
    add("std_two_dims_biased_transposed", [n.randn(3, 2, 4)],
        lambda i, a: _T(i[0]).std(dim=(1, 2), unbiased=False))
    add("std_all", [n.randn(4, 3)], lambda i, a: i[0].std())
    add("std_constant_row", [exact([1.5, 1.5, 1.5], [1.0, 2.0, 4.0])], lambda i, a: i[0].std(dim=1))
    add("min_dim", [n.randn(3, 5)], lambda i, a: i[0].min(dim=1).values)
    add("min_dim0_keepdim", [n.randn(4, 3)], lambda i, a: i[0].min(dim=0, keepdim=True).values)
    add("amax_two_dims", [n.randn(2, 3, 4)], lambda i, a: torch.amax(i[0], dim=(0, 2)))
    add("amax_all", [n.randn(3, 4)], lambda i, a: torch.amax(i[0]))
    add("amin_keepdim_transposed", [n.randn(4, 3)], lambda i, a: torch.amin(_T(i[0]), dim=1, keepdim=True))
    add("amax_ties", [exact([1.0, 3.0, 3.0], [2.0, 2.0, 2.0])], lambda i, a: torch.amax(i[0], dim=1))
    add("amin_ties", [exact([1.0, 3.0, 1.0], [2.0, 2.0, 2.0])], lambda i, a: torch.amin(i[0], dim=1))
    vnorm = torch.linalg.vector_norm
    add("norm2_dim", [n.randn(3, 4)], lambda i, a: vnorm(i[0], 2, dim=1))
    add("norm2_all_transposed", [n.randn(3, 4)], lambda i, a: vnorm(_T(i[0])))
    add("norm1_two_dims_keepdim", [n.away_from_zero(2, 3, 4)], lambda i, a: vnorm(i[0], 1, dim=(0, 2), keepdim=True))
    add("norm_inf_dim", [n.randn(3, 5)], lambda i, a: vnorm(i[0], float("inf"), dim=-1))
    add("norm3_dim0", [n.randn(4, 3)], lambda i, a: vnorm(i[0], 3, dim=0))
    add("norm1_5_dim", [n.away_from_zero(3, 4)], lambda i, a: vnorm(i[0], 1.5, dim=1))
    # a zero row (norm 0) and zero entries in a nonzero row, for p = 2, 1, 3, 1.5; ties for infinity. A fresh
    # tensor per case: in float64 the inputs become the leaves themselves, and a shared one would add up the
    # gradients of all four cases.
    def zero_row():
        return exact([0.0, 0.0, 0.0], [3.0, 0.0, -4.0])

    add("norm2_at_zero", [zero_row()], lambda i, a: vnorm(i[0], 2, dim=1))
    add("norm1_at_zero", [zero_row()], lambda i, a: vnorm(i[0], 1, dim=1))
    add("norm3_at_zero", [zero_row()], lambda i, a: vnorm(i[0], 3, dim=1))
    add("norm1_5_at_zero", [zero_row()], lambda i, a: vnorm(i[0], 1.5, dim=1))
    add("norm_inf_ties", [exact([-4.0, 4.0, 1.0], [0.0, 0.0, 0.0])], lambda i, a: vnorm(i[0], float("inf"), dim=1))
    return c


def fixture(dtype, seed=4):
    """The tensors of ops_<dtype>.safetensors: inputs drawn in float64 and rounded once to `dtype`."""
    r = Inputs(seed)
    out = {}
    for index, (name, inputs64, aux, fn, exact_in_float32) in enumerate(cases(r)):
        work = torch.float64 if exact_in_float32 else dtype
        inputs = [x.to(dtype).to(work).requires_grad_(True) for x in inputs64]
        aux = {k: v.to(work) for k, v in aux.items()}
        torch.manual_seed(1000 + index)  # the dropout mask; other ops draw nothing
        y = fn(inputs, aux)
        grad_out = r.randn(*y.shape).to(dtype)
        y.backward(grad_out.to(work))
        out["%s.out" % name] = y.detach().to(dtype)
        out["%s.grad_out" % name] = grad_out
        for k, x in enumerate(inputs):
            out["%s.in.%d" % (name, k)] = x.detach().to(dtype)
            grad = x.grad if x.grad is not None else torch.zeros_like(x)
            out["%s.grad_in.%d" % (name, k)] = grad.to(dtype)
        for k, v in aux.items():
            out["%s.%s" % (name, k)] = v.to(dtype)
    return out
