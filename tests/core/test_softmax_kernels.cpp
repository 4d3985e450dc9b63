// lane_max (core/src/softmax_kernels.h), the shift of every softmax, cross-entropy and attention row: a
// contiguous lane is taken in 16-wide chunks, a masked last chunk and a tree of halvings, which must give
// the largest element for every length and position, never read past the lane, and keep -inf for a fully
// masked lane.
#include "softmax_kernels.h"

#include <gtest/gtest.h>

#include <limits>
#include <vector>

using namespace minitrain;

TEST(LaneMax, LargestElementForEveryLengthAndPosition) {
  std::vector<float> row(80);
  for (int64_t n = 1; n <= 70; ++n) {
    for (int64_t at = 0; at < n; ++at) {
      for (int64_t i = 0; i < 80; ++i) row[i] = -static_cast<float>((i * 7) % 13) - 1.0f;
      row[at] = 0.5f;
      row[n] = 100.0f;  // just past the lane: must not be read
      ASSERT_EQ(lane_max(row.data(), n, 1), 0.5f) << "n = " << n << ", max at " << at;
    }
  }
}

TEST(LaneMax, StridedLanesAndMaskedLanes) {
  const std::vector<double> strided = {1.0, 9.0, 3.0, 9.0, 2.0};
  EXPECT_EQ(lane_max(strided.data(), 3, 2), 3.0);  // 1, 3, 2
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> masked(37, -inf);
  EXPECT_EQ(lane_max(masked.data(), 37, 1), -inf);
  EXPECT_EQ(lane_max(masked.data(), 0, 1), -inf);
  std::vector<float> one_visible(37, -inf);
  one_visible[36] = -3.0f;  // in the masked last chunk
  EXPECT_EQ(lane_max(one_visible.data(), 37, 1), -3.0f);
}
