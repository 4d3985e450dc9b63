// Every layer's backward against central differences in float64, for the parameters (module_gradcheck
// in test_util.h: the module's own tensors perturbed in place) and for the input (minitrain::gradcheck).
// Dropout is made deterministic by resetting the generator's state inside the forward function.
#include "test_util.h"

#include <minitrain/core/gradcheck.h>
#include <minitrain/nn/attention.h>
#include <minitrain/nn/containers.h>
#include <minitrain/nn/gpt.h>
#include <minitrain/nn/layers.h>

#include <gtest/gtest.h>

#include <iostream>

using namespace minitrain;
using namespace minitrain::nn_test;

namespace {

void expect_module_grads(nn::Module& m, const ForwardFn& f, const std::vector<Tensor>& inputs, const char* what) {
  ModuleCheckResult r = module_gradcheck(m, f, inputs);
  std::cout << "[module_gradcheck] " << what << ": " << r.summary() << "\n";
  EXPECT_TRUE(r.passed) << what << ": " << r.summary();
  EXPECT_EQ(r.parameters_checked, static_cast<int64_t>(m.parameters().size())) << what;
  EXPECT_GT(r.parameters_checked, 0) << what;
  // Every parameter must influence the output, or its check proves nothing.
  EXPECT_GT(r.min_param_grad_scale, 1e-4) << what << ": " << r.summary();
}

void expect_input_grads(const GradcheckFn& f, const std::vector<Tensor>& inputs, const char* what) {
  GradcheckResult r = gradcheck(f, inputs);
  std::cout << "[gradcheck input] " << what << ": " << r.summary() << "\n";
  EXPECT_TRUE(r.passed) << what << ": " << r.summary();
  EXPECT_GT(r.entries_checked, 0);
}

std::shared_ptr<nn::MultiHeadAttention> make_mha(nn::AttentionPath path, double dropout, double scale,
                                                 std::shared_ptr<Generator> gen, uint64_t init_seed) {
  nn::AttentionOptions o;
  o.n_embd = 8;
  o.n_head = 2;
  o.causal = true;
  o.dropout = dropout;
  o.scale = scale;
  Generator init(init_seed);
  auto mha = std::make_shared<nn::MultiHeadAttention>(o, std::move(gen), &init);
  mha->path = path;
  return mha;
}

}  // namespace

// The helper itself must be able to fail: a layer whose backward misses one of the weight's two uses.
struct HalfDetached : nn::Module {
  Tensor weight;
  HalfDetached() : Module("HalfDetached") { weight = register_parameter("weight", rnd({3, 2}, 1, 1.0, DType::Float32)); }
  Tensor forward(const Tensor& x) { return matmul(x, weight) + matmul(x, weight.detach()) * 0.5; }
};

TEST(ModuleGradcheck, DetectsAWrongParameterGradient) {
  HalfDetached m;
  ModuleCheckResult r = module_gradcheck(m, [&](auto in) { return m.forward(in[0]); }, {rnd({4, 3}, 2)});
  EXPECT_FALSE(r.passed) << r.summary();
  EXPECT_EQ(r.worst_parameter, "weight");
  EXPECT_GT(r.worst_ratio, 1.0);
}

TEST(LayersGradcheck, LinearWithBias3DInput) {
  Generator g(1);
  nn::Linear lin(5, 4, true, &g);
  const Tensor x = rnd({2, 3, 5}, 11);
  expect_module_grads(lin, [&](auto in) { return lin.forward(in[0]); }, {x}, "Linear(bias)");
  expect_input_grads([&](auto in) { return lin.forward(in[0]); }, {x}, "Linear(bias) input");
  // The same computation through the ops, with the module's tensors as gradcheck inputs.
  expect_input_grads([](auto in) { return add(matmul(in[0], in[1].transpose(0, 1)), in[2]); },
                     {x, lin.weight, lin.bias}, "Linear as ops");
  EXPECT_EQ(lin.forward(x).shape(), (Shape{2, 3, 4}));
}

TEST(LayersGradcheck, LinearWithoutBias) {
  Generator g(2);
  nn::Linear lin(3, 6, false, &g);
  const Tensor x = rnd({2, 4, 3}, 12);
  expect_module_grads(lin, [&](auto in) { return lin.forward(in[0]); }, {x}, "Linear(no bias)");
  expect_input_grads([&](auto in) { return lin.forward(in[0]); }, {x}, "Linear(no bias) input");
}

