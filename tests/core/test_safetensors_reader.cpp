// SafeTensorsReader: the same validation as load_safetensors, then tensors read one at a time into
// buffers the caller owns (converted a chunk at a time), with one clear error per misuse.
#include <minitrain/core/factory.h>
#include <minitrain/core/safetensors.h>

#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

using namespace minitrain;
namespace fs = std::filesystem;

namespace {

std::string le64(uint64_t v) {
  std::string out;
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
  return out;
}

template <class T>
std::string raw_bytes(const std::vector<T>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
}

std::string entry(const std::string& name, const std::string& dtype, const std::string& shape, uint64_t begin,
                  uint64_t end) {
  return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":[" +
         std::to_string(begin) + "," + std::to_string(end) + "]}";
}

SafeTensorsReader reader_of(const std::string& bytes) {
  return SafeTensorsReader(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "mem.safetensors");
}

// Runs f and returns the message of the exception of type E it throws ("" and a test failure otherwise).
template <class E, class F>
std::string message_of(F f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "threw another kind of exception: " << e.what();
    return "";
  }
  ADD_FAILURE() << "no exception";
  return "";
}

// More elements than the reader converts per chunk (2^16), so a conversion crosses chunk boundaries.
constexpr int64_t kLong = (int64_t{1} << 16) * 2 + 1234;

// Normal half-precision numbers built from their fields, so the expected value is known without the
// reader's own conversion: F16 1.m x 2^e with a 10-bit m, BF16 with a 7-bit m. The exponent changes every
// 2^mantissa_bits elements with a period that is not a divisor of the chunk size, so a chunk read from the
// wrong offset gives other values.
struct HalfCase {
  std::vector<uint16_t> bits;
  std::vector<double> values;
};
HalfCase half_case(int64_t n, bool bfloat) {
  const int mantissa_bits = bfloat ? 7 : 10, bias = bfloat ? 127 : 15, exponents = bfloat ? 60 : 29;
  HalfCase c;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t m = i % (int64_t{1} << mantissa_bits);
    const int e = static_cast<int>((i >> mantissa_bits) % exponents) - exponents / 2;
    const bool negative = i % 3 == 0;
    c.bits.push_back(static_cast<uint16_t>((negative ? 0x8000 : 0) | ((e + bias) << mantissa_bits) | m));
    const double v = std::ldexp(1.0 + std::ldexp(static_cast<double>(m), -mantissa_bits), e);
    c.values.push_back(negative ? -v : v);
  }
  return c;
}

class ReaderFile : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "minitrain_reader_XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  fs::path dir_;
};

}  // namespace

TEST_F(ReaderFile, EveryTensorEqualsWhatLoadSafetensorsGives) {
  std::map<std::string, Tensor> tensors;
  tensors["w"] = from_vector(std::vector<float>{1.5f, -2.0f, 3.25f, 0.0f, -0.0f, 7.0f}, {2, 3});
  tensors["d"] = from_vector(std::vector<double>{0.1, -1e300}, {2});
  tensors["ids"] = from_vector(std::vector<int64_t>{-5, int64_t{1} << 62, 0}, {3});
  tensors["mask"] = from_vector(std::vector<bool>{true, false, true, true}, {2, 2});
  tensors["empty"] = zeros({0, 4}, DType::Float32);
  const std::string path = (dir_ / "m.safetensors").string();
  save_safetensors(path, tensors, {{"format", "pt"}, {"k", "v"}});

  const SafeTensors loaded = load_safetensors(path);
  const SafeTensorsReader reader(path);
  EXPECT_EQ(reader.source(), path);
  EXPECT_EQ(reader.metadata(), loaded.metadata);
  ASSERT_EQ(reader.tensors().size(), loaded.tensors.size());
  EXPECT_EQ(reader.tensors().at("w").dtype, "F32");
  EXPECT_EQ(reader.tensors().at("w").shape, (Shape{2, 3}));
  EXPECT_EQ(reader.tensors().at("mask").dtype, "BOOL");
  EXPECT_TRUE(reader.contains("ids"));
  EXPECT_FALSE(reader.contains("nope"));
  for (const auto& [name, t] : loaded.tensors) {
    const Tensor got = reader.read(name);
    EXPECT_EQ(got.dtype(), t.dtype()) << name;
    EXPECT_EQ(got.shape(), t.shape()) << name;
    if (t.dtype() == DType::Int64)
      EXPECT_EQ(got.to_vector<int64_t>(), t.to_vector<int64_t>()) << name;
    else
      EXPECT_EQ(got.to_vector<double>(), t.to_vector<double>()) << name;
  }
}

