// safetensors: round trips, the exact byte layout, one test per kind of hostile file, atomic saves.
#include <minitrain/core/factory.h>
#include <minitrain/core/safetensors.h>

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

using namespace minitrain;
namespace fs = std::filesystem;

namespace {

// ------------------------------------------------------------------------------------------------
// Helpers.

std::string le64(uint64_t v) {
  std::string out;
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
  return out;
}

// A file from its header JSON (unpadded, as another writer might leave it) and data section.
std::string make_file(const std::string& header, const std::string& data = "") {
  return le64(header.size()) + header + data;
}

template <class T>
std::string raw_bytes(const std::vector<T>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
}

SafeTensors parse(const std::string& bytes) {
  return parse_safetensors(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(),
                           "evil.safetensors");
}

// Passes when parsing throws std::runtime_error whose message starts with the file name and contains
// every one of `needles`.
::testing::AssertionResult ParseFails(const std::string& bytes, const std::vector<std::string>& needles) {
  try {
    parse(bytes);
  } catch (const std::runtime_error& e) {
    const std::string message = e.what();
    if (message.rfind("evil.safetensors: ", 0) != 0) {
      return ::testing::AssertionFailure() << "message does not start with the file name: " << message;
    }
    for (const std::string& needle : needles) {
      if (message.find(needle) == std::string::npos) {
        return ::testing::AssertionFailure() << "message lacks \"" << needle << "\": " << message;
      }
    }
    return ::testing::AssertionSuccess() << message;
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "threw something other than std::runtime_error: " << e.what();
  }
  return ::testing::AssertionFailure() << "parsed without an error";
}

// Same dtype, shape and bit-identical values.
::testing::AssertionResult SameTensor(const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype()) {
    return ::testing::AssertionFailure() << "dtype " << dtype_name(a.dtype()) << " vs " << dtype_name(b.dtype());
  }
  if (a.shape() != b.shape()) {
    return ::testing::AssertionFailure() << "shape " << shape_str(a.shape()) << " vs " << shape_str(b.shape());
  }
  std::string bytes_a, bytes_b;
  if (a.dtype() == DType::Float32) {
    bytes_a = raw_bytes(a.to_vector<float>());
    bytes_b = raw_bytes(b.to_vector<float>());
  } else {
    bytes_a = raw_bytes(a.to_vector<double>());
    bytes_b = raw_bytes(b.to_vector<double>());
  }
  if (bytes_a != bytes_b) return ::testing::AssertionFailure() << "values differ";
  return ::testing::AssertionSuccess();
}

// Distinct values for every element, with the special values first.
template <class T>
std::vector<T> test_values(int64_t n) {
  std::vector<T> v(static_cast<std::size_t>(n));
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<T>(i) * static_cast<T>(0.37) - 5;
  const T specials[] = {std::numeric_limits<T>::quiet_NaN(), -std::numeric_limits<T>::infinity(),
                        static_cast<T>(-0.0), std::numeric_limits<T>::denorm_min(),
                        std::numeric_limits<T>::max()};
  for (std::size_t i = 0; i < v.size() && i < std::size(specials); ++i) v[i] = specials[i];
  return v;
}

const std::vector<Shape> kShapes = {{}, {0}, {1}, {7}, {2, 3}, {2, 0, 3}, {3, 0}, {1, 1, 1, 1}, {3, 4, 5}};

// A small valid file: "a" F32 [2] = {1, -2}, "b" F64 [] = {0.5}, metadata {"k": "v"}.
std::string tiny_file() {
  std::map<std::string, Tensor> tensors;
  tensors["a"] = from_vector(std::vector<float>{1.0f, -2.0f}, {2});
  tensors["b"] = from_vector(std::vector<double>{0.5}, {});
  return serialize_safetensors(tensors, {{"k", "v"}});
}

std::string entry(const std::string& name, const std::string& dtype, const std::string& shape,
                  uint64_t begin, uint64_t end) {
  return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":[" +
         std::to_string(begin) + "," + std::to_string(end) + "]}";
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_file(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
}

// A fresh directory per test, removed afterwards.
class SafetensorsFile : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "minitrain_safetensors_XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    std::error_code ec;
    fs::permissions(dir_, fs::perms::owner_all, fs::perm_options::add, ec);
    fs::remove_all(dir_, ec);
  }
  // Every file or directory under dir_ whose name contains ".tmp.".
  std::vector<std::string> temp_files() const {
    std::vector<std::string> found;
    for (const auto& e : fs::recursive_directory_iterator(dir_)) {
      if (e.path().filename().string().find(".tmp.") != std::string::npos) found.push_back(e.path().string());
    }
    return found;
  }
  fs::path dir_;
};

// ------------------------------------------------------------------------------------------------
// Round trips and layout.

TEST_F(SafetensorsFile, RoundTripFloat32AllShapes) {
  std::map<std::string, Tensor> tensors;
  for (std::size_t i = 0; i < kShapes.size(); ++i) {
    tensors["t" + std::to_string(i)] = from_vector(test_values<float>(shape_numel(kShapes[i])), kShapes[i]);
  }
  const std::string path = (dir_ / "f32.safetensors").string();
  save_safetensors(path, tensors);
  SafeTensors loaded = load_safetensors(path);
  ASSERT_EQ(loaded.tensors.size(), tensors.size());
  for (const auto& [name, t] : tensors) {
    ASSERT_EQ(loaded.tensors.count(name), 1u) << name;
    EXPECT_TRUE(SameTensor(loaded.tensors.at(name), t)) << name;
  }
  EXPECT_TRUE(loaded.metadata.empty());
  EXPECT_TRUE(temp_files().empty());
}

