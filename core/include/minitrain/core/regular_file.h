// Opening files that a user named: only regular files, and never a blocking open.
//
// open(2) on a FIFO blocks until a writer appears, so a FIFO named like a checkpoint or a corpus would
// hang the program before any "not a regular file" check could run. These helpers open with O_NONBLOCK,
// check the opened descriptor with fstat (no window between the check and the use), and only then read.
#pragma once

#include <cstdint>
#include <string>

namespace minitrain {

// An open, read-only regular file; closes itself.
class RegularFile {
 public:
  // Throws std::runtime_error "<path>: <what is wrong>": no such file, a directory, a FIFO, a device,
  // a socket, permission denied.
  explicit RegularFile(const std::string& path);
  ~RegularFile();
  RegularFile(const RegularFile&) = delete;
  RegularFile& operator=(const RegularFile&) = delete;

  int fd() const { return fd_; }
  uint64_t size() const { return size_; }  // at the time of opening
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

// Why `path` cannot be read as a regular file ("no such file", "is a directory", "is a FIFO, not a
// regular file", ...), or "" when it can. Does not block on FIFOs. For validating flags up front.
std::string regular_file_problem(const std::string& path);

// The whole contents of a regular file. Throws std::runtime_error "<path>: ..." (see RegularFile) and
// when the file is larger than `max_bytes` (checked before reading).
std::string read_regular_file(const std::string& path, uint64_t max_bytes = UINT64_MAX);

// Replaces `path` with `bytes` atomically: a temporary "<path>.tmp.<pid>" next to it is written, flushed,
// fsync'ed and renamed over `path` (then the directory is synced, best effort). On failure the temporary is
// removed, `path` is left untouched, and std::runtime_error says "<who>: cannot write '<path>': <step>:
// <system error>".
void write_file_atomically(const std::string& path, const std::string& bytes, const std::string& who);

// Removes "<path>.tmp.<pid>" files that save_safetensors left behind when its process was killed
// (kill -9 between creating the temporary and renaming it). Only files of processes that no longer
// exist on this machine are removed; a live writer's temporary is left alone. Returns how many were
// removed. Never throws for I/O problems (it is a clean-up).
int remove_stale_temporaries(const std::string& path);

}  // namespace minitrain
