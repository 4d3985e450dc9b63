// The study's markdown report, generated from the measurements (never written by hand): setup, tables,
// the claims with a verdict each, plots, and the training runs' findings.
#pragma once

#include "gpt_runs.h"
#include "single_layer.h"

#include <string>
#include <vector>

namespace minitrain::study {

struct StudyReport {
  std::string command;  // the command line that produced the report
  bool part1 = false, part2 = false;
  SingleLayerOptions single_layer;
  std::vector<CaseResult> cases;
  std::vector<CaseResult> sweep;  // rules dk^p, the first key count, no finite-difference checks
  double part1_seconds = 0;
  GptStudyOptions gpt;
  std::vector<RunResult> runs;
  int64_t gpt_parameters = 0;
  std::string budget_note;  // why the GPT runs have the size they have (empty: not stated)
  double part2_seconds = 0;
  std::vector<std::string> plots, csv_files;  // file names next to the report
};

std::string render_report(const StudyReport& report);

}  // namespace minitrain::study