TEST_F(SafetensorsFile, RoundTripFloat64AllShapesMixedWithFloat32) {
  std::map<std::string, Tensor> tensors;
  for (std::size_t i = 0; i < kShapes.size(); ++i) {
    tensors["d" + std::to_string(i)] = from_vector(test_values<double>(shape_numel(kShapes[i])), kShapes[i]);
  }
  tensors["odd.f32"] = from_vector(test_values<float>(3), {3});  // 12 bytes: F64 data must not follow it
  const std::string path = (dir_ / "f64.safetensors").string();
  save_safetensors(path, tensors);
  SafeTensors loaded = load_safetensors(path);
  ASSERT_EQ(loaded.tensors.size(), tensors.size());
  for (const auto& [name, t] : tensors) {
    ASSERT_EQ(loaded.tensors.count(name), 1u) << name;
    EXPECT_TRUE(SameTensor(loaded.tensors.at(name), t)) << name;
  }
}

TEST(Safetensors, RoundTripNonContiguousViews) {
  Tensor base = from_vector(test_values<float>(12), {3, 4});
  std::map<std::string, Tensor> tensors;
  tensors["transposed"] = base.transpose(0, 1);
  tensors["sliced"] = base.slice(1, 1, 3);
  tensors["expanded"] = from_vector(std::vector<double>{1, 2, 3}, {1, 3}).expand({2, 3});
  ASSERT_FALSE(tensors["transposed"].is_contiguous());
  ASSERT_FALSE(tensors["sliced"].is_contiguous());
  const std::string bytes = serialize_safetensors(tensors, {});
  SafeTensors loaded = parse(bytes);
  for (const auto& [name, t] : tensors) EXPECT_TRUE(SameTensor(loaded.tensors.at(name), t)) << name;
  EXPECT_EQ(loaded.tensors.at("transposed").shape(), (Shape{4, 3}));
  EXPECT_EQ(loaded.tensors.at("transposed").at({3, 2}), base.at({2, 3}));
  EXPECT_EQ(loaded.tensors.at("sliced").at({2, 1}), base.at({2, 2}));
}

TEST(Safetensors, MetadataRoundTrip) {
  const std::map<std::string, std::string> metadata = {
      {"format", "pt"},
      {"empty", ""},
      {"quotes \" and \\ and \n newline", "tab\tcontrol\x01 end"},
      {"unicode", "\xc3\xa9t\xc3\xa9 \xe6\xa8\xa1\xe5\x9e\x8b"},
      {"__metadata__", "a key like the reserved one is fine inside metadata"}};
  std::map<std::string, Tensor> tensors;
  tensors["w"] = ones({2});
  SafeTensors loaded = parse(serialize_safetensors(tensors, metadata));
  EXPECT_EQ(loaded.metadata, metadata);
  EXPECT_EQ(loaded.tensors.size(), 1u);
}

TEST(Safetensors, EmptyFileRoundTrip) {
  const std::string bytes = serialize_safetensors({}, {});
  EXPECT_EQ(bytes, le64(8) + "{}      ");
  SafeTensors loaded = parse(bytes);
  EXPECT_TRUE(loaded.tensors.empty());
  EXPECT_TRUE(loaded.metadata.empty());
}

TEST_F(SafetensorsFile, OutputIsDeterministic) {
  std::map<std::string, Tensor> first, second;
  first["z"] = from_vector(test_values<float>(6), {2, 3});
  first["a"] = from_vector(test_values<double>(2), {2});
  second["a"] = from_vector(test_values<double>(2), {2});  // inserted in another order
  second["z"] = from_vector(test_values<float>(6), {2, 3}).transpose(0, 1).contiguous().transpose(0, 1);
  const std::map<std::string, std::string> metadata = {{"b", "2"}, {"a", "1"}};
  const std::string bytes = serialize_safetensors(first, metadata);
  EXPECT_EQ(serialize_safetensors(first, metadata), bytes);
  EXPECT_EQ(serialize_safetensors(second, metadata), bytes);
  save_safetensors((dir_ / "one.safetensors").string(), first, metadata);
  save_safetensors((dir_ / "two.safetensors").string(), second, metadata);
  EXPECT_EQ(read_file(dir_ / "one.safetensors"), bytes);
  EXPECT_EQ(read_file(dir_ / "two.safetensors"), bytes);
}

// Computed by hand: the header is 132 bytes of JSON plus 4 spaces (136 = 0x88). The F64 tensor "b"
// is stored first so that it is 8-byte aligned, then the F32 tensor "a".
TEST(Safetensors, ByteExactLayout) {
  const std::string bytes = tiny_file();
  const std::string json =
      "{\"__metadata__\":{\"k\":\"v\"},"
      "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]},"
      "\"b\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[0,8]}}";
  ASSERT_EQ(json.size(), 132u);
  const std::string prefix("\x88\0\0\0\0\0\0\0", 8);
  const std::string data("\0\0\0\0\0\0\xe0\x3f"   // 0.5 as a little-endian double
                         "\0\0\x80\x3f"           // 1.0f
                         "\0\0\0\xc0",            // -2.0f
                         16);
  ASSERT_EQ(bytes.size(), 8u + 136u + 16u);
  EXPECT_EQ(bytes.substr(0, 8), prefix);
  EXPECT_EQ(bytes.substr(8, 136), json + "    ");
  EXPECT_EQ(bytes.substr(144), data);
}

