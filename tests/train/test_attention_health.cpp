// Attention health: the judge's three rules on numbers (each fires at its threshold, once per run, and not
// on missing data), AttentionHealth on a real Trainer run (the columns and records in metrics.csv, hooks on
// the layers only for recorded steps), and MetricsCsv refusing to append rows under another header.
#include <minitrain/nn/gpt.h>
#include <minitrain/train/attention_health.h>
#include <minitrain/train/metrics.h>

#include "training_fixtures.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <unistd.h>
#include <vector>

using namespace minitrain;
using namespace minitrain::train;
using namespace minitrain::train::testing;
namespace fs = std::filesystem;

namespace {

LayerHealth layer(double entropy, double grad_q = 1, double grad_k = 1, double grad_v = 1) {
  LayerHealth l;
  l.attention = AttentionStatisticsSum().mean();
  l.attention.normalized_entropy = entropy;
  l.attention.rows = std::isnan(entropy) ? 0 : 10;
  l.grad_q = grad_q, l.grad_k = grad_k, l.grad_v = grad_v;
  return l;
}

bool mentions(const std::vector<std::string>& lines, const std::string& what) {
  for (const std::string& l : lines)
    if (l.find(what) != std::string::npos) return true;
  return false;
}

fs::path scratch(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / ("minitrain_health_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  return dir;
}

}  // namespace

TEST(HealthJudge, SaturationFiresBelowTheThresholdOnceAndNamesTheLayers) {
  HealthJudge judge;  // saturated below entropy / log T 0.02
  EXPECT_TRUE(judge.assess(0, {layer(0.5), layer(0.021)}).empty());
  EXPECT_TRUE(judge.assess(1, {layer(NAN), layer(0.5)}).empty());  // no record: no verdict
  const auto lines = judge.assess(2, {layer(0.5), layer(0.019), layer(0.001)});
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].find("layers 1, 2 saturated at iter 2"), std::string::npos) << lines[0];
  EXPECT_TRUE(judge.assess(3, {layer(0.001), layer(0.001), layer(0.001)}).empty());  // once per run
}

TEST(HealthJudge, VanishingQKGradientsFireBelowTheRatio) {
  HealthJudge judge;  // (|gq| + |gk|) / (2 |gv|) below 1e-4
  EXPECT_TRUE(judge.assess(0, {layer(0.5, 2e-4, 2e-4, 1)}).empty());
  const auto lines = judge.assess(1, {layer(0.5, 5e-5, 5e-5, 1)});
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_TRUE(mentions(lines, "layer 0 lost their q/k gradients at iter 1")) << lines[0];
  EXPECT_TRUE(judge.assess(2, {layer(0.5, 0, 0, 0)}).empty());  // no gradient at all: nothing to compare
}

TEST(HealthJudge, RecordsBeforeFromIterAreNeitherJudgedNorRemembered) {
  HealthThresholds t;
  t.from_iter = 100;
  HealthJudge judge(t);
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(judge.assess(10 * i, {layer(0.001, 1e-3, 1e-3, 1e3)}).empty());
  // The tiny early gradients are not the median later gradients are compared with.
  for (int i = 0; i < 6; ++i) EXPECT_TRUE(judge.assess(100 + i, {layer(0.5, 1, 1, 1)}).empty());
  EXPECT_EQ(judge.assess(106, {layer(0.001)}).size(), 1u);  // from then on, judged
}

TEST(HealthJudge, SpikesNeedAHistoryAndAFactorAboveTheMedian) {
  HealthJudge judge;  // 100x the median of at least 5 earlier records
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(judge.assess(i, {layer(0.5, 1 + i, 1, 1)}).empty());
  EXPECT_TRUE(judge.assess(4, {layer(0.5, 1000, 1, 1)}).empty());  // only 4 earlier records
  EXPECT_TRUE(judge.assess(5, {layer(0.5, 250, 1, 1)}).empty());   // 83x the median 3
  const auto lines = judge.assess(6, {layer(0.5, 1, 400, 1)});     // k: 400x the median 1
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_TRUE(mentions(lines, "spiking")) << lines[0];
}

TEST(AttentionHealth, RecordsEveryIntervalIntoMetricsWithHooksOnlyForThoseSteps) {
  const fs::path dir = scratch("run");
  nn::GPT model(small_config(corpus().vocab_size()));
  TrainOptions o = quick_options(dir.string(), 12);
  o.log = false;
  std::vector<bool> hooked;  // per training forward: did the attention layers carry a hook?
  LossFn loss = [&](const Tensor& x, const Tensor& y) {
    if (model.is_training()) hooked.push_back((*model.h)[0]->attn->has_forward_hooks());
    return model.loss(x, y);
  };
  Trainer trainer(model, loss, corpus_batches(4, 32), o);
  AttentionHealth health(trainer, model.attention_layers(), 5, HealthThresholds{}, [](const std::string&) {});
  trainer.run();
  EXPECT_EQ(health.records(), 3);  // iterations 0, 5, 10
  ASSERT_EQ(hooked.size(), 12u);
  for (std::size_t i = 0; i < hooked.size(); ++i) EXPECT_EQ(hooked[i], i % 5 == 0) << "step " << i;

  std::ifstream csv(dir / "metrics.csv");
  std::string header, row;
  std::getline(csv, header);
  EXPECT_NE(header.find(",attn0_entropy,attn0_max_weight,attn0_logit_std,attn0_grad_q,attn0_grad_k,attn0_grad_v,"
                        "attn1_entropy"), std::string::npos) << header;
  std::vector<std::vector<std::string>> records;
  while (std::getline(csv, row)) {
    std::vector<std::string> fields;
    std::stringstream ss(row);
    for (std::string f; std::getline(ss, f, ',');) fields.push_back(f);
    if (fields.size() > 7 && !fields[7].empty()) records.push_back(fields);
  }
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[1][0], "5");
  for (const auto& r : records) {
    ASSERT_EQ(r.size(), 7u + 2 * 6);
    const double entropy = std::stod(r[7]), grad_q = std::stod(r[10]), grad_v = std::stod(r[12]);
    EXPECT_GT(entropy, 0.5);  // a small model early on: far from saturated
    EXPECT_LE(entropy, 1.0);
    EXPECT_GT(grad_q, 0);
    EXPECT_GT(grad_v, 0);
  }
  fs::remove_all(dir);
}

TEST(MetricsCsvFile, RefusesToAppendUnderAnotherHeader) {
  const fs::path dir = scratch("header");
  fs::create_directories(dir);
  const std::string path = (dir / "metrics.csv").string();
  { MetricsCsv plain(path); }
  EXPECT_NO_THROW(MetricsCsv again(path));  // the same columns: appends
  try {
    MetricsCsv other(path, {"attn0_entropy"});
    FAIL() << "appended rows under another header";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("attn0_entropy"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}