TEST_F(ReaderFile, ReadIntoWritesTheCallersBufferInPlaceAndBumpsItsVersion) {
  const std::string path = (dir_ / "m.safetensors").string();
  save_safetensors(path, {{"w", from_vector(std::vector<float>{1, 2, 3, 4, 5, 6}, {3, 2})}});
  const SafeTensorsReader reader(path);
  Tensor param = zeros({3, 2}, DType::Float32);
  const float* storage = param.data<float>();
  const uint64_t version = param.version();
  reader.read_into("w", param);
  EXPECT_EQ(param.data<float>(), storage);  // the same buffer, not a replacement
  EXPECT_GT(param.version(), version);
  EXPECT_EQ(param.to_vector<float>(), (std::vector<float>{1, 2, 3, 4, 5, 6}));
  Tensor wide = zeros({3, 2}, DType::Float64);
  reader.read_into("w", wide);  // F32 -> Float64, exactly
  EXPECT_EQ(wide.to_vector<double>(), (std::vector<double>{1, 2, 3, 4, 5, 6}));
}

TEST(SafeTensorsReader, HalfPrecisionConvertsExactlyAcrossChunkBoundaries) {
  const HalfCase half = half_case(kLong, false), bf16 = half_case(kLong, true);
  const uint64_t n = static_cast<uint64_t>(kLong) * 2;
  const std::string header = "{" + entry("h", "F16", "[" + std::to_string(kLong) + "]", 0, n) + "," +
                             entry("b", "BF16", "[" + std::to_string(kLong) + "]", n, 2 * n) + "}";
  const std::string bytes = le64(header.size()) + header + raw_bytes(half.bits) + raw_bytes(bf16.bits);
  const SafeTensorsReader reader = reader_of(bytes);
  const SafeTensors whole = parse_safetensors(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "m");
  for (const auto& [name, expected] : {std::make_pair("h", half.values), std::make_pair("b", bf16.values)}) {
    Tensor as_float = empty({kLong}, DType::Float32);
    reader.read_into(name, as_float);
    Tensor as_double = empty({kLong}, DType::Float64);
    reader.read_into(name, as_double);
    EXPECT_EQ(as_float.to_vector<double>(), expected) << name;
    EXPECT_EQ(as_double.to_vector<double>(), expected) << name;
    EXPECT_EQ(whole.tensors.at(name).to_vector<double>(), expected) << name;  // load_safetensors' path
  }
}

TEST(SafeTensorsReader, BoolByteThatIsNotZeroOrOneIsNamedByItsElementPastTheFirstChunk) {
  std::string raw(static_cast<std::size_t>(kLong), '\1');
  const int64_t bad = kLong - 10;
  raw[static_cast<std::size_t>(bad)] = '\2';
  const std::string header = "{" + entry("m", "BOOL", "[" + std::to_string(kLong) + "]", 0, kLong) + "}";
  const std::string bytes = le64(header.size()) + header + raw;  // outlives the reader, as it must
  const SafeTensorsReader reader = reader_of(bytes);
  const std::string msg = message_of<std::runtime_error>([&] { reader.read("m"); });
  EXPECT_NE(msg.find("mem.safetensors: tensor 'm': BOOL element " + std::to_string(bad) + " "), std::string::npos)
      << msg;
}

TEST(SafeTensorsReader, DestinationsThatDoNotFitAreRefusedNamingTheTensor) {
  std::map<std::string, Tensor> tensors{{"w", from_vector(std::vector<float>{1, 2, 3, 4, 5, 6}, {2, 3})},
                                        {"ids", from_vector(std::vector<int64_t>{1, 2}, {2})}};
  const std::string bytes = serialize_safetensors(tensors);
  const SafeTensorsReader reader = reader_of(bytes);
  Tensor wrong_shape = zeros({3, 2}, DType::Float32);
  EXPECT_NE(message_of<std::invalid_argument>([&] { reader.read_into("w", wrong_shape); })
                .find("mem.safetensors: tensor 'w': shape [2,3] in the file, but the destination is [3,2]"),
            std::string::npos);
  Tensor strided = zeros({3, 2}, DType::Float32).transpose(0, 1);
  EXPECT_NE(message_of<std::invalid_argument>([&] { reader.read_into("w", strided); }).find("not contiguous"),
            std::string::npos);
  Tensor ints = zeros({2, 3}, DType::Int64);
  EXPECT_NE(message_of<std::invalid_argument>([&] { reader.read_into("w", ints); })
                .find("F32 in the file cannot be read into a int64 tensor"),
            std::string::npos);
  Tensor floats = zeros({2}, DType::Float32);
  EXPECT_NE(message_of<std::invalid_argument>([&] { reader.read_into("ids", floats); })
                .find("I64 in the file cannot be read into a float32 tensor"),
            std::string::npos);
  Tensor undefined;
  EXPECT_NE(message_of<std::invalid_argument>([&] { reader.read_into("w", undefined); }).find("undefined"),
            std::string::npos);
  EXPECT_NE(message_of<std::runtime_error>([&] { reader.read("nope"); })
                .find("mem.safetensors: no tensor 'nope' in the file"),
            std::string::npos);
  // Nothing was written into the refused destinations.
  EXPECT_EQ(wrong_shape.to_vector<float>(), std::vector<float>(6, 0.0f));
}

