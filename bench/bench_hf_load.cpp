// bench_hf_load: the peak memory of loading a Hugging Face GPT-2 or Llama directory, against the file and
// the model.
//
//   ./build/bench/bench_hf_load                  # 124M parameters: GPT-2 small's shape
//   ./build/bench/bench_hf_load --n_layer 2      # quicker, same shape otherwise
//   ./build/bench/bench_hf_load --family llama   # 125M parameters, Llama-shaped: n_layer 12, n_head 12,
//                                                # n_kv_head 4, n_embd 768, intermediate 2048, vocab 32000,
//                                                # untied head (export_hf_llama, load_hf_llama)
//
// Writes a GPT-2-shaped model (n_layer 12, n_head 12, n_embd 768, vocab 50257, n_positions 1024; random
// weights) with export_hf_gpt2 into a temporary directory, then loads it in fresh processes (this program
// started again with --child_*, by posix_spawn: no shell, and no copy of the parent's memory), each
// reporting its peak resident memory (getrusage ru_maxrss) before and after:
//   load_hf_gpt2   the loader: tensors read straight into the model's parameters;
//   double copy    for comparison, what a loader that first reads the file (load_safetensors) and then
//                  builds the model holds at its peak.
// The target, read as: peak RSS <= model bytes + 0.2 x file bytes + the process's RSS before loading.
#include <minitrain/core/regular_file.h>
#include <minitrain/core/safetensors.h>
#include <minitrain/nn/gpt.h>
#include <minitrain/train/hf_checkpoint.h>
#include <minitrain/train/hf_gpt2.h>
#include <minitrain/train/hf_llama.h>

#include <CLI/CLI.hpp>

#include <spawn.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

extern char** environ;

using namespace minitrain;
namespace fs = std::filesystem;

namespace {

double peak_rss_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // KiB on Linux
}

// A /proc/self/status field in MiB (VmRSS: now, VmHWM: this address space's peak).
double status_mib(const std::string& field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.compare(0, field.size() + 1, field + ":") == 0) return std::strtod(line.c_str() + field.size() + 1, nullptr) / 1024.0;
  return 0;
}

double mib(double bytes) { return bytes / (1024.0 * 1024.0); }

// Loads `dir` one way and prints one line: "<mode> before <MiB> peak <MiB> seconds <s> params <n>".
// The benchmark's model of `family` with `n_layer` layers.
nn::GPTConfig bench_config(const std::string& family, int64_t n_layer) {
  nn::GPTConfig config;
  config.n_layer = n_layer;
  config.n_head = 12;
  config.n_embd = 768;
  if (family == "llama") {
    config.n_kv_head = 4;
    config.vocab_size = 32000;
    config.block_size = 2048;
    config = nn::llama_style(config);
    config.mlp_hidden = 2048;
    return config;
  }
  config.vocab_size = 50257;
  config.block_size = 1024;
  config.bias = true;
  config.activation = nn::Activation::GeluTanh;
  return config;
}

nn::GPTConfig config_from_hf(const std::string& family, const std::string& dir) {
  const std::string text = read_regular_file((fs::path(dir) / "config.json").string());
  return family == "llama" ? train::llama_config_from_hf(text) : train::gpt2_config_from_hf(text);
}

int child(const std::string& mode, const std::string& dir, const std::string& family) {
  const double before = peak_rss_mib();
  const auto start = std::chrono::steady_clock::now();
  int64_t params = 0;
  if (mode == "build") {
    nn::GPT model(config_from_hf(family, dir));  // the constructor's own initialisation, nothing read
    params = model.num_parameters();
  } else if (mode == "load") {
    train::ImportedGPT imported = train::load_hf_checkpoint(dir);  // load_hf_gpt2 or load_hf_llama
    params = imported.model->num_parameters();
  } else {
    // The file's tensors in memory (load_safetensors), then the model built beside them.
    const SafeTensors file = load_safetensors((fs::path(dir) / "model.safetensors").string());
    train::ImportedGPT imported = train::load_hf_checkpoint(dir);
    params = imported.model->num_parameters();  // `file` is still held here, at the peak
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%s before %.1f peak %.1f hwm %.1f seconds %.2f params %lld\n", mode.c_str(), before, peak_rss_mib(),
              status_mib("VmHWM"), seconds, static_cast<long long>(params));
  return 0;
}