TEST(LayersGradcheck, EmbeddingWithRepeatedIds) {
  Generator g(3);
  nn::Embedding emb(6, 4, &g);
  const Tensor ids = from_vector(std::vector<int64_t>{1, 3, 1, 0, 1, 3}, {2, 3});
  expect_module_grads(emb, [&](auto) { return emb.forward(ids); }, {}, "Embedding");
  expect_input_grads([&](auto in) { return embedding(in[0], ids); }, {emb.weight}, "Embedding as op");
  // Scatter-add: row 1 (used 3 times) gets the sum of three upstream rows; unused rows exactly 0.
  emb.zero_grad();
  Tensor up = rnd({2, 3, 4}, 99);
  emb.forward(ids).backward(up);
  Tensor gw = emb.weight.grad();
  std::vector<double> u = up.to_vector<double>();
  for (int64_t c = 0; c < 4; ++c) {
    EXPECT_NEAR(gw.at({1, c}), u[0 * 4 + c] + u[2 * 4 + c] + u[4 * 4 + c], 1e-12);
    EXPECT_NEAR(gw.at({3, c}), u[1 * 4 + c] + u[5 * 4 + c], 1e-12);
    for (int64_t unused : {2, 4, 5}) EXPECT_EQ(gw.at({unused, c}), 0.0);
  }
}

TEST(LayersGradcheck, LayerNormWithAndWithoutBias) {
  for (bool bias : {true, false}) {
    nn::LayerNorm ln(6, 1e-5, bias);
    ln.to(DType::Float64);
    perturb_parameters(ln, 5, 0.5);
    const Tensor x = rnd({2, 3, 6}, 13, 2.0);
    expect_module_grads(ln, [&](auto in) { return ln.forward(in[0]); }, {x}, bias ? "LayerNorm(bias)" : "LayerNorm(no bias)");
    expect_input_grads([&](auto in) { return ln.forward(in[0]); }, {x}, "LayerNorm input");
  }
}

TEST(LayersGradcheck, DropoutInTrainingModeWithGeneratorReset) {
  auto gen = std::make_shared<Generator>(77);
  Generator g(4);
  auto lin = std::make_shared<nn::Linear>(5, 6, true, &g);
  auto drop = std::make_shared<nn::Dropout>(0.3, gen);
  nn::Sequential net;
  net.add(lin).add(drop);
  net.train();
  const Generator::State state = gen->state();
  auto f = [&](const std::vector<Tensor>& in) {
    gen->set_state(state);
    return net.forward(in[0]);
  };
  const Tensor x = rnd({4, 5}, 14);
  expect_module_grads(net, f, {x}, "Linear+Dropout(train)");
  expect_input_grads([&](auto in) {
    gen->set_state(state);
    return drop->forward(in[0]);
  }, {x}, "Dropout input");
  // Dropout really is active here: some outputs are zeroed, the rest scaled by 1/(1-p).
  Tensor y = f({x}), plain = lin->forward(x);
  int zeros = 0, scaled = 0;
  for (int64_t i = 0; i < y.numel(); ++i) {
    const double a = y.to_vector<double>()[i], b = plain.to_vector<double>()[i];
    if (a == 0) ++zeros;
    else if (std::fabs(a - b / 0.7) < 1e-12) ++scaled;
  }
  EXPECT_GT(zeros, 0);
  EXPECT_EQ(zeros + scaled, y.numel());
}

class AttentionGradcheck : public ::testing::TestWithParam<nn::AttentionPath> {};

TEST_P(AttentionGradcheck, CausalNoDropout) {
  auto mha = make_mha(GetParam(), 0.0, std::numeric_limits<double>::quiet_NaN(), nullptr, 5);
  const Tensor x = rnd({2, 5, 8}, 15);
  mha->to(DType::Float64);
  perturb_parameters(*mha, 6, 0.2);
  expect_module_grads(*mha, [&](auto in) { return mha->forward(in[0]); }, {x}, "MHA causal");
  expect_input_grads([&](auto in) { return mha->forward(in[0]); }, {x}, "MHA causal input");
}

