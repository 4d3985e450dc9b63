// The communicator of a data-parallel job over MPI (train/communicator.h is the interface, and
// train/distributed.h the gradient averaging that runs on it). Only this library links MPI, so programs
// and packages that use core, nn, data or train alone never need it. <mpi.h> stays out of this header.
//
//   train::Communicator& comm = distributed::world();  // every rank of `mpirun -np N program`
#pragma once

#include <minitrain/train/communicator.h>

namespace minitrain::distributed {

// True when this library was built with MPI (CMake option MINITRAIN_WITH_MPI).
bool mpi_built();

// Every process of the job (MPI_COMM_WORLD). The first call initialises MPI when the process was started
// by an MPI launcher (mpirun sets OMPI_COMM_WORLD_SIZE / PMI_SIZE / PMIX_RANK) and registers
// MPI_Finalize at exit; otherwise, or when built without MPI, it is a single-process communicator.
train::Communicator& world();

}  // namespace minitrain::distributed
