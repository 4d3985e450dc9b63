// Containers for custom models: Sequential (a chain of Tensor -> Tensor steps) and ModuleList.
#pragma once

#include <minitrain/nn/module.h>

#include <functional>
#include <memory>
#include <vector>

namespace minitrain::nn {

// Runs its steps in order. Modules are registered as "0", "1", ...; plain functions (activations) are
// steps without parameters:
//   auto net = std::make_shared<Sequential>();
//   net->add(std::make_shared<Linear>(2, 16)).add([](const Tensor& x) { return relu(x); })
//       .add(std::make_shared<Linear>(16, 1));
class Sequential : public Module {
 public:
  Sequential() : Module("Sequential") {}
  template <class M>
  Sequential& add(std::shared_ptr<M> module) {
    register_module(std::to_string(modules_++), module);
    steps_.push_back([module](const Tensor& x) { return module->forward(x); });
    return *this;
  }
  Sequential& add(std::function<Tensor(const Tensor&)> fn) {
    steps_.push_back(std::move(fn));
    return *this;
  }
  Tensor forward(const Tensor& x) {
    Tensor y = x;
    for (auto& step : steps_) y = step(y);
    return run_forward_hooks({x}, y);
  }
  Tensor operator()(const Tensor& x) { return forward(x); }
  std::size_t size() const { return steps_.size(); }

 private:
  std::vector<std::function<Tensor(const Tensor&)>> steps_;
  int64_t modules_ = 0;
};

// A list of modules of one type, registered as "0", "1", ... (GPT's transformer.h.N).
template <class M>
class ModuleList : public Module {
 public:
  ModuleList() : Module("ModuleList") {}
  std::shared_ptr<M> push_back(std::shared_ptr<M> module) {
    items_.push_back(register_module(std::to_string(items_.size()), std::move(module)));
    return items_.back();
  }
  const std::shared_ptr<M>& operator[](std::size_t i) const { return items_.at(i); }
  std::size_t size() const { return items_.size(); }
  auto begin() const { return items_.begin(); }
  auto end() const { return items_.end(); }

 private:
  std::vector<std::shared_ptr<M>> items_;
};

}  // namespace minitrain::nn
