// Part 2's training loop records what the report needs, and part 2's summary counts what it claims.
#include "gpt_runs.h"
#include "run_summary.h"

#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>

using namespace minitrain;
using namespace minitrain::study;

namespace {
GptStudyOptions tiny() {
  GptStudyOptions o;
  o.model.n_layer = 2;
  o.model.n_embd = 16;
  o.model.n_head = 2;
  o.model.block_size = 16;
  o.model.bias = false;
  o.batch_size = 4;
  o.iters = 12;
  o.warmup_iters = 2;
  o.eval_interval = 5;
  o.eval_iters = 1;
  return o;
}
const data::TextDataset& dataset() {
  static const data::TextDataset d = data::TextDataset::from_text(std::string(2000, 'a') + "the quick brown fox jumps");
  return d;
}
}  // namespace

TEST(GptRuns, RecordsEveryStepAndLayer) {
  const RunResult r = train_gpt_run(dataset(), tiny(), parse_scale_rule("1/sqrt(dk)"), 1e-2);
  EXPECT_DOUBLE_EQ(r.scale, 1 / std::sqrt(8.0));
  ASSERT_EQ(r.steps.size(), 12u);
  ASSERT_EQ(r.evals.size(), 4u);  // iters 0, 5, 10 and the end
  EXPECT_EQ(r.evals.back().iter, 12);
  EXPECT_FALSE(r.diverged);
  for (const StepRecord& s : r.steps) {
    ASSERT_EQ(s.layers.size(), 2u);
    EXPECT_TRUE(std::isfinite(s.loss) && s.grad_norm > 0);
    for (const LayerStep& l : s.layers) {
      EXPECT_GT(l.grad_v, 0);
      EXPECT_GT(l.entropy, 0);
      EXPECT_LE(l.entropy, 1 + 1e-12);
    }
  }
  // Step 0 of a GPT-2 initialisation: tiny logits, nearly uniform attention.
  EXPECT_GT(r.steps[0].layers[0].entropy, 0.99);
}

TEST(GptRuns, RunsAreIndependentOfHowManyGoAtOnce) {
  GptStudyOptions o = tiny();
  o.iters = 4;
  o.learning_rates = {1e-3, 1e-2};
  o.seeds = 2;
  o.jobs = 1;
  const auto serial = train_gpt_runs(dataset(), o, {parse_scale_rule("1")}, nullptr);
  o.jobs = 2;
  const auto parallel = train_gpt_runs(dataset(), o, {parse_scale_rule("1")}, nullptr);
  ASSERT_EQ(serial.size(), 4u);  // learning rates × seeds, seeds innermost
  EXPECT_EQ(serial[0].seed, o.seed);
  EXPECT_EQ(serial[1].seed, o.seed + 1);
  EXPECT_EQ(serial[1].learning_rate, serial[0].learning_rate);
  // Each seed has its own initial weights and batches: the first losses differ.
  EXPECT_NE(serial[0].steps[0].loss, serial[1].steps[0].loss);
  for (std::size_t i = 0; i < serial.size(); ++i) {
    EXPECT_EQ(serial[i].learning_rate, parallel[i].learning_rate);
    EXPECT_EQ(serial[i].seed, parallel[i].seed);
    for (std::size_t s = 0; s < serial[i].steps.size(); ++s) EXPECT_EQ(serial[i].steps[s].loss, parallel[i].steps[s].loss);
  }
}

TEST(GptRuns, RejectsBadOptions) {
  GptStudyOptions o = tiny();
  o.iters = 0;
  EXPECT_THROW(train_gpt_run(dataset(), o, parse_scale_rule("1"), 1e-3), std::invalid_argument);
  EXPECT_THROW(train_gpt_run(dataset(), tiny(), parse_scale_rule("1"), 0.0), std::invalid_argument);
}

