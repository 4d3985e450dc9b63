#include <minitrain/train/gnuplot.h>

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>
#include <utility>

extern char** environ;  // passed on to gnuplot as is (PATH, GNUPLOT_*, fonts)

namespace minitrain::train {

namespace {

using Status = GnuplotResult::Status;

GnuplotResult failure(std::string why) { return {Status::failed, std::move(why)}; }

// Absolute names already start with '/'; any other first character might mean a pipe or stdin to gnuplot.
std::string as_file_argument(const std::string& name) { return name.front() == '/' ? name : "./" + name; }

// gnuplot's messages are the lines with a colon (`"s.gp" line 3: cannot open file`, `system error: ...`);
// the rest echo the offending command and point a caret at it. Joined into one line, repeats dropped.
std::string error_lines(const std::string& stderr_text) {
  std::string out, previous;
  std::size_t start = 0;
  while (start < stderr_text.size()) {
    std::size_t end = stderr_text.find('\n', start);
    if (end == std::string::npos) end = stderr_text.size();
    const std::string line = stderr_text.substr(start, end - start);
    if (line.find(':') != std::string::npos && line != previous) {
      if (!out.empty()) out += "; ";
      out += line;
      previous = line;
    }
    start = end + 1;
  }
  return out;
}

// Closes the descriptor on every way out of spawn_and_wait.
struct Fd {
  int fd = -1;
  ~Fd() { close_now(); }
  void close_now() {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
};

GnuplotResult spawn_and_wait(std::vector<std::string> args) {
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return failure(std::string("cannot create a pipe: ") + std::strerror(errno));
  Fd read_end{pipe_fds[0]}, write_end{pipe_fds[1]};

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, write_end.fd, STDERR_FILENO);  // dup2 clears O_CLOEXEC
  pid_t pid = 0;
  const int spawn_error = ::posix_spawnp(&pid, "gnuplot", &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  write_end.close_now();  // else the read below never sees end-of-file
  if (spawn_error == ENOENT) return {Status::not_installed, "gnuplot is not installed (not found on PATH)"};
  if (spawn_error != 0) return failure(std::string("cannot start gnuplot: ") + std::strerror(spawn_error));

  // Read until gnuplot closes its stderr, then reap it. Only the first 64 KiB are kept, but all is read,
  // so a chatty gnuplot cannot block on a full pipe.
  std::string stderr_text;
  char buffer[4096];
  for (;;) {
    const ssize_t n = ::read(read_end.fd, buffer, sizeof buffer);
    if (n > 0) {
      if (stderr_text.size() < 65536) stderr_text.append(buffer, static_cast<std::size_t>(n));
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      break;
    }
  }
  int wait_status = 0;
  while (::waitpid(pid, &wait_status, 0) < 0)
    if (errno != EINTR) return failure(std::string("cannot wait for gnuplot: ") + std::strerror(errno));

  if (WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == 0) return {Status::ok, ""};
  std::string why = "gnuplot failed";
  if (WIFEXITED(wait_status)) why = "gnuplot exited with status " + std::to_string(WEXITSTATUS(wait_status));
  if (WIFSIGNALED(wait_status)) why = "gnuplot was killed by signal " + std::to_string(WTERMSIG(wait_status));
  const std::string messages = error_lines(stderr_text);
  if (!messages.empty()) why += ": " + messages;
  return failure(why);
}

}  // namespace

GnuplotResult run_gnuplot(const std::string& script, const std::vector<std::string>& files) {
  if (files.size() > 9) return failure("gnuplot -c takes at most 9 arguments, not " + std::to_string(files.size()));
  // An empty name is gnuplot's "the previous data file"; no caller means that.
  if (script.empty()) return failure("empty script file name");
  for (const std::string& f : files)
    if (f.empty()) return failure("empty file name for gnuplot");
  std::vector<std::string> args{"gnuplot", "-c", as_file_argument(script)};
  for (const std::string& f : files) args.push_back(as_file_argument(f));
  return spawn_and_wait(std::move(args));
}

bool gnuplot_installed() { return spawn_and_wait({"gnuplot", "--version"}).ok(); }

}  // namespace minitrain::train
