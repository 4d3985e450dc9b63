// Internal: what a Tensor handle points to, the autograd node, and helpers shared by the op files.
// Not installed; user code sees only the public headers.
#pragma once

#include <minitrain/core/tensor.h>

#include "buffer_pool.h"

#include <functional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

namespace minitrain {

// A flat, uninitialised, 64-byte aligned buffer of `numel` elements of `dtype`, from the buffer pool.
struct Storage {
  DType dtype;
  // Bumped by every in-place write through the public API (set, copy_, optimizer steps, ...), shared by
  // every view and detach() alias of this buffer. A node records it for each tensor its backward reads,
  // and backward refuses to run when it has changed since.
  uint64_t version = 0;

  Storage(DType dtype, int64_t numel);  // throws when numel * dtype_size overflows
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  int64_t numel() const { return numel_; }
  std::size_t bytes() const { return static_cast<std::size_t>(numel_) * dtype_size(dtype); }
  void* raw() { return data_; }
  // The buffer as T*; callers have checked (or dispatched on) the dtype.
  template <class T>
  T* ptr() {
    return static_cast<T*>(data_);
  }

 private:
  void* data_ = nullptr;
  int64_t numel_ = 0;
};

struct Node;

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape;
  Shape strides;  // elements
  int64_t offset = 0;

  bool requires_grad = false;
  std::shared_ptr<TensorImpl> grad;  // accumulated gradient of a leaf
  std::shared_ptr<Node> grad_fn;     // set on results of recorded ops

  DType dtype() const { return storage->dtype; }
  int64_t numel() const { return shape_numel(shape); }
  bool is_contiguous() const;
};

// Backward of one op: given the gradient of its output and its inputs (as recorded), returns one
// gradient per input (undefined where not needed). Runs with grad mode off.
using BackwardFn = std::function<std::vector<Tensor>(const Tensor& grad, const std::vector<Tensor>& inputs)>;

// A tensor a backward closure reads, as it was when the op ran: its impl (set_data may point the impl at
// another buffer), that buffer and the buffer's version then. Weak pointers: the closure keeps what it
// needs alive, and holding the buffer here would change sole_owner()'s answer.
struct SavedVersion {
  std::weak_ptr<TensorImpl> impl;
  std::weak_ptr<Storage> storage;
  uint64_t version = 0;
  std::string what;  // "input 0 (shape [2, 3])", "its output (shape [4])", ...
};

struct Node {
  const char* name;
  std::vector<Tensor> inputs;
  BackwardFn backward;
  std::vector<SavedVersion> saved;
  bool released = false;  // set when backward freed the graph

  Node(const char* name_, std::vector<Tensor> inputs_, BackwardFn backward_);
  ~Node();  // tears long chains down iteratively (no recursion as deep as the graph)
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;
};

// True when grad mode is on and any input requires grad: the op should record a node.
bool needs_grad(const std::vector<Tensor>& inputs);
// Records the node that makes `out` differentiable, if needs_grad(inputs). The closure must capture
// only what backward reads, and never `out` itself with its history (that would be a cycle): capture
// out.detach() instead. `saved` lists every tensor whose values backward reads (captured or among the
// inputs): their versions are recorded, so that an in-place edit made before backward is refused instead
// of giving silently wrong gradients.
Tensor attach(Tensor out, const char* name, std::vector<Tensor> inputs, BackwardFn backward,
              const std::vector<Tensor>& saved = {});

// True when `t` is the only handle to its impl and the only tensor on its storage: its values can be
// overwritten without anyone else seeing it (gradient buffers the autograd engine is done with).
inline bool sole_owner(const Tensor& t) {
  return t.impl_ptr().use_count() == 1 && t.impl()->storage.use_count() == 1;
}

// Row-major strides for a shape.
Shape contiguous_strides(const Shape& shape);
// A fresh tensor without history.
Tensor make_tensor(const Shape& shape, DType dtype);
// A view of `base`'s storage with the given geometry, without history.
Tensor make_view(const Tensor& base, Shape shape, Shape strides, int64_t offset);

// Normalises a possibly negative dim for a tensor of `ndim` dims; throws naming `op`.
int64_t wrap_dim(int64_t dim, int64_t ndim, const char* op);

// Error helpers: std::invalid_argument("<op>: <what>").
[[noreturn]] void throw_arg(const char* op, const std::string& what);
void check_defined(const Tensor& t, const char* op, const char* name = "input");
void check_same_dtype(const Tensor& a, const Tensor& b, const char* op);
// Throws "<op>: <name> must be a floating-point tensor, got int64" for integer and bool tensors: every
// differentiable op calls it on its float operands.
void check_floating(const Tensor& t, const char* op, const char* name = "input");
// Throws "<op>: <name> must be an int64 tensor, got float32" (indices, ids, targets).
void check_int64(const Tensor& t, const char* op, const char* name);

// Calls f(T{}) with T = float or double per dtype. Float kernels only: ops check their operands with
// check_floating first, so an integer dtype reaching here is a bug in the op, not in the caller's input.
template <class F>
decltype(auto) dispatch(DType dtype, F&& f) {
  if (dtype == DType::Float32) return f(float{});
  if (dtype != DType::Float64)
    throw std::logic_error(std::string("float kernel given a tensor of dtype ") + dtype_name(dtype));
  return f(double{});
}

// Calls f(T{}) with T = float, double, int64_t or bool per dtype: copies, conversions, selection.
template <class F>
decltype(auto) dispatch_all(DType dtype, F&& f) {
  switch (dtype) {
    case DType::Float32: return f(float{});
    case DType::Float64: return f(double{});
    case DType::Int64: return f(int64_t{});
    case DType::Bool: break;
  }
  return f(bool{});
}

}  // namespace minitrain