TEST(RunSummary, CountsSpikesSaturationAndDivergence) {
  RunResult r;
  r.rule = parse_scale_rule("1");
  r.learning_rate = 0.1;
  for (int i = 0; i < 40; ++i) {
    StepRecord s;
    s.iter = i;
    s.loss = i == 30 ? 3.0 : 2.0;       // one loss spike
    s.grad_norm = i == 20 ? 50.0 : 1.0;  // one grad-norm spike
    s.layers = {{0.01, 0.01, 1.0, 0.05, 0.99, 30.0}, {0.5, 0.5, 1.0, 0.95, 0.1, 0.2}};
    r.steps.push_back(s);
  }
  StepRecord last;
  last.iter = 40;
  last.loss = NAN;
  last.grad_norm = NAN;
  r.steps.push_back(last);
  r.diverged = true;
  r.evals = {{0, 2.5}, {20, 2.1}, {40, 2.2}};
  const RunSummary s = summarise(r);
  EXPECT_EQ(s.grad_spikes, 1);
  EXPECT_EQ(s.loss_spikes, 1);
  EXPECT_EQ(s.grad_norm_max_iter, 20);
  EXPECT_TRUE(s.diverged);
  EXPECT_DOUBLE_EQ(s.best_val, 2.1);
  EXPECT_DOUBLE_EQ(s.final_val, 2.2);
  EXPECT_EQ(s.saturated_layers, 1);  // layer 0: entropy 0.05
  EXPECT_EQ(s.flat_layers, 1);       // layer 1: entropy 0.95
  EXPECT_NEAR(s.qk_over_v_end.at(0), 0.01, 1e-12);
}

TEST(RunSummary, FlagsALossThatStopsFalling) {
  for (double slope : {0.0, 0.02}) {  // nats per step: flat, then a loss falling 0.2 between the quarter marks
    RunResult r;
    r.rule = parse_scale_rule("1");
    for (int i = 0; i < 40; ++i) {
      StepRecord s;
      s.iter = i;
      s.loss = 3.0 - slope * i;
      s.grad_norm = 1.0;
      s.layers = {{0.1, 0.1, 0.1, 0.5, 0.5, 1.0}};
      r.steps.push_back(s);
    }
    r.evals = {{40, 2.0}};
    const RunSummary sum = summarise(r);
    EXPECT_EQ(sum.stalled, slope == 0.0) << slope;
    EXPECT_NEAR(sum.loss_at[1] - sum.loss_at[0], -slope * 10, 1e-9);  // means of steps 0-9 and 10-19
  }
}

TEST(GptRuns, RankingCallsGapsWithinTheSeedSpreadNotDistinguishable) {
  const auto run = [](const std::string& rule, double lr, double final_val) {
    RunSummary s;
    s.rule = rule;
    s.learning_rate = lr;
    s.final_val = final_val;
    return s;
  };
  // 1/sqrt(dk) 0.778 ± 0.002 and 1 0.780 ± 0.002 overlap; 1/dk at 0.866 is far above both.
  const std::vector<RunSummary> runs{run("1", 1e-3, 0.782),          run("1", 1e-3, 0.778),
                                     run("1/sqrt(dk)", 1e-3, 0.776), run("1/sqrt(dk)", 1e-3, 0.780),
                                     run("1/dk", 1e-3, 0.866),       run("1/dk", 1e-3, 0.864),
                                     run("1", 1e-2, 1.5)};
  const std::string ranking = rank_by_final_val(runs, 1e-3);
  EXPECT_NE(ranking.find("scale 1/sqrt(dk) (0.7780 ± 0.0028, 2 seeds) ≈ scale 1 (0.7800 ± 0.0028, 2 seeds) < scale 1/dk"),
            std::string::npos)
      << ranking;
  EXPECT_NE(ranking.find("Not distinguishable (gap within the seed-to-seed spread): 1/sqrt(dk) and 1."), std::string::npos)
      << ranking;
  EXPECT_EQ(rank_by_final_val(runs, 1e-2).find("≈"), std::string::npos);
  EXPECT_NE(rank_by_final_val(runs, 1e-2).find("scale 1 (1.5000"), std::string::npos);
}
