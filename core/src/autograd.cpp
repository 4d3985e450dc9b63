// The reverse-mode engine: recording nodes, one topological walk per backward, freeing the graph.
#include <minitrain/core/factory.h>
#include <minitrain/core/ops.h>
#include <minitrain/core/profiler.h>

#include "parallel.h"
#include "tensor_impl.h"

#include <atomic>
#include <unordered_map>
#include <unordered_set>

namespace minitrain {

namespace {
thread_local bool g_grad_mode = true;
std::atomic<int64_t> g_live_nodes{0};
}  // namespace

NoGradGuard::NoGradGuard() : previous_(g_grad_mode) { g_grad_mode = false; }
NoGradGuard::~NoGradGuard() { g_grad_mode = previous_; }
bool grad_mode_enabled() { return g_grad_mode; }
int64_t live_autograd_nodes() { return g_live_nodes.load(); }

Node::Node(const char* name_, std::vector<Tensor> inputs_, BackwardFn backward_)
    : name(name_), inputs(std::move(inputs_)), backward(std::move(backward_)) {
  ++g_live_nodes;
}

Node::~Node() {
  --g_live_nodes;
  // Dropping the last reference to a long chain would otherwise destroy it recursively, one stack
  // frame per op. Instead, inputs that only we hold give up their own node's inputs to a local list.
  std::vector<std::shared_ptr<TensorImpl>> pending;
  for (Tensor& t : inputs)
    if (t.defined()) pending.push_back(t.impl_ptr());
  inputs.clear();
  while (!pending.empty()) {
    std::shared_ptr<TensorImpl> impl = std::move(pending.back());
    pending.pop_back();
    if (impl.use_count() == 1 && impl->grad_fn && impl->grad_fn.use_count() == 1) {
      for (Tensor& t : impl->grad_fn->inputs)
        if (t.defined()) pending.push_back(t.impl_ptr());
      impl->grad_fn->inputs.clear();
    }
    // `impl` dies here with at most a node whose inputs are already gone.
  }
}

bool needs_grad(const std::vector<Tensor>& inputs) {
  if (!g_grad_mode) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

Tensor attach(Tensor out, const char* name, std::vector<Tensor> inputs, BackwardFn backward,
              const std::vector<Tensor>& saved) {
  if (!needs_grad(inputs)) return out;
  auto node = std::make_shared<Node>(name, std::move(inputs), std::move(backward));
  for (const Tensor& t : saved) {
    if (!t.defined()) continue;
    std::string what = "a tensor it saved";
    for (std::size_t i = 0; i < node->inputs.size(); ++i)
      if (node->inputs[i].defined() && node->inputs[i].impl()->storage == t.impl()->storage)
        what = "its input " + std::to_string(i);
    if (t.impl()->storage == out.impl()->storage) what = "its output";
    node->saved.push_back({t.impl_ptr(), t.impl()->storage, t.impl()->storage->version,
                           what + " (shape " + shape_str(t.shape()) + ")"});
  }
  out.impl()->grad_fn = std::move(node);
  out.impl()->requires_grad = true;
  return out;
}

namespace {

// Throws when a tensor some node's backward reads was written in place after the op ran (its values are
// no longer those the gradient formula needs), or had its buffer replaced by set_data.
void check_saved_versions(const Node& node) {
  for (const SavedVersion& s : node.saved) {
    const std::shared_ptr<TensorImpl> impl = s.impl.lock();
    if (!impl) continue;  // nobody holds it, so backward cannot read it
    const std::shared_ptr<Storage> storage = s.storage.lock();
    if (impl->storage != storage)
      throw std::runtime_error(std::string("backward: ") + s.what + " of '" + node.name +
                               "' was given another buffer (set_data) after '" + node.name +
                               "' used it; its gradient needs the values it had");
    if (storage->version != s.version)
      throw std::runtime_error(std::string("backward: ") + s.what + " of '" + node.name +
                               "' was modified in place after '" + node.name + "' used it (version " +
                               std::to_string(s.version) + ", now " + std::to_string(storage->version) +
                               "); its gradient needs the old values: clone() it before editing");
  }
}

}  // namespace

namespace {

// Post-order over tensors reachable through grad_fn, with an explicit stack (graphs can be 100,000
// ops deep). Reversed, it visits every tensor after all tensors computed from it.
std::vector<std::shared_ptr<TensorImpl>> topological_order(const std::shared_ptr<TensorImpl>& root) {
  std::vector<std::shared_ptr<TensorImpl>> order;
  std::unordered_set<TensorImpl*> visited;
  struct Frame {
    std::shared_ptr<TensorImpl> impl;
    std::size_t next_input;
  };
  std::vector<Frame> stack{{root, 0}};
  visited.insert(root.get());
  while (!stack.empty()) {
    Frame& f = stack.back();
    Node* node = f.impl->grad_fn.get();
    if (node && f.next_input < node->inputs.size()) {
      const Tensor& in = node->inputs[f.next_input++];
      if (in.defined() && in.requires_grad() && visited.insert(in.impl()).second)
        stack.push_back({in.impl_ptr(), 0});
      continue;
    }
    order.push_back(std::move(f.impl));
    stack.pop_back();
  }
  return order;
}

// sum += g in place when nothing else can see `sum` (its handle and its storage are ours alone) and both
// are plain contiguous buffers of one shape; false otherwise. Same values as add(), without allocating.
bool add_in_place(Tensor& sum, const Tensor& g) {
  if (!sole_owner(sum) || !sum.is_contiguous() || !g.is_contiguous() || sum.shape() != g.shape() ||
      sum.dtype() != g.dtype())
    return false;
  profiler::Scope scope("accumulate_grad", /*backward=*/true);
  dispatch(sum.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* s = sum.data<T>();
    const T* gp = g.data<T>();
    parallel_for(sum.numel(), 32 * 1024, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) s[i] += gp[i];
    });
  });
  return true;
}