TEST_P(AttentionGradcheck, CausalDropoutTrainMode) {
  auto gen = std::make_shared<Generator>(8);
  auto mha = make_mha(GetParam(), 0.1, std::numeric_limits<double>::quiet_NaN(), gen, 6);
  mha->train();
  const Generator::State state = gen->state();
  auto f = [&](const std::vector<Tensor>& in) {
    gen->set_state(state);
    return mha->forward(in[0]);
  };
  const Tensor x = rnd({2, 5, 8}, 16);
  mha->to(DType::Float64);
  perturb_parameters(*mha, 7, 0.2);
  expect_module_grads(*mha, f, {x}, "MHA causal dropout 0.1");
  expect_input_grads(f, {x}, "MHA causal dropout input");
  // Dropout is active: a different generator state gives a different output.
  gen->seed(12345);
  EXPECT_GT(max_abs_diff(mha->forward(x), f({x})), 1e-6);
}

TEST_P(AttentionGradcheck, NonDefaultScale) {
  auto mha = make_mha(GetParam(), 0.0, 1.0, nullptr, 7);
  EXPECT_EQ(mha->scale(), 1.0);
  const Tensor x = rnd({1, 6, 8}, 17);
  mha->to(DType::Float64);
  perturb_parameters(*mha, 8, 0.2);
  expect_module_grads(*mha, [&](auto in) { return mha->forward(in[0]); }, {x}, "MHA scale 1");
  expect_input_grads([&](auto in) { return mha->forward(in[0]); }, {x}, "MHA scale 1 input");
}

INSTANTIATE_TEST_SUITE_P(Paths, AttentionGradcheck,
                         ::testing::Values(nn::AttentionPath::Fused, nn::AttentionPath::Composed),
                         [](const auto& info) { return info.param == nn::AttentionPath::Fused ? "Fused" : "Composed"; });

TEST(LayersGradcheck, ComposedAttentionFunctionAsOps) {
  expect_input_grads([](auto in) { return nn::composed_attention(in[0], in[1], in[2], 0.7, true); },
                     {rnd({2, 4, 3}, 20), rnd({2, 4, 3}, 21), rnd({2, 4, 2}, 22)}, "composed_attention causal");
  expect_input_grads([](auto in) { return nn::composed_attention(in[0], in[1], in[2], 0.5, true); },
                     {rnd({2, 2, 3}, 23), rnd({2, 5, 3}, 24), rnd({2, 5, 3}, 25)}, "composed_attention kv rows");
  expect_input_grads([](auto in) {
    Generator g(3);
    return nn::composed_attention(in[0], in[1], in[2], 0.6, true, 0.25, true, &g);
  }, {rnd({1, 2, 4, 3}, 26), rnd({1, 2, 4, 3}, 27), rnd({1, 2, 4, 3}, 28)}, "composed_attention dropout");
}

TEST(LayersGradcheck, MLPGeluAndRelu) {
  for (nn::Activation act : {nn::Activation::Gelu, nn::Activation::Relu, nn::Activation::GeluTanh}) {
    Generator g(9);
    nn::MLP mlp(4, true, 0.0, act, nullptr, &g);
    mlp.to(DType::Float64);
    perturb_parameters(mlp, 10, 0.3);
    const Tensor x = rnd({2, 3, 4}, 18);
    const char* what = act == nn::Activation::Gelu ? "MLP gelu" : act == nn::Activation::Relu ? "MLP relu" : "MLP gelu_tanh";
    expect_module_grads(mlp, [&](auto in) { return mlp.forward(in[0]); }, {x}, what);
    expect_input_grads([&](auto in) { return mlp.forward(in[0]); }, {x}, what);
  }
}

TEST(LayersGradcheck, Block) {
  for (double p : {0.0, 0.1}) {
    nn::GPTConfig c;
    c.n_embd = 8;
    c.n_head = 2;
    c.dropout = p;
    auto gen = std::make_shared<Generator>(11);
    Generator init(12);
    nn::Block block(c, gen, &init);
    block.train();
    const Generator::State state = gen->state();
    auto f = [&](const std::vector<Tensor>& in) {
      gen->set_state(state);
      return block.forward(in[0]);
    };
    block.to(DType::Float64);
    perturb_parameters(block, 13, 0.2);
    const Tensor x = rnd({2, 4, 8}, 19);
    expect_module_grads(block, f, {x}, p > 0 ? "Block dropout" : "Block");
    expect_input_grads(f, {x}, "Block input");
  }
}