// Runs this program with `args` and returns its standard output (it must exit 0).
std::string run_self(const std::vector<std::string>& args) {
  int out[2];
  if (::pipe(out) != 0) throw std::runtime_error("pipe failed");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&actions, out[0]);
  std::vector<char*> argv;
  std::string self = "/proc/self/exe";
  argv.push_back(self.data());
  std::vector<std::string> copies = args;
  for (std::string& a : copies) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  const int err = posix_spawn(&pid, "/proc/self/exe", &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(out[1]);
  if (err != 0) {
    ::close(out[0]);
    throw std::runtime_error("posix_spawn failed");
  }
  std::string text;
  char buf[4096];
  ssize_t n = 0;
  while ((n = ::read(out[0], buf, sizeof buf)) > 0) text.append(buf, static_cast<std::size_t>(n));
  ::close(out[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) throw std::runtime_error("child " + args.front() + " failed");
  return text;
}

struct ChildReport {
  double before = 0, peak = 0, hwm = 0, seconds = 0;
  long long params = 0;
};

ChildReport parse(const std::string& line) {
  ChildReport r;
  char mode[32];
  if (std::sscanf(line.c_str(), "%31s before %lf peak %lf hwm %lf seconds %lf params %lld", mode, &r.before, &r.peak,
                  &r.hwm, &r.seconds, &r.params) != 6)
    throw std::runtime_error("unexpected child output: " + line);
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  int64_t n_layer = 12;
  std::string family = "gpt2";
  std::string double_copy_dir, child_dir, write_dir, build_dir, keep;
  CLI::App app{"Peak memory of loading a GPT-2- or Llama-shaped Hugging Face checkpoint"};
  app.add_option("--n_layer", n_layer, "layers (GPT-2 small: 12)")->capture_default_str();
  app.add_option("--family", family, "gpt2 or llama")->check(CLI::IsMember({"gpt2", "llama"}))->capture_default_str();
  app.add_option("--keep", keep, "write the checkpoint here and keep it (default: a temporary directory)");
  app.add_option("--child_load", child_dir, "internal: load this directory and report");
  app.add_option("--child_double_copy", double_copy_dir, "internal: load this directory beside load_safetensors' copy");
  app.add_option("--child_build", build_dir, "internal: only build the model this directory's config describes");
  app.add_option("--child_write", write_dir, "internal: write the checkpoint into this directory");
  CLI11_PARSE(app, argc, argv);
  try {
    if (!child_dir.empty()) return child("load", child_dir, family);
    if (!build_dir.empty()) return child("build", build_dir, family);
    if (!double_copy_dir.empty()) return child("double_copy", double_copy_dir, family);
    const nn::GPTConfig config = bench_config(family, n_layer);
    if (!write_dir.empty()) {
      nn::GPT model(config);
      if (family == "llama") train::export_hf_llama(model, write_dir);
      else train::export_hf_gpt2(model, write_dir);
      return 0;
    }

    std::string dir = keep;
    if (dir.empty()) {
      std::string pattern = (fs::temp_directory_path() / "bench_hf_load_XXXXXX").string();
      if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
      dir = pattern;
    }
    const auto start = std::chrono::steady_clock::now();
    run_self({"--child_write", dir, "--n_layer", std::to_string(config.n_layer), "--family", family});
    const double write_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double file_bytes = static_cast<double>(fs::file_size(fs::path(dir) / "model.safetensors"));
    const ChildReport load = parse(run_self({"--child_load", dir}));
    const ChildReport naive = parse(run_self({"--child_double_copy", dir}));
    const ChildReport build = parse(run_self({"--child_build", dir, "--family", family}));
    if (keep.empty()) fs::remove_all(dir);

    const double model_mib = mib(4.0 * static_cast<double>(load.params));
    const double file_mib = mib(file_bytes);
    const double target = model_mib + 0.2 * file_mib + load.before;
    std::printf("%s shape: n_layer %lld, n_head %lld, n_kv_head %lld, n_embd %lld, vocab %lld, positions %lld: %lld parameters\n",
                family == "llama" ? "Llama" : "GPT-2", static_cast<long long>(config.n_layer),
                static_cast<long long>(config.n_head), static_cast<long long>(config.kv_heads()),
                static_cast<long long>(config.n_embd), static_cast<long long>(config.vocab_size),
                static_cast<long long>(config.block_size), load.params);
    std::printf("file model.safetensors %.1f MiB (written in %.1f s), model float32 %.1f MiB\n", file_mib, write_s,
                model_mib);
    std::printf("%-14s %12s %12s %14s %10s %8s\n", "", "RSS before", "peak RSS", "peak - before", "x file", "load s");
    const std::string loader = "load_hf_" + family;
    for (const auto& [name, r] : {std::make_pair(loader.c_str(), load), std::make_pair("double copy", naive),
                                  std::make_pair("nn::GPT only", build)})
      std::printf("%-14s %8.1f MiB %8.1f MiB %10.1f MiB %10.2f %8.2f\n", name, r.before, r.peak, r.peak - r.before,
                  (r.peak - r.before) / file_mib, r.seconds);
    std::printf("target: peak <= model + 0.2 x file + RSS before = %.1f + %.1f + %.1f = %.1f MiB: %s (%.1f MiB)\n",
                model_mib, 0.2 * file_mib, load.before, target, load.peak <= target ? "met" : "NOT met", load.peak);
    return load.peak <= target ? 0 : 1;
  } catch (const std::exception& e) {
    std::cerr << "bench_hf_load: " << e.what() << "\n";
    return 1;
  }
}
