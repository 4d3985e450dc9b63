// Data-parallel training across MPI ranks, trained for real. ctest runs each case as
// `mpirun -np 2 test_distributed --gtest_filter=Distributed.<case>` (tests/train/CMakeLists.txt).
// Every rank runs the same test. A test that fails on one rank (an assertion, or an exception inside
// `if (comm.is_root())`) ends every rank of the job as soon as it is over (mpi_gtest_main.cpp), so the
// other rank is never left waiting in a collective the failed one will not reach.
#include <minitrain/core/factory.h>
#include <minitrain/core/ops.h>
#include <minitrain/core/threads.h>
#include <minitrain/data/text_dataset.h>
#include <minitrain/distributed/mpi.h>
#include <minitrain/nn/gpt.h>
#include <minitrain/train/checkpoint.h>
#include <minitrain/train/distributed.h>
#include <minitrain/train/trainer.h>

#include "training_fixtures.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <unistd.h>

using namespace minitrain;
using namespace minitrain::train;
using namespace minitrain::train::testing;
namespace fs = std::filesystem;

namespace {


nn::GPTConfig tiny_config() { return small_config(corpus().vocab_size()); }

constexpr int64_t kGlobalBatch = 8;

BatchSource global_batches() { return corpus_batches(kGlobalBatch, 32); }

TrainOptions options(const fs::path& dir, int64_t iters, Communicator* comm) {
  TrainOptions o = quick_options(dir.string(), iters);
  o.lr_decay_iters = 20;  // the same schedule for interrupted and whole runs
  o.communicator = comm;
  return o;
}

// A directory every rank of this job agrees on (mpirun's children share its pid as parent), plus
// `suffix` for files only one rank writes.
fs::path scratch(const std::string& name, const std::string& suffix = "") {
  return fs::temp_directory_path() / ("minitrain_dist_" + name + "_" + std::to_string(::getppid()) + suffix);
}

struct TrainedRun {
  std::shared_ptr<nn::GPT> model;
  std::vector<double> losses;  // per step (mean over ranks)
  TrainResult result;
};

TrainedRun train_gpt(const fs::path& dir, int64_t iters, bool resume, Communicator* comm,
          std::function<void(int64_t, const nn::GPT&)> after_step = nullptr) {
  TrainedRun run;
  run.model = std::make_shared<nn::GPT>(tiny_config());
  auto model = run.model;
  TrainOptions o = options(dir, iters, comm);
  o.resume = resume;
  Trainer trainer(*model, [model](const Tensor& x, const Tensor& y) { return model->loss(x, y); }, global_batches(), o);
  trainer.on_step([&](int64_t iter, double loss) {
    run.losses.push_back(loss);
    if (after_step) after_step(iter, *model);
  });
  run.result = trainer.run();
  return run;
}

std::vector<float> flat_parameters(const nn::GPT& model) {
  std::vector<float> out;
  for (const Tensor& p : model.parameters()) {
    const std::vector<float> v = p.to_vector<float>();
    out.insert(out.end(), v.begin(), v.end());
  }
  return out;
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double worst = 0;
  for (std::size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(static_cast<double>(a[i]) - b[i]));
  return worst;
}

// FNV-1a over the parameters' bytes, split in two exact 32-bit halves so doubles can carry it.
std::vector<double> parameter_hash(const nn::GPT& model) {
  uint64_t h = 1469598103934665603ull;
  for (float v : flat_parameters(model)) {
    uint32_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    for (int k = 0; k < 4; ++k) h = (h ^ ((bits >> (8 * k)) & 0xff)) * 1099511628211ull;
  }
  return {static_cast<double>(h >> 32), static_cast<double>(h & 0xffffffffu)};
}

Communicator& world() {
  Communicator& comm = distributed::world();
  set_num_threads(threads_per_rank(comm, 2));
  return comm;
}

}  // namespace

TEST(Distributed, RunsOnTwoRanks) {
  Communicator& comm = world();
  ASSERT_TRUE(distributed::mpi_built());
  EXPECT_EQ(comm.size(), 2) << "run this test with mpirun -np 2";
  EXPECT_EQ(comm.local_size(), 2);
  EXPECT_EQ(num_threads(), 1) << "two ranks on two cores: one thread each";
  std::vector<double> v{1.0 + comm.rank()};
  comm.all_reduce_sum(v);
  EXPECT_EQ(v[0], 3.0);
  EXPECT_EQ(comm.all_gather({static_cast<double>(comm.rank())}), (std::vector<double>{0, 1}));
}

