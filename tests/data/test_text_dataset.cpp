// TextDataset: loading, the 90/10 split and nanoGPT-style batches.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <minitrain/core/random.h>
#include <minitrain/data/text_dataset.h>

#include "error_of.h"

namespace minitrain::data {
namespace {


// A file in GoogleTest's temporary directory, removed at the end of the test.
class TempFile {
 public:
  TempFile(const std::string& name, const std::string& contents)
      : path_(::testing::TempDir() + "minitrain_test_data_" + name) {
    std::ofstream out(path_, std::ios::binary);
    out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
  }
  ~TempFile() { std::remove(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// n characters over a 26-letter alphabet.
std::string alphabet_text(int n) {
  std::string text;
  for (int i = 0; i < n; ++i) text.push_back(static_cast<char>('a' + (i * 7 + i / 26) % 26));
  return text;
}

TEST(TextDataset, SplitsNinetyTen) {
  const TextDataset ds = TextDataset::from_text(alphabet_text(1000));
  EXPECT_EQ(ds.num_tokens(), 1000);
  EXPECT_EQ(ds.size(Split::Train), 900);
  EXPECT_EQ(ds.size(Split::Val), 100);
  const std::vector<int64_t> all = ds.tokenizer().encode(alphabet_text(1000));
  EXPECT_EQ(ds.tokens(Split::Train), std::vector<int64_t>(all.begin(), all.begin() + 900));
  EXPECT_EQ(ds.tokens(Split::Val), std::vector<int64_t>(all.begin() + 900, all.end()));
  // floor(n * 0.9) when n is not a multiple of 10, as nanoGPT's int(n * 0.9).
  const TextDataset odd = TextDataset::from_text(alphabet_text(1005));
  EXPECT_EQ(odd.size(Split::Train), 904);
  EXPECT_EQ(odd.size(Split::Val), 101);
}

TEST(TextDataset, VocabularyComesFromTheWholeText) {
  // 'z' occurs only in the validation part but is still in the vocabulary.
  const std::string text = std::string(95, 'a') + "bbbbz";
  const TextDataset ds = TextDataset::from_text(text);
  EXPECT_EQ(ds.vocab_size(), 3);
  EXPECT_EQ(ds.tokenizer().to_string(), "abz");
  EXPECT_EQ(ds.tokens(Split::Val), (std::vector<int64_t>{0, 0, 0, 0, 0, 1, 1, 1, 1, 2}));
}

TEST(TextDataset, BatchShapesAndTargetsAreInputsShiftedByOne) {
  const std::string text = alphabet_text(1000);
  const TextDataset ds = TextDataset::from_text(text);
  Generator gen(42);
  for (Split split : {Split::Train, Split::Val}) {
    const Batch batch = ds.get_batch(split, 4, 8, gen);
    EXPECT_EQ(batch.x.shape(), (Shape{4, 8}));
    EXPECT_EQ(batch.y.shape(), (Shape{4, 8}));
    EXPECT_EQ(batch.x.dtype(), DType::Int64);
    const std::vector<int64_t> x = batch.x.to_vector<int64_t>(), y = batch.y.to_vector<int64_t>();
    const std::vector<int64_t> tokens = ds.tokens(split);
    for (int64_t b = 0; b < 4; ++b) {
      for (int64_t t = 0; t + 1 < 8; ++t) EXPECT_EQ(y[b * 8 + t], x[b * 8 + t + 1]);
      // Each row is a window [start, start + 9) of this split's tokens.
      bool found = false;
      for (std::size_t start = 0; start + 9 <= tokens.size() && !found; ++start) {
        bool match = true;
        for (std::size_t t = 0; t < 8 && match; ++t)
          match = tokens[start + t] == x[b * 8 + t] && tokens[start + t + 1] == y[b * 8 + t];
        found = match;
      }
      EXPECT_TRUE(found) << "row " << b << " of the " << split_name(split) << " batch is not a window of the split";
    }
  }
}

TEST(TextDataset, WindowStartsComeFromTheGenerator) {
  // With tokens 0..n-1 (all characters distinct) x[b][0] is the window start itself.
  std::string text;
  for (int i = 0; i < 90; ++i) text.push_back(static_cast<char>('!' + i));
  const TextDataset ds = TextDataset::from_text(text);
  ASSERT_EQ(ds.size(Split::Train), 81);
  Generator gen(7), expected(7);
  const Batch batch = ds.get_batch(Split::Train, 16, 5, gen);
  const std::vector<int64_t> x = batch.x.to_vector<int64_t>(), y = batch.y.to_vector<int64_t>();
  for (int64_t b = 0; b < 16; ++b) {
    const int64_t start = expected.randint(0, 81 - 5);
    for (int64_t t = 0; t < 5; ++t) {
      EXPECT_EQ(x[b * 5 + t], start + t);
      EXPECT_EQ(y[b * 5 + t], start + t + 1);
    }
  }
  // The largest block fits exactly: one window, the whole split.
  const Batch full = ds.get_batch(Split::Train, 2, 80, gen);
  EXPECT_EQ(full.x.to_vector<int64_t>().front(), 0);
  EXPECT_EQ(full.y.to_vector<int64_t>().back(), 80);
}

TEST(TextDataset, SameSeedSameBatchesDifferentSeedDifferentBatches) {
  const TextDataset ds = TextDataset::from_text(alphabet_text(5000));
  Generator a(123), b(123), c(124);
  for (int step = 0; step < 3; ++step) {
    const Batch ba = ds.get_batch(Split::Train, 8, 16, a);
    const Batch bb = ds.get_batch(Split::Train, 8, 16, b);
    const Batch bc = ds.get_batch(Split::Train, 8, 16, c);
    EXPECT_EQ(ba.x.to_vector<int64_t>(), bb.x.to_vector<int64_t>());
    EXPECT_EQ(ba.y.to_vector<int64_t>(), bb.y.to_vector<int64_t>());
    EXPECT_NE(ba.x.to_vector<int64_t>(), bc.x.to_vector<int64_t>());
  }
  // Consecutive batches from one generator differ too.
  Generator d(5);
  EXPECT_NE(ds.get_batch(Split::Val, 8, 16, d).x.to_vector<int64_t>(), ds.get_batch(Split::Val, 8, 16, d).x.to_vector<int64_t>());
}

TEST(TextDataset, BlockSizeTooLongNamesTheSizes) {
  const TextDataset ds = TextDataset::from_text(alphabet_text(1000));  // 900 train, 100 val
  Generator gen(0);
  const std::string msg = error_of<std::invalid_argument>([&] { ds.get_batch(Split::Val, 2, 100, gen); });
  EXPECT_NE(msg.find("block_size 100"), std::string::npos) << msg;
  EXPECT_NE(msg.find("101"), std::string::npos) << msg;
  EXPECT_NE(msg.find("val split has only 100"), std::string::npos) << msg;
  EXPECT_NO_THROW(ds.get_batch(Split::Val, 2, 99, gen));
  EXPECT_THROW(ds.get_batch(Split::Train, 2, 900, gen), std::invalid_argument);
  EXPECT_THROW(ds.get_batch(Split::Train, 0, 8, gen), std::invalid_argument);
  EXPECT_THROW(ds.get_batch(Split::Train, 2, 0, gen), std::invalid_argument);
}

TEST(TextDataset, LoadsAFile) {
  const std::string text = "Hello, w\xC3\xB6rld!\n" + alphabet_text(200);
  const TempFile file("hello.txt", text);
  const TextDataset ds = TextDataset::from_file(file.path());
  const TextDataset same = TextDataset::from_text(text);
  EXPECT_EQ(ds.tokenizer(), same.tokenizer());
  EXPECT_EQ(ds.num_tokens(), static_cast<int64_t>(text.size()) - 1);  // ö is one character
  EXPECT_EQ(ds.tokens(Split::Train), same.tokens(Split::Train));
  EXPECT_EQ(ds.tokenizer().decode(ds.tokens(Split::Train)) + ds.tokenizer().decode(ds.tokens(Split::Val)), text);
}

TEST(TextDataset, MissingFileIsAnError) {
  const std::string path = ::testing::TempDir() + "minitrain_test_data_does_not_exist.txt";
  const std::string msg = error_of<std::runtime_error>([&] { TextDataset::from_file(path); });
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find("no such file"), std::string::npos) << msg;
}

TEST(TextDataset, EmptyFileIsAnError) {
  const TempFile file("empty.txt", "");
  const std::string msg = error_of<std::runtime_error>([&] { TextDataset::from_file(file.path()); });
  EXPECT_NE(msg.find(file.path()), std::string::npos) << msg;
  EXPECT_NE(msg.find("empty"), std::string::npos) << msg;
  EXPECT_THROW(TextDataset::from_text(""), std::invalid_argument);
}

TEST(TextDataset, InvalidUtf8FileNamesFileAndOffset) {
  const TempFile file("latin1.txt", "caf\xE9 au lait");  // Latin-1 é, not UTF-8
  const std::string msg = error_of<std::invalid_argument>([&] { TextDataset::from_file(file.path()); });
  EXPECT_NE(msg.find(file.path()), std::string::npos) << msg;
  EXPECT_NE(msg.find("byte offset 3"), std::string::npos) << msg;
}

// A FIFO named as the corpus used to block in open() forever (waiting for a writer): it is refused at once.
TEST(TextDataset, FifoIsRefusedWithoutWaiting) {
  const std::string path = ::testing::TempDir() + "minitrain_test_data_fifo_" + std::to_string(::getpid());
  ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0);
  const std::string msg = error_of<std::runtime_error>([&] { TextDataset::from_file(path); });
  ::unlink(path.c_str());
  EXPECT_NE(msg.find(path + ": is a FIFO, not a regular file"), std::string::npos) << msg;
}

TEST(TextDataset, DirectoryIsRefused) {
  const std::string msg = error_of<std::runtime_error>([&] { TextDataset::from_file(::testing::TempDir()); });
  EXPECT_NE(msg.find("is a directory"), std::string::npos) << msg;
}

// batch_size x block_size overflowed int64 (a crash under --batch_size 2^60) or asked for a vector of
// exabytes: both are refused before anything is allocated.
TEST(TextDataset, HugeBatchIsRefusedBeforeAllocating) {
  const TextDataset ds = TextDataset::from_text(alphabet_text(400));
  Generator gen(1);
  const std::string overflow = error_of<std::invalid_argument>([&] { ds.get_batch(Split::Train, int64_t{1} << 60, 16, gen); });
  EXPECT_NE(overflow.find("batch_size 1152921504606846976 x block_size 16"), std::string::npos) << overflow;
  const std::string large = error_of<std::invalid_argument>([&] { ds.get_batch(Split::Train, int64_t{1} << 28, 16, gen); });
  EXPECT_NE(large.find("tokens a batch may hold"), std::string::npos) << large;
}

TEST(TextDataset, GivenTokenizerMustCoverTheText) {
  const CharTokenizer tok = CharTokenizer::from_string("abc");
  const TextDataset ds = TextDataset::from_text("abcabcabca", tok);
  EXPECT_EQ(ds.tokenizer(), tok);
  EXPECT_EQ(ds.tokens(Split::Train), (std::vector<int64_t>{0, 1, 2, 0, 1, 2, 0, 1, 2}));
  EXPECT_THROW(TextDataset::from_text("abcd", tok), std::invalid_argument);
}

}  // namespace
}  // namespace minitrain::data
