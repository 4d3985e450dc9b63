#include "single_layer.h"

#include "finite_difference.h"

#include <minitrain/core/factory.h>
#include <minitrain/core/ops.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace minitrain::study {

namespace {

// Samples are processed in chunks so that K and V of a chunk hold about this many values each (512 KB):
// 2,000 samples of 64 keys × 1,024 dims would be 1 GB per tensor in float64, and small chunks measured
// a little faster than 8 MB ones (fewer fresh pages to fault in).
constexpr int64_t kChunkValues = int64_t{1} << 16;

uint64_t case_seed(uint64_t seed, int64_t d_k, int64_t n_keys) {
  return seed ^ (static_cast<uint64_t>(d_k) << 32) ^ static_cast<uint64_t>(n_keys);
}

// Fills `out` with N(0, 1) values, using both outputs of each Box-Muller pair: drawing the samples is
// most of part 1's cost, and Generator::normal() spends a log and a cos on every single value.
void fill_normal(Generator& gen, std::vector<double>& out) {
  constexpr double kTwoPi = 6.283185307179586476925286766559;
  for (std::size_t i = 0; i < out.size(); i += 2) {
    const double radius = std::sqrt(-2.0 * std::log(1.0 - gen.uniform()));  // 1 - U in (0, 1]: finite log
    const double angle = kTwoPi * gen.uniform();
    out[i] = radius * std::cos(angle);
    if (i + 1 < out.size()) out[i + 1] = radius * std::sin(angle);
  }
}

// Draws q, K, V, u of one sample in that order, so a case's samples do not depend on the chunk size.
AttentionSample draw(Generator& gen, int64_t d, int64_t n) {
  AttentionSample x{d, n, std::vector<double>(d), std::vector<double>(n * d), std::vector<double>(n * d),
                    std::vector<double>(d)};
  for (auto* part : {&x.q, &x.K, &x.V, &x.u}) fill_normal(gen, *part);
  return x;
}

// Stacks one field of every sample into a (B, rows, d) float64 tensor.
Tensor pack(const std::vector<AttentionSample>& batch, std::vector<double> AttentionSample::*field, int64_t rows) {
  const int64_t d = batch.front().d;
  std::vector<double> values;
  values.reserve(batch.size() * static_cast<std::size_t>(rows * d));
  for (const AttentionSample& x : batch) values.insert(values.end(), (x.*field).begin(), (x.*field).end());
  return from_vector(values, {static_cast<int64_t>(batch.size()), rows, d});
}

struct Chunk {
  std::vector<AttentionSample> samples;
  Tensor q, k, v, u;  // (B, 1, d), (B, n, d), (B, n, d), (B, 1, d)
};

struct Leaves {  // fresh leaves over the chunk's values, so each scale starts with empty gradients
  Tensor q, k, v;
  explicit Leaves(const Chunk& c, int64_t count)
      : q(c.q.narrow(0, 0, count).detach()), k(c.k.narrow(0, 0, count).detach()), v(c.v.narrow(0, 0, count).detach()) {
    q.set_requires_grad(true);
    k.set_requires_grad(true);
    v.set_requires_grad(true);
  }
};

// The study's loss of every sample in `in`, composed from the library's ops (what the measurements and the
// finite-difference checks differentiate): scores = scale·q·Kᵀ, p = softmax(scores), L = Σ_b u_b·(p_b V_b) / sqrt(d).
struct ComposedLoss {
  Tensor score_probe;    // (B, 1, n) zeros added to the scores, a leaf: its gradient is dL/dscores
  Tensor scores, probs;  // (B, 1, n)
  Tensor loss;           // scalar; the samples are independent, so each one's gradients are those of its own loss
};

ComposedLoss composed_loss(const Leaves& in, const Tensor& u, double scale) {
  const int64_t B = in.q.size(0), n = in.k.size(1), d = in.q.size(2);
  ComposedLoss out;
  out.score_probe = zeros({B, 1, n}, DType::Float64);
  out.score_probe.set_requires_grad(true);
  out.scores = add(mul(matmul(in.q, in.k.transpose(-2, -1)), scale), out.score_probe);
  out.probs = softmax(out.scores, -1);
  out.loss = mul(sum(mul(matmul(out.probs, in.v), u)), 1.0 / std::sqrt(static_cast<double>(d)));
  return out;
}

double norm(const std::vector<double>& x, int64_t start, int64_t length) {
  double total = 0;
  for (int64_t i = start; i < start + length; ++i) total += x[i] * x[i];
  return std::sqrt(total);
}

std::vector<double> slice(const std::vector<double>& x, int64_t start, int64_t length) {
  return {x.begin() + start, x.begin() + start + length};
}

struct PerScale {
  std::vector<double> var_scores, max_prob, entropy, grad_scores, grad_q, grad_k, grad_v, jacobian;
  std::vector<FiniteDifferenceCheck> fd;
};

// The analytic gradients of the fused kernel for the first `count` samples: (dq, dK, dV) values.
std::vector<std::vector<double>> fused_gradients(const Chunk& c, int64_t count, double scale) {
  Leaves in(c, count);
  const double d = static_cast<double>(c.q.size(-1));
  Tensor out = scaled_dot_product_attention(in.q, in.k, in.v, scale, false);  // (count, 1, d)
  mul(sum(mul(out, c.u.narrow(0, 0, count))), 1.0 / std::sqrt(d)).backward();
  return {in.q.grad().to_vector<double>(), in.k.grad().to_vector<double>(), in.v.grad().to_vector<double>()};
}

// One scale on one chunk: the composed forward and backward, per-sample statistics, and the
// finite-difference checks of the chunk's first `fd_count` samples.
void measure_chunk(const Chunk& c, double scale, int64_t fd_count, double fd_step, PerScale& out) {
  const int64_t B = c.q.size(0), n = c.k.size(1), d = c.q.size(2);
  Leaves in(c, B);
  const ComposedLoss composed = composed_loss(in, c.u, scale);
  composed.loss.backward();

  const std::vector<double> s = composed.scores.to_vector<double>(), p = composed.probs.to_vector<double>();
  const std::vector<double> gs = composed.score_probe.grad().to_vector<double>(), gq = in.q.grad().to_vector<double>(),
                            gk = in.k.grad().to_vector<double>(), gv = in.v.grad().to_vector<double>();
  for (int64_t b = 0; b < B; ++b) {
    double sq = 0, mx = 0, h = 0;
    for (int64_t j = b * n; j < (b + 1) * n; ++j) {
      sq += s[j] * s[j];
      mx = std::max(mx, p[j]);
      if (p[j] > 0) h -= p[j] * std::log(p[j]);
    }
    out.var_scores.push_back(sq / static_cast<double>(n));
    out.max_prob.push_back(mx);
    out.entropy.push_back(h / std::log(static_cast<double>(n)));
    out.grad_scores.push_back(norm(gs, b * n, n));
    out.grad_q.push_back(norm(gq, b * d, d));
    out.grad_k.push_back(norm(gk, b * n * d, n * d));
    out.grad_v.push_back(norm(gv, b * n * d, n * d));
    out.jacobian.push_back(softmax_jacobian_norm(slice(p, b * n, n)));
  }
  if (fd_count == 0) return;
  const std::vector<std::vector<double>> fused = fused_gradients(c, fd_count, scale);
  for (int64_t b = 0; b < fd_count; ++b) {
    const AttentionSample& x = c.samples[b];
    const SampleGradients numeric = finite_difference_gradients(x, scale, fd_step);
    const SampleGradients composed{slice(gq, b * d, d), slice(gk, b * n * d, n * d), slice(gv, b * n * d, n * d)};
    const SampleGradients fused_kernel{slice(fused[0], b * d, d), slice(fused[1], b * n * d, n * d),
                                       slice(fused[2], b * n * d, n * d)};
    FiniteDifferenceCheck check = judge_gradients(x, scale, fd_step, composed, numeric);
    const FiniteDifferenceCheck of_fused = judge_gradients(x, scale, fd_step, fused_kernel, numeric);
    check.error = std::max(check.error, of_fused.error);
    check.rounding_floor = std::max(check.rounding_floor, of_fused.rounding_floor);
    check.excess = std::max(check.excess, of_fused.excess);
    check.runner_up = sample_probabilities(x, scale)[1];
    check.loss = sample_loss(x, scale);
    out.fd.push_back(check);
  }
}

}  // namespace

