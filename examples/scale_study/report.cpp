#include "report.h"

#include "claims.h"
#include "csv_output.h"
#include "health_table.h"
#include "run_summary.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

namespace minitrain::study {

namespace {

template <class... Args>
std::string f(const char* format, Args... args) {
  char buf[512];
  std::snprintf(buf, sizeof buf, format, args...);
  return buf;
}

std::string pm(const Estimate& e) { return f("%.4g ± %.2g", e.mean, e.se); }

bool has_plot(const StudyReport& r, const std::string& name) {
  return std::find(r.plots.begin(), r.plots.end(), name) != r.plots.end();
}

// "lo–hi" with each end printed by `format`, or one value when both print the same.
std::string span(const char* format, double lo, double hi) {
  const std::string a = f(format, lo), b = f(format, hi);
  return a == b ? a : a + "–" + b;
}

std::string minutes(double seconds) { return f("%.1f min", seconds / 60); }

double min_of(const std::vector<double>& v) { return v.empty() ? NAN : *std::min_element(v.begin(), v.end()); }
double max_of(const std::vector<double>& v) { return v.empty() ? NAN : *std::max_element(v.begin(), v.end()); }
double mean_of(const std::vector<double>& v) {
  double total = 0;
  for (double x : v) total += x / static_cast<double>(v.size());
  return v.empty() ? NAN : total;
}

// The continuous sweep c = d_k^p: a row per exponent, per d_k the median / 99th percentile of ‖dL/dq‖ and
// the share of samples below 1e-6.
void sweep_section(std::ostringstream& md, const StudyReport& r) {
  std::vector<int64_t> dks;
  std::vector<double> powers;
  for (const CaseResult& c : r.sweep) {
    if (std::find(dks.begin(), dks.end(), c.d_k) == dks.end()) dks.push_back(c.d_k);
    if (std::find(powers.begin(), powers.end(), c.rule.power) == powers.end()) powers.push_back(c.rule.power);
  }
  md << "### The continuous sweep c = d_k^p\n\n" << r.sweep.front().n_keys
     << " keys, the same samples. Each cell: median ‖dL/dq‖ / 99th percentile / share below 1e-6. The last "
        "column is the log-log slope of the median against d_k (0: flat; p = −0.5 is 1/sqrt(d_k)).\n\n| p |";
  for (int64_t d : dks) md << " d_k " << d << " |";
  md << " slope of the median |\n|---|";
  for (std::size_t i = 0; i <= dks.size(); ++i) md << "---|";
  md << "\n";
  for (double p : powers) {
    md << "| " << f("%g", p) << " |";
    for (int64_t d : dks)
      for (const CaseResult& c : r.sweep)
        if (c.d_k == d && c.rule.power == p)
          md << " " << f("%.3g", c.grad_q_spread.median) << " / " << f("%.3g", c.grad_q_spread.p99) << " / "
             << f("%.1f%%", 100 * c.grad_q_spread.vanished) << " |";
    std::vector<double> d_ks, medians;  // the slope's points; a median of 0 has no logarithm and is left out
    for (const CaseResult& c : r.sweep)
      if (c.rule.power == p && c.grad_q_spread.median > 0) {
        d_ks.push_back(static_cast<double>(c.d_k));
        medians.push_back(c.grad_q_spread.median);
      }
    const bool two_d_ks = std::any_of(d_ks.begin(), d_ks.end(), [&](double d) { return d != d_ks.front(); });
    md << " " << (two_d_ks ? f("%.2f", loglog_slope(d_ks, medians)) : std::string("-")) << " |\n";
  }
  md << "\n";
  if (has_plot(r, "part1_sweep.png")) md << "![the sweep c = d_k^p](part1_sweep.png)\n\n";
}

void part1_section(std::ostringstream& md, const StudyReport& r) {
  const SingleLayerOptions& o = r.single_layer;
  md << "## Part 1: one attention layer at initialisation\n\n"
     << "Each sample draws a query q, n keys k_j, n values v_j and a direction u, all with d_k i.i.d. N(0, 1) "
        "components (the seeds' assumption), and takes the loss L = u·(Σ_j p_j v_j)/sqrt(d_k) with "
        "p = softmax(c·(q·k_1, …, q·k_n)). "
     << o.samples << " samples per (d_k, n); every scale factor c sees the same samples (seed " << o.seed
     << "). Each entry is the mean over samples ± its standard error. Gradients come from minitrain's own ops "
        "in float64; dL/dscores is the gradient of the softmax input c·q·k.\n\n"
     << "Finite differences: for the first " << o.fd_samples << " samples of each row, every entry of dL/dq, "
        "dL/dK and dL/dV, from the composed ops and from the fused `scaled_dot_product_attention` kernel, is "
        "compared with central differences (step " << f("%g", o.fd_step)
     << ") of the same loss written out by hand in float64. The error of a check is max|analytic − numeric| / "
        "max(|analytic|, |numeric|) per tensor; it fails above "
     << f("%g", kFdTolerance) << ". A failed check is then judged entry by entry: \"excess\" is max |analytic − numeric| / (atol + "
     << f("%g", kFdTolerance) << "·|numeric|) with atol = " << f("%g", kRoundingFactor)
     << "× the rounding noise of a numeric entry (ε·Σ_j p_j|u·v_j|/sqrt(d_k) / (2·step)). Excess ≤ 1: the "
        "gradient is too small for float64 differences to see; above 1 the gradient is WRONG (a sign-flipped, "
        "×10 or zero gradient is, at every d_k and scale: tests/study/test_fd_verdict.cpp).\n\n";
  md << "| n | d_k | scale | c | Var(q·k) | Var(c·q·k) | max p | entropy / log n | ‖dL/dscores‖ | ‖dL/dq‖ | ‖dL/dK‖ | "
        "‖dL/dV‖ | FD failed | FD worst error | worst excess | FD wrong |\n"
     << "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  for (const CaseResult& c : r.cases) {
    const FdSummary fd = summarise_fd(c);
    md << "| " << c.n_keys << " | " << c.d_k << " | " << c.rule.label << " | " << f("%.4g", c.scale) << " | "
       << pm(c.var_qk) << " | " << pm(c.var_scores) << " | " << pm(c.max_prob) << " | " << pm(c.entropy) << " | "
       << pm(c.grad_scores) << " | " << pm(c.grad_q) << " | " << pm(c.grad_k) << " | " << pm(c.grad_v) << " | "
       << fd.failed << "/" << fd.checked << " | " << f("%.2g", fd.worst_error) << " | " << f("%.2g", fd.worst_excess) << " | "
       << fd.wrong << " |\n";
  }
  md << "\n";
  if (has_plot(r, "part1_grad_norms.png")) md << "![gradient norms against d_k](part1_grad_norms.png)\n\n";
  if (has_plot(r, "part1_entropy.png")) md << "![attention entropy against d_k](part1_entropy.png)\n\n";

