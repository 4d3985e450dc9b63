// The metrics CSV and its loss-curve plot at their edges: file names that a shell or gnuplot would read
// as commands, gnuplot missing or failing, and a disk that is full.
#include <minitrain/train/gnuplot.h>
#include <minitrain/train/metrics.h>

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <unistd.h>

using namespace minitrain::train;
namespace fs = std::filesystem;

namespace {

fs::path scratch(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / ("minitrain_metrics_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// A few rows of a run, with evaluations, as the trainer writes them.
void write_metrics(const std::string& csv_path) {
  MetricsCsv csv(csv_path);
  for (int64_t iter = 0; iter <= 20; ++iter) {
    StepMetrics m;
    m.iter = iter;
    m.loss = 3.5 - 0.05 * static_cast<double>(iter);
    m.lr = 1e-3;
    m.grad_norm = 1.0;
    m.tokens_per_sec = 1000;
    if (iter % 10 == 0) m.train_eval = m.val_eval = m.loss + 0.1;
    csv.append(m);
  }
}

bool non_empty_file(const fs::path& p) { return fs::is_regular_file(p) && fs::file_size(p) > 0; }

// Sets an environment variable for one test and puts the old value back.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) {
      old_ = old;
      had_ = true;
    }
    ::setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() { had_ ? ::setenv(name_, old_.c_str(), 1) : ::unsetenv(name_); }

 private:
  const char* name_;
  std::string old_;
  bool had_ = false;
};

class ScopedCwd {
 public:
  explicit ScopedCwd(const fs::path& dir) : old_(fs::current_path()) { fs::current_path(dir); }
  ~ScopedCwd() { fs::current_path(old_); }

 private:
  fs::path old_;
};

// Sends spdlog's default logger into a string for one test.
class CapturedLog {
 public:
  CapturedLog() : previous_(spdlog::default_logger()) {
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(text_);
    spdlog::set_default_logger(std::make_shared<spdlog::logger>("captured", sink));
  }
  ~CapturedLog() { spdlog::set_default_logger(previous_); }
  std::string str() const { return text_.str(); }

 private:
  std::ostringstream text_;
  std::shared_ptr<spdlog::logger> previous_;
};

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

}  // namespace

// An --out_dir is the user's to name. This one, pasted into the old system("gnuplot '<dir>/loss.png.gp'"),
// closes the quote and runs three commands, each creating its own canary: after ';', inside $(), inside
// backquotes. It also holds what a gnuplot script would trip on (both quotes, '@', a newline, a directory
// starting with '-'). The slashes in the canaries' paths make more nested directories, which changes nothing.
TEST(MetricsPlot, HostileDirectoryNamesAreFileNamesNotCommands) {
  const fs::path base = scratch("hostile");
  const fs::path quote_canary = base / "canary_quote", dollar_canary = base / "canary_dollar",
                 backquote_canary = base / "canary_backquote";
  const std::string name = "a'; touch " + quote_canary.string() + "; echo \"$(touch " + dollar_canary.string() +
                           ") `touch " + backquote_canary.string() + "`\" @ARG0; echo '\n/-next line";
  const fs::path dir = base / name;
  fs::create_directories(dir);
  write_metrics((dir / "metrics.csv").string());

  const bool drawn = plot_loss_curve((dir / "metrics.csv").string(), (dir / "loss.png").string(), {"corpus entropy", 1.2});

  for (const fs::path& canary : {quote_canary, dollar_canary, backquote_canary})
    EXPECT_FALSE(fs::exists(canary)) << canary << " was created: part of the path ran as a command";
  if (gnuplot_installed()) {
    EXPECT_TRUE(drawn);
    EXPECT_TRUE(non_empty_file(dir / "loss.png")) << "no PNG in " << dir;
  }
  fs::remove_all(base);
}

// The reference's label is pasted into the script's title: its quotes and other characters cannot end the
// string and run gnuplot commands (system() would start a shell).
TEST(MetricsPlot, ReferenceLabelCannotEscapeItsTitle) {
  const fs::path base = scratch("label");
  fs::create_directories(base);
  write_metrics((base / "metrics.csv").string());
  const fs::path canary = base / "canary_label";
  const std::string label = "entropy'; system('touch " + canary.string() + "'); x='";
  render_loss_curve((base / "metrics.csv").string(), (base / "loss.png").string(), {label, 1.2});
  EXPECT_FALSE(fs::exists(canary)) << "the label ran as a command";
  std::ifstream script(base / "loss.png.gp");
  const std::string text((std::istreambuf_iterator<char>(script)), std::istreambuf_iterator<char>());
  if (gnuplot_installed()) {  // without gnuplot, the script is removed
    EXPECT_NE(text.find("title 'entropy?? system(?touch "), std::string::npos) << text;
  }
  fs::remove_all(base);
}