FiniteDifferenceCheck judge_gradients(const AttentionSample& x, double scale, double step,
                                      const SampleGradients& analytic, const SampleGradients& numeric) {
  FiniteDifferenceCheck check;
  const double atol = kRoundingFactor * numeric_uncertainty(x, scale, step);
  const auto compare = [&](const std::vector<double>& a, const std::vector<double>& fd) {
    check.error = std::max(check.error, relative_error(a, fd));
    double largest = 0;
    for (double v : a) largest = std::max(largest, std::abs(v));
    check.rounding_floor = std::max(check.rounding_floor, rounding_floor(x, scale, step, largest));
    check.excess = std::max(check.excess, worst_excess(a, fd, atol, kFdTolerance));
  };
  compare(analytic.q, numeric.q);
  compare(analytic.K, numeric.K);
  compare(analytic.V, numeric.V);
  return check;
}

SampleGradients library_gradients(const AttentionSample& x, double scale) {
  Chunk c;
  c.samples = {x};
  c.q = pack(c.samples, &AttentionSample::q, 1);
  c.k = pack(c.samples, &AttentionSample::K, x.n);
  c.v = pack(c.samples, &AttentionSample::V, x.n);
  c.u = pack(c.samples, &AttentionSample::u, 1);
  Leaves in(c, 1);
  composed_loss(in, c.u, scale).loss.backward();
  return {in.q.grad().to_vector<double>(), in.k.grad().to_vector<double>(), in.v.grad().to_vector<double>()};
}

