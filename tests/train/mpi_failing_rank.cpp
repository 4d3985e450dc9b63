// Tests that fail on purpose, on one rank only, while the other rank waits in a collective: they show
// that mpi_gtest_main.cpp ends the whole job within seconds instead of leaving a rank waiting forever.
// Not part of test_distributed (they must fail); ctest runs each under expect_mpi_failure.sh, which
// passes only when the job exits non-zero, quickly, having printed the deliberate failure.
#include <minitrain/distributed/mpi.h>

#include <gtest/gtest.h>

#include <stdexcept>
#include <vector>

using minitrain::train::Communicator;

// The shape of issue 18's hang: rank 0 throws inside a root-only block, rank 1 goes on to a barrier.
TEST(DeliberateFailure, RootThrowsWhileTheOtherRankWaitsInABarrier) {
  Communicator& comm = minitrain::distributed::world();
  ASSERT_EQ(comm.size(), 2) << "run under mpirun -np 2";
  if (comm.is_root()) throw std::runtime_error("deliberate failure on rank 0");
  comm.barrier();
}

// The other way round: rank 1 returns early from a fatal assertion, rank 0 waits in an all-reduce.
TEST(DeliberateFailure, RankOneFailsAnAssertionWhileRootWaitsInAnAllReduce) {
  Communicator& comm = minitrain::distributed::world();
  ASSERT_EQ(comm.size(), 2) << "run under mpirun -np 2";
  ASSERT_NE(comm.rank(), 1) << "deliberate failure on rank 1";
  std::vector<double> v{1.0};
  comm.all_reduce_sum(v);
}
