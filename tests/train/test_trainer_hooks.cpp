// The Trainer's hook points and the attention watch built on them: on_after_backward sees the gradients
// before clipping, once per step and before on_step; on_eval sees every evaluation; a run with an empty
// out_dir writes nothing; TrainingDiverged names the iteration; AttentionWatch records training forwards
// only and costs nothing while disabled.
#include <minitrain/core/factory.h>
#include <minitrain/core/ops.h>
#include <minitrain/nn/attention_probes.h>
#include <minitrain/nn/gpt.h>
#include <minitrain/train/attention_watch.h>
#include <minitrain/train/grad_norms.h>
#include <minitrain/train/trainer.h>

#include "training_fixtures.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <limits>
#include <set>
#include <string>
#include <vector>

using namespace minitrain;
using namespace minitrain::train;
using namespace minitrain::train::testing;
namespace fs = std::filesystem;

namespace {

std::set<std::string> entries(const fs::path& dir) {
  std::set<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.insert(e.path().filename().string());
  return out;
}

}  // namespace

TEST(TrainerHooks, AfterBackwardSeesUnclippedGradientsOncePerStepBeforeTheStep) {
  nn::GPT model(small_config(corpus().vocab_size()));
  TrainOptions o = quick_options("", 12);
  o.grad_clip = 1e-3;  // every step is clipped hard
  o.log = false;
  Trainer trainer(model, [&](const Tensor& x, const Tensor& y) { return model.loss(x, y); }, corpus_batches(4, 32), o);
  const NamedParameters params = model.named_parameters();
  std::vector<std::string> events;
  std::vector<double> norms;
  trainer.on_after_backward([&](int64_t iter, double loss) {
    EXPECT_TRUE(std::isfinite(loss));
    norms.push_back(global_grad_norm(params));
    events.push_back("backward " + std::to_string(iter));
  });
  trainer.on_step([&](int64_t iter, double) { events.push_back("step " + std::to_string(iter)); });
  std::vector<int64_t> evals;
  trainer.on_eval([&](int64_t iter, double train_loss, double val_loss) {
    EXPECT_TRUE(std::isfinite(train_loss) && std::isfinite(val_loss));
    evals.push_back(iter);
  });
  trainer.run();
  ASSERT_EQ(events.size(), 24u);
  for (int64_t i = 0; i < 12; ++i) {
    EXPECT_EQ(events[2 * i], "backward " + std::to_string(i));
    EXPECT_EQ(events[2 * i + 1], "step " + std::to_string(i));
  }
  for (double n : norms) EXPECT_GT(n, 100 * o.grad_clip);  // not yet clipped
  EXPECT_EQ(evals, (std::vector<int64_t>{0, 10, 12}));
}