Spread spread(std::vector<double> x) {
  if (x.empty()) throw std::invalid_argument("spread: no samples");
  std::sort(x.begin(), x.end());
  // Linear interpolation between order statistics (numpy's default percentile).
  const auto quantile = [&](double q) {
    const double at = q * static_cast<double>(x.size() - 1);
    const auto below = static_cast<std::size_t>(at);
    const double frac = at - static_cast<double>(below);
    return below + 1 < x.size() ? x[below] * (1 - frac) + x[below + 1] * frac : x[below];
  };
  const auto vanished = std::lower_bound(x.begin(), x.end(), kVanished) - x.begin();
  return {quantile(0.5), quantile(0.99), static_cast<double>(vanished) / static_cast<double>(x.size())};
}

double softmax_jacobian_norm(const std::vector<double>& p) {
  // J = diag(p) − p·pᵀ is symmetric positive semi-definite (its null space holds the all-ones vector), so
  // power iteration converges to its largest eigenvalue, the norm. J·v = p ∘ (v − p·v) costs O(n). The start
  // vector, e_argmax − 1/n plus a small ramp, is orthogonal to the null space and not to the top eigenvector.
  const std::size_t n = p.size();
  if (n == 0) return 0;
  const std::size_t top = static_cast<std::size_t>(std::max_element(p.begin(), p.end()) - p.begin());
  std::vector<double> v(n), w(n);
  for (std::size_t j = 0; j < n; ++j)
    v[j] = (j == top ? 1.0 : 0.0) - 1.0 / static_cast<double>(n) + 1e-3 * static_cast<double>(j) / static_cast<double>(n);
  double rayleigh = 0;
  for (int iteration = 0; iteration < 200; ++iteration) {
    double pv = 0, vv = 0;
    for (std::size_t j = 0; j < n; ++j) pv += p[j] * v[j], vv += v[j] * v[j];
    double vw = 0, ww = 0;
    for (std::size_t j = 0; j < n; ++j) {
      w[j] = p[j] * (v[j] - pv);
      vw += v[j] * w[j];
      ww += w[j] * w[j];
    }
    if (vv == 0 || ww == 0) return 0;  // p one-hot to the last bit: nothing passes
    const double next = vw / vv;
    const bool converged = std::abs(next - rayleigh) <= 1e-12 * next;
    rayleigh = next;
    if (converged) break;
    const double inv = 1 / std::sqrt(ww);
    for (std::size_t j = 0; j < n; ++j) v[j] = w[j] * inv;
  }
  return rayleigh;
}

FdVerdict verdict(const FiniteDifferenceCheck& f) {
  if (f.error <= kFdTolerance) return FdVerdict::Pass;
  return f.excess <= 1 ? FdVerdict::TooSmallToSee : FdVerdict::Wrong;
}

const char* verdict_name(FdVerdict v) {
  switch (v) {
    case FdVerdict::Pass: return "pass";
    case FdVerdict::TooSmallToSee: return "too small to see";
    case FdVerdict::Wrong: return "WRONG";
  }
  return "?";
}

