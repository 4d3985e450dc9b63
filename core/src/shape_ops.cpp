// Shape ops: views where the layout allows, copies where it does not; all differentiable.
#include <minitrain/core/factory.h>
#include <minitrain/core/ops.h>
#include <minitrain/core/profiler.h>

#include "strided.h"

#include <algorithm>
#include <numeric>

namespace minitrain {

Tensor Tensor::clone() const {
  check_defined(*this, "clone");
  Tensor out = make_tensor(shape(), dtype());
  copy_strided(*this, out);
  return attach(out, "clone", {*this}, [](const Tensor& g, const std::vector<Tensor>&) {
    return std::vector<Tensor>{g};
  });
}

Tensor Tensor::contiguous() const {
  check_defined(*this, "contiguous");
  if (is_contiguous()) return *this;
  profiler::Scope scope("contiguous");
  Tensor out = make_tensor(shape(), dtype());
  copy_strided(*this, out);
  return attach(out, "contiguous", {*this}, [](const Tensor& g, const std::vector<Tensor>&) {
    return std::vector<Tensor>{g};
  });
}

Tensor& Tensor::copy_(const Tensor& src) {
  check_defined(*this, "copy_");
  check_defined(src, "copy_", "source");
  if (!is_leaf()) throw_arg("copy_", "cannot overwrite a tensor with autograd history");
  if (src.shape() != shape())
    throw_arg("copy_", "source of shape " + shape_str(src.shape()) + " does not match " + shape_str(shape()));
  copy_strided(src, *this);
  ++impl()->storage->version;
  return *this;
}

Tensor& Tensor::set_data(const Tensor& src) {
  check_defined(*this, "set_data");
  check_defined(src, "set_data", "source");
  if (!is_leaf() || !src.is_leaf()) throw_arg("set_data", "both tensors must be leaves");
  if (requires_grad() && !is_floating_point(src.dtype()))
    throw_arg("set_data", std::string("a tensor that requires grad cannot take ") + dtype_name(src.dtype()) +
                              " data");
  TensorImpl& t = *impl();
  t.storage = src.impl()->storage;
  t.shape = src.shape();
  t.strides = src.strides();
  t.offset = src.offset();
  if (t.grad && t.grad->dtype() != t.dtype()) t.grad.reset();
  return *this;
}

Tensor Tensor::to(DType target) const {
  check_defined(*this, "to");
  if (dtype() == target) return *this;
  Tensor out = make_tensor(shape(), target);
  copy_strided(*this, out);
  if (!is_floating_point(target)) return out;  // integers and bools carry no gradient
  const DType source = dtype();
  return attach(out, "to", {*this}, [source](const Tensor& g, const std::vector<Tensor>&) {
    return std::vector<Tensor>{g.to(source)};
  });
}

namespace {
Shape infer_shape(const Shape& requested, int64_t numel, const Shape& from, const char* op) {
  Shape shape = requested;
  int64_t known = 1, infer_at = -1;
  for (std::size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == -1) {
      if (infer_at >= 0) throw_arg(op, "only one dim may be -1 in " + shape_str(requested));
      infer_at = static_cast<int64_t>(d);
    } else if (shape[d] < 0) {
      throw_arg(op, "negative dim in " + shape_str(requested));
    } else {
      known *= shape[d];
    }
  }
  if (infer_at >= 0) {
    if (known == 0 || numel % known != 0)
      throw_arg(op, "cannot reshape " + shape_str(from) + " into " + shape_str(requested));
    shape[infer_at] = numel / known;
  }
  if (shape_numel(shape) != numel)
    throw_arg(op, "cannot reshape " + shape_str(from) + " (" + std::to_string(numel) + " elements) into " +
                      shape_str(requested));
  return shape;
}

// A view node: the output shares storage with the input; backward maps the gradient back.
Tensor view_of(const Tensor& x, Shape shape, Shape strides, int64_t offset, const char* name,
               std::function<Tensor(const Tensor&)> grad_back) {
  Tensor out = make_view(x, std::move(shape), std::move(strides), offset);
  return attach(out, name, {x}, [grad_back = std::move(grad_back)](const Tensor& g, const std::vector<Tensor>&) {
    return std::vector<Tensor>{grad_back(g)};
  });
}
}  // namespace

namespace {
// Strides that view a tensor of (shape, strides) as `target` without moving data, if they exist.
// Runs of dims that are contiguous with each other ("chunks") can be merged or split freely; a
// target dim that would straddle two chunks cannot be a view. Splitting the last dim of a narrow()ed
// tensor (the heads of a packed q/k/v projection) is the case that matters.
bool view_strides(const Shape& shape, const Shape& strides, const Shape& target, Shape& out) {
  out.assign(target.size(), 0);
  if (shape_numel(shape) == 0) {
    out = contiguous_strides(target);
    return true;
  }
  int64_t view_d = static_cast<int64_t>(target.size()) - 1;
  int64_t chunk_stride = strides.empty() ? 1 : strides.back();
  int64_t chunk_numel = 1, view_numel = 1;
  for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
    chunk_numel *= shape[d];
    const bool chunk_ends = d == 0 || (shape[d - 1] != 1 && strides[d - 1] != chunk_numel * chunk_stride);
    if (!chunk_ends) continue;
    while (view_d >= 0 && (view_numel < chunk_numel || target[view_d] == 1)) {
      out[view_d] = view_numel * chunk_stride;
      view_numel *= target[view_d];
      --view_d;
    }
    if (view_numel != chunk_numel) return false;
    if (d > 0) {
      chunk_stride = strides[d - 1];
      chunk_numel = view_numel = 1;
    }
  }
  for (; view_d >= 0; --view_d) out[view_d] = 1;  // only size-1 dims can be left
  return true;
}
}  // namespace

