// world() of a build without MPI (MINITRAIN_WITH_MPI off): the same program runs as one process.
#include <minitrain/distributed/mpi.h>

namespace minitrain::distributed {

bool mpi_built() { return false; }

train::Communicator& world() {
  static train::SingleProcessCommunicator single;
  return single;
}

}  // namespace minitrain::distributed