Estimate estimate(const std::vector<double>& x) {
  if (x.size() < 2) throw std::invalid_argument("estimate: need at least 2 samples, got " + std::to_string(x.size()));
  const double n = static_cast<double>(x.size());
  double mean = 0, sq = 0;
  for (double v : x) mean += v;
  mean /= n;
  for (double v : x) sq += (v - mean) * (v - mean);
  return {mean, std::sqrt(sq / (n - 1) / n)};
}

std::vector<CaseResult> measure_single_layer(int64_t d_k, int64_t n_keys, const std::vector<ScaleRule>& rules,
                                             const SingleLayerOptions& o) {
  const auto fail = [](const std::string& what) { throw std::invalid_argument("measure_single_layer: " + what); };
  if (d_k < 1) fail("d_k must be at least 1, got " + std::to_string(d_k));
  if (n_keys < 2) fail("n_keys must be at least 2 (entropy / log(n) needs log(n) > 0), got " + std::to_string(n_keys));
  if (o.samples < 2) fail("samples must be at least 2, got " + std::to_string(o.samples));
  if (o.fd_samples < 0 || o.fd_samples > o.samples)
    fail("fd_samples must be in [0, samples = " + std::to_string(o.samples) + "], got " + std::to_string(o.fd_samples));
  if (!(o.fd_step > 0)) fail("fd_step must be positive");
  if (rules.empty()) fail("no scale rules given");

  Generator gen(case_seed(o.seed, d_k, n_keys));
  const int64_t chunk_size = std::clamp<int64_t>(kChunkValues / (n_keys * d_k), 1, o.samples);
  std::vector<double> var_qk;
  std::vector<PerScale> per_scale(rules.size());
  for (int64_t start = 0; start < o.samples; start += chunk_size) {
    Chunk c;
    for (int64_t b = 0; b < std::min(chunk_size, o.samples - start); ++b) c.samples.push_back(draw(gen, d_k, n_keys));
    c.q = pack(c.samples, &AttentionSample::q, 1);
    c.k = pack(c.samples, &AttentionSample::K, n_keys);
    c.v = pack(c.samples, &AttentionSample::V, n_keys);
    c.u = pack(c.samples, &AttentionSample::u, 1);
    {
      NoGradGuard no_grad;
      const std::vector<double> qk = matmul(c.q, c.k.transpose(-2, -1)).to_vector<double>();  // (B, 1, n)
      for (std::size_t b = 0; b < c.samples.size(); ++b) {
        double sq = 0;
        for (int64_t j = 0; j < n_keys; ++j) sq += qk[b * n_keys + j] * qk[b * n_keys + j];
        var_qk.push_back(sq / static_cast<double>(n_keys));
      }
    }
    const int64_t fd_count = std::clamp<int64_t>(o.fd_samples - start, 0, static_cast<int64_t>(c.samples.size()));
    for (std::size_t r = 0; r < rules.size(); ++r) measure_chunk(c, rules[r].value(d_k), fd_count, o.fd_step, per_scale[r]);
  }

  std::vector<CaseResult> out;
  for (std::size_t r = 0; r < rules.size(); ++r) {
    const PerScale& m = per_scale[r];
    CaseResult c;
    c.d_k = d_k, c.n_keys = n_keys, c.samples = o.samples, c.rule = rules[r], c.scale = rules[r].value(d_k);
    c.var_qk = estimate(var_qk);
    c.var_scores = estimate(m.var_scores);
    c.max_prob = estimate(m.max_prob);
    c.entropy = estimate(m.entropy);
    c.grad_scores = estimate(m.grad_scores);
    c.grad_q = estimate(m.grad_q);
    c.grad_k = estimate(m.grad_k);
    c.grad_v = estimate(m.grad_v);
    c.jacobian = estimate(m.jacobian);
    c.grad_scores_spread = spread(m.grad_scores);
    c.grad_q_spread = spread(m.grad_q);
    c.grad_k_spread = spread(m.grad_k);
    c.grad_v_spread = spread(m.grad_v);
    c.jacobian_spread = spread(m.jacobian);
    c.fd = m.fd;
    out.push_back(c);
  }
  return out;
}

}  // namespace minitrain::study
