// Training metrics: a CSV appended per logged step, and a loss-curve PNG rendered with gnuplot.
#pragma once

#include <cmath>
#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include <minitrain/train/gnuplot.h>

namespace minitrain::train {

struct StepMetrics {
  int64_t iter = 0;
  double loss = NAN, lr = NAN, grad_norm = NAN, tokens_per_sec = NAN;
  double train_eval = NAN, val_eval = NAN;  // set on evaluation steps only
  std::vector<double> extra;                // the extra columns' values, in order (missing ones: empty)
};

class MetricsCsv {
 public:
  // Appends to `path` (writes the header if the file is new or empty), with `extra_columns` after the
  // standard ones. Throws if it cannot be opened, or if the file already has another header (a resumed
  // run that writes other columns: the rows would not line up).
  explicit MetricsCsv(const std::string& path, const std::vector<std::string>& extra_columns = {});
  // Never throws: metrics are not worth stopping a run for. The first write that fails (a full disk)
  // is reported once with spdlog::warn, naming the file and the system error, and every later row is
  // dropped, since a CSV with holes in it would mislead more than one that stops.
  void append(const StepMetrics& m);
  const std::string& path() const { return path_; }
  // Whether a write has failed (and metrics are no longer being written).
  bool failed() const { return failed_; }

 private:
  std::string path_;
  std::size_t extra_columns_ = 0;
  std::ofstream out_;
  bool failed_ = false;
};

// A loss to compare a run with (the corpus entropy, the best any model can do on it): a dashed line on the
// plot and a gap beside every val loss, when its value is finite. The label is the program's own text;
// characters other than letters, digits, spaces and . , - ( ) / are drawn as '?' (nothing reaches gnuplot's parser).
struct ReferenceLoss {
  std::string label;
  double value = NAN;
  bool defined() const { return std::isfinite(value); }
};

// Renders train loss and eval losses from the CSV into a PNG, with the reference as a horizontal line
// when defined. The gnuplot script is left beside the PNG as `<png>.gp`, to be redrawn with
// `gnuplot -c <png>.gp <png> <csv>`. If gnuplot is not installed it does nothing and says so in the
// result; no shell is involved (gnuplot.h).
GnuplotResult render_loss_curve(const std::string& csv_path, const std::string& png_path,
                                const ReferenceLoss& reference = {});

// render_loss_curve(...).ok(), for callers that only ask whether a PNG was written.
bool plot_loss_curve(const std::string& csv_path, const std::string& png_path, const ReferenceLoss& reference = {});

}  // namespace minitrain::train
