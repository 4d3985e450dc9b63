// Tensor handle basics: geometry, element access, raw buffers, printing, and shared helpers.
#include "strided.h"
#include "tensor_impl.h"

#include <atomic>
#include <cmath>
#include <iomanip>
#include <limits>
#include <ostream>
#include <sstream>

namespace minitrain {

namespace {
std::atomic<int64_t> g_live_storage_bytes{0};
}

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::Float32: return "float32";
    case DType::Float64: return "float64";
    case DType::Int64: return "int64";
    case DType::Bool: break;
  }
  return "bool";
}

std::size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::Float32: return 4;
    case DType::Float64:
    case DType::Int64: return 8;
    case DType::Bool: break;
  }
  return 1;
}

bool is_floating_point(DType dtype) { return dtype == DType::Float32 || dtype == DType::Float64; }

std::string shape_str(const Shape& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? "," : "") + std::to_string(shape[i]);
  return s + "]";
}

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

namespace {
// The element count of a shape for a new tensor, refused when a dim is negative or the product
// overflows (shape_numel would wrap).
int64_t checked_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape)
    if (d < 0 || __builtin_mul_overflow(n, d, &n))
      throw std::invalid_argument("tensor: shape " + shape_str(shape) + " is not a valid size");
  return n;
}
}  // namespace

Storage::Storage(DType dtype_, int64_t numel) : dtype(dtype_), numel_(numel) {
  int64_t bytes = 0;
  if (numel < 0 || __builtin_mul_overflow(numel, static_cast<int64_t>(dtype_size(dtype)), &bytes))
    throw std::invalid_argument("tensor: " + std::to_string(numel) + " elements of " + dtype_name(dtype) +
                                " is not a valid size");
  data_ = buffer_pool::acquire(static_cast<std::size_t>(bytes));
  g_live_storage_bytes += bytes;
}

Storage::~Storage() {
  buffer_pool::release(data_, bytes());
  g_live_storage_bytes -= static_cast<int64_t>(bytes());
}

int64_t live_storage_bytes() { return g_live_storage_bytes.load(); }

bool TensorImpl::is_contiguous() const {
  int64_t expected = 1;
  for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
    if (shape[d] != 1 && strides[d] != expected) return false;
    expected *= shape[d];
  }
  return true;
}

Shape contiguous_strides(const Shape& shape) {
  Shape strides(shape.size());
  int64_t s = 1;
  for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
    strides[d] = s;
    s *= shape[d];
  }
  return strides;
}

Tensor make_tensor(const Shape& shape, DType dtype) {
  for (int64_t d : shape)
    if (d < 0) throw std::invalid_argument("tensor: negative dimension in shape " + shape_str(shape));
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(dtype, checked_numel(shape));
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  return Tensor(std::move(impl));
}

Tensor make_view(const Tensor& base, Shape shape, Shape strides, int64_t offset) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = base.impl()->storage;
  impl->shape = std::move(shape);
  impl->strides = std::move(strides);
  impl->offset = offset;
  return Tensor(std::move(impl));
}

int64_t wrap_dim(int64_t dim, int64_t ndim, const char* op) {
  int64_t d = dim < 0 ? dim + ndim : dim;
  if (d < 0 || d >= ndim)
    throw_arg(op, "dim " + std::to_string(dim) + " is out of range for a tensor with " +
                      std::to_string(ndim) + " dims");
  return d;
}

void throw_arg(const char* op, const std::string& what) {
  throw std::invalid_argument(std::string(op) + ": " + what);
}

void check_defined(const Tensor& t, const char* op, const char* name) {
  if (!t.defined()) throw_arg(op, std::string(name) + " is an undefined tensor");
}

void check_same_dtype(const Tensor& a, const Tensor& b, const char* op) {
  if (a.dtype() != b.dtype())
    throw_arg(op, std::string("dtypes ") + dtype_name(a.dtype()) + " and " + dtype_name(b.dtype()) +
                      " differ (convert one with .to())");
}

void check_floating(const Tensor& t, const char* op, const char* name) {
  check_defined(t, op, name);
  if (!is_floating_point(t.dtype()))
    throw_arg(op, std::string(name) + " must be a floating-point tensor (float32 or float64), got " +
                      dtype_name(t.dtype()));
}