  md << "### The spread behind the means\n\nA mean can stay put while the typical sample vanishes and rare ones "
        "explode, so here are the medians, 99th percentiles and shares of samples below 1e-6, the norm of the softmax "
        "Jacobian diag(p) − ppᵀ (how much gradient the softmax passes on) and the finite-difference verdicts. The "
        "gradient-check tests print the same table (`ctest --test-dir build -R study --verbose`).\n\n```\n"
     << gradient_health_table(r.cases) << "```\n\n";
  if (has_plot(r, "part1_spread.png")) md << "![spread of the gradient norms against d_k](part1_spread.png)\n\n";
  if (!r.sweep.empty()) sweep_section(md, r);

  md << "### The issue's claims, checked against these numbers\n\n| | claim | measured |\n|---|---|---|\n";
  for (const Claim& c : check_single_layer_claims(r.cases))
    md << "| " << (c.holds ? "✅ holds" : "❌ does not hold") << " | " << c.statement << " | " << c.evidence << " |\n";
  md << "\nWhy a finite-difference check can fail with a correct gradient: with c = 1 and large d_k the scores "
        "spread over tens of units, so all keys but one get weights like e^-30. The gradient through the "
        "softmax is of that size, and the change it makes to L over a step of "
     << f("%g", o.fd_step)
     << " is below the rounding of L itself (about 1e-16 of its size): the two evaluations of L come out equal or "
        "differ only by rounding noise. The check then measures float64, not the gradient. The same samples pass "
        "with c = 1/sqrt(d_k), and the last claim above checks every failing check for exactly this.\n\n";
}

void gpt_setup(std::ostringstream& md, const StudyReport& r, const std::vector<RunSummary>& summaries) {
  const GptStudyOptions& o = r.gpt;
  const nn::GPTConfig& m = o.model;
  const int64_t head = m.n_embd / m.n_head;
  double total_steps = 0, seconds = 0;
  for (const RunSummary& s : summaries) {
    total_steps += static_cast<double>(s.steps);
    seconds += s.ms_per_step * static_cast<double>(s.steps) / 1e3;
  }
  md << "## Part 2: a GPT trained with each scale\n\n"
     << "The character-level GPT on the bundled toy corpus (`data/corpus/toy.txt`, entropy 0.6098 nats/char): "
     << m.n_layer << " layers, width " << m.n_embd << ", " << m.n_head << " heads of size d_k = " << head
     << ", context " << m.block_size << ", no biases, no dropout, "
     << (m.qk_norm ? "QK-norm (RMSNorm with a learned gain on each head of q and k, so |q| and |k| are fixed near "
                     "sqrt(d_k) · gain and the scale alone sets the logits' range), "
                   : "")
     << r.gpt_parameters << " parameters. "
     << "Each scale and learning rate is trained from " << o.seeds << " seed" << (o.seeds == 1 ? "" : "s") << " ("
     << o.seed << (o.seeds > 1 ? " to " + std::to_string(o.seed + static_cast<uint64_t>(o.seeds) - 1) : std::string())
     << ": initial weights and batches); runs of one seed start from the same weights and see the same batches, "
        "so within a seed only the scale factor and the learning rate differ. The plots show the first seed. " << o.iters << " iterations of batch " << o.batch_size
     << ", AdamW (β = " << o.beta1 << ", " << o.beta2 << ", weight decay " << o.weight_decay << "), "
     << o.warmup_iters << " warmup steps then cosine decay to " << o.min_lr_ratio
     << "× the peak learning rate, gradients clipped to global norm " << o.grad_clip
     << " (the recipe of `train_gpt`; `train::Trainer` runs it). Recorded at every step, before clipping "
        "(`Trainer::on_after_backward`): the loss, the global gradient norm, ‖∇W_q‖, ‖∇W_k‖ and ‖∇W_v‖ of every "
        "layer and each layer's attention entropy and logit spread as its kernel computed them in the step's forward "
        "(`train::AttentionWatch`, through forward hooks). Val loss: "
     << o.eval_iters << " batches every " << o.eval_interval << " iterations.\n\n"
     << (r.budget_note.empty() ? "" : "Budget: " + r.budget_note + " ") << "The runs go " << o.jobs
     << " at a time, one thread each. In this run a step took "
     << f("%.0f ms", total_steps > 0 ? 1e3 * seconds / total_steps : 0.0) << " on average ("
     << f("%.0f", total_steps) << " steps in " << minutes(r.part2_seconds) << " of wall time).\n\n";
}

void gpt_table(std::ostringstream& md, const std::vector<RunSummary>& summaries) {
  md << "| run | steps | final val loss | best val | train loss at 25 / 50 / 75 / 100% of steps | grad norm median / max (iter) | "
        "grad-norm spikes | loss spikes | NaN | entropy / log n at step 0 → end (layers min–max) | saturated / flat "
        "layers | ‖∇W_q‖+‖∇W_k‖ over 2‖∇W_v‖, step 0 → end (layer mean) | logit std at end (layer max) |\n"
     << "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  for (const RunSummary& s : summaries)
    md << "| " << s.label << " | " << s.steps << " | " << f("%.4f", s.final_val) << " | " << f("%.4f", s.best_val)
       << " | " << f("%.3f / %.3f / %.3f / %.3f", s.loss_at[0], s.loss_at[1], s.loss_at[2], s.loss_at[3]) << " | "
       << f("%.3g / %.3g (%lld)", s.grad_norm_median, s.grad_norm_max,
                                                        static_cast<long long>(s.grad_norm_max_iter))
       << " | " << s.grad_spikes << " | " << s.loss_spikes << " | " << (s.diverged ? "yes" : "no") << " | "
       << span("%.2f", min_of(s.entropy_init), max_of(s.entropy_init)) << " → "
       << span("%.2f", min_of(s.entropy_end), max_of(s.entropy_end))
       << " | " << s.saturated_layers << " / " << s.flat_layers << " of " << s.entropy_end.size() << " | "
       << f("%.3g → %.3g", mean_of(s.qk_over_v_init), mean_of(s.qk_over_v_end)) << " | "
       << f("%.3g", max_of(s.logit_std_end)) << " |\n";
  md << "\nSpikes: a step whose grad norm exceeds " << kGradSpikeFactor << "× the median of the " << kSpikeWindow
     << " steps before it, or whose loss exceeds their median by " << kLossSpikeNats << " nats. Saturated: entropy / "
     << "log n below " << kSaturatedEntropy << " (averaged over the last 10% of steps); flat: above " << kFlatEntropy
     << ". Logit std: the spread of c·q·k within an attention row. Train losses are means of 10 steps.\n\n";
}

void gpt_findings(std::ostringstream& md, const StudyReport& r, const std::vector<RunSummary>& summaries) {
  md << "### What happened (generated from the table)\n\n";
  // Step 0: all runs share the weights, so only the scale differs.
  double min_init_entropy = INFINITY;
  std::string logits, seen;
  for (std::size_t i = 0; i < r.runs.size(); ++i) {
    min_init_entropy = std::min(min_init_entropy, min_of(summaries[i].entropy_init));
    const std::string& label = r.runs[i].rule.label;
    if (seen.find("|" + label + "|") != std::string::npos) continue;  // one line per scale: same weights
    seen += "|" + label + "|";
    logits += (logits.empty() ? "" : ", ") + f("%.3g", mean_of(summaries[i].logit_std_init)) + " with " + label;
  }
  // q = LayerNorm(x)·W_q with unit-variance inputs and N(0, 0.02) weights: components of std 0.02·sqrt(width),
  // and q·k (d_k terms) of std sqrt(d_k)·(0.02² · width).
  const auto q_std = [](int64_t width) { return 0.02 * std::sqrt(static_cast<double>(width)); };
  const auto qk_std = [&](int64_t width) {
    return std::sqrt(static_cast<double>(r.gpt.model.n_embd / r.gpt.model.n_head)) * q_std(width) * q_std(width);
  };
  const int64_t width = r.gpt.model.n_embd;
  if (r.gpt.model.qk_norm) {
    // QK-norm sets every head of q and k to RMS 1 (times a gain that starts at 1), whatever the weights:
    // q·k of independent directions has std sqrt(d_k) from the start, and at most c·d_k ever (aligned).
    const double dk = static_cast<double>(r.gpt.model.n_embd / r.gpt.model.n_head);
    md << "- **At initialisation, with QK-norm,** every head of q and k has RMS 1 whatever the weights, so q·k has "
          "std sqrt(d_k) = " << f("%.3g", std::sqrt(dk)) << " for unrelated directions and the scale c alone sets "
          "the logits: their spread at step 0 is " << logits << "; the lowest attention entropy / log n of any layer "
          "of any run at step 0 is " << f("%.3f", min_init_entropy) << ". While the gains stay near 1, no logit can "
          "exceed c·d_k (q and k aligned), so a scale below about 1/sqrt(d_k) caps how sharp attention can get.\n";
  } else {
    md << "- **At initialisation nothing is saturated, at this width.** GPT-2's N(0, 0.02) weights give q and k "
          "components of about 0.02·sqrt(width) = "
       << f("%.2f", q_std(width)) << ", not 1, so the logit spread at step 0 is " << logits
       << "; the lowest attention entropy / log n of any layer of any run at step 0 is " << f("%.3f", min_init_entropy)
       << (min_init_entropy > kFlatEntropy ? " (nearly uniform everywhere)" : "")
       << ". This is a statement about width " << width << ", measured once: with the same head size at width 768 (GPT-2 "
          "small) the components are " << f("%.2f", q_std(768)) << " and q·k has std " << f("%.1f", qk_std(768))
       << " with c = 1 (here " << f("%.2f", qk_std(width))
       << "), enough to start saturating. The unit-variance argument of part 1 describes this model only after "
          "training has grown W_q and W_k.\n";
  }

  std::vector<double> lrs;
  for (const RunSummary& s : summaries)
    if (std::find(lrs.begin(), lrs.end(), s.learning_rate) == lrs.end()) lrs.push_back(s.learning_rate);
  for (double lr : lrs) md << "- **lr " << f("%g", lr) << ", final val loss over seeds:** " << rank_by_final_val(summaries, lr) << "\n";
  for (const RunSummary& s : summaries) {
    std::vector<std::string> notes;
    const std::size_t layers = s.entropy_end.size();
    // The layers of one kind at the end, and the range of W_q/W_k-over-W_v gradient ratios in them.
    const auto describe_layers = [&](bool saturated) {
      std::vector<double> ratios, logits, entropies;
      for (std::size_t l = 0; l < layers; ++l)
        if (saturated ? s.entropy_end[l] < kSaturatedEntropy : s.entropy_end[l] > kFlatEntropy) {
          ratios.push_back(s.qk_over_v_end[l]);
          logits.push_back(s.logit_std_end[l]);
          entropies.push_back(s.entropy_end[l]);
        }
      return f("%zu of %zu layers end %s (entropy / log n ", ratios.size(), layers,
               saturated ? "saturated" : "nearly uniform") +
             span("%.3f", min_of(entropies), max_of(entropies)) + ", logit std " +
             span("%.3g", min_of(logits), max_of(logits)) + "); in them W_q and W_k get " +
             span("%.2g", min_of(ratios), max_of(ratios)) + "× the gradient of W_v";
    };
    if (s.saturated_layers > 0) notes.push_back(describe_layers(true));
    if (s.flat_layers > 0) notes.push_back(describe_layers(false));
    if (s.stalled)
      notes.push_back(f("the loss stalled: %.3f at 25%% of the steps, %.3f at 50%%", s.loss_at[0], s.loss_at[1]));
    if (s.diverged) notes.push_back("the loss or gradient became NaN/infinite and the run stopped");
    if (s.grad_spikes > 0)
      notes.push_back(f("%lld grad-norm spike%s (largest %.3g at iter %lld)", static_cast<long long>(s.grad_spikes),
                        s.grad_spikes == 1 ? "" : "s", s.grad_norm_max, static_cast<long long>(s.grad_norm_max_iter)));
    if (s.loss_spikes > 0)
      notes.push_back(f("%lld loss spike%s", static_cast<long long>(s.loss_spikes), s.loss_spikes == 1 ? "" : "s"));
    if (notes.empty())
      notes.push_back("no saturated or flat layer, no spike, no NaN; W_q and W_k get " +
                      span("%.2g", min_of(s.qk_over_v_end), max_of(s.qk_over_v_end)) + "× the gradient of W_v");
    md << "- " << s.label << ": ";
    for (std::size_t i = 0; i < notes.size(); ++i) md << (i ? "; " : "") << notes[i];
    md << ".\n";
  }
  int64_t nan_runs = 0;
  for (const RunSummary& s : summaries) nan_runs += s.diverged;
  md << "- **Explosions:** " << (nan_runs == 0 ? std::string("no run produced a NaN or an infinite loss")
                                               : std::to_string(nan_runs) + " run(s) diverged to NaN/inf")
     << ". Gradients are clipped to norm " << r.gpt.grad_clip
     << " and AdamW divides each update by the gradient's running RMS, so a large gradient does not become an "
        "equally large step; the recorded norms are taken before clipping.\n\n";
}

}  // namespace

