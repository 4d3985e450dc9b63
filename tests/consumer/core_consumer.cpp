// A program that uses minitrain::core alone: builds against the installed headers and library; fails
// (exit 1) if a gradient is wrong.
#include <minitrain/core/factory.h>
#include <minitrain/core/ops.h>

#include <cmath>
#include <iostream>

int main() {
  using namespace minitrain;
  Tensor x = from_vector(std::vector<double>{0.5, -1.0}, {2}).set_requires_grad(true);
  sum(tanh(x)).backward();
  const double expected = 1 - std::tanh(0.5) * std::tanh(0.5);
  const bool ok = std::fabs(x.grad().at({0}) - expected) < 1e-12;
  std::cout << (ok ? "consumer ok" : "consumer: wrong gradient") << "\n";
  return ok ? 0 : 1;
}