TEST_F(ReaderFile, HostileFilesAreRefusedWithLoadSafetensorsMessages) {
  // Overlapping tensors: the header validation is the one load_safetensors runs.
  const std::string header = "{" + entry("a", "F32", "[2]", 0, 8) + "," + entry("b", "F32", "[2]", 4, 12) + "}";
  const std::string bytes = le64(header.size()) + header + std::string(12, '\0');
  const std::string path = (dir_ / "evil.safetensors").string();
  std::ofstream(path, std::ios::binary) << bytes;
  std::string load_message;
  try {
    load_safetensors(path);
  } catch (const std::runtime_error& e) {
    load_message = e.what();
  }
  ASSERT_NE(load_message.find("overlap"), std::string::npos) << load_message;
  EXPECT_EQ(message_of<std::runtime_error>([&] { SafeTensorsReader r(path); }), load_message);
  EXPECT_EQ(message_of<std::runtime_error>([&] { SafeTensorsReader r(dir_.string()); }),
            dir_.string() + ": is a directory, not a regular file");
  // A file cut short after the header was validated: the read fails with one line, not garbage.
  const std::string good = serialize_safetensors({{"w", from_vector(std::vector<float>{1, 2, 3, 4}, {4})}});
  const std::string shrinking = (dir_ / "shrinking.safetensors").string();
  std::ofstream(shrinking, std::ios::binary) << good;
  const SafeTensorsReader reader(shrinking);
  fs::resize_file(shrinking, good.size() - 8);
  EXPECT_NE(message_of<std::runtime_error>([&] { reader.read("w"); }).find("file ended early"), std::string::npos);
}

TEST(SafeTensorsReader, ReadRowsIntoReadsOneBlockOfRows) {
  std::vector<float> values(5 * 3);
  for (std::size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>(i) + 0.5f;
  const HalfCase half = half_case(kLong, false);
  const std::string header = "{" + entry("h", "F16", "[" + std::to_string(kLong / 2) + ",2]", 0, kLong * 2) + "}";
  const std::string half_bytes = le64(header.size()) + header + raw_bytes(half.bits);
  const std::string bytes = serialize_safetensors({{"w", from_vector(values, {5, 3})}});
  const SafeTensorsReader reader = reader_of(bytes);
  Tensor rows = zeros({2, 3}, DType::Float32);
  reader.read_rows_into("w", 1, rows);
  EXPECT_EQ(rows.to_vector<float>(), std::vector<float>(values.begin() + 3, values.begin() + 9));
  Tensor last = zeros({1, 3}, DType::Float64);
  reader.read_rows_into("w", 4, last);
  EXPECT_EQ(last.to_vector<double>(), (std::vector<double>{12.5, 13.5, 14.5}));
  // Half precision, a block that starts past the first conversion chunk.
  const SafeTensorsReader half_reader = reader_of(half_bytes);
  const int64_t first = kLong / 2 - 40000;
  Tensor block = zeros({30000, 2}, DType::Float32);
  half_reader.read_rows_into("h", first, block);
  EXPECT_EQ(block.to_vector<double>(),
            std::vector<double>(half.values.begin() + first * 2, half.values.begin() + (first + 30000) * 2));

  Tensor past_end = zeros({2, 3}, DType::Float32);
  EXPECT_NE(message_of<std::invalid_argument>([&] { reader.read_rows_into("w", 4, past_end); })
                .find("mem.safetensors: tensor 'w': rows [4, 6) are outside its 5 rows"),
            std::string::npos);
  Tensor negative = zeros({1, 3}, DType::Float32);
  EXPECT_NE(message_of<std::invalid_argument>([&] { reader.read_rows_into("w", -1, negative); }).find("outside"),
            std::string::npos);
  Tensor wrong_width = zeros({2, 4}, DType::Float32);
  EXPECT_NE(message_of<std::invalid_argument>([&] { reader.read_rows_into("w", 0, wrong_width); })
                .find("shape [2,3] in the file, but the destination is [2,4]"),
            std::string::npos);
  Tensor flat = zeros({3}, DType::Float32);
  EXPECT_NE(message_of<std::invalid_argument>([&] { reader.read_rows_into("w", 0, flat); })
                .find("need a destination of 2 dimensions"),
            std::string::npos);
}