void accumulate(std::unordered_map<TensorImpl*, Tensor>& grads, TensorImpl* key, const Tensor& g) {
  auto it = grads.find(key);
  if (it == grads.end())
    grads.emplace(key, g);
  else if (!add_in_place(it->second, g))
    it->second = add(it->second, g);
}

}  // namespace

void Tensor::backward(const Tensor& grad, bool retain_graph) const {
  if (!defined()) throw std::invalid_argument("backward: undefined tensor");
  if (!requires_grad())
    throw std::invalid_argument("backward: tensor does not require grad (no input of its ops did)");
  Tensor seed = grad;
  if (!seed.defined()) {
    if (numel() != 1)
      throw std::invalid_argument("backward: output of shape " + shape_str(shape()) +
                                  " is not a scalar; pass an upstream gradient of that shape");
    seed = ones(shape(), dtype());
  } else if (seed.shape() != shape() || seed.dtype() != dtype()) {
    throw std::invalid_argument("backward: upstream gradient " + shape_str(seed.shape()) + " " +
                                dtype_name(seed.dtype()) + " does not match output " +
                                shape_str(shape()) + " " + dtype_name(dtype()));
  }

  NoGradGuard no_grad;  // gradients are plain values; no double backward
  std::vector<std::shared_ptr<TensorImpl>> order = topological_order(impl_);
  // Before any gradient is computed, so that a refused backward leaves every .grad() as it was.
  for (const auto& impl : order)
    if (const Node* node = impl->grad_fn.get(); node && !node->released) check_saved_versions(*node);
  std::unordered_map<TensorImpl*, Tensor> grads;
  grads.emplace(impl_.get(), seed);

  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    TensorImpl* impl = it->get();
    auto g = grads.find(impl);
    if (g == grads.end()) continue;  // no path from the output reached it
    Tensor gout = g->second;
    grads.erase(g);
    Node* node = impl->grad_fn.get();
    if (!node) {  // a leaf: accumulate into .grad()
      Tensor acc = gout.contiguous();
      gout = Tensor();
      if (!impl->grad) {
        // Own the buffer: the gradient may be shared with another tensor's gradient (add's backward hands
        // the same tensor to both inputs), with the caller's upstream tensor, or share storage with a view.
        impl->grad = (sole_owner(acc) ? acc : acc.clone()).impl_ptr();
      } else {
        Tensor sum(impl->grad);
        impl->grad.reset();  // so that add_in_place can see whether anyone else holds the gradient
        if (!add_in_place(sum, acc)) sum = add(sum, acc);
        impl->grad = sum.impl_ptr();
      }
      continue;
    }
    if (node->released)
      throw std::runtime_error(std::string("backward: the graph through '") + node->name +
                               "' was already freed by an earlier backward; pass retain_graph=true "
                               "to the first call to backward twice");
    std::vector<Tensor> in_grads;
    {
      profiler::Scope scope(node->name, /*backward=*/true);
      in_grads = node->backward(gout, node->inputs);
    }
    for (std::size_t i = 0; i < node->inputs.size(); ++i) {
      const Tensor& in = node->inputs[i];
      if (!in.defined() || !in.requires_grad() || i >= in_grads.size() || !in_grads[i].defined()) continue;
      if (in_grads[i].shape() != in.shape())
        throw std::logic_error(std::string("backward of '") + node->name + "' returned gradient " +
                               shape_str(in_grads[i].shape()) + " for input " + std::to_string(i) +
                               " of shape " + shape_str(in.shape()));
      accumulate(grads, in.impl(), in_grads[i]);
    }
  }

  if (!retain_graph) {
    // Free what backward needed (saved tensors, inputs); keep the nodes so that a second backward
    // reports the problem instead of silently treating intermediates as leaves.
    for (auto& impl : order) {
      if (Node* node = impl->grad_fn.get()) {
        node->inputs.clear();
        node->backward = nullptr;
        node->released = true;
      }
    }
  }
}

}  // namespace minitrain