TEST(Safetensors, WriterRejectsTensorsItCannotStore) {
  std::map<std::string, Tensor> reserved;
  reserved["__metadata__"] = ones({1});
  EXPECT_THROW(serialize_safetensors(reserved, {}), std::invalid_argument);

  std::map<std::string, Tensor> undefined;
  undefined["missing"] = Tensor();
  try {
    serialize_safetensors(undefined, {});
    ADD_FAILURE() << "an undefined tensor was serialized";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("'missing'"), std::string::npos) << e.what();
  }

  std::map<std::string, Tensor> bad_utf8;
  bad_utf8["bad\xff"] = ones({1});
  EXPECT_THROW(serialize_safetensors(bad_utf8, {}), std::invalid_argument);
  EXPECT_THROW(serialize_safetensors({}, {{"k", "\xc3"}}), std::invalid_argument);
}

// ------------------------------------------------------------------------------------------------
// Files from other writers.

TEST(Safetensors, ReadsUnpaddedHeaderWithAnyFieldAndDataOrder) {
  // Keys in another order, "b" stored before "a", header not padded, fields reordered.
  const std::string header =
      "{\"b\":{\"data_offsets\":[0,8],\"shape\":[2],\"dtype\":\"F32\"},"
      "\"a\":{\"shape\":[1],\"dtype\":\"F64\",\"data_offsets\":[8,16]},"
      "\"__metadata__\":{\"format\":\"pt\"}}";
  const std::string file = make_file(header, raw_bytes(std::vector<float>{3, 4}) + raw_bytes(std::vector<double>{-1}));
  SafeTensors st = parse(file);
  ASSERT_EQ(st.tensors.size(), 2u);
  EXPECT_EQ(st.tensors.at("b").to_vector<float>(), (std::vector<float>{3, 4}));
  EXPECT_EQ(st.tensors.at("a").dtype(), DType::Float64);
  EXPECT_EQ(st.tensors.at("a").to_vector<double>(), (std::vector<double>{-1}));
  EXPECT_EQ(st.metadata.at("format"), "pt");
}

TEST(Safetensors, ReadsHeaderPaddedWithSpacesAndWhitespace) {
  const std::string header = " {\n \"x\" : {\"dtype\":\"F32\", \"shape\":[ 1 ], \"data_offsets\":[0, 4]}\n}   ";
  // A leading space is not a '{': the reference implementation rejects it too.
  EXPECT_TRUE(ParseFails(make_file(header, raw_bytes(std::vector<float>{7})), {"JSON object"}));
  SafeTensors st = parse(make_file(header.substr(1), raw_bytes(std::vector<float>{7})));
  EXPECT_EQ(st.tensors.at("x").to_vector<float>(), (std::vector<float>{7}));
}

TEST(Safetensors, ReadsF16AndBF16AsFloat32) {
  // F16: 1, -2, 65504 (max), 2^-24 (smallest subnormal), -0, inf, nan.
  const std::vector<uint16_t> half = {0x3C00, 0xC000, 0x7BFF, 0x0001, 0x8000, 0x7C00, 0x7E00};
  // BF16: 1, -2, 3.140625, 1e38-ish, -inf.
  const std::vector<uint16_t> bf16 = {0x3F80, 0xC000, 0x4049, 0x7E96, 0xFF80};
  const std::string header = "{" + entry("h", "F16", "[7]", 0, 14) + "," + entry("b", "BF16", "[5]", 14, 24) + "}";
  SafeTensors st = parse(make_file(header, raw_bytes(half) + raw_bytes(bf16)));
  const Tensor& h = st.tensors.at("h");
  EXPECT_EQ(h.dtype(), DType::Float32);
  const std::vector<float> hv = h.to_vector<float>();
  EXPECT_EQ(hv[0], 1.0f);
  EXPECT_EQ(hv[1], -2.0f);
  EXPECT_EQ(hv[2], 65504.0f);
  EXPECT_EQ(hv[3], std::ldexp(1.0f, -24));
  EXPECT_EQ(hv[4], 0.0f);
  EXPECT_TRUE(std::signbit(hv[4]));
  EXPECT_EQ(hv[5], std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(hv[6]));
  const std::vector<float> bv = st.tensors.at("b").to_vector<float>();
  EXPECT_EQ(bv[0], 1.0f);
  EXPECT_EQ(bv[1], -2.0f);
  EXPECT_EQ(bv[2], 3.140625f);
  uint32_t bits = 0x7E960000u;
  float expected = 0;
  std::memcpy(&expected, &bits, 4);
  EXPECT_EQ(bv[3], expected);
  EXPECT_EQ(bv[4], -std::numeric_limits<float>::infinity());
}

