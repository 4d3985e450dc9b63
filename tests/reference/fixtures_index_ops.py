"""Golden values for the ops that produce or take int64 and bool tensors (compare.cpp, index_ops.cpp, and
the int64/bool forms of embedding, cross_entropy, where and masked_fill).

tests/parity/test_index_ops_parity.cpp has the C++ side of each case under the same name. Two kinds of case:

  differentiable (a float input takes a gradient):
    c.in.K      the float inputs (K = 0, 1, ...)
    c.idx.K     int64 / bool arguments (indices, masks, conditions), stored with their own dtype (I64, BOOL)
    c.grad_out  a fixed random upstream gradient
    c.out       torch's output; c.grad_in.K torch's gradient of sum(out * grad_out) w.r.t. c.in.K
    c.indices   (topk only) torch's int64 indices
  values only (no gradient: comparisons, logical ops, argmax/argmin, one_hot):
    c.in.K      the inputs, any dtype; c.out torch's int64 or bool result, compared exactly

Ties are made on purpose where the op has a tie rule (comparisons of equal values, argmax/argmin of
repeated extremes: torch documents that the first maximal index is returned); topk's inputs have no ties,
since torch does not document the order of equal values there.
"""
import torch
import torch.nn.functional as F


class Inputs:
    """Random inputs from one seeded generator (the case order fixes every value)."""

    def __init__(self, seed):
        self.gen = torch.Generator().manual_seed(seed)

    def randn(self, *shape):
        return torch.randn(tuple(shape), generator=self.gen, dtype=torch.float64)

    def halves(self, *shape, high=3):
        """Multiples of 0.5 in [-high, high]: exact in float32, and repeated often enough to make ties."""
        return torch.randint(-2 * high, 2 * high + 1, tuple(shape), generator=self.gen).to(torch.float64) / 2

    def ints(self, high, *shape):
        return torch.randint(0, high, tuple(shape), generator=self.gen, dtype=torch.int64)

    def bools(self, *shape):
        return torch.rand(tuple(shape), generator=self.gen) < 0.5


def differentiable_cases(r):
    """(name, float inputs, int/bool arguments, fn(inputs, args) -> output or (values, indices))."""
    c = []

    def add(name, inputs, args, fn):
        c.append((name, inputs, args, fn))

    add("gather_dim0_repeats", [r.randn(3, 4)], [torch.tensor([[2, 0, 2, 1], [2, 2, 0, 0]])],
        lambda i, a: torch.gather(i[0], 0, a[0]))
    add("gather_dim1_transposed", [r.randn(4, 3)], [torch.tensor([[1, 1], [0, 3], [3, 2]])],
        lambda i, a: torch.gather(i[0].t(), 1, a[0]))
    add("gather_3d_last_dim", [r.randn(2, 3, 5)], [r.ints(5, 2, 3, 4)],
        lambda i, a: torch.gather(i[0], -1, a[0]))
    add("index_select_dim1_repeats", [r.randn(2, 5)], [torch.tensor([4, 0, 4, 2])],
        lambda i, a: torch.index_select(i[0], 1, a[0]))
    add("index_select_dim0", [r.randn(4, 3)], [torch.tensor([3, 1])],
        lambda i, a: torch.index_select(i[0], 0, a[0]))
    add("topk_largest_last_dim", [r.randn(3, 6)], [], lambda i, a: torch.topk(i[0], 3, dim=-1))
    add("topk_smallest_dim0", [r.randn(5, 3)], [], lambda i, a: torch.topk(i[0], 2, dim=0, largest=False))
    add("masked_fill_bool_broadcast", [r.randn(2, 3)], [torch.tensor([True, False, True])],
        lambda i, a: i[0].masked_fill(a[0], -0.75))
    add("where_bool_condition", [r.randn(2, 2), r.randn(2)], [torch.tensor([[True, False], [False, True]])],
        lambda i, a: torch.where(a[0], i[0], i[1]))
    add("embedding_int64_ids", [r.randn(5, 3)], [torch.tensor([[4, 0, 4], [1, 1, 2]])],
        lambda i, a: F.embedding(a[0], i[0]))
    add("cross_entropy_int64_targets", [r.randn(4, 5)], [torch.tensor([0, 4, -100, 2])],
        lambda i, a: F.cross_entropy(i[0], a[0], ignore_index=-100))
    return c


