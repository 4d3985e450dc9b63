// main() of the GoogleTest programs that run under mpirun (test_distributed, mpi_failing_rank).
//
// A test that fails on one rank must end the whole job, not leave the other ranks waiting. A failed
// assertion returns from the test body and an exception ends it: the other ranks carry on into the next
// collective (a barrier, an all-reduce) and wait there forever for a rank that will never come, and the
// job hangs until ctest's timeout (issue 18: rank 0 threw inside `if (comm.is_root())`, rank 1 sat in
// comm.barrier()). Agreeing on failure before every collective would need every test to be written
// around it; instead, when a test has failed on this rank, this rank ends every rank of the job with
// MPI_Abort as soon as the test is over. gtest printed each failure as it happened, so nothing is lost,
// and each ctest case runs one test per job (--gtest_filter), so no later test is cut short.
#include <minitrain/distributed/mpi.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <iostream>

namespace {

class AbortJobOnFailure : public ::testing::EmptyTestEventListener {
 public:
  explicit AbortJobOnFailure(const minitrain::train::Communicator& comm) : comm_(comm) {}

  void OnTestEnd(const ::testing::TestInfo& test) override {
    if (!comm_.distributed() || !test.result()->Failed()) return;
    std::cout << std::flush;
    std::fprintf(stderr, "[rank %d] %s.%s failed on this rank: ending every rank of the job (MPI_Abort) so that "
                 "none waits for this one in a collective\n", comm_.rank(), test.test_suite_name(), test.name());
    std::fflush(stderr);
    comm_.abort(1);
  }

 private:
  const minitrain::train::Communicator& comm_;
};

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  const minitrain::train::Communicator& comm = minitrain::distributed::world();  // initialises MPI
  // gtest owns the listener. Its OnTestEnd runs before the printer's (gtest calls the end events in
  // reverse order), hence the line naming the test above.
  ::testing::UnitTest::GetInstance()->listeners().Append(new AbortJobOnFailure(comm));
  return RUN_ALL_TESTS();
}