TEST(Safetensors, ReadsZeroSizeTensorsAnywhereOnTheTiling) {
  const std::string header = "{" + entry("e0", "F32", "[0]", 0, 0) + "," + entry("x", "F32", "[1]", 0, 4) +
                             "," + entry("e1", "F64", "[2,0,5]", 4, 4) + "}";
  SafeTensors st = parse(make_file(header, raw_bytes(std::vector<float>{1})));
  EXPECT_EQ(st.tensors.at("e1").shape(), (Shape{2, 0, 5}));
  EXPECT_EQ(st.tensors.at("e1").dtype(), DType::Float64);
  EXPECT_EQ(st.tensors.at("e0").numel(), 0);
  EXPECT_TRUE(parse(make_file("{}")).tensors.empty());
}

// ------------------------------------------------------------------------------------------------
// Hostile files: each must throw std::runtime_error naming the file, the tensor and the problem.

TEST(SafetensorsHostile, FileShorterThanLengthPrefix) {
  EXPECT_TRUE(ParseFails("", {"too small", "0 bytes"}));
  EXPECT_TRUE(ParseFails(std::string("\x02\0\0", 3), {"too small", "3 bytes"}));
  EXPECT_TRUE(ParseFails(std::string(7, '\0'), {"too small"}));
  EXPECT_THROW(parse_safetensors(nullptr, 0, "null"), std::runtime_error);
}

TEST(SafetensorsHostile, HeaderLengthBeyondFile) {
  EXPECT_TRUE(ParseFails(le64(1000) + "{}", {"header length 1000", "exceeds the file size (10 bytes)"}));
  EXPECT_TRUE(ParseFails(le64(3) + "{}", {"header length 3", "exceeds the file size"}));
  EXPECT_TRUE(ParseFails(le64(1), {"header length 1", "exceeds the file size"}));
}

TEST(SafetensorsHostile, AbsurdHeaderLength) {
  EXPECT_TRUE(ParseFails(le64(100'000'001) + "{}", {"header length 100000001", "limit"}));
  EXPECT_TRUE(ParseFails(le64(std::numeric_limits<uint64_t>::max()) + "{}", {"header length", "limit"}));
  EXPECT_TRUE(ParseFails(le64(uint64_t{1} << 63) + "{}", {"limit"}));
}

TEST(SafetensorsHostile, MalformedJson) {
  const std::vector<std::string> headers = {"{",  "{\"a\"", "{\"a\":}", "{\"a\":{\"dtype\":F32}}",
                                            "{} trailing", "{}{}", "{/*comment*/}",
                                            std::string("{\0}", 3), "{'a':1}"};
  for (const std::string& header : headers) {
    EXPECT_TRUE(ParseFails(make_file(header), {"header is not valid JSON"})) << header;
  }
  EXPECT_TRUE(ParseFails(make_file(""), {"not a JSON object"}));
}

TEST(SafetensorsHostile, HeaderThatIsNotAnObject) {
  for (const std::string header : {"[1,2]", "\"str\"", "42", "null", "true", "\xef\xbb\xbf{}"}) {
    EXPECT_TRUE(ParseFails(make_file(header), {"not a JSON object"})) << header;
  }
}

TEST(SafetensorsHostile, InvalidUtf8InHeader) {
  EXPECT_TRUE(ParseFails(make_file("{\"w\xff\":{}}"), {"not valid JSON"}));
  EXPECT_TRUE(ParseFails(make_file("{\"__metadata__\":{\"k\":\"\xc3\"}}"), {"not valid JSON"}));
}

TEST(SafetensorsHostile, DuplicateTensorNames) {
  const std::string header = "{" + entry("w", "F32", "[1]", 0, 4) + "," + entry("w", "F32", "[1]", 4, 8) + "}";
  EXPECT_TRUE(ParseFails(make_file(header, std::string(8, '\0')), {"duplicate tensor name 'w'"}));
}

TEST(SafetensorsHostile, DuplicateFields) {
  EXPECT_TRUE(ParseFails(
      make_file("{\"w\":{\"dtype\":\"F32\",\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,4]}}",
                std::string(4, '\0')),
      {"tensor 'w'", "duplicate key 'dtype'"}));
  EXPECT_TRUE(ParseFails(make_file("{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}"),
                         {"__metadata__", "duplicate key 'k'"}));
}

TEST(SafetensorsHostile, DeepNesting) {
  const std::string deep = "{\"w\":" + std::string(100000, '[') + std::string(100000, ']') + "}";
  EXPECT_TRUE(ParseFails(make_file(deep), {"nested more than"}));
}

TEST(SafetensorsHostile, EntryThatIsNotAnObject) {
  EXPECT_TRUE(ParseFails(make_file("{\"w\":3}"), {"tensor 'w'", "must be an object", "got 3"}));
  EXPECT_TRUE(ParseFails(make_file("{\"w\":[]}"), {"tensor 'w'", "must be an object", "got array"}));
  EXPECT_TRUE(ParseFails(make_file("{\"w\":null}"), {"tensor 'w'", "must be an object", "got null"}));
}

TEST(SafetensorsHostile, MissingFields) {
  EXPECT_TRUE(ParseFails(make_file("{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", std::string(4, '\0')),
                         {"tensor 'w'", "missing field 'dtype'"}));
  EXPECT_TRUE(ParseFails(make_file("{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", std::string(4, '\0')),
                         {"tensor 'w'", "missing field 'shape'"}));
  EXPECT_TRUE(ParseFails(make_file("{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", std::string(4, '\0')),
                         {"tensor 'w'", "missing field 'data_offsets'"}));
  EXPECT_TRUE(ParseFails(make_file("{\"w\":{}}"), {"tensor 'w'", "missing field"}));
}

