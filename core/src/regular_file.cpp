#include <minitrain/core/regular_file.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <system_error>

namespace minitrain {

namespace {

std::string errno_text(int err) { return std::generic_category().message(err); }

// "is a FIFO, not a regular file" and so on, for a mode that is not S_ISREG.
std::string kind_problem(mode_t mode) {
  if (S_ISDIR(mode)) return "is a directory, not a regular file";
  if (S_ISFIFO(mode)) return "is a FIFO, not a regular file";
  if (S_ISCHR(mode) || S_ISBLK(mode)) return "is a device, not a regular file";
  if (S_ISSOCK(mode)) return "is a socket, not a regular file";
  return "is not a regular file";
}

std::string open_problem(int err) {
  if (err == ENOENT) return "no such file";
  return "cannot open: " + errno_text(err);
}

}  // namespace

RegularFile::RegularFile(const std::string& path) : path_(path) {
  // O_NONBLOCK: opening a FIFO for reading returns at once instead of waiting for a writer. It has no
  // effect on reads from regular files, the only kind we keep.
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd_ < 0) throw std::runtime_error(path + ": " + open_problem(errno));
  struct stat st {};
  if (::fstat(fd_, &st) != 0) {
    const int err = errno;
    ::close(fd_);
    throw std::runtime_error(path + ": cannot stat: " + errno_text(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd_);
    throw std::runtime_error(path + ": " + kind_problem(st.st_mode));
  }
  size_ = static_cast<uint64_t>(st.st_size);
}

RegularFile::~RegularFile() {
  if (fd_ >= 0) ::close(fd_);
}

std::string regular_file_problem(const std::string& path) {
  if (path.empty()) return "the path is empty";
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return open_problem(errno);  // stat never blocks on a FIFO
  if (!S_ISREG(st.st_mode)) return kind_problem(st.st_mode);
  if (::access(path.c_str(), R_OK) != 0) return "cannot open: " + errno_text(errno);
  return "";
}

std::string read_regular_file(const std::string& path, uint64_t max_bytes) {
  RegularFile file(path);
  if (file.size() > max_bytes)
    throw std::runtime_error(path + ": the file is " + std::to_string(file.size()) + " bytes, more than the " +
                             std::to_string(max_bytes) + " allowed");
  std::string text;
  text.resize(static_cast<std::size_t>(file.size()));
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t got = ::read(file.fd(), &text[done], text.size() - done);
    if (got < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error(path + ": read error: " + errno_text(errno));
    }
    if (got == 0) break;  // shrank while reading: keep what is there
    done += static_cast<std::size_t>(got);
  }
  text.resize(done);
  return text;
}

namespace {

// Closes a file descriptor on scope exit unless released.
class FdCloser {
 public:
  explicit FdCloser(int fd) : fd_(fd) {}
  ~FdCloser() {
    if (fd_ >= 0) ::close(fd_);
  }
  FdCloser(const FdCloser&) = delete;
  FdCloser& operator=(const FdCloser&) = delete;
  int release() {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_;
};

}  // namespace

void write_file_atomically(const std::string& path, const std::string& bytes, const std::string& who) {
  // Write a temporary file next to `path`, make it durable, then rename it over `path`.
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  auto fail_io = [&](const std::string& step, int err) {
    ::unlink(tmp.c_str());
    throw std::runtime_error(who + ": cannot write '" + path + "': " + step + ": " + errno_text(err));
  };
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0666);
  if (fd < 0) {
    const int err = errno;
    throw std::runtime_error(who + ": cannot write '" + path + "': creating '" + tmp + "': " +
                             errno_text(err));  // nothing of ours to remove
  }
  FdCloser closer(fd);
  std::size_t written = 0;
  while (written < bytes.size()) {
    const std::size_t chunk = std::min<std::size_t>(bytes.size() - written, std::size_t{1} << 30);
    const ssize_t n = ::write(fd, bytes.data() + written, chunk);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail_io("writing '" + tmp + "'", errno);
    }
    written += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) fail_io("syncing '" + tmp + "'", errno);
  if (::close(closer.release()) != 0) fail_io("closing '" + tmp + "'", errno);
  if (::rename(tmp.c_str(), path.c_str()) != 0) fail_io("renaming '" + tmp + "'", errno);

  // Make the rename itself durable (best effort: some file systems cannot sync a directory).
  const std::size_t slash = path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    ::fsync(dir_fd);
    ::close(dir_fd);
  }
}

int remove_stale_temporaries(const std::string& path) {
  namespace fs = std::filesystem;
  const fs::path target(path);
  const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  const std::string prefix = target.filename().string() + ".tmp.";
  std::error_code ec;
  fs::directory_iterator it(dir, ec), end;
  int removed = 0;
  for (; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.compare(0, prefix.size(), prefix) != 0) continue;
    const std::string pid_text = name.substr(prefix.size());
    if (pid_text.empty() || pid_text.size() > 9 || pid_text.find_first_not_of("0123456789") != std::string::npos)
      continue;
    const pid_t pid = static_cast<pid_t>(std::stol(pid_text));
    // kill(pid, 0) probes without signalling: ESRCH means no such process. EPERM means it exists (another
    // user's): leave it.
    if (pid <= 0 || pid == ::getpid() || ::kill(pid, 0) == 0 || errno != ESRCH) continue;
    std::error_code remove_ec;
    if (fs::is_regular_file(it->symlink_status(remove_ec)) && fs::remove(it->path(), remove_ec)) ++removed;
  }
  return removed;
}

}  // namespace minitrain