// gnuplot itself runs a shell for an output name starting with '|' and for a data or script name starting
// with '<'; a relative name from the user can start with either.
TEST(MetricsPlot, RelativeNamesStartingWithPipeOrLessThanAreFilesNotCommands) {
  if (!gnuplot_installed()) GTEST_SKIP() << "gnuplot is not installed";
  const fs::path base = scratch("relative");
  const std::string csv = "<touch canary_data #/metrics.csv", piped_png = "|touch canary_output #/loss.png",
                    script_png = "<touch canary_script #/loss.png";
  bool piped = false, scripted = false;
  {
    ScopedCwd cwd(base);  // each canary is a relative name, so it would land here
    for (const char* d : {"<touch canary_data #", "|touch canary_output #", "<touch canary_script #"})
      fs::create_directories(d);
    write_metrics(csv);
    piped = plot_loss_curve(csv, piped_png);      // also reads the CSV, whose name starts with '<'
    scripted = plot_loss_curve(csv, script_png);  // runs <png>.gp, whose name starts with '<'
  }
  for (const char* canary : {"canary_data", "canary_output", "canary_script"})
    EXPECT_FALSE(fs::exists(base / canary)) << canary << " was created: gnuplot ran part of a file name";
  EXPECT_TRUE(piped);
  EXPECT_TRUE(scripted);
  EXPECT_TRUE(non_empty_file(base / piped_png));
  EXPECT_TRUE(non_empty_file(base / script_png));
  fs::remove_all(base);
}

TEST(MetricsPlot, MissingGnuplotIsReportedAsNotInstalledAndLeavesNothingBehind) {
  const fs::path base = scratch("no_gnuplot");
  fs::create_directories(base / "empty_path");
  write_metrics((base / "metrics.csv").string());
  GnuplotResult result;
  {
    ScopedEnv path("PATH", (base / "empty_path").string());
    EXPECT_FALSE(gnuplot_installed());
    result = render_loss_curve((base / "metrics.csv").string(), (base / "loss.png").string());
    EXPECT_FALSE(plot_loss_curve((base / "metrics.csv").string(), (base / "loss.png").string()));
  }
  EXPECT_EQ(result.status, GnuplotResult::Status::not_installed) << result.error;
  EXPECT_FALSE(fs::exists(base / "loss.png"));
  EXPECT_FALSE(fs::exists(base / "loss.png.gp"));
  fs::remove_all(base);
}

// Installed but failing is a different answer from not installed, and it carries gnuplot's reason.
TEST(MetricsPlot, GnuplotFailingIsReportedWithItsMessage) {
  if (!gnuplot_installed()) GTEST_SKIP() << "gnuplot is not installed";
  const fs::path base = scratch("failing");
  const GnuplotResult result =
      render_loss_curve((base / "no_such.csv").string(), (base / "no_such_dir" / "loss.png").string());
  EXPECT_EQ(result.status, GnuplotResult::Status::failed);
  EXPECT_NE(result.error.find("cannot write"), std::string::npos) << result.error;  // the script's directory

  const GnuplotResult no_data = render_loss_curve((base / "no_such.csv").string(), (base / "loss.png").string());
  EXPECT_EQ(no_data.status, GnuplotResult::Status::failed);
  EXPECT_NE(no_data.error.find("exited with status"), std::string::npos) << no_data.error;
  EXPECT_NE(no_data.error.find("no_such.csv"), std::string::npos) << "gnuplot's message is lost: " << no_data.error;
  fs::remove_all(base);
}

// /dev/full accepts open() and fails every write with ENOSPC: a full disk, on demand.
TEST(MetricsCsvFile, AFullDiskIsReportedOnceAndTrainingGoesOn) {
  CapturedLog log;
  MetricsCsv csv("/dev/full");
  StepMetrics m;
  m.loss = 2.0;
  for (int64_t iter = 0; iter < 5; ++iter) {
    m.iter = iter;
    EXPECT_NO_THROW(csv.append(m));
  }
  EXPECT_TRUE(csv.failed());
  const std::string text = log.str();
  EXPECT_EQ(count(text, "metrics: cannot write"), 1u) << text;
  EXPECT_NE(text.find("metrics: cannot write /dev/full: No space left on device"), std::string::npos) << text;
}

TEST(MetricsCsvFile, WritesThatSucceedAreNotReportedAsFailures) {
  CapturedLog log;
  const fs::path base = scratch("ok");
  write_metrics((base / "metrics.csv").string());
  MetricsCsv again((base / "metrics.csv").string());  // appends, without a second header
  again.append(StepMetrics{});
  EXPECT_FALSE(again.failed());
  EXPECT_EQ(log.str(), "");
  std::ifstream in(base / "metrics.csv");
  std::string line;
  int lines = 0, headers = 0;
  while (std::getline(in, line)) {
    ++lines;
    headers += line.rfind("iter,", 0) == 0;
  }
  EXPECT_EQ(lines, 23);  // header, 21 rows, the appended one
  EXPECT_EQ(headers, 1);
  fs::remove_all(base);
}
