// The study's CSV files: what the tables and plots are made from, for anyone who wants other plots.
#pragma once

#include "gpt_runs.h"
#include "single_layer.h"

#include <string>
#include <vector>

namespace minitrain::study {

// One row per (d_k, n, scale): each estimate as mean and standard error, and the finite-difference
// summary (checks, failures, worst error, worst error / rounding floor, largest runner-up weight of a
// failed check).
void write_single_layer_csv(const std::string& path, const std::vector<CaseResult>& cases);

// One row per run and step: loss, learning rate, global grad norm, and the layer means of attention
// entropy and of (‖∇W_q‖ + ‖∇W_k‖) / (2‖∇W_v‖).
void write_steps_csv(const std::string& path, const std::vector<RunResult>& runs);

// One row per run, layer and every `every`-th step (and the last): ‖∇W_q‖, ‖∇W_k‖, ‖∇W_v‖, entropy,
// max weight and logit std. Every step of every layer would be a few MB for the default study.
void write_layers_csv(const std::string& path, const std::vector<RunResult>& runs, int64_t every);

// Finite-difference columns of a case, shared by the CSV and the report.
struct FdSummary {
  int64_t checked = 0, failed = 0, wrong = 0;  // failed: relative error > kFdTolerance; wrong: verdict Wrong
  double worst_error = 0, worst_excess = 0;
  double failed_max_runner_up = 0;  // 0 when nothing failed
};
FdSummary summarise_fd(const CaseResult& c);

}  // namespace minitrain::study
