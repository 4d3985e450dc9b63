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
#include <memory>

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
  AdamW opt(model.named_parameters(), AdamWOptions(3e-3).betas({0.9, 0.99}).weight_decay(0.0));
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
  Trainer trainer(model, [&](const Tensor& x, const Tensor& y) { return model.loss(x, y); }, corpus_batches(8, 32),
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
  auto half = [&](int part) { return TokenBatch{big.x.narrow(0, 2 * part, 2), big.y.narrow(0, 2 * part, 2)}; };
  Trainer trainer(a, [&](const Tensor& x, const Tensor& y) { return a.loss(x, y); }, corpus_batches(2, 32),
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
    Trainer t(*model, [model](const Tensor& x, const Tensor& y) { return model->loss(x, y); }, corpus_batches(4, 32),
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

// Muon for the hidden matrices (TrainOptions::make_optimizer): it learns, its momentum buffers go into the
// checkpoint, and an interrupted run resumes bit for bit. The schedule scales Muon's lr with AdamW's.
TEST(Training, MuonWithAdamWLearnsAndResumesBitForBit) {
  set_num_threads(1);
  auto make = [](const fs::path& dir, int64_t iters, bool resume, double* val_loss) {
    auto model = std::make_shared<nn::GPT>(small_config(corpus().vocab_size()));
    TrainOptions o = quick_options(dir.string(), iters);
    o.lr_decay_iters = 60;
    o.resume = resume;
    o.make_optimizer = [lr = o.learning_rate](const NamedParameters& params) -> std::unique_ptr<Optimizer> {
      return make_muon_with_adamw(params, MuonOptions(0.02).weight_decay(0.0), AdamWOptions(lr).betas({0.9, 0.99}));
    };
    Trainer t(*model, [model](const Tensor& x, const Tensor& y) { return model->loss(x, y); }, corpus_batches(4, 32), o);
    EXPECT_NE(dynamic_cast<MuonWithAdamW*>(&t.optimizer()), nullptr);
    const TrainResult r = t.run();
    if (val_loss) *val_loss = r.val_loss;
    // After the run the schedule has Muon's group at 0.02/3e-3 times AdamW's.
    EXPECT_NEAR(t.optimizer().param_groups()[0].options().get_lr() / t.optimizer().param_groups()[1].options().get_lr(),
                0.02 / 3e-3, 1e-9);
    return model;
  };
  const fs::path straight = scratch("muon_straight"), interrupted = scratch("muon_interrupted");
  double val_loss = 0;
  auto full = make(straight, 60, false, &val_loss);
  // Uniform guessing costs log(36) = 3.58 nats/char, character frequencies alone 3.0; 60 steps reach ~2.67.
  EXPECT_LT(val_loss, 2.9);
  const CheckpointContents c = load_checkpoint((straight / "ckpt.safetensors").string());
  EXPECT_TRUE(c.optimizer.count("transformer.h.0.attn.c_attn.weight.momentum_buffer"));
  EXPECT_TRUE(c.optimizer.count("transformer.wte.weight.exp_avg"));
  make(interrupted, 27, false, nullptr);
  auto resumed = make(interrupted, 60, true, nullptr);
  for (auto& [name, t] : full->state_dict())
    EXPECT_EQ(resumed->state_dict().at(name).to_vector<float>(), t.to_vector<float>()) << name;
  fs::remove_all(straight);
  fs::remove_all(interrupted);
}

TEST(Training, NaNLossStopsWithAMessageAndKeepsTheLastCheckpoint) {
  const fs::path dir = scratch("nan");
  nn::GPT model(small_config(corpus().vocab_size()));
  int calls = 0;
  LossFn poisoned = [&](const Tensor& x, const Tensor& y) {
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

namespace {

// A loss that is NaN in evaluation from the `poison_after`-th evaluation call on (training stays finite),
// as a model that diverged in its last step shows first at the evaluation before the next step.
LossFn nan_evaluations_after(nn::GPT& model, int poison_after) {
  auto calls = std::make_shared<int>(0);
  return [&model, calls, poison_after](const Tensor& x, const Tensor& y) {
    Tensor loss = model.loss(x, y);
    if (model.is_training() || ++*calls <= poison_after) return loss;
    return mul(loss, std::numeric_limits<double>::quiet_NaN());
  };
}

std::string diverged_message(Trainer& trainer) {
  try {
    trainer.run();
  } catch (const TrainingDiverged& e) {
    return e.what();
  }
  ADD_FAILURE() << "a non-finite evaluation did not stop training";
  return "";
}

}  // namespace

// Evaluations at iters 0, 10, 20 (2 batches per split: 4 calls each); the one at 20 is NaN. It used to be
// saved over the good iter-10 checkpoint, which the message then called "the last good checkpoint".
TEST(Training, NonFiniteEvaluationIsNeverSavedAndTheKeptCheckpointIsNamed) {
  const fs::path dir = scratch("nan_eval");
  nn::GPT model(small_config(corpus().vocab_size()));
  Trainer trainer(model, nan_evaluations_after(model, 8), corpus_batches(4, 32), quick_options(dir.string(), 100));
  const std::string msg = diverged_message(trainer);
  EXPECT_NE(msg.find("training stopped at iter 20: the evaluation loss is not finite"), std::string::npos) << msg;
  const std::string path = (dir / "ckpt.safetensors").string();
  EXPECT_NE(msg.find("the last good checkpoint, from iter 10, is kept at " + path), std::string::npos) << msg;
  EXPECT_EQ(load_checkpoint(path).iter, 10);
  fs::remove_all(dir);
}

// The first evaluation after the start is NaN: nothing was ever saved, and the message must not cite a file.
TEST(Training, NonFiniteEvaluationBeforeAnySaveSaysNoneIsKept) {
  const fs::path dir = scratch("nan_first_eval");
  nn::GPT model(small_config(corpus().vocab_size()));
  Trainer trainer(model, nan_evaluations_after(model, 4), corpus_batches(4, 32), quick_options(dir.string(), 100));
  const std::string msg = diverged_message(trainer);
  EXPECT_NE(msg.find("no checkpoint was written by this run"), std::string::npos) << msg;
  EXPECT_FALSE(fs::exists(dir / "ckpt.safetensors"));
  fs::remove_all(dir);
}

// A fresh run in a directory holding a checkpoint used to replace it without a word (iter 300 -> 5).
TEST(Training, FreshRunRefusesToReplaceACheckpointUnlessAskedTo) {
  const fs::path dir = scratch("overwrite");
  const std::string path = (dir / "ckpt.safetensors").string();
  {
    nn::GPT model(small_config(corpus().vocab_size()));
    Trainer(model, [&](const Tensor& x, const Tensor& y) { return model.loss(x, y); }, corpus_batches(4, 32),
            quick_options(dir.string(), 10))
        .run();
  }
  nn::GPT model(small_config(corpus().vocab_size()));
  LossFn loss = [&](const Tensor& x, const Tensor& y) { return model.loss(x, y); };
  try {
    Trainer(model, loss, corpus_batches(4, 32), quick_options(dir.string(), 4)).run();
    ADD_FAILURE() << "a fresh run replaced the checkpoint";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(path + " already exists"), std::string::npos) << e.what();
  }
  EXPECT_EQ(load_checkpoint(path).iter, 10);
  TrainOptions overwrite = quick_options(dir.string(), 4);
  overwrite.overwrite = true;
  Trainer(model, loss, corpus_batches(4, 32), overwrite).run();
  EXPECT_EQ(load_checkpoint(path).iter, 4);
  fs::remove_all(dir);
}

TEST(Training, OptionsOutsideTheirDomainAreRefusedByName) {
  nn::GPT model(small_config(corpus().vocab_size()));
  LossFn loss = [&](const Tensor& x, const Tensor& y) { return model.loss(x, y); };
  auto refused = [&](TrainOptions o, const std::string& field) {
    try {
      Trainer(model, loss, corpus_batches(4, 32), o);
      ADD_FAILURE() << field << " accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
    }
  };
  TrainOptions o = quick_options("unused", 10);
  o.learning_rate = NAN;
  refused(o, "learning_rate");
  o = quick_options("unused", 10);
  o.beta2 = 1.0;
  refused(o, "beta2");
  o = quick_options("unused", 10);
  o.eval_interval = 0;
  refused(o, "eval_interval");
  o = quick_options("unused", 10);
  o.grad_clip = NAN;
  refused(o, "grad_clip");
}
