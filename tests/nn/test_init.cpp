// uniform_ and normal_ draw into the tensor itself: the same bits as the composed forms they replace
// (rand, mul, add; normal), the same number of draws, and no temporary buffer.
#include <minitrain/core/factory.h>
#include <minitrain/core/ops.h>
#include <minitrain/nn/init.h>

#include <gtest/gtest.h>

#include <cstring>

using namespace minitrain;

namespace {

bool same_bits(const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype() || a.shape() != b.shape()) return false;
  const std::vector<double> x = a.to_vector<double>(), y = b.to_vector<double>();
  return std::memcmp(x.data(), y.data(), x.size() * sizeof(double)) == 0;
}

}  // namespace

TEST(Init, InPlaceDrawsEqualTheComposedFormsBitForBit) {
  for (DType dtype : {DType::Float32, DType::Float64}) {
    Generator a(11), b(11);
    Tensor t = empty({37, 13}, dtype);
    nn::uniform_(t, -0.31, 0.77, a);
    const Tensor expected = add(mul(rand({37, 13}, b, dtype), 0.77 - -0.31), -0.31);
    EXPECT_TRUE(same_bits(t, expected)) << dtype_name(dtype);
    nn::normal_(t, 0.25, 0.02, a);
    EXPECT_TRUE(same_bits(t, normal({37, 13}, 0.25, 0.02, b, dtype))) << dtype_name(dtype);
    EXPECT_EQ(a.state(), b.state()) << "a different number of draws";
  }
}

TEST(Init, InPlaceDrawsNeedNoTemporaryBuffer) {
  Tensor t = empty({256, 64}, DType::Float32);
  Generator gen(3);
  release_cached_storage();
  nn::uniform_(t, -1.0, 1.0, gen);
  nn::normal_(t, 0.0, 0.02, gen);
  EXPECT_EQ(cached_storage_bytes(), 0) << "a temporary was allocated and freed into the pool";
}

TEST(Init, FillFunctionsRefuseWhatTheyCannotFill) {
  Generator gen(1);
  Tensor ids = zeros({3}, DType::Int64);
  EXPECT_THROW(fill_rand_(ids, gen), std::invalid_argument);
  Tensor view = zeros({3, 2}).transpose(0, 1);
  EXPECT_THROW(fill_normal_(view, 0.0, 1.0, gen), std::invalid_argument);
  nn::normal_(view, 0.0, 1.0, gen);  // the initialiser falls back to the composed path for views
  EXPECT_NE(view.to_vector<float>(), std::vector<float>(6, 0.0f));
}