TEST(Distributed, GradientAveragerAveragesEveryBucketWithAndWithoutOverlap) {
  Communicator& comm = world();
  for (bool overlap : {true, false}) {
    // Three float32 parameters and a float64 one; 64-byte buckets force several all-reduces.
    std::vector<Tensor> params{zeros({4, 3}), zeros({5}), zeros({2, 2}, DType::Float64), zeros({7})};
    for (Tensor& p : params) p.set_requires_grad(true);
    GradientAverager averager(comm, params, {64, overlap});
    EXPECT_GE(averager.num_buckets(), 4);
    // Gradient of sum(p * w) is w: rank r contributes (r + 1) * (j + 1) at entry j; the fourth
    // parameter gets a gradient on rank 0 only (rank 1's batch "did not reach it").
    for (std::size_t k = 0; k < params.size(); ++k) {
      if (k == 3 && comm.rank() == 1) continue;
      std::vector<double> w(static_cast<std::size_t>(params[k].numel()));
      for (std::size_t j = 0; j < w.size(); ++j) w[j] = (comm.rank() + 1.0) * (j + 1.0);
      sum(mul(params[k], from_vector(w, params[k].shape()).to(params[k].dtype()))).backward();
    }
    EXPECT_TRUE(averager.average());
    for (std::size_t k = 0; k < params.size(); ++k) {
      const std::vector<double> g = params[k].grad().to(DType::Float64).to_vector<double>();
      for (std::size_t j = 0; j < g.size(); ++j)
        ASSERT_EQ(g[j], (k == 3 ? 0.5 : 1.5) * (j + 1.0)) << "parameter " << k << " entry " << j << " overlap " << overlap;
    }
    EXPECT_EQ(averager.stats().calls, 1);
    EXPECT_EQ(averager.stats().bytes, (12 + 5 + 7) * 4 + 4 * 8);
  }
}

TEST(Distributed, TwoRanksWithHalfBatchesMatchOneProcessWithTheWholeBatch) {
  Communicator& comm = world();
  const fs::path dir = scratch("equiv"), single_dir = scratch("equiv", "_single_" + std::to_string(comm.rank()));
  TrainedRun both = train_gpt(dir, 20, false, &comm);
  TrainedRun alone = train_gpt(single_dir, 20, false, nullptr);  // this process alone, batch 8
  const std::vector<float> p2 = flat_parameters(*both.model), p1 = flat_parameters(*alone.model);
  ASSERT_EQ(both.losses.size(), 20u);
  ASSERT_EQ(alone.losses.size(), 20u);
  double worst_loss = 0;
  for (std::size_t i = 0; i < 20; ++i) worst_loss = std::max(worst_loss, std::abs(both.losses[i] - alone.losses[i]));
  const double worst_param = max_abs_diff(p2, p1);
  if (comm.is_root())
    std::printf("2 ranks x 4 rows vs 1 process x 8 rows, 20 AdamW steps: worst loss difference %.3g, worst "
                "parameter difference %.3g, val loss %.6f vs %.6f\n",
                worst_loss, worst_param, both.result.val_loss, alone.result.val_loss);
  // float32: the two ranks sum their halves of each gradient separately. The training moved the
  // parameters by more than 1e-2 (checked below); they agree to ~1.6e-7 (measured), checked at 2e-6.
  EXPECT_LT(worst_loss, 2e-6);
  EXPECT_LT(worst_param, 2e-6);
  EXPECT_NEAR(both.result.val_loss, alone.result.val_loss, 2e-6);
  EXPECT_GT(max_abs_diff(p1, flat_parameters(nn::GPT(tiny_config()))), 1e-2) << "training did not move the parameters";
  EXPECT_LT(both.losses.back(), both.losses.front() - 0.3) << "the loss did not go down";
  comm.barrier();
  if (comm.is_root()) fs::remove_all(dir);
  fs::remove_all(single_dir);
}

