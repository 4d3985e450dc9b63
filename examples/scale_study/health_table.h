// The compact table of part 1 that shows vanishing and exploding at a glance, one block per scale rule:
// for each d_k, ‖dL/dscores‖ and ‖dL/dq‖ as median / 99th percentile / share below 1e-6, the softmax
// Jacobian norm, entropy / log n and the finite-difference verdicts. Printed by the gradient-check tests
// (tests/study/test_gradient_health.cpp) and written into the report.
#pragma once

#include "single_layer.h"

#include <string>
#include <vector>

namespace minitrain::study {

// Plain text, aligned columns; the cases in the order given, grouped by rule label (first appearance).
std::string gradient_health_table(const std::vector<CaseResult>& cases);

}  // namespace minitrain::study
