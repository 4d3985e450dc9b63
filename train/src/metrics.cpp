#include <minitrain/train/metrics.h>

#include <spdlog/spdlog.h>

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace minitrain::train {

MetricsCsv::MetricsCsv(const std::string& path, const std::vector<std::string>& extra_columns)
    : path_(path), extra_columns_(extra_columns.size()) {
  std::string header = "iter,loss,lr,grad_norm,tokens_per_sec,train_eval,val_eval";
  for (const std::string& column : extra_columns) header += "," + column;
  // Only a non-empty regular file has rows to append to (a device such as /dev/full would read without
  // end), and only its first header-length characters are read.
  std::error_code ec;
  const bool fresh = !std::filesystem::is_regular_file(path, ec) || std::filesystem::file_size(path, ec) == 0 || ec;
  std::string first_line;
  std::ifstream existing(fresh ? std::string() : path);
  for (char c; first_line.size() <= header.size() && existing.get(c) && c != '\n';) first_line += c;
  if (!fresh && first_line != header)
    throw std::runtime_error("metrics file " + path + " has the columns '" + first_line + "' but this run writes '" +
                             header + "': resume with the same options, or move the file away");
  out_.open(path, std::ios::app);
  if (!out_) throw std::runtime_error("cannot open metrics file " + path);
  if (fresh) out_ << header << '\n';
}

void MetricsCsv::append(const StepMetrics& m) {
  if (failed_) return;
  auto field = [](double v) { return std::isfinite(v) ? std::to_string(v) : std::string(); };
  errno = 0;  // the failing write(2) sets it (here or at flush, header included); a stale one would mislead
  out_ << m.iter << ',' << field(m.loss) << ',' << field(m.lr) << ',' << field(m.grad_norm) << ','
       << field(m.tokens_per_sec) << ',' << field(m.train_eval) << ',' << field(m.val_eval);
  for (std::size_t i = 0; i < extra_columns_; ++i) out_ << ',' << (i < m.extra.size() ? field(m.extra[i]) : "");
  out_ << '\n';
  out_.flush();
  if (out_) return;
  failed_ = true;
  const std::string why = errno != 0 ? std::strerror(errno) : "write failed";
  spdlog::warn("metrics: cannot write {}: {}; training continues without metrics", path_, why);
}

namespace {
// The label with every character outside a plain set replaced: it is pasted into a quoted gnuplot title.
std::string plain_label(const std::string& label) {
  std::string out = label;
  for (char& c : out)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || std::string(" .,-()/").find(c) != std::string::npos)) c = '?';
  return out;
}
}  // namespace

GnuplotResult render_loss_curve(const std::string& csv_path, const std::string& png_path,
                                const ReferenceLoss& reference) {
  // The script holds no file names: they reach gnuplot as ARG1 and ARG2 (gnuplot.h says why).
  const std::string script_path = png_path + ".gp";
  {
    std::ofstream f(script_path);
    if (!f) return {GnuplotResult::Status::failed, "cannot write " + script_path + ": " + std::strerror(errno)};
    f << "# The loss curve of a minitrain run: gnuplot -c <this file> <png> <metrics.csv>\n"
         "set datafile separator ','\nset terminal pngcairo size 900,540\nset output ARG1\n"
         "set xlabel 'iteration'\nset ylabel 'loss (nats/char)'\nset key top right\nset grid\n"
         "plot ARG2 using 1:2 skip 1 with lines lw 1 lc rgb '#9ecae1' title 'train (step)', "
         "'' using 1:6 skip 1 with linespoints lw 2 lc rgb '#3182bd' title 'train (eval)', "
         "'' using 1:7 skip 1 with linespoints lw 2 lc rgb '#e6550d' title 'val (eval)'";
    if (reference.defined()) {
      char line[96];
      std::snprintf(line, sizeof line, ", %f with lines dt 2 lc rgb 'black' title '", reference.value);
      f << line << plain_label(reference.label) << "'";
    }
    f << '\n';
    if (!f.flush()) return {GnuplotResult::Status::failed, "cannot write " + script_path + ": " + std::strerror(errno)};
  }
  GnuplotResult result = run_gnuplot(script_path, {png_path, csv_path});
  if (result.status == GnuplotResult::Status::not_installed) {
    std::error_code ignored;
    std::filesystem::remove(script_path, ignored);  // without gnuplot, leave nothing behind
  }
  return result;
}

bool plot_loss_curve(const std::string& csv_path, const std::string& png_path, const ReferenceLoss& reference) {
  return render_loss_curve(csv_path, png_path, reference).ok();
}

}  // namespace minitrain::train