TEST(SafetensorsHostile, ExtraField) {
  EXPECT_TRUE(ParseFails(
      make_file("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"stride\":[1]}}",
                std::string(4, '\0')),
      {"tensor 'w'", "unexpected field 'stride'"}));
}

TEST(SafetensorsHostile, DtypeThatIsNotAString) {
  EXPECT_TRUE(ParseFails(make_file("{\"w\":{\"dtype\":32,\"shape\":[1],\"data_offsets\":[0,4]}}", std::string(4, '\0')),
                         {"tensor 'w'", "dtype must be a string", "got 32"}));
  EXPECT_TRUE(ParseFails(make_file("{\"w\":{\"dtype\":[\"F32\"],\"shape\":[1],\"data_offsets\":[0,4]}}", std::string(4, '\0')),
                         {"tensor 'w'", "dtype must be a string", "got array"}));
}

TEST(SafetensorsHostile, UnknownDtype) {
  EXPECT_TRUE(ParseFails(make_file("{" + entry("w", "F33", "[1]", 0, 4) + "}", std::string(4, '\0')),
                         {"tensor 'w'", "unknown dtype 'F33'"}));
  EXPECT_TRUE(ParseFails(make_file("{" + entry("w", "f32", "[1]", 0, 4) + "}", std::string(4, '\0')),
                         {"tensor 'w'", "unknown dtype 'f32'"}));
}

TEST(SafetensorsHostile, UnsupportedDtype) {
  for (const std::string dtype : {"I32", "U8", "U64", "F8_E4M3"}) {
    EXPECT_TRUE(ParseFails(make_file("{" + entry("ids", dtype, "[1]", 0, 8) + "}", std::string(8, '\0')),
                           {"tensor 'ids'", "dtype '" + dtype + "' is not supported"}));
  }
}

// I64 and BOOL hold token ids and masks; every int64 value survives, and a BOOL byte that is neither 0
// nor 1 (not a bool: reading it as one is undefined) is refused naming the tensor and its offset.
TEST(SafetensorsIntegerDtypes, Int64AndBoolRoundTripExactly) {
  const int64_t big = std::numeric_limits<int64_t>::max();
  const Tensor ids = from_vector(std::vector<int64_t>{big, -big - 1, 0, 9007199254740993}, {2, 2});
  const Tensor mask = from_vector(std::vector<bool>{true, false, false, true, true}, {5});
  const SafeTensors back = parse(serialize_safetensors({{"ids", ids}, {"mask", mask}}));
  ASSERT_EQ(back.tensors.at("ids").dtype(), DType::Int64);
  EXPECT_EQ(back.tensors.at("ids").shape(), (Shape{2, 2}));
  EXPECT_EQ(back.tensors.at("ids").to_vector<int64_t>(), ids.to_vector<int64_t>());
  ASSERT_EQ(back.tensors.at("mask").dtype(), DType::Bool);
  EXPECT_EQ(back.tensors.at("mask").to_vector<bool>(), mask.to_vector<bool>());
  const std::string header = serialize_safetensors({{"ids", ids}}).substr(8, 60);
  EXPECT_NE(header.find("\"dtype\":\"I64\""), std::string::npos) << header;
}

TEST(SafetensorsHostile, BoolByteThatIsNotZeroOrOne) {
  EXPECT_TRUE(ParseFails(make_file("{" + entry("mask", "BOOL", "[4]", 0, 4) + "}", std::string("\x01\x00\x02\x01", 4)),
                         {"tensor 'mask'", "BOOL element 2", "data offset 2", "byte 2", "not 0 or 1"}));
}

TEST(SafetensorsHostile, ShapeThatIsNotAnArray) {
  EXPECT_TRUE(ParseFails(make_file("{" + entry("w", "F32", "3", 0, 12) + "}", std::string(12, '\0')),
                         {"tensor 'w'", "shape must be an array", "got 3"}));
  EXPECT_TRUE(ParseFails(make_file("{" + entry("w", "F32", "{\"0\":3}", 0, 12) + "}", std::string(12, '\0')),
                         {"tensor 'w'", "shape must be an array", "got object"}));
}

TEST(SafetensorsHostile, NegativeShapeEntry) {
  EXPECT_TRUE(ParseFails(make_file("{" + entry("w", "F32", "[-1,3]", 0, 12) + "}", std::string(12, '\0')),
                         {"tensor 'w'", "shape[0] = -1"}));
}

TEST(SafetensorsHostile, NonIntegerShapeEntries) {
  for (const std::string bad : {"2.5", "3.0", "1e2", "\"3\"", "true", "null", "[1]", "{}"}) {
    EXPECT_TRUE(ParseFails(make_file("{" + entry("w", "F32", "[1," + bad + "]", 0, 12) + "}", std::string(12, '\0')),
                           {"tensor 'w'", "shape[1] = ", "not a non-negative int64"}))
        << bad;
  }
}

TEST(SafetensorsHostile, ShapeEntryBeyondInt64) {
  EXPECT_TRUE(ParseFails(make_file("{" + entry("w", "F32", "[9223372036854775808]", 0, 4) + "}", std::string(4, '\0')),
                         {"tensor 'w'", "shape[0] = 9223372036854775808"}));
  EXPECT_TRUE(ParseFails(make_file("{" + entry("w", "F32", "[99999999999999999999999]", 0, 4) + "}", std::string(4, '\0')),
                         {"tensor 'w'", "shape[0]"}));
}