void check_int64(const Tensor& t, const char* op, const char* name) {
  check_defined(t, op, name);
  if (t.dtype() != DType::Int64)
    throw_arg(op, std::string(name) + " must be an int64 tensor, got " + dtype_name(t.dtype()));
}

Tensor::Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

namespace {
const TensorImpl& checked(const std::shared_ptr<TensorImpl>& impl) {
  if (!impl) throw std::invalid_argument("Tensor: operation on an undefined tensor");
  return *impl;
}
}  // namespace

const Shape& Tensor::shape() const { return checked(impl_).shape; }
const Shape& Tensor::strides() const { return checked(impl_).strides; }
int64_t Tensor::offset() const { return checked(impl_).offset; }
int64_t Tensor::dim() const { return static_cast<int64_t>(shape().size()); }
int64_t Tensor::size(int64_t d) const { return shape()[wrap_dim(d, dim(), "size")]; }
int64_t Tensor::numel() const { return checked(impl_).numel(); }
DType Tensor::dtype() const { return checked(impl_).dtype(); }
bool Tensor::is_contiguous() const { return checked(impl_).is_contiguous(); }

namespace {
int64_t storage_index(const TensorImpl& t, const std::vector<int64_t>& index, const char* op) {
  if (index.size() != t.shape.size())
    throw_arg(op, "index has " + std::to_string(index.size()) + " entries for a tensor of shape " +
                      shape_str(t.shape));
  int64_t pos = t.offset;
  for (std::size_t d = 0; d < index.size(); ++d) {
    if (index[d] < 0 || index[d] >= t.shape[d])
      throw_arg(op, "index " + std::to_string(index[d]) + " out of range for dim " + std::to_string(d) +
                        " of shape " + shape_str(t.shape));
    pos += index[d] * t.strides[d];
  }
  return pos;
}
}  // namespace

double Tensor::item() const {
  if (numel() != 1) throw_arg("item", "needs exactly one element, got shape " + shape_str(shape()));
  return at(std::vector<int64_t>(shape().size(), 0));
}

double Tensor::at(const std::vector<int64_t>& index) const {
  const TensorImpl& t = checked(impl_);
  const int64_t pos = storage_index(t, index, "at");
  return dispatch_all(t.dtype(), [&](auto tag) {
    using T = decltype(tag);
    return static_cast<double>(t.storage->ptr<T>()[pos]);
  });
}

template <class T>
T Tensor::item() const {
  if (numel() != 1) throw_arg("item", "needs exactly one element, got shape " + shape_str(shape()));
  const TensorImpl& t = checked(impl_);
  const int64_t pos = storage_index(t, std::vector<int64_t>(t.shape.size(), 0), "item");
  return dispatch_all(t.dtype(), [&](auto tag) {
    using S = decltype(tag);
    return convert_element<T>(t.storage->ptr<S>()[pos]);
  });
}

void Tensor::set(const std::vector<int64_t>& index, double value) {
  TensorImpl& t = *impl_;
  const int64_t pos = storage_index(checked(impl_), index, "set");
  if (t.dtype() == DType::Int64 && (std::trunc(value) != value || !(std::fabs(value) < 9223372036854775808.0)))
    throw_arg("set", "an int64 tensor cannot hold " + std::to_string(value));
  dispatch_all(t.dtype(), [&](auto tag) {
    using T = decltype(tag);
    t.storage->ptr<T>()[pos] = static_cast<T>(value);
  });
  ++t.storage->version;
}

uint64_t Tensor::version() const { return checked(impl_).storage->version; }
void Tensor::bump_version() { ++checked(impl_).storage->version; }

namespace {
template <class T>
constexpr DType dtype_of() {
  if constexpr (std::is_same<T, float>::value) return DType::Float32;
  if constexpr (std::is_same<T, double>::value) return DType::Float64;
  if constexpr (std::is_same<T, int64_t>::value) return DType::Int64;
  return DType::Bool;
}
}  // namespace