std::string render_report(const StudyReport& r) {
  std::ostringstream md;
  md << "# The attention-scale study\n\n"
     << "_Generated by `" << r.command << "` in " << minutes(r.part1_seconds + r.part2_seconds)
     << " (part 1: " << minutes(r.part1_seconds) << ", part 2: " << minutes(r.part2_seconds)
     << "). Do not edit it by hand: rerun the command. Every number is in the CSV files next to it ("
     << [&] {
          std::string s;
          for (const std::string& c : r.csv_files) s += (s.empty() ? "" : ", ") + ("`" + c + "`");
          return s;
        }()
     << ")._\n\n"
     << "Attention multiplies the scores q·k by a factor c before the softmax. The usual c = 1/sqrt(d_k) keeps "
        "the scores' variance at 1 when q and k have unit-variance components. This report measures what c = 1 "
        "and c = 1/d_k (and any other factor given with `--scale`) do to the attention weights and to the "
        "gradients, first in one layer at initialisation, then in a GPT during training.\n\n";
  if (r.part1) part1_section(md, r);
  if (r.part2 && !r.runs.empty()) {
    std::vector<RunSummary> summaries;
    for (const RunResult& run : r.runs) summaries.push_back(summarise(run));
    gpt_setup(md, r, summaries);
    gpt_table(md, summaries);
    for (const char* plot : {"part2_loss.png", "part2_grad_norm.png", "part2_qk_over_v.png", "part2_entropy.png"})
      if (has_plot(r, plot)) md << "![" << plot << "](" << plot << ")\n\n";
    gpt_findings(md, r, summaries);
  }
  if (r.plots.empty()) md << "_gnuplot was not installed, so no plots were drawn._\n";
  return md.str();
}

}  // namespace minitrain::study