TEST(Distributed, EveryRankHoldsBitIdenticalParametersAfterEveryStep) {
  Communicator& comm = world();
  const fs::path dir = scratch("bits");
  int64_t steps = 0, mismatches = 0;
  train_gpt(dir, 12, false, &comm, [&](int64_t iter, const nn::GPT& model) {
    const std::vector<double> all = comm.all_gather(parameter_hash(model));
    ++steps;
    if (all[0] != all[2] || all[1] != all[3]) {
      ++mismatches;
      ADD_FAILURE() << "rank 0 and rank 1 parameters differ after iter " << iter;
    }
  });
  EXPECT_EQ(steps, 12);
  EXPECT_EQ(mismatches, 0);
  comm.barrier();
  if (comm.is_root()) fs::remove_all(dir);
}

TEST(Distributed, CheckpointFromTwoRanksResumesOnOneAndBack) {
  Communicator& comm = world();
  const fs::path ref_dir = scratch("resume", "_ref_" + std::to_string(comm.rank()));
  const fs::path two_then_one = scratch("resume_2to1"), one_then_two = scratch("resume_1to2");
  const std::vector<float> whole = flat_parameters(*train_gpt(ref_dir, 20, false, nullptr).model);

  // 10 steps on two ranks, the other 10 on one process.
  train_gpt(two_then_one, 10, false, &comm);
  comm.barrier();
  double diff_2to1 = 0, resumed_at = -1;
  if (comm.is_root()) {
    resumed_at = static_cast<double>(load_checkpoint((two_then_one / "ckpt.safetensors").string()).iter);
    diff_2to1 = max_abs_diff(flat_parameters(*train_gpt(two_then_one, 20, true, nullptr).model), whole);
  }
  // 10 steps on one process, the other 10 on two ranks.
  if (comm.is_root()) train_gpt(one_then_two, 10, false, nullptr);
  comm.barrier();
  const double diff_1to2 = max_abs_diff(flat_parameters(*train_gpt(one_then_two, 20, true, &comm).model), whole);

  if (comm.is_root()) {
    std::printf("resumed 2 -> 1 ranks: worst parameter difference %.3g; 1 -> 2 ranks: %.3g\n", diff_2to1, diff_1to2);
    EXPECT_EQ(resumed_at, 10.0);
    EXPECT_LT(diff_2to1, 2e-6);
  }
  EXPECT_LT(diff_1to2, 2e-6);
  comm.barrier();
  if (comm.is_root()) {
    fs::remove_all(two_then_one);
    fs::remove_all(one_then_two);
  }
  fs::remove_all(ref_dir);
}

TEST(Distributed, NaNOnOneRankStopsEveryRankNamingTheRank) {
  Communicator& comm = world();
  const fs::path dir = scratch("nan");
  auto model = std::make_shared<nn::GPT>(tiny_config());
  int64_t steps = 0;
  LossFn poisoned = [&](const Tensor& x, const Tensor& y) {
    Tensor loss = model->loss(x, y);
    // Rank 1's 15th training step (iter 14) goes NaN; evaluation runs without a graph and is spared.
    const bool training_step = grad_mode_enabled();
    if (training_step && ++steps == 15 && comm.rank() == 1) return mul(loss, std::numeric_limits<double>::quiet_NaN());
    return loss;
  };
  TrainOptions o = options(dir, 40, &comm);
  Trainer trainer(*model, poisoned, global_batches(), o);
  std::string message;
  try {
    trainer.run();
  } catch (const TrainingDiverged& e) {
    message = e.what();
  }
  comm.barrier();  // rank 0 has finished writing
  EXPECT_NE(message.find("training stopped at iter 14"), std::string::npos) << message;
  EXPECT_NE(message.find("loss is not finite on rank 1"), std::string::npos) << message;
  EXPECT_EQ(message.find("rank 0"), std::string::npos) << message;
  EXPECT_NE(message.find("ckpt.safetensors"), std::string::npos) << message;
  CheckpointContents c = load_checkpoint((dir / "ckpt.safetensors").string());
  EXPECT_EQ(c.iter, 10);
  for (auto& [name, t] : c.model)
    for (float v : t.to_vector<float>()) ASSERT_TRUE(std::isfinite(v)) << name;
  comm.barrier();
  if (comm.is_root()) fs::remove_all(dir);
}
