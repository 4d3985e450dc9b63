// Module bookkeeping: registration, traversal with dotted names, modes, dtype, state dicts, summary.
#include <minitrain/nn/module.h>

#include <minitrain/core/ops.h>
#include <minitrain/nn/init.h>

#include <map>
#include <sstream>
#include <stdexcept>
#include <unordered_set>

namespace minitrain::nn {

Module::Module(std::string type_name) : type_name_(std::move(type_name)) {}

namespace {
template <class Vec, class Value>
void insert_or_replace(Vec& entries, const std::string& name, Value value) {
  for (auto& e : entries)
    if (e.first == name) {
      e.second = std::move(value);
      return;
    }
  entries.emplace_back(name, std::move(value));
}

void check_name(const std::string& name, const char* what) {
  if (name.empty() || name.find('.') != std::string::npos)
    throw std::invalid_argument(std::string("Module: ") + what + " name '" + name +
                                "' must be non-empty and contain no '.'");
}
}  // namespace

Tensor Module::register_parameter(const std::string& name, Tensor tensor, bool requires_grad) {
  check_name(name, "parameter");
  if (!tensor.defined()) throw std::invalid_argument("Module: parameter '" + name + "' is undefined");
  if (!tensor.is_leaf()) tensor = tensor.detach();
  tensor.set_requires_grad(requires_grad);
  insert_or_replace(params_, name, tensor);
  return tensor;
}

void Module::register_child(const std::string& name, std::shared_ptr<Module> module) {
  check_name(name, "module");
  if (!module) throw std::invalid_argument("Module: submodule '" + name + "' is null");
  insert_or_replace(children_, name, std::move(module));
}

void Module::collect_all(const std::string& prefix, std::vector<std::pair<std::string, Tensor>>& out) const {
  for (const auto& [name, t] : params_) out.emplace_back(prefix + name, t);
  for (const auto& [name, child] : children_) child->collect_all(prefix + name + ".", out);
}

std::vector<std::pair<std::string, Tensor>> Module::named_parameters() const {
  std::vector<std::pair<std::string, Tensor>> all, unique;
  collect_all("", all);
  std::unordered_set<const void*> seen;
  for (auto& entry : all)
    if (seen.insert(entry.second.impl()).second) unique.push_back(std::move(entry));
  return unique;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [name, t] : named_parameters()) out.push_back(t);
  return out;
}

std::vector<std::shared_ptr<Module>> Module::children() const {
  std::vector<std::shared_ptr<Module>> out;
  for (const auto& [name, child] : children_) out.push_back(child);
  return out;
}

void Module::apply(const std::function<void(Module&)>& fn) {
  fn(*this);
  for (auto& [name, child] : children_) child->apply(fn);
}

void Module::reset_parameters(Generator& gen) {
  for (auto& [name, child] : children_) child->reset_parameters(gen);
}

void Module::reset_parameters() { reset_parameters(default_generator()); }

void Module::train(bool on) {
  training_ = on;
  for (auto& [name, child] : children_) child->train(on);
}

void Module::zero_grad() {
  for (Tensor& p : parameters()) p.zero_grad();
}

void Module::to(DType dtype) {
  for (Tensor& p : parameters())
    if (p.dtype() != dtype) p.set_data(p.detach().to(dtype));
}

DType Module::dtype() const {
  auto params = parameters();
  return params.empty() ? DType::Float32 : params.front().dtype();
}

StateDict Module::state_dict() const {
  std::vector<std::pair<std::string, Tensor>> all;
  collect_all("", all);
  return StateDict(all.begin(), all.end());
}

void Module::load_state_dict(const StateDict& state, bool strict) {
  const StateDict own = state_dict();
  std::vector<std::string> missing, unexpected, mismatched;
  for (const auto& [name, t] : own) {
    auto it = state.find(name);
    if (it == state.end())
      missing.push_back(name);
    else if (it->second.shape() != t.shape())
      mismatched.push_back(name + " (checkpoint " + shape_str(it->second.shape()) + ", model " + shape_str(t.shape()) + ")");
  }
  for (const auto& [name, t] : state)
    if (!own.count(name)) unexpected.push_back(name);
  auto join = [](const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
    return s;
  };
  std::string problems;
  if (!mismatched.empty()) problems += " shape mismatch: " + join(mismatched) + ";";
  if (strict && !missing.empty()) problems += " missing: " + join(missing) + ";";
  if (strict && !unexpected.empty()) problems += " unexpected: " + join(unexpected) + ";";
  if (!problems.empty()) throw std::invalid_argument("load_state_dict (" + type_name_ + "):" + problems);
  // Tied parameters (one tensor under two names, as the GPT's lm_head.weight and wte.weight) can hold only
  // one value: a state dict giving them different values is refused rather than letting the last name win.
  std::map<const TensorImpl*, std::string> first_name;  // each storage's first name in the model
  for (const auto& [name, t] : own) {
    auto [it, fresh] = first_name.emplace(t.impl(), name);
    if (fresh) continue;
    auto sa = state.find(it->second), sb = state.find(name);
    if (sa == state.end() || sb == state.end()) continue;
    if (sa->second.to_vector<double>() != sb->second.to_vector<double>())
      throw std::invalid_argument("load_state_dict (" + type_name_ + "): '" + it->second + "' and '" + name +
                                  "' are one tied tensor in the model but differ in the state dict");
  }
  NoGradGuard no_grad;
  for (auto& [name, t] : own) {
    auto it = state.find(name);
    if (it != state.end()) Tensor(t).copy_(it->second);
  }
}

int64_t Module::num_parameters() const {
  int64_t n = 0;
  for (const Tensor& p : parameters()) n += p.numel();
  return n;
}

void Module::summary_into(std::string& out, const std::string& name, int depth) const {
  const std::string indent(2 * depth, ' ');
  out += indent + (name.empty() ? "" : name + ": ") + type_name_ + extra_repr() + "  [" +
         std::to_string(num_parameters()) + " params]\n";
  for (const auto& [pname, t] : params_)
    out += indent + "  ." + pname + " " + shape_str(t.shape()) + " " + dtype_name(t.dtype()) + "\n";
  for (const auto& [cname, child] : children_) child->summary_into(out, cname, depth + 1);
}

std::string Module::summary() const {
  std::string out;
  summary_into(out, "", 0);
  out += "total: " + std::to_string(num_parameters()) + " parameters\n";
  return out;
}

void HookHandle::remove() {
  if (const std::shared_ptr<Registry> registry = registry_.lock()) registry->erase(id_);
  registry_.reset();
}

HookHandle Module::register_forward_hook(ForwardHook hook) {
  if (!hook) throw std::invalid_argument(type_name_ + "::register_forward_hook: the hook is empty");
  const int64_t id = next_hook_id_++;
  forward_hooks_->emplace(id, std::move(hook));
  return HookHandle(forward_hooks_, id);
}

Tensor Module::run_forward_hooks(std::initializer_list<Tensor> inputs, const Tensor& output) {
  if (forward_hooks_->empty()) return output;
  const std::vector<Tensor> args(inputs);
  // A copy, so that a hook may remove itself (or another) while they run.
  const HookHandle::Registry hooks = *forward_hooks_;
  for (const auto& [id, hook] : hooks) hook(*this, args, output);
  return output;
}

}  // namespace minitrain::nn