Tensor Tensor::view(const Shape& requested) const {
  check_defined(*this, "view");
  Shape shape = infer_shape(requested, numel(), this->shape(), "view");
  Shape strides;
  if (!view_strides(this->shape(), this->strides(), shape, strides))
    throw_arg("view", "a tensor of shape " + shape_str(this->shape()) + " and strides " + shape_str(this->strides()) +
                          " cannot be viewed as " + shape_str(shape) + "; use reshape() (which copies) or contiguous()");
  Shape from = this->shape();
  return view_of(*this, shape, strides, offset(), "view", [from](const Tensor& g) { return g.reshape(from); });
}

Tensor Tensor::reshape(const Shape& requested) const {
  check_defined(*this, "reshape");
  const Shape shape = infer_shape(requested, numel(), this->shape(), "reshape");  // validate before any copy
  Shape strides;
  return view_strides(this->shape(), this->strides(), shape, strides) ? view(shape) : contiguous().view(shape);
}

Tensor Tensor::transpose(int64_t d0, int64_t d1) const {
  check_defined(*this, "transpose");
  d0 = wrap_dim(d0, dim(), "transpose");
  d1 = wrap_dim(d1, dim(), "transpose");
  Shape shape = this->shape(), strides = this->strides();
  std::swap(shape[d0], shape[d1]);
  std::swap(strides[d0], strides[d1]);
  return view_of(*this, shape, strides, offset(), "transpose",
                 [d0, d1](const Tensor& g) { return g.transpose(d0, d1); });
}

Tensor Tensor::permute(const std::vector<int64_t>& dims) const {
  check_defined(*this, "permute");
  const int64_t nd = dim();
  if (static_cast<int64_t>(dims.size()) != nd)
    throw_arg("permute", "got " + std::to_string(dims.size()) + " dims for a tensor of shape " +
                             shape_str(shape()));
  std::vector<int64_t> inverse(nd, -1);
  Shape shape(nd), strides(nd);
  for (int64_t i = 0; i < nd; ++i) {
    int64_t d = wrap_dim(dims[i], nd, "permute");
    if (inverse[d] != -1) throw_arg("permute", "dim " + std::to_string(d) + " appears twice");
    inverse[d] = i;
    shape[i] = this->shape()[d];
    strides[i] = this->strides()[d];
  }
  return view_of(*this, shape, strides, offset(), "permute",
                 [inverse](const Tensor& g) { return g.permute(inverse); });
}

Tensor Tensor::narrow(int64_t d, int64_t start, int64_t length) const {
  check_defined(*this, "narrow");
  d = wrap_dim(d, dim(), "narrow");
  const int64_t n = shape()[d];
  if (start < 0) start += n;
  if (start < 0 || length < 0 || start + length > n)
    throw_arg("narrow", "range [" + std::to_string(start) + ", " + std::to_string(start + length) +
                            ") is outside dim " + std::to_string(d) + " of shape " + shape_str(shape()));
  Shape shape = this->shape();
  shape[d] = length;
  const Shape from = this->shape();
  const DType dt = dtype();
  return view_of(*this, shape, strides(), offset() + start * strides()[d], "narrow",
                 [from, dt, d, start, length](const Tensor& g) {
                   Tensor full_grad = zeros(from, dt);
                   Tensor window = full_grad.narrow(d, start, length);
                   copy_strided(g, window);
                   return full_grad;
                 });
}

Tensor Tensor::slice(int64_t d, int64_t start, int64_t end) const {
  check_defined(*this, "slice");
  const int64_t n = size(d);
  if (start < 0) start += n;
  if (end < 0) end += n;
  start = std::clamp<int64_t>(start, 0, n);
  end = std::clamp<int64_t>(end, start, n);
  return narrow(d, start, end - start);
}

Tensor Tensor::unsqueeze(int64_t d) const {
  check_defined(*this, "unsqueeze");
  d = wrap_dim(d, dim() + 1, "unsqueeze");
  Shape shape = this->shape(), strides = this->strides();
  const int64_t stride = d < dim() ? shape[d] * strides[d] : 1;
  shape.insert(shape.begin() + d, 1);
  strides.insert(strides.begin() + d, stride);
  const Shape from = this->shape();
  return view_of(*this, shape, strides, offset(), "unsqueeze",
                 [from](const Tensor& g) { return g.reshape(from); });
}