def value_cases(r):
    """(name, inputs of any dtype, fn(inputs) -> int64 or bool tensor)."""
    c = []

    def add(name, inputs, fn):
        c.append((name, inputs, fn))

    a, b = r.halves(3, 4, high=1), r.halves(4, high=1)  # values in {-1, -0.5, 0, 0.5, 1}: many ties
    for op in ("eq", "ne", "lt", "le", "gt", "ge"):
        add("%s_broadcast" % op, [a, b], lambda i, op=op: getattr(torch, op)(i[0], i[1]))
        add("%s_scalar" % op, [a], lambda i, op=op: getattr(torch, op)(i[0], 0.5))
    add("eq_transposed", [r.halves(4, 3, high=1), r.halves(3, 4, high=1)], lambda i: torch.eq(i[0].t(), i[1]))
    p, q = r.bools(2, 3), r.bools(3)
    add("logical_and_broadcast", [p, q], lambda i: torch.logical_and(i[0], i[1]))
    add("logical_or_broadcast", [p, q], lambda i: torch.logical_or(i[0], i[1]))
    add("logical_not", [p], lambda i: torch.logical_not(i[0]))
    add("logical_and_of_floats", [a, b], lambda i: torch.logical_and(i[0], i[1]))  # nonzero is true
    ties = r.halves(3, 5, high=1)
    add("argmax_dim1_ties", [ties], lambda i: torch.argmax(i[0], dim=1))
    add("argmax_dim0_keepdim_ties", [ties], lambda i: torch.argmax(i[0], dim=0, keepdim=True))
    add("argmin_last_dim_ties", [ties], lambda i: torch.argmin(i[0], dim=-1))
    add("argmin_dim0_keepdim_ties", [ties], lambda i: torch.argmin(i[0], dim=0, keepdim=True))
    add("argmax_flattened", [r.halves(2, 3, 2, high=1)], lambda i: torch.argmax(i[0]))
    add("argmax_3d_transposed", [r.randn(2, 3, 4)], lambda i: torch.argmax(i[0].transpose(0, 2), dim=1))
    add("one_hot_given_classes", [r.ints(4, 2, 3)], lambda i: F.one_hot(i[0], 6))
    add("one_hot_inferred_classes", [torch.tensor([0, 3, 1])], lambda i: F.one_hot(i[0]))
    return c


def fixture(dtype, seed=11):
    """The tensors of index_ops_<dtype>.safetensors: float inputs drawn in float64, rounded once to dtype."""
    r = Inputs(seed)
    out = {}
    for name, inputs64, args, fn in differentiable_cases(r):
        inputs = [x.to(dtype).requires_grad_(True) for x in inputs64]
        result = fn(inputs, args)
        y, indices = (result.values, result.indices) if isinstance(result, tuple) else (result, None)
        grad_out = r.randn(*y.shape).to(dtype)
        y.backward(grad_out)
        out["%s.out" % name] = y.detach()
        out["%s.grad_out" % name] = grad_out
        if indices is not None:
            out["%s.indices" % name] = indices
        for k, x in enumerate(inputs):
            out["%s.in.%d" % (name, k)] = x.detach()
            out["%s.grad_in.%d" % (name, k)] = x.grad if x.grad is not None else torch.zeros_like(x)
        for k, arg in enumerate(args):
            out["%s.idx.%d" % (name, k)] = arg
    for name, inputs, fn in value_cases(r):
        inputs = [x.to(dtype) if x.is_floating_point() else x for x in inputs]
        out["%s.out" % name] = fn(inputs)
        for k, x in enumerate(inputs):
            out["%s.in.%d" % (name, k)] = x
    return out