TEST(SafetensorsHostile, ElementCountOverflow) {
  // 2^32 * 2^32 = 2^64 elements.
  EXPECT_TRUE(ParseFails(make_file("{" + entry("w", "F32", "[4294967296,4294967296]", 0, 4) + "}", std::string(4, '\0')),
                         {"tensor 'w'", "shape [4294967296,4294967296] of F32 is too large"}));
  // Zero elements, but the strides of such a tensor would still overflow.
  EXPECT_TRUE(ParseFails(make_file("{" + entry("w", "F32", "[0,4611686018427387904,4]", 0, 0) + "}"),
                         {"tensor 'w'", "too large"}));
}

TEST(SafetensorsHostile, ByteCountOverflow) {
  // 2^62 elements fit in int64; 2^64 bytes of F32 do not.
  EXPECT_TRUE(ParseFails(make_file("{" + entry("w", "F32", "[4611686018427387904]", 0, 4) + "}", std::string(4, '\0')),
                         {"tensor 'w'", "too large"}));
  // 2^61 F32 elements = 2^63 bytes: one past int64.
  EXPECT_TRUE(ParseFails(make_file("{" + entry("w", "F32", "[2305843009213693952]", 0, 4) + "}", std::string(4, '\0')),
                         {"tensor 'w'", "too large"}));
}

TEST(SafetensorsHostile, TooManyDims) {
  std::string shape = "[1";
  for (int i = 0; i < 64; ++i) shape += ",1";
  shape += "]";
  EXPECT_TRUE(ParseFails(make_file("{" + entry("w", "F32", shape, 0, 4) + "}", std::string(4, '\0')),
                         {"tensor 'w'", "65 dimensions"}));
}

TEST(SafetensorsHostile, MalformedDataOffsets) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"[0]", "an array of 1 elements"},
      {"[0,4,8]", "an array of 3 elements"},
      {"[]", "an array of 0 elements"},
      {"\"0-4\"", "got string '0-4'"},
      {"{\"begin\":0}", "got object"},
      {"[0,\"4\"]", "got [0, string '4']"},
      {"[-4,0]", "got [-4, 0]"},
      {"[0,4.0]", "got [0, 4.0]"},
      {"[0,null]", "got [0, null]"},
  };
  for (const auto& [offsets, got] : cases) {
    const std::string header = "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":" + offsets + "}}";
    EXPECT_TRUE(ParseFails(make_file(header, std::string(4, '\0')),
                           {"tensor 'w'", "data_offsets must be [begin, end]", got}))
        << offsets;
  }
}

TEST(SafetensorsHostile, ReversedDataOffsets) {
  EXPECT_TRUE(ParseFails(make_file("{" + entry("w", "F32", "[1]", 8, 4) + "}", std::string(8, '\0')),
                         {"tensor 'w'", "data_offsets [8, 4] have begin > end"}));
}

TEST(SafetensorsHostile, DataOffsetsThatDoNotMatchShape) {
  try {
    parse(make_file("{" + entry("wte.weight", "F32", "[3,4]", 0, 100) + "}", std::string(100, '\0')));
    ADD_FAILURE() << "parsed";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(),
                 "evil.safetensors: tensor 'wte.weight': data_offsets [0, 100] do not match shape [3,4] "
                 "of F32 (48 bytes)");
  }
  EXPECT_TRUE(ParseFails(make_file("{" + entry("w", "F64", "[2]", 0, 8) + "}", std::string(8, '\0')),
                         {"tensor 'w'", "do not match shape [2] of F64 (16 bytes)"}));
  EXPECT_TRUE(ParseFails(make_file("{" + entry("s", "F32", "[]", 0, 0) + "}"),
                         {"tensor 's'", "do not match shape [] of F32 (4 bytes)"}));
}

TEST(SafetensorsHostile, DataOffsetsOutsideDataSection) {
  EXPECT_TRUE(ParseFails(make_file("{" + entry("w", "F32", "[12]", 1000, 1048) + "}", std::string(48, '\0')),
                         {"tensor 'w'", "data_offsets [1000, 1048] extend past the end of the data section (48 bytes"}));
  EXPECT_TRUE(ParseFails(make_file("{" + entry("w", "F32", "[1]", 18446744073709551611ull, 18446744073709551615ull) + "}",
                                   std::string(4, '\0')),
                         {"tensor 'w'", "past the end of the data section"}));
}

TEST(SafetensorsHostile, TruncatedDataSection) {
  const std::string file = tiny_file();
  const std::size_t data_start = 8 + 136;
  ASSERT_EQ(file.size(), data_start + 16);
  // Every prefix of a valid file is rejected; cuts inside the data section name the tensor cut off.
  for (std::size_t size = 0; size < file.size(); ++size) {
    if (size >= data_start + 8) {
      EXPECT_TRUE(ParseFails(file.substr(0, size), {"tensor 'a'", "past the end of the data section"})) << size;
    } else if (size > data_start) {
      // Both tensors end beyond the cut; the first reported is 'a' (tensors are checked by name).
      EXPECT_TRUE(ParseFails(file.substr(0, size), {"past the end of the data section"})) << size;
    } else {
      EXPECT_TRUE(ParseFails(file.substr(0, size), {})) << size;
    }
  }
  EXPECT_NO_THROW(parse(file));
}

