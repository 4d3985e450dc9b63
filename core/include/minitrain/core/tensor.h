// Tensor: a cheap handle to shared storage plus autograd state.
//
// Copying a Tensor copies a pointer (like torch::Tensor); views (transpose, narrow, expand, ...) share
// storage and differ only in shape, strides and offset. The element type is chosen at run time:
// float32 for training, float64 for gradient checks, int64 for token ids, targets and indices, bool for
// masks and comparison results. Only floating-point tensors take part in autograd.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

namespace minitrain {

enum class DType { Float32, Float64, Int64, Bool };
const char* dtype_name(DType dtype);  // "float32", "float64", "int64", "bool"
std::size_t dtype_size(DType dtype);  // bytes per element: 4, 8, 8, 1
bool is_floating_point(DType dtype);

using Shape = std::vector<int64_t>;
std::string shape_str(const Shape& shape);  // "[2,3]"
int64_t shape_numel(const Shape& shape);

struct TensorImpl;  // storage + view + autograd state (core/src/tensor_impl.h)

class Tensor {
 public:
  Tensor() = default;  // an undefined tensor: defined() is false
  explicit Tensor(std::shared_ptr<TensorImpl> impl);

  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const;
  const Shape& strides() const;  // in elements
  int64_t offset() const;        // in elements, into the storage
  int64_t dim() const;
  int64_t size(int64_t d) const;  // negative d counts from the end
  int64_t numel() const;
  DType dtype() const;
  bool is_contiguous() const;

  // Values. item() needs exactly one element; at() takes one index per dim. The double forms are exact
  // for every float and bool value and for integers up to 2^53; item<int64_t>() is exact for all int64.
  double item() const;
  template <class T>
  T item() const;  // T = float, double, int64_t or bool
  double at(const std::vector<int64_t>& index) const;
  // Leaf data edit (tests, init). An int64 tensor takes only integral values in its range; a bool
  // tensor stores value != 0.
  void set(const std::vector<int64_t>& index, double value);
  template <class T>
  std::vector<T> to_vector() const;  // row-major copy, converted to T (float, double, int64_t, bool)
  std::string str() const;           // readable printing: values, shape, dtype

  // Zero-copy access to the raw buffer; requires a contiguous tensor of that element type (float,
  // double, int64_t or bool).
  template <class T>
  T* data();
  template <class T>
  const T* data() const;

  // Conversions and copies (differentiable between floating-point dtypes). to() converts between any
  // two dtypes as static_cast does (float to int64 truncates toward zero, anything to bool is != 0) and
  // throws naming the value that does not fit (NaN, infinity or out of int64's range).
  Tensor to(DType dtype) const;
  Tensor contiguous() const;  // itself when already contiguous
  Tensor clone() const;       // always a fresh buffer
  Tensor detach() const;      // same storage, no autograd history

  // Shape ops (views where the layout allows, differentiable).
  Tensor reshape(const Shape& shape) const;  // one dim may be -1
  Tensor view(const Shape& shape) const;     // like reshape, but never copies (throws instead)
  Tensor transpose(int64_t d0, int64_t d1) const;
  Tensor permute(const std::vector<int64_t>& dims) const;
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
  Tensor slice(int64_t dim, int64_t start, int64_t end) const;  // [start, end)
  Tensor unsqueeze(int64_t dim) const;
  Tensor squeeze(int64_t dim) const;
  Tensor expand(const Shape& shape) const;

  // In-place edits of a tensor's values, outside autograd (parameter updates, loading weights).
  // copy_ writes src's values (same shape, dtype converted) into this tensor's storage;
  // set_data makes this handle's TensorImpl point at src's storage and dtype, so every other handle
  // to the same parameter sees the change (Module::to uses it). Both refuse tensors with history.
  Tensor& copy_(const Tensor& src);
  Tensor& set_data(const Tensor& src);

  // The version of this tensor's buffer (shared with its views and detach() aliases): every in-place
  // write through the API above, set(), and optimizer steps bump it. backward() refuses to run when a
  // tensor an op saved for its gradient has a newer version than when the op ran (as PyTorch does). Code
  // that writes through data<T>() itself calls bump_version() to take part.
  uint64_t version() const;
  void bump_version();

  // Autograd.
  bool requires_grad() const;
  Tensor& set_requires_grad(bool requires_grad);  // floating-point leaves only
  bool is_leaf() const;
  Tensor grad() const;  // undefined until a backward reaches this leaf
  void zero_grad();     // drops the accumulated gradient
  // Reverse-mode differentiation from this tensor. A scalar may omit `grad` (it is 1); other outputs
  // take an upstream gradient of their shape. The graph is freed afterwards unless retain_graph.
  void backward(const Tensor& grad = Tensor(), bool retain_graph = false) const;

  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }

 private:
  std::shared_ptr<TensorImpl> impl_;
};

std::ostream& operator<<(std::ostream& os, const Tensor& t);

// Disables graph recording in its scope (evaluation, optimizer steps, inside backward).
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};
bool grad_mode_enabled();

// Counters for leak tests: live autograd nodes and bytes of live tensor storage in this process.
int64_t live_autograd_nodes();
int64_t live_storage_bytes();

// Freed tensor buffers are cached by size and reused (training repeats the same sizes every step); the
// cache never holds more than the peak of bytes in use (at least 64 MiB). These report and empty it.
int64_t cached_storage_bytes();
void release_cached_storage();

}  // namespace minitrain