TEST(TrainerHooks, EmptyOutDirWritesNothing) {
  const fs::path dir = fs::temp_directory_path() / ("minitrain_nothing_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const fs::path cwd = fs::current_path();
  fs::current_path(dir);  // anything written relative to the working directory would land here
  nn::GPT model(small_config(corpus().vocab_size()));
  TrainOptions o = quick_options("", 11);
  Trainer trainer(model, [&](const Tensor& x, const Tensor& y) { return model.loss(x, y); }, corpus_batches(4, 32), o);
  const TrainResult r = trainer.run();
  fs::current_path(cwd);
  EXPECT_EQ(r.iters, 11);
  EXPECT_TRUE(std::isfinite(r.val_loss));
  EXPECT_TRUE(r.checkpoint.empty());
  EXPECT_TRUE(entries(dir).empty()) << *entries(dir).begin();
  fs::remove_all(dir);

  o.resume = true;  // nothing to resume from
  try {
    Trainer refused(model, [&](const Tensor& x, const Tensor& y) { return model.loss(x, y); }, corpus_batches(4, 32), o);
    FAIL() << "resume without out_dir was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("out_dir"), std::string::npos) << e.what();
  }
}

TEST(TrainerHooks, DivergenceNamesTheIterationThatStopped) {
  nn::GPT model(small_config(corpus().vocab_size()));
  int64_t steps_done = 0;
  LossFn poisoned = [&](const Tensor& x, const Tensor& y) {
    const Tensor loss = model.loss(x, y);
    return model.is_training() && steps_done == 7 ? mul(loss, std::numeric_limits<double>::quiet_NaN()) : loss;
  };
  TrainOptions o = quick_options("", 20);
  o.log = false;
  Trainer trainer(model, poisoned, corpus_batches(4, 32), o);
  int64_t last_backward = -1;
  trainer.on_after_backward([&](int64_t iter, double) { last_backward = iter; });
  trainer.on_step([&](int64_t, double) { ++steps_done; });
  try {
    trainer.run();
    FAIL() << "a NaN loss did not stop training";
  } catch (const TrainingDiverged& e) {
    EXPECT_EQ(e.iter, 7);
    EXPECT_EQ(last_backward, 6);  // not called for the step whose loss was NaN
  }
}

TEST(AttentionWatch, RecordsTheTrainingForwardAndTheGradientsBackwardProduced) {
  nn::GPTConfig c = small_config(corpus().vocab_size());
  c.attention_scale = 0.8;
  nn::GPT model(c);
  AttentionWatch watch(model.attention_layers());
  Generator gen(5);
  const data::Batch a = corpus().get_batch(data::Split::Train, 2, 32, gen);
  const data::Batch b = corpus().get_batch(data::Split::Val, 2, 32, gen);
  model.train();
  model.loss(a.x, a.y).backward();
  {  // an evaluation pass in between must not replace what the training forward did
    model.eval();
    NoGradGuard no_grad;
    model.loss(b.x, b.y);
    model.train();
  }
  const std::vector<LayerHealth> layers = watch.read();
  ASSERT_EQ(layers.size(), 2u);
  // Layer 0's input is the embedding of batch a: its statistics are those of its q and k at scale 0.8.
  NoGradGuard no_grad;
  const Tensor x0 = (*model.h)[0]->ln_1->forward(add(model.wte->forward(a.x), model.wpe->forward(arange(0, 32, 1, DType::Int64))));
  const Tensor qkv = (*model.h)[0]->attn->c_attn->forward(x0);
  const auto heads = [&](int64_t part) { return qkv.narrow(2, part * 32, 32).reshape({2, 32, 2, 16}).transpose(1, 2); };
  const AttentionStatistics expected = nn::attention_statistics(heads(0), heads(1), 0.8, true);
  EXPECT_EQ(layers[0].attention.rows, expected.rows);
  EXPECT_NEAR(layers[0].attention.normalized_entropy, expected.normalized_entropy, 1e-5);
  EXPECT_NEAR(layers[0].attention.logit_std, expected.logit_std, 1e-4 * expected.logit_std);
  for (std::size_t i = 0; i < layers.size(); ++i) {
    const QKVNorms g = qkv_grad_norms(*(*model.h)[i]->attn);
    EXPECT_EQ(layers[i].grad_q, g.q);
    EXPECT_EQ(layers[i].grad_k, g.k);
    EXPECT_EQ(layers[i].grad_v, g.v);
    EXPECT_GT(layers[i].grad_q, 0);
  }
}

TEST(AttentionWatch, DisabledItLeavesNoHookAndForgets) {
  nn::GPT model(small_config(corpus().vocab_size()));
  {
    AttentionWatch watch(model.attention_layers());
    for (const auto& attn : model.attention_layers()) EXPECT_TRUE(attn->has_forward_hooks());
    Generator gen(6);
    const data::Batch a = corpus().get_batch(data::Split::Train, 2, 32, gen);
    model.loss(a.x, a.y);
    EXPECT_GT(watch.read()[0].attention.rows, 0);
    watch.set_enabled(false);
    for (const auto& attn : model.attention_layers()) EXPECT_FALSE(attn->has_forward_hooks());
    EXPECT_EQ(watch.read()[0].attention.rows, 0);
    model.loss(a.x, a.y);
    EXPECT_EQ(watch.read()[0].attention.rows, 0);
    watch.set_enabled(true);
  }
  for (const auto& attn : model.attention_layers()) EXPECT_FALSE(attn->has_forward_hooks());  // gone with the watch
}