TEST(SafetensorsHostile, OverlappingTensors) {
  const std::string header = "{" + entry("a", "F32", "[4]", 0, 16) + "," + entry("b", "F32", "[4]", 8, 24) + "}";
  EXPECT_TRUE(ParseFails(make_file(header, std::string(24, '\0')),
                         {"tensor 'b'", "data_offsets [8, 24] overlap tensor 'a' at [0, 16]"}));
  // The same bytes used twice.
  const std::string same = "{" + entry("a", "F32", "[2]", 0, 8) + "," + entry("b", "F32", "[2]", 0, 8) + "}";
  EXPECT_TRUE(ParseFails(make_file(same, std::string(8, '\0')), {"tensor 'b'", "overlap tensor 'a'"}));
  // A zero-size tensor inside another one.
  const std::string inside = "{" + entry("a", "F32", "[2]", 0, 8) + "," + entry("z", "F32", "[0]", 4, 4) + "}";
  EXPECT_TRUE(ParseFails(make_file(inside, std::string(8, '\0')), {"tensor 'z'", "overlap tensor 'a'"}));
}

TEST(SafetensorsHostile, GapBetweenTensors) {
  const std::string header = "{" + entry("a", "F32", "[2]", 0, 8) + "," + entry("b", "F32", "[2]", 16, 24) + "}";
  EXPECT_TRUE(ParseFails(make_file(header, std::string(24, '\0')),
                         {"tensor 'b'", "leave a gap of 8 bytes after tensor 'a'"}));
  const std::string leading = "{" + entry("a", "F32", "[1]", 4, 8) + "}";
  EXPECT_TRUE(ParseFails(make_file(leading, std::string(8, '\0')),
                         {"tensor 'a'", "gap of 4 bytes after the start of the data section"}));
}

TEST(SafetensorsHostile, TrailingBytes) {
  EXPECT_TRUE(ParseFails(tiny_file() + "x", {"1 trailing bytes"}));
  EXPECT_TRUE(ParseFails(make_file("{}", "abc"), {"3 trailing bytes"}));
}

TEST(SafetensorsHostile, MetadataThatIsNotAnObject) {
  EXPECT_TRUE(ParseFails(make_file("{\"__metadata__\":[\"a\"]}"), {"__metadata__ must be an object", "got array"}));
  EXPECT_TRUE(ParseFails(make_file("{\"__metadata__\":\"a\"}"), {"__metadata__ must be an object"}));
  EXPECT_TRUE(ParseFails(make_file("{\"__metadata__\":null}"), {"__metadata__ must be an object"}));
}

TEST(SafetensorsHostile, NonStringMetadataValue) {
  EXPECT_TRUE(ParseFails(make_file("{\"__metadata__\":{\"ok\":\"1\",\"step\":1000}}"),
                         {"__metadata__", "'step'", "must be a string", "got 1000"}));
  EXPECT_TRUE(ParseFails(make_file("{\"__metadata__\":{\"cfg\":{\"lr\":\"1\"}}}"),
                         {"'cfg'", "must be a string", "got object"}));
}

TEST(SafetensorsHostile, WholeFileRejectedWhenOneTensorIsBad) {
  const std::string header = "{" + entry("a", "F32", "[1]", 0, 4) + "," + entry("b", "F32", "[2]", 4, 8) + "}";
  EXPECT_TRUE(ParseFails(make_file(header, std::string(8, '\0')), {"tensor 'b'", "do not match"}));
}

TEST(SafetensorsHostile, HostileNamesAreEscapedAndShortenedInMessages) {
  const std::string name = "evil\\n\\u001b[31m" + std::string(500, 'x');  // JSON escapes: newline, ESC
  try {
    parse(make_file("{\"" + name + "\":3}"));
    ADD_FAILURE() << "parsed";
  } catch (const std::runtime_error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("tensor 'evil\\x0a\\x1b[31mxxx"), std::string::npos) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos);
    EXPECT_EQ(message.find('\x1b'), std::string::npos);
    EXPECT_LT(message.size(), 300u);
  }
}

// A cheap cousin of the fuzzer: corrupting any one byte of a valid file either still parses or throws
// std::runtime_error, never anything else.
TEST(SafetensorsHostile, SingleByteCorruptionsNeverCrash) {
  const std::string file = tiny_file();
  int rejected = 0;
  for (std::size_t i = 0; i < file.size(); ++i) {
    for (char c : {'\0', '\xff', '{', '"', '9', '-', ' '}) {
      std::string corrupt = file;
      if (corrupt[i] == c) continue;
      corrupt[i] = c;
      try {
        parse(corrupt);
      } catch (const std::runtime_error&) {
        ++rejected;
      } catch (const std::exception& e) {
        ADD_FAILURE() << "byte " << i << ": " << e.what();
      }
    }
  }
  EXPECT_GT(rejected, 0);
}

// ------------------------------------------------------------------------------------------------
// Files on disk.