template <class T>
T* Tensor::data() {
  const TensorImpl& t = checked(impl_);
  constexpr DType want = dtype_of<T>();
  if (t.dtype() != want)
    throw_arg("data", std::string("tensor is ") + dtype_name(t.dtype()) + ", not " + dtype_name(want));
  if (!t.is_contiguous()) throw_arg("data", "tensor of shape " + shape_str(t.shape) + " is not contiguous");
  return impl_->storage->ptr<T>() + t.offset;
}

template <class T>
const T* Tensor::data() const {
  return const_cast<Tensor*>(this)->data<T>();
}

template <class T>
std::vector<T> Tensor::to_vector() const {
  Tensor c = contiguous();
  std::vector<T> out(static_cast<std::size_t>(c.numel()));
  dispatch_all(c.dtype(), [&](auto tag) {
    using S = decltype(tag);
    const S* p = c.data<S>();
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = convert_element<T>(p[i]);
  });
  return out;
}

#define MINITRAIN_TENSOR_ELEMENT(T)                    \
  template T* Tensor::data<T>();                       \
  template const T* Tensor::data<T>() const;           \
  template std::vector<T> Tensor::to_vector<T>() const; \
  template T Tensor::item<T>() const;
MINITRAIN_TENSOR_ELEMENT(float)
MINITRAIN_TENSOR_ELEMENT(double)
MINITRAIN_TENSOR_ELEMENT(int64_t)
MINITRAIN_TENSOR_ELEMENT(bool)
#undef MINITRAIN_TENSOR_ELEMENT

bool Tensor::requires_grad() const { return checked(impl_).requires_grad; }

Tensor& Tensor::set_requires_grad(bool requires_grad) {
  checked(impl_);
  if (impl_->grad_fn)
    throw_arg("set_requires_grad", "only leaf tensors can change requires_grad; use detach() first");
  if (requires_grad && !is_floating_point(impl_->dtype()))
    throw_arg("set_requires_grad", std::string("only floating-point tensors can require gradients, got ") +
                                       dtype_name(impl_->dtype()));
  impl_->requires_grad = requires_grad;
  return *this;
}

bool Tensor::is_leaf() const { return checked(impl_).grad_fn == nullptr; }

Tensor Tensor::grad() const {
  const TensorImpl& t = checked(impl_);
  return t.grad ? Tensor(t.grad) : Tensor();
}

void Tensor::zero_grad() { checked(impl_), impl_->grad.reset(); }

Tensor Tensor::detach() const {
  const TensorImpl& t = checked(impl_);
  return make_view(*this, t.shape, t.strides, t.offset);
}

std::string Tensor::str() const {
  std::ostringstream os;
  os << *this;
  return os.str();
}

namespace {
void print_rec(std::ostream& os, const Tensor& t, std::vector<int64_t>& index, std::size_t d) {
  const Shape& shape = t.shape();
  if (d == shape.size()) {
    switch (t.dtype()) {
      case DType::Int64: os << t.impl()->storage->ptr<int64_t>()[storage_index(*t.impl(), index, "print")]; break;
      case DType::Bool: os << (t.at(index) != 0 ? "true" : "false"); break;
      default: os << t.at(index);
    }
    return;
  }
  os << "[";
  const int64_t n = shape[d];
  const int64_t edge = 3;  // elements shown at each end of a long dim
  for (int64_t i = 0; i < n; ++i) {
    if (n > 2 * edge + 1 && i == edge) {
      os << "..., ";
      i = n - edge;
    }
    index[d] = i;
    print_rec(os, t, index, d + 1);
    if (i + 1 < n) os << (d + 1 == shape.size() ? ", " : ",\n" + std::string(d + 8, ' '));
  }
  os << "]";
}
}  // namespace

std::ostream& operator<<(std::ostream& os, const Tensor& t) {
  if (!t.defined()) return os << "tensor(undefined)";
  std::ios::fmtflags flags = os.flags();
  os << "tensor(" << std::setprecision(t.dtype() == DType::Float32 ? 6 : 10);
  std::vector<int64_t> index(t.shape().size(), 0);
  print_rec(os, t, index, 0);
  os << ", shape=" << shape_str(t.shape()) << ", dtype=" << dtype_name(t.dtype());
  if (t.requires_grad()) os << ", requires_grad";
  os << ")";
  os.flags(flags);
  return os;
}

}  // namespace minitrain
