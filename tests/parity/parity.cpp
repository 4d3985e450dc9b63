#include "parity.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <limits>
#include <stdexcept>

namespace minitrain::parity {

std::string fixture_path(const std::string& file_name) { return std::string(MINITRAIN_FIXTURE_DIR) + "/" + file_name; }

Fixture::Fixture(const std::string& file_name) : name_(file_name), file_(load_safetensors(fixture_path(file_name))) {
  const std::string suffix = ".safetensors";
  if (name_.size() > suffix.size() && name_.compare(name_.size() - suffix.size(), suffix.size(), suffix) == 0)
    name_.resize(name_.size() - suffix.size());
}

bool Fixture::has(const std::string& tensor) const { return file_.tensors.count(tensor) > 0; }

const Tensor& Fixture::at(const std::string& tensor) const {
  auto it = file_.tensors.find(tensor);
  if (it == file_.tensors.end()) throw std::runtime_error(name_ + ": no tensor '" + tensor + "'");
  return it->second;
}

Tensor Fixture::ids(const std::string& tensor) const {
  const Tensor& t = at(tensor);
  for (double v : t.to_vector<double>())
    if (v != std::floor(v)) throw std::runtime_error(name_ + ": '" + tensor + "' holds a non-integer id");
  return t.to(DType::Int64);
}

const std::string& Fixture::meta(const std::string& key) const {
  auto it = file_.metadata.find(key);
  if (it == file_.metadata.end()) throw std::runtime_error(name_ + ": no metadata '" + key + "'");
  return it->second;
}

DType Fixture::dtype() const { return meta("dtype") == "f64" ? DType::Float64 : DType::Float32; }

std::vector<std::string> Fixture::names(const std::string& prefix, const std::string& suffix) const {
  std::vector<std::string> out;
  for (const auto& [name, t] : file_.tensors) {
    if (name.size() < prefix.size() + suffix.size()) continue;
    if (name.compare(0, prefix.size(), prefix) != 0) continue;
    if (name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) continue;
    out.push_back(name.substr(prefix.size(), name.size() - prefix.size() - suffix.size()));
  }
  return out;
}

double relative_error(const Tensor& actual, const Tensor& expected, double limit) {
  if (actual.shape() != expected.shape()) return std::numeric_limits<double>::infinity();
  const std::vector<double> a = actual.to_vector<double>(), r = expected.to_vector<double>();
  double largest = 0;
  for (double v : r) largest = std::max(largest, std::fabs(v));
  const double floor = kUlpsOfLargest * unit_roundoff(expected.dtype()) * largest / limit;
  double worst = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double diff = std::fabs(a[i] - r[i]);
    if (std::isnan(diff) && !(std::isnan(a[i]) && std::isnan(r[i]))) return std::numeric_limits<double>::infinity();
    if (diff == 0 || std::isnan(diff)) continue;  // equal, including equal infinities
    const double scale = std::max(std::fabs(r[i]), floor);
    worst = std::max(worst, scale > 0 ? diff / scale : diff);
  }
  return worst;
}

namespace {
std::string sci(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2g", v);
  return buf;
}
}  // namespace

bool Report::check(const std::string& item, const std::string& what, const Tensor& actual, const Tensor& expected) {
  const double err = relative_error(actual, expected, limit_);
  if (std::getenv("MINITRAIN_PARITY_DUMP")) dump_[item + "." + what] = actual.detach().contiguous();
  record(item, what, err);
  return err <= limit_;
}

void Report::record(const std::string& item, const std::string& what, double error) {
  if (item != line_item_) {
    end_item();
    line_item_ = item;
    line_ = "[parity] " + group_ + " | " + item;
    ++items_;
  }
  line_ += " | " + what + " " + sci(error);
  if (!(error <= limit_)) {
    line_ += " FAIL";
    failures_.push_back(item + " " + what + ": relative error " + sci(error) + " > " + sci(limit_));
  }
  if (!(error <= worst_)) {  // NaN and inf count as worst
    worst_ = error;
    worst_where_ = item + " " + what;
  }
}

void Report::end_item() {
  if (!line_.empty()) std::cout << line_ << "\n";
  line_.clear();
}

Report::~Report() {
  end_item();
  if (const char* dir = std::getenv("MINITRAIN_PARITY_DUMP")) save_safetensors(std::string(dir) + "/" + group_ + ".safetensors", dump_);
  std::cout << "[parity] " << group_ << ": worst relative error " << sci(worst_) << " (" << worst_where_
            << "), limit " << sci(limit_) << ", " << items_ << (items_ == 1 ? " item" : " items") << "\n";
}

}  // namespace minitrain::parity