TEST(LayersGradcheck, SequentialWithLambda) {
  Generator g(14);
  nn::Sequential net;
  net.add(std::make_shared<nn::Linear>(5, 7, true, &g))
      .add([](const Tensor& x) { return tanh(x); })
      .add(std::make_shared<nn::LayerNorm>(7))
      .add(std::make_shared<nn::Linear>(7, 3, true, &g));
  net.to(DType::Float64);
  perturb_parameters(net, 15, 0.3);
  const Tensor x = rnd({4, 5}, 20);
  expect_module_grads(net, [&](auto in) { return net.forward(in[0]); }, {x}, "Sequential");
  expect_input_grads([&](auto in) { return net.forward(in[0]); }, {x}, "Sequential input");
}

namespace {
nn::GPTConfig small_gpt(double dropout) {
  nn::GPTConfig c;
  c.block_size = 8;
  c.vocab_size = 11;
  c.n_layer = 2;
  c.n_head = 2;
  c.n_embd = 8;
  c.dropout = dropout;
  return c;
}
}  // namespace

TEST(LayersGradcheck, WholeGPTLossEveryParameter) {
  nn::GPT model(small_gpt(0.0));
  model.to(DType::Float64);
  // Away from GPT-2's init (tiny residual projections, unit LayerNorms), so every path carries signal.
  perturb_parameters(model, 21, 0.15);
  const Tensor idx = random_ids({2, 8}, 11, 22), targets = random_ids({2, 8}, 11, 23);
  expect_module_grads(model, [&](auto) { return model.loss(idx, targets); }, {}, "GPT loss");
  // The tied head/embedding is checked once, as one tensor receiving both gradients.
  EXPECT_EQ(model.named_parameters().size(), model.state_dict().size() - 1);
}

TEST(LayersGradcheck, WholeGPTLossWithDropout) {
  nn::GPT model(small_gpt(0.1));
  model.train();
  model.to(DType::Float64);
  perturb_parameters(model, 24, 0.15);
  const Tensor idx = random_ids({2, 8}, 11, 25), targets = random_ids({2, 8}, 11, 26);
  const Generator::State state = model.dropout_generator().state();
  auto f = [&](const std::vector<Tensor>&) {
    model.dropout_generator().set_state(state);
    return model.loss(idx, targets);
  };
  expect_module_grads(model, f, {}, "GPT loss dropout 0.1");
  // Dropout is on: another generator state changes the loss.
  model.dropout_generator().seed(999);
  EXPECT_GT(std::fabs(model.loss(idx, targets).item() - f({}).item()), 1e-9);
}

TEST(LayersGradcheck, WholeGPTVariants) {
  // No biases, sinusoidal positions, ReLU MLP, composed attention with an explicit scale.
  nn::GPTConfig c = small_gpt(0.0);
  c.bias = false;
  c.positional = nn::PositionalEncoding::Sinusoidal;
  c.activation = nn::Activation::Relu;
  c.attention_path = nn::AttentionPath::Composed;
  c.attention_scale = 0.8;
  c.n_layer = 1;
  nn::GPT model(c);
  model.to(DType::Float64);
  perturb_parameters(model, 27, 0.15);
  const Tensor idx = random_ids({2, 6}, 11, 28), targets = random_ids({2, 6}, 11, 29);
  expect_module_grads(model, [&](auto) { return model.loss(idx, targets); }, {}, "GPT no-bias sinusoidal relu");
}

TEST(LayersGradcheck, NonCausalAttentionPathsAgree) {
  nn::AttentionOptions o;
  o.n_embd = 8;
  o.n_head = 2;
  o.causal = false;
  Generator i1(5), i2(5);
  nn::MultiHeadAttention fused(o, nullptr, &i1), composed(o, nullptr, &i2);
  composed.path = nn::AttentionPath::Composed;
  fused.to(DType::Float64);
  composed.to(DType::Float64);
  const Tensor x = rnd({2, 5, 8}, 30);
  EXPECT_LT(max_abs_diff(fused.forward(x), composed.forward(x)), 1e-12);
  expect_module_grads(fused, [&](auto in) { return fused.forward(in[0]); }, {x}, "MHA non-causal fused");
  expect_input_grads([&](auto in) { return fused.forward(in[0]); }, {x}, "MHA non-causal fused input");
  // Not causal really means the last position changes the first output.
  Tensor x2 = x.clone();
  x2.set({0, 4, 0}, 5.0);
  EXPECT_GT(max_abs_diff(fused.forward(x2).narrow(1, 0, 1), fused.forward(x).narrow(1, 0, 1)), 1e-6);
}