TEST_F(SafetensorsFile, LoadEqualsParse) {
  const std::string bytes = tiny_file();
  write_file(dir_ / "tiny.safetensors", bytes);
  SafeTensors from_disk = load_safetensors((dir_ / "tiny.safetensors").string());
  SafeTensors from_memory = parse(bytes);
  EXPECT_EQ(from_disk.metadata, from_memory.metadata);
  ASSERT_EQ(from_disk.tensors.size(), 2u);
  for (const auto& [name, t] : from_memory.tensors) EXPECT_TRUE(SameTensor(from_disk.tensors.at(name), t));
  EXPECT_EQ(from_disk.tensors.at("a").to_vector<float>(), (std::vector<float>{1, -2}));
  EXPECT_EQ(from_disk.tensors.at("b").item(), 0.5);
}

TEST_F(SafetensorsFile, LoadErrorsNameThePath) {
  const std::string missing = (dir_ / "missing.safetensors").string();
  try {
    load_safetensors(missing);
    ADD_FAILURE() << "loaded a missing file";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(missing), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(missing + ": no such file"), std::string::npos) << e.what();
  }
  try {
    load_safetensors(dir_.string());
    ADD_FAILURE() << "loaded a directory";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("is a directory"), std::string::npos) << e.what();
  }
  // A FIFO used to block in open() until a writer came: it is refused at once (a hang fails by timeout).
  const std::string fifo = (dir_ / "fifo.safetensors").string();
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  try {
    load_safetensors(fifo);
    ADD_FAILURE() << "loaded a FIFO";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(fifo + ": is a FIFO, not a regular file"), std::string::npos) << e.what();
  }

  const std::string truncated = (dir_ / "truncated.safetensors").string();
  const std::string bytes = tiny_file();
  write_file(truncated, bytes.substr(0, bytes.size() - 1));
  try {
    load_safetensors(truncated);
    ADD_FAILURE() << "loaded a truncated file";
  } catch (const std::runtime_error& e) {
    const std::string message = e.what();
    EXPECT_EQ(message.rfind(truncated + ": tensor 'a'", 0), 0u) << message;
    EXPECT_NE(message.find("past the end of the data section"), std::string::npos) << message;
  }

  const std::string tiny = (dir_ / "tiny").string();
  write_file(tiny, "abc");
  EXPECT_THROW(load_safetensors(tiny), std::runtime_error);
}

TEST_F(SafetensorsFile, SaveIntoMissingDirectoryThrowsAndLeavesNothing) {
  const std::string path = (dir_ / "no_such_dir" / "model.safetensors").string();
  try {
    save_safetensors(path, {{"w", ones({2})}});
    ADD_FAILURE() << "saved into a missing directory";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("No such file or directory"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(fs::is_empty(dir_));
}

TEST_F(SafetensorsFile, FailedRenameRemovesTheTemporaryFile) {
  // `path` is a non-empty directory: the temporary file is written, but renaming over it fails.
  const fs::path path = dir_ / "model.safetensors";
  fs::create_directory(path);
  write_file(path / "keep", "x");
  try {
    save_safetensors(path.string(), {{"w", ones({2})}});
    ADD_FAILURE() << "renamed a file over a directory";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(path.string()), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("renaming"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(temp_files().empty());
  EXPECT_EQ(read_file(path / "keep"), "x");
}

TEST_F(SafetensorsFile, SaveIntoReadOnlyDirectoryThrowsAndLeavesNothing) {
  if (::geteuid() == 0) GTEST_SKIP() << "root ignores directory permissions";
  const fs::path locked = dir_ / "locked";
  fs::create_directory(locked);
  fs::permissions(locked, fs::perms::owner_read | fs::perms::owner_exec);
  const std::string path = (locked / "model.safetensors").string();
  try {
    save_safetensors(path, {{"w", ones({2})}});
    ADD_FAILURE() << "saved into a read-only directory";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("Permission denied"), std::string::npos) << e.what();
  }
  fs::permissions(locked, fs::perms::owner_all);
  EXPECT_TRUE(fs::is_empty(locked));
}

TEST_F(SafetensorsFile, ExistingFileIsReplacedOnlyWhenTheWriteSucceeds) {
  const fs::path path = dir_ / "model.safetensors";
  save_safetensors(path.string(), {{"w", full({2}, 1.0)}}, {{"version", "1"}});
  const std::string original = read_file(path);

  // A bad argument: nothing is written.
  EXPECT_THROW(save_safetensors(path.string(), {{"__metadata__", ones({1})}}), std::invalid_argument);
  EXPECT_EQ(read_file(path), original);

  // The temporary file cannot be created (a directory is in the way): the old file survives.
  const fs::path blocker = path.string() + ".tmp." + std::to_string(::getpid());
  fs::create_directory(blocker);
  EXPECT_THROW(save_safetensors(path.string(), {{"w", full({2}, 2.0)}}, {{"version", "2"}}), std::runtime_error);
  EXPECT_EQ(read_file(path), original);
  EXPECT_EQ(load_safetensors(path.string()).metadata.at("version"), "1");
  fs::remove(blocker);

  // A successful write replaces it.
  save_safetensors(path.string(), {{"w", full({2}, 2.0)}}, {{"version", "2"}});
  SafeTensors loaded = load_safetensors(path.string());
  EXPECT_EQ(loaded.metadata.at("version"), "2");
  EXPECT_EQ(loaded.tensors.at("w").to_vector<float>(), (std::vector<float>{2, 2}));
  EXPECT_TRUE(temp_files().empty());
}

}  // namespace
