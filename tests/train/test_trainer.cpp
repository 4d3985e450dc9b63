// The training loop, trained for real: overfitting one batch, a short run on the toy corpus, gradient
// accumulation equal to one large batch, bit-identical resume, and the NaN guard.
#include <minitrain/core/factory.h>
#include <minitrain/core/ops.h>
#include <minitrain/core/threads.h>
#include <minitrain/data/text_dataset.h>
#include <minitrain/nn/gpt.h>
#include <minitrain/train/checkpoint.h>
#include <minitrain/train/trainer.h>

#include "training_fixtures.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <limits>

using namespace minitrain;
using namespace minitrain::train;
using namespace minitrain::train::testing;
namespace fs = std::filesystem;

namespace {

fs::path scratch(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / ("minitrain_trainer_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  return dir;
}

}  // namespace

TEST(Training, OverfitsOneBatchToNearZeroLoss) {
  nn::GPT model(small_config(corpus().vocab_size()));
  Generator gen(0);
  data::Batch b = corpus().get_batch(data::Split::Train, 4, 32, gen);
  AdamW opt(model.named_parameters(), {3e-3, 0.9, 0.99, 1e-8, 0.0});
  double first = 0, last = 0;
  for (int step = 0; step < 300; ++step) {
    Tensor loss = model.loss(b.x, b.y);
    if (step == 0) first = loss.item();
    last = loss.item();
    loss.backward();
    opt.step();
    opt.zero_grad();
  }
  EXPECT_GT(first, 3.0);
  EXPECT_LT(last, 0.05) << "one batch was not memorised";
}

TEST(Training, ShortRunOnTheToyCorpusLearns) {
  const fs::path dir = scratch("short");
  nn::GPT model(small_config(corpus().vocab_size()));
  Trainer trainer(model, [&](const Indices& x, const Indices& y) { return model.loss(x, y); }, corpus_batches(8, 32),
                  quick_options(dir.string(), 400));
  TrainResult r = trainer.run();
  // Uniform guessing over 36 characters costs log(36) = 3.58 nats/char and character frequencies
  // alone 3.0; below 2.3 the model must be using the preceding characters (this run reaches ~2.0).
  EXPECT_LT(r.val_loss, 2.3);
  EXPECT_TRUE(fs::exists(dir / "ckpt.safetensors"));
  EXPECT_TRUE(fs::exists(dir / "metrics.csv"));
  fs::remove_all(dir);
}

TEST(Training, GradientAccumulationEqualsOneLargerBatch) {
  nn::GPTConfig cfg = small_config(corpus().vocab_size());
  nn::GPT a(cfg), b(cfg);
  a.to(DType::Float64);
  b.to(DType::Float64);
  Generator gen(3);
  data::Batch big = corpus().get_batch(data::Split::Train, 4, 32, gen);
  auto half = [&](int part) {
    std::vector<int64_t> x(big.x.values.begin() + part * 64, big.x.values.begin() + (part + 1) * 64);
    std::vector<int64_t> y(big.y.values.begin() + part * 64, big.y.values.begin() + (part + 1) * 64);
    return TokenBatch{Indices({2, 32}, x), Indices({2, 32}, y)};
  };
  Trainer trainer(a, [&](const Indices& x, const Indices& y) { return a.loss(x, y); }, corpus_batches(2, 32),
                  quick_options(scratch("accum").string(), 1));
  const double accumulated_loss = trainer.accumulate_gradients({half(0), half(1)});
  Tensor loss = b.loss(big.x, big.y);
  loss.backward();
  EXPECT_NEAR(accumulated_loss, loss.item(), 1e-12);
  auto pa = a.named_parameters(), pb = b.named_parameters();
  for (std::size_t i = 0; i < pa.size(); ++i) {
    auto ga = pa[i].second.grad().to_vector<double>(), gb = pb[i].second.grad().to_vector<double>();
    for (std::size_t j = 0; j < ga.size(); ++j) ASSERT_NEAR(ga[j], gb[j], 1e-12) << pa[i].first;
  }
}

TEST(Training, InterruptedAndResumedRunEqualsUninterruptedBitForBit) {
  set_num_threads(1);
  auto make = [](const fs::path& dir, int64_t iters, bool resume) {
    nn::GPTConfig cfg = small_config(corpus().vocab_size());
    cfg.dropout = 0.1;  // dropout masks come from a generator that must be restored too
    auto model = std::make_shared<nn::GPT>(cfg);
    TrainOptions o = quick_options(dir.string(), iters);
    o.lr_decay_iters = 30;  // same schedule in both runs
    o.resume = resume;
    Trainer t(*model, [model](const Indices& x, const Indices& y) { return model->loss(x, y); }, corpus_batches(4, 32),
              o, {{"dropout", &model->dropout_generator()}});
    t.run();
    return model;
  };
  const fs::path straight = scratch("straight"), interrupted = scratch("interrupted");
  auto full = make(straight, 30, false);
  make(interrupted, 13, false);  // stops at 13: the final checkpoint is written there
  auto resumed = make(interrupted, 30, true);
  for (auto& [name, t] : full->state_dict())
    EXPECT_EQ(resumed->state_dict().at(name).to_vector<float>(), t.to_vector<float>()) << name;
  fs::remove_all(straight);
  fs::remove_all(interrupted);
}

TEST(Training, NaNLossStopsWithAMessageAndKeepsTheLastCheckpoint) {
  const fs::path dir = scratch("nan");
  nn::GPT model(small_config(corpus().vocab_size()));
  int calls = 0;
  LossFn poisoned = [&](const Indices& x, const Indices& y) {
    Tensor loss = model.loss(x, y);
    // Training steps after iteration 12 produce NaN (evaluation calls are counted too: harmless).
    return ++calls > 40 && model.is_training() ? mul(loss, std::numeric_limits<double>::quiet_NaN()) : loss;
  };
  Trainer trainer(model, poisoned, corpus_batches(4, 32), quick_options(dir.string(), 100));
  try {
    trainer.run();
    ADD_FAILURE() << "a NaN loss did not stop training";
  } catch (const TrainingDiverged& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("not finite"), std::string::npos) << msg;
    EXPECT_NE(msg.find("ckpt.safetensors"), std::string::npos) << msg;
  }
  CheckpointContents c = load_checkpoint((dir / "ckpt.safetensors").string());
  EXPECT_GT(c.iter, 0);
  for (auto& [name, t] : c.model)
    for (float v : t.to_vector<float>()) ASSERT_TRUE(std::isfinite(v)) << name;
  fs::remove_all(dir);
}
