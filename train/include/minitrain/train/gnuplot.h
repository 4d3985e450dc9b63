// Running gnuplot, with no shell anywhere.
//
// The rule: a user-supplied string (an --out_dir, a data path) never reaches a shell and is never pasted
// into a gnuplot script. system("gnuplot '" + path + "'") ran `touch /tmp/PWNED` for an --out_dir of
// "x'; touch /tmp/PWNED; echo '", and a path pasted into a script breaks on its own quotes. Instead gnuplot
// is started with posix_spawnp and an argument vector, `gnuplot -c script file1 file2 ...`, and the script
// reads the file names as the string variables ARG1, ARG2, ... (`set output ARG1`, `plot ARG2 using 1:2`).
// gnuplot does not look inside a string variable for quotes, backquotes or @macros, so nothing needs
// quoting. What gnuplot does read is a file name's first character: `set output '|cmd'`, `plot '<cmd'` and
// `load '<cmd'` run cmd through a shell, '-' is stdin, '+' a pseudo-file, '$name' a datablock, '~' the home
// directory. So every relative file name is given a "./" in front, which takes all of those away.
#pragma once

#include <string>
#include <vector>

namespace minitrain::train {

struct GnuplotResult {
  enum class Status { ok, not_installed, failed };
  Status status = Status::failed;
  // Why it did not succeed: gnuplot's error lines, its exit status, or why it could not be started.
  std::string error;
  bool ok() const { return status == Status::ok; }
};

// Runs `gnuplot -c <script> <files...>` (no shell) and waits for it. In the script, ARG1 is files[0],
// ARG2 files[1], and so on (gnuplot takes at most 9). Every argument is a file name: relative ones get a
// "./" prefix (see above). gnuplot reads stdin from /dev/null and writes stdout to /dev/null (a PNG
// terminal whose output could not be opened would otherwise write the image to our terminal); its
// stderr is captured into `error`. not_installed means no `gnuplot` on PATH; failed, anything else.
GnuplotResult run_gnuplot(const std::string& script, const std::vector<std::string>& files);

// Whether `gnuplot` on PATH starts (it runs `gnuplot --version`).
bool gnuplot_installed();

}  // namespace minitrain::train
