// Module: the base of every layer and model, in the style of PyTorch's C++ frontend.
//
//   struct TwoLayer : nn::Module {
//     std::shared_ptr<nn::Linear> fc1, fc2;
//     TwoLayer() : Module("TwoLayer") {
//       fc1 = register_module("fc1", std::make_shared<nn::Linear>(4, 8));
//       fc2 = register_module("fc2", std::make_shared<nn::Linear>(8, 1));
//     }
//     Tensor forward(const Tensor& x) { return (*fc2)(relu((*fc1)(x))); }
//     Tensor operator()(const Tensor& x) { return forward(x); }
//   };
//
// Each module declares its own typed forward (no virtual dispatch, so no common signature); the library's
// modules also have an operator() that calls it, so `(*fc)(x)` works as in PyTorch. A model of your own
// adds the one-line operator() if it wants the same.
//
// Parameters are Tensor handles registered by name; named_parameters() gives dotted names
// ("fc1.weight"). A tensor registered under two names (tied weights) is one parameter: listed once by
// parameters() and named_parameters() and counted once, but present under both names in state_dict().
//
// Forward hooks, as torch.nn.Module.register_forward_hook: a hook runs after each forward of the module
// it is registered on, with the module, the forward's tensor inputs and its output, and may only look
// (probes, statistics, logging). The library's modules run them; a model of your own runs its hooks by
// ending its forward with `return run_forward_hooks({x}, y);`.
//
//   nn::HookHandle h = model.h->at(0)->attn->register_forward_hook(
//       [](nn::Module& m, const std::vector<Tensor>& inputs, const Tensor& output) { ... });
//   ...
//   h.remove();
#pragma once

#include <minitrain/core/random.h>
#include <minitrain/core/tensor.h>

#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace minitrain::nn {

using StateDict = std::map<std::string, Tensor>;

class Module;
using ForwardHook = std::function<void(Module& module, const std::vector<Tensor>& inputs, const Tensor& output)>;

// Returned by register_forward_hook; remove() unregisters the hook (once; later calls, or calls after the
// module is gone, do nothing). Dropping the handle keeps the hook, as in PyTorch.
class HookHandle {
 public:
  HookHandle() = default;
  void remove();

 private:
  friend class Module;
  using Registry = std::map<int64_t, ForwardHook>;
  HookHandle(std::weak_ptr<Registry> registry, int64_t id) : registry_(std::move(registry)), id_(id) {}
  std::weak_ptr<Registry> registry_;
  int64_t id_ = -1;
};

class Module {
 public:
  explicit Module(std::string type_name);
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // Registers (or replaces) a parameter; it becomes a leaf that requires grad. Returns it.
  Tensor register_parameter(const std::string& name, Tensor tensor, bool requires_grad = true);
  // Registers (or replaces) a child module. Returns it, typed.
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> module) {
    register_child(name, module);
    return module;
  }

  std::vector<Tensor> parameters() const;  // unique, in registration order, children after own
  std::vector<std::pair<std::string, Tensor>> named_parameters() const;  // unique, dotted names
  std::vector<std::shared_ptr<Module>> children() const;
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& named_children() const { return children_; }
  const std::string& type_name() const { return type_name_; }

  // Calls fn on this module, then on every submodule, depth first in registration order (the order of
  // named_parameters()), as torch::nn::Module::apply.
  void apply(const std::function<void(Module&)>& fn);

  // Draws the parameters afresh from the module's default initialisation, as PyTorch's
  // reset_parameters(): a layer (Linear, Embedding, LayerNorm) re-initialises its own tensors in place, so
  // handles (and tied weights) stay valid; a module without an override resets its children in
  // registration order. The overload without a generator draws from nn::default_generator(). A layer
  // overriding it adds `using Module::reset_parameters;` to keep that overload visible.
  virtual void reset_parameters(Generator& gen);
  void reset_parameters();

  void train(bool on = true);  // recursive
  void eval() { train(false); }
  bool is_training() const { return training_; }
  void zero_grad();
  void to(DType dtype);  // converts every parameter in place; handles stay valid
  DType dtype() const;   // of the first parameter (float32 if there is none)

  StateDict state_dict() const;  // every name, tied tensors under each of their names
  // Copies values into the existing parameters (converting dtype). With strict, missing, unexpected
  // or mis-shaped entries are one error naming all of them, and nothing is changed.
  void load_state_dict(const StateDict& state, bool strict = true);

  int64_t num_parameters() const;  // elements, tied tensors once
  std::string summary() const;     // the module tree with parameter shapes and counts

  // Registers a hook run after every forward of this module (not of its children), in registration order.
  HookHandle register_forward_hook(ForwardHook hook);
  bool has_forward_hooks() const { return !forward_hooks_->empty(); }

 protected:
  virtual std::string extra_repr() const { return ""; }  // "(in=4, out=8)" in the summary
  // Runs this module's forward hooks on (inputs, output) and returns output: a forward ends with it.
  // Without hooks it does nothing else.
  Tensor run_forward_hooks(std::initializer_list<Tensor> inputs, const Tensor& output);

 private:
  void register_child(const std::string& name, std::shared_ptr<Module> module);
  void collect_all(const std::string& prefix, std::vector<std::pair<std::string, Tensor>>& out) const;
  void summary_into(std::string& out, const std::string& name, int depth) const;

  std::string type_name_;
  std::vector<std::pair<std::string, Tensor>> params_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
  std::shared_ptr<HookHandle::Registry> forward_hooks_ = std::make_shared<HookHandle::Registry>();
  int64_t next_hook_id_ = 0;
};

}  // namespace minitrain::nn
