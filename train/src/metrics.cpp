#include <minitrain/train/metrics.h>

#include <cstdio>
#include <cstdlib>
#include <stdexcept>

namespace minitrain::train {

MetricsCsv::MetricsCsv(const std::string& path) : path_(path) {
  std::ifstream existing(path, std::ios::ate);
  const bool fresh = !existing || existing.tellg() == 0;
  out_.open(path, std::ios::app);
  if (!out_) throw std::runtime_error("cannot open metrics file " + path);
  if (fresh) out_ << "iter,loss,lr,grad_norm,tokens_per_sec,train_eval,val_eval\n";
}

void MetricsCsv::append(const StepMetrics& m) {
  auto field = [](double v) { return std::isfinite(v) ? std::to_string(v) : std::string(); };
  out_ << m.iter << ',' << field(m.loss) << ',' << field(m.lr) << ',' << field(m.grad_norm) << ','
       << field(m.tokens_per_sec) << ',' << field(m.train_eval) << ',' << field(m.val_eval) << '\n';
  out_.flush();
}

bool plot_loss_curve(const std::string& csv_path, const std::string& png_path, double floor) {
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0) return false;
  const std::string script_path = png_path + ".gp";
  FILE* f = std::fopen(script_path.c_str(), "w");
  if (!f) return false;
  std::fprintf(f,
               "set datafile separator ','\nset terminal pngcairo size 900,540\nset output '%s'\n"
               "set xlabel 'iteration'\nset ylabel 'loss (nats/char)'\nset key top right\nset grid\n"
               "plot '%s' using 1:2 skip 1 with lines lw 1 lc rgb '#9ecae1' title 'train (step)', "
               "'' using 1:6 skip 1 with linespoints lw 2 lc rgb '#3182bd' title 'train (eval)', "
               "'' using 1:7 skip 1 with linespoints lw 2 lc rgb '#e6550d' title 'val (eval)'",
               png_path.c_str(), csv_path.c_str());
  if (std::isfinite(floor)) std::fprintf(f, ", %f with lines dt 2 lc rgb 'black' title 'corpus entropy'", floor);
  std::fprintf(f, "\n");
  std::fclose(f);
  const std::string cmd = "gnuplot '" + script_path + "' 2>/dev/null";
  return std::system(cmd.c_str()) == 0;
}

}  // namespace minitrain::train
