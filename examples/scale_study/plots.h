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

// Part 2: part2_loss.png, part2_grad_norm.png and part2_qk_over_v.png (a panel per learning rate, a
// line per scale) and part2_entropy.png (a panel per run, a line per layer).
std::vector<std::string> plot_gpt_runs(const std::string& dir, const std::vector<RunResult>& runs);

}  // namespace minitrain::study
