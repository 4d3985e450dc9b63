// Forward hooks (Module::register_forward_hook): what a hook receives, which forwards run it, removal
// through the handle (also from inside a hook and after the module is gone), and a model of your own that
// runs its hooks with run_forward_hooks.
#include "test_util.h"

#include <minitrain/nn/containers.h>
#include <minitrain/nn/gpt.h>
#include <minitrain/nn/layers.h>

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <vector>

using namespace minitrain;
using namespace minitrain::nn;

namespace {

struct Call {
  Module* module;
  std::vector<Tensor> inputs;
  Tensor output;
};

ForwardHook recorder(std::vector<Call>& calls) {
  return [&calls](Module& m, const std::vector<Tensor>& inputs, const Tensor& output) {
    calls.push_back({&m, inputs, output});
  };
}

// A model of your own: its forward ends with run_forward_hooks, as the library's modules do.
struct Scaled : Module {
  std::shared_ptr<Linear> fc;
  Scaled() : Module("Scaled") { fc = register_module("fc", std::make_shared<Linear>(3, 2)); }
  Tensor forward(const Tensor& x) { return run_forward_hooks({x}, mul(fc->forward(x), 2.0)); }
};

}  // namespace

TEST(ForwardHooks, HookGetsTheModuleTheInputsAndTheOutput) {
  Linear fc(3, 2);
  std::vector<Call> calls;
  fc.register_forward_hook(recorder(calls));
  const Tensor x = nn_test::rnd({4, 3}, 1, 1.0, DType::Float32);
  const Tensor y = fc.forward(x);
  const Tensor y2 = fc(x);
  ASSERT_EQ(calls.size(), 2u);  // forward and operator() alike
  EXPECT_EQ(calls[0].module, &fc);
  ASSERT_EQ(calls[0].inputs.size(), 1u);
  EXPECT_EQ(calls[0].inputs[0].impl(), x.impl());
  EXPECT_EQ(calls[0].output.impl(), y.impl());  // the very tensor forward returns
  EXPECT_EQ(calls[1].output.impl(), y2.impl());
}

TEST(ForwardHooks, RunOnlyForTheModuleTheyAreRegisteredOn) {
  Scaled model;
  std::vector<Call> outer, inner;
  model.register_forward_hook(recorder(outer));
  model.fc->register_forward_hook(recorder(inner));
  const Tensor y = model.forward(nn_test::rnd({2, 3}, 2, 1.0, DType::Float32));
  ASSERT_EQ(outer.size(), 1u);
  ASSERT_EQ(inner.size(), 1u);
  EXPECT_EQ(outer[0].module, &model);
  EXPECT_EQ(inner[0].module, model.fc.get());
  EXPECT_EQ(outer[0].output.impl(), y.impl());
  model.fc->forward(nn_test::rnd({2, 3}, 3, 1.0, DType::Float32));  // the child alone: the parent's hook stays quiet
  EXPECT_EQ(outer.size(), 1u);
  EXPECT_EQ(inner.size(), 2u);
}

TEST(ForwardHooks, RemovedHooksStopAndOthersGoOnInOrder) {
  Linear fc(3, 2);
  std::vector<int> order;
  HookHandle a = fc.register_forward_hook([&](Module&, const std::vector<Tensor>&, const Tensor&) { order.push_back(1); });
  fc.register_forward_hook([&](Module&, const std::vector<Tensor>&, const Tensor&) { order.push_back(2); });
  EXPECT_TRUE(fc.has_forward_hooks());
  const Tensor x = nn_test::rnd({1, 3}, 4, 1.0, DType::Float32);
  fc.forward(x);
  a.remove();
  a.remove();  // twice: nothing more happens
  fc.forward(x);
  EXPECT_EQ(order, (std::vector<int>{1, 2, 2}));
}

TEST(ForwardHooks, AHookMayRemoveItselfAndAHandleMayOutliveItsModule) {
  HookHandle survivor;
  int calls = 0;
  {
    auto fc = std::make_shared<Linear>(3, 2);
    HookHandle self;
    self = fc->register_forward_hook([&](Module&, const std::vector<Tensor>&, const Tensor&) {
      ++calls;
      self.remove();
    });
    fc->forward(nn_test::rnd({1, 3}, 5, 1.0, DType::Float32));
    fc->forward(nn_test::rnd({1, 3}, 6, 1.0, DType::Float32));
    EXPECT_EQ(calls, 1);
    EXPECT_FALSE(fc->has_forward_hooks());
    survivor = fc->register_forward_hook([](Module&, const std::vector<Tensor>&, const Tensor&) {});
  }
  survivor.remove();  // the module is gone: nothing to do, nothing to crash
}

TEST(ForwardHooks, LibraryModulesRunTheirHooks) {
  GPTConfig c;
  c.vocab_size = 11;
  c.block_size = 8;
  c.n_layer = 2;
  c.n_head = 2;
  c.n_embd = 8;
  GPT gpt(c);
  std::vector<Call> model_calls, block_calls, attn_calls, mlp_calls, norm_calls, embed_calls;
  gpt.register_forward_hook(recorder(model_calls));
  (*gpt.h)[1]->register_forward_hook(recorder(block_calls));
  (*gpt.h)[1]->attn->register_forward_hook(recorder(attn_calls));
  (*gpt.h)[0]->mlp->register_forward_hook(recorder(mlp_calls));
  gpt.ln_f->register_forward_hook(recorder(norm_calls));
  gpt.wte->register_forward_hook(recorder(embed_calls));
  const Tensor idx = from_vector(std::vector<int64_t>{1, 2, 3, 4}, {1, 4});
  const Tensor logits = gpt.forward(idx);
  std::vector<KVCache> caches;
  gpt.forward_cached(idx, caches);
  for (const auto* calls : {&model_calls, &block_calls, &attn_calls, &mlp_calls, &norm_calls, &embed_calls})
    EXPECT_EQ(calls->size(), 2u);  // forward and forward_cached
  EXPECT_EQ(model_calls[0].inputs.at(0).impl(), idx.impl());
  EXPECT_EQ(model_calls[0].output.impl(), logits.impl());
  EXPECT_EQ(attn_calls[0].output.shape(), (Shape{1, 4, 8}));

  Sequential seq;
  seq.add(std::make_shared<Linear>(3, 3));
  std::vector<Call> seq_calls;
  seq.register_forward_hook(recorder(seq_calls));
  seq.forward(nn_test::rnd({1, 3}, 7, 1.0, DType::Float32));
  EXPECT_EQ(seq_calls.size(), 1u);
}

TEST(ForwardHooks, AnEmptyHookIsRefusedByName) {
  Linear fc(3, 2);
  try {
    fc.register_forward_hook(ForwardHook());
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("register_forward_hook"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fc.has_forward_hooks());
}
