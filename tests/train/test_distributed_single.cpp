// The data-parallel API on a single process (no mpirun, or minitrain built without MPI): rank 0 of 1,
// collectives return their input, so user code written for N ranks runs unchanged on one.
#include <minitrain/core/factory.h>
#include <minitrain/core/ops.h>
#include <minitrain/distributed/mpi.h>
#include <minitrain/train/distributed.h>

#include <gtest/gtest.h>

#include <limits>

using namespace minitrain;
using namespace minitrain::train;

TEST(DistributedSingleProcess, WorldIsOneRankWithoutMpirun) {
  Communicator& comm = distributed::world();
  EXPECT_EQ(comm.rank(), 0);
  EXPECT_EQ(comm.size(), 1);
  EXPECT_TRUE(comm.is_root());
  EXPECT_FALSE(comm.distributed());
  std::vector<double> v{1.5, 2.5};
  comm.all_reduce_sum(v);
  EXPECT_EQ(v, (std::vector<double>{1.5, 2.5}));
  EXPECT_EQ(comm.all_gather({3.0}), std::vector<double>{3.0});
  comm.barrier();
  Tensor t = ones({3});
  comm.broadcast({t});
  EXPECT_EQ(t.to_vector<float>(), (std::vector<float>{1, 1, 1}));
  EXPECT_THROW(comm.broadcast({t}, 1), std::invalid_argument);
  EXPECT_EQ(threads_per_rank(comm, 2), 2);
  const int ticket = comm.start_all_reduce_sum(v.data(), 2, DType::Float64);
  EXPECT_LT(ticket, 0) << "a single process has nothing to wait for";
  comm.wait(ticket);
  EXPECT_THROW(comm.wait(0), std::logic_error);
}

TEST(DistributedSingleProcess, ShardRowsKeepsTheWholeBatch) {
  SingleProcessCommunicator single;
  Tensor x = from_vector(std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7}, {4, 2});
  EXPECT_EQ(shard_rows(x, single).to_vector<int64_t>(), x.to_vector<int64_t>());
}

TEST(DistributedSingleProcess, AveragerLeavesGradientsAndReportsNonFiniteOnes) {
  SingleProcessCommunicator single;
  Tensor p = zeros({3});
  p.set_requires_grad(true);
  GradientAverager averager(single, {p});
  sum(mul(p, from_vector(std::vector<float>{1, 2, 3}, {3}))).backward();
  EXPECT_TRUE(averager.average());
  EXPECT_EQ(p.grad().to_vector<float>(), (std::vector<float>{1, 2, 3}));
  p.zero_grad();
  sum(mul(p, from_vector(std::vector<float>{1, std::numeric_limits<float>::infinity(), 3}, {3}))).backward();
  EXPECT_FALSE(averager.average());
}
