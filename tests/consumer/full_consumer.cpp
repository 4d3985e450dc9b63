// A program that uses every component: one SGD step on a Linear layer fed by a tokenizer, averaged over
// the (single-process) world, read back through xtensor. Fails (exit 1) if the step does not lower the
// loss or a value comes back wrong.
#include <minitrain/core/factory.h>
#include <minitrain/core/ops.h>
#include <minitrain/core/xtensor_interop.h>
#include <minitrain/data/char_tokenizer.h>
#include <minitrain/distributed/mpi.h>
#include <minitrain/nn/layers.h>
#include <minitrain/train/distributed.h>
#include <minitrain/train/optimizer.h>

#include <iostream>

int main() {
  using namespace minitrain;
  const data::CharTokenizer tokenizer = data::CharTokenizer::from_text("abcab");
  const std::vector<int64_t> ids = tokenizer.encode("cab");
  const Tensor x = from_vector(std::vector<float>(ids.begin(), ids.end()), {1, 3});

  train::Communicator& comm = distributed::world();  // one process: not started by mpirun
  nn::Linear fc(3, 1);
  train::GradientAverager averager(comm, fc.parameters());
  train::SGD sgd(fc.named_parameters(), {0.01});
  auto loss = [&] { return sum(mul(fc(x), fc(x))); };
  const double before = loss().item();
  loss().backward();
  averager.average();
  sgd.step();
  const double after = loss().item();

  const auto xs = to_xarray<float>(x);
  const bool ok = comm.size() == 1 && after < before && xs(0, 0) == static_cast<float>(ids[0]);
  std::cout << (ok ? "full consumer ok" : "full consumer: wrong result") << " (MPI built: "
            << distributed::mpi_built() << ")\n";
  return ok ? 0 : 1;
}