Tensor Tensor::squeeze(int64_t d) const {
  check_defined(*this, "squeeze");
  d = wrap_dim(d, dim(), "squeeze");
  if (shape()[d] != 1) return *this;  // as torch: squeezing a dim that is not 1 is a no-op
  Shape shape = this->shape(), strides = this->strides();
  shape.erase(shape.begin() + d);
  strides.erase(strides.begin() + d);
  const Shape from = this->shape();
  return view_of(*this, shape, strides, offset(), "squeeze",
                 [from](const Tensor& g) { return g.reshape(from); });
}

Tensor Tensor::expand(const Shape& target) const {
  check_defined(*this, "expand");
  const int64_t nd = static_cast<int64_t>(target.size()), own = dim();
  if (nd < own)
    throw_arg("expand", "cannot expand shape " + shape_str(shape()) + " to fewer dims " + shape_str(target));
  Shape shape(nd), strides(nd, 0);
  for (int64_t i = 0; i < nd; ++i) {
    const int64_t j = i - (nd - own);  // matching dim of this tensor, if any
    const int64_t want = target[i];
    if (j < 0) {
      if (want < 0) throw_arg("expand", "-1 is not allowed for a new leading dim in " + shape_str(target));
      shape[i] = want;
      continue;
    }
    const int64_t have = this->shape()[j];
    if (want == -1 || want == have) {
      shape[i] = have;
      strides[i] = this->strides()[j];
    } else if (have == 1 && want >= 0) {
      shape[i] = want;
    } else {
      throw_arg("expand", "cannot expand shape " + shape_str(this->shape()) + " to " + shape_str(target));
    }
  }
  if (shape == this->shape()) return *this;
  const Shape from = this->shape();
  return view_of(*this, shape, strides, offset(), "expand",
                 [from](const Tensor& g) { return sum_to_shape(g, from); });
}

Tensor broadcast_to(const Tensor& x, const Shape& shape) { return x.expand(shape); }

Tensor cat(const std::vector<Tensor>& tensors, int64_t dim) {
  if (tensors.empty()) throw_arg("cat", "needs at least one tensor");
  const Tensor& first = tensors[0];
  check_defined(first, "cat");
  const int64_t d = wrap_dim(dim, first.dim(), "cat");
  Shape out_shape = first.shape();
  out_shape[d] = 0;
  std::vector<int64_t> lengths;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    check_defined(t, "cat");
    check_same_dtype(first, t, "cat");
    bool fits = t.dim() == first.dim();
    for (int64_t k = 0; fits && k < t.dim(); ++k) fits = k == d || t.shape()[k] == first.shape()[k];
    if (!fits)
      throw_arg("cat", "tensor " + std::to_string(i) + " has shape " + shape_str(t.shape()) +
                           ", which does not match " + shape_str(first.shape()) + " outside dim " +
                           std::to_string(d));
    lengths.push_back(t.shape()[d]);
    out_shape[d] += t.shape()[d];
  }
  Tensor out = make_tensor(out_shape, first.dtype());
  int64_t start = 0;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    Tensor window = out.narrow(d, start, lengths[i]);  // out has no history yet: a plain view
    copy_strided(tensors[i], window);
    start += lengths[i];
  }
  return attach(out, "cat", tensors, [d, lengths](const Tensor& g, const std::vector<Tensor>&) {
    std::vector<Tensor> grads;
    int64_t offset = 0;
    for (int64_t len : lengths) {
      grads.push_back(g.narrow(d, offset, len));
      offset += len;
    }
    return grads;
  });
}

Tensor stack(const std::vector<Tensor>& tensors, int64_t dim) {
  if (tensors.empty()) throw_arg("stack", "needs at least one tensor");
  check_defined(tensors[0], "stack");
  const int64_t d = wrap_dim(dim, tensors[0].dim() + 1, "stack");
  std::vector<Tensor> expanded;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    check_defined(tensors[i], "stack");
    if (tensors[i].shape() != tensors[0].shape())
      throw_arg("stack", "tensor " + std::to_string(i) + " has shape " + shape_str(tensors[i].shape()) +
                             ", expected " + shape_str(tensors[0].shape()));
    expanded.push_back(tensors[i].unsqueeze(d));
  }
  return cat(expanded, d);
}

std::vector<Tensor> split(const Tensor& x, int64_t split_size, int64_t dim) {
  check_defined(x, "split");
  const int64_t d = wrap_dim(dim, x.dim(), "split");
  if (split_size <= 0) throw_arg("split", "split_size must be positive, got " + std::to_string(split_size));
  std::vector<Tensor> parts;
  for (int64_t start = 0; start < x.shape()[d]; start += split_size)
    parts.push_back(x.narrow(d, start, std::min(split_size, x.shape()[d] - start)));
  return parts;
}

std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim) {
  check_defined(x, "chunk");
  if (chunks <= 0) throw_arg("chunk", "chunks must be positive, got " + std::to_string(chunks));
  const int64_t n = x.size(dim);
  return split(x, std::max<int64_t>(1, (n + chunks - 1) / chunks), dim);
}

}  // namespace minitrain
