// The study's PNG plots, rendered by gnuplot from data written inline into a throw-away script.
#pragma once

#include "gpt_runs.h"
#include "single_layer.h"

#include <string>
#include <vector>

namespace minitrain::study {

bool gnuplot_available();

// Part 1: part1_grad_norms.png (‖dL/dscores‖ and ‖dL/dq‖ against d_k, log-log, a line per scale, a
// panel per key count) and part1_entropy.png (entropy / log n against d_k). Returns the file names
// written into `dir` (none without gnuplot).
std::vector<std::string> plot_single_layer(const std::string& dir, const std::vector<CaseResult>& cases);

// Part 1's spread (part1_spread.png: median and 99th percentile of ‖dL/dq‖, share of samples below 1e-6
// and the median softmax Jacobian norm against d_k, a line per scale) and the continuous sweep
// (part1_sweep.png: the same against the exponent p of c = d_k^p, a line per d_k; `sweep` holds cases
// of rules dk^p). Returns the file names written (none without gnuplot or without cases).
std::vector<std::string> plot_spread_and_sweep(const std::string& dir, const std::vector<CaseResult>& cases,
                                               const std::vector<CaseResult>& sweep);

// Part 2: part2_loss.png, part2_grad_norm.png and part2_qk_over_v.png (a panel per learning rate, a
// line per scale) and part2_entropy.png (a panel per run, a line per layer), of the first seed's runs.
std::vector<std::string> plot_gpt_runs(const std::string& dir, const std::vector<RunResult>& runs);

}  // namespace minitrain::study
