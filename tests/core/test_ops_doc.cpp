// docs/ops.md lists every op: each function that core/include/minitrain/core/ops.h declares must have a
// row in one of its tables, and each row must name something ops.h or tensor.h declares, so that the
// table neither misses a new op nor keeps a removed one.
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>

namespace {

std::string read(const std::string& relative) {
  std::ifstream in(std::string(MINITRAIN_SOURCE_DIR) + "/" + relative);
  EXPECT_TRUE(in) << "cannot open " << relative;
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Names of the free functions a header declares at the start of a line: `Tensor add(`, `inline Tensor
// reshape(`, `std::pair<Tensor, Tensor> topk(`, `std::vector<Tensor> split(`, `Shape broadcast_shapes(`.
// Operators (`operator+(`) do not match.
std::set<std::string> declared_functions(const std::string& header) {
  static const std::regex decl(
      R"(^(?:inline\s+)?(?:Tensor|std::pair<Tensor, Tensor>|std::vector<Tensor>|Shape)\s+([a-z_][a-z_0-9]*)\()");
  std::set<std::string> names;
  std::istringstream lines(header);
  for (std::string line; std::getline(lines, line);) {
    std::smatch m;
    if (std::regex_search(line, m, decl)) names.insert(m[1]);
  }
  return names;
}

// The first column of every table row: "| `name` | what | differentiable |".
std::set<std::string> documented_ops(const std::string& doc) {
  static const std::regex row(R"(^\|\s*`([a-z_][a-z_0-9]*)`\s*\|)");
  std::set<std::string> names;
  std::istringstream lines(doc);
  for (std::string line; std::getline(lines, line);) {
    std::smatch m;
    if (std::regex_search(line, m, row)) names.insert(m[1]);
  }
  return names;
}

TEST(OpsDoc, EveryOpInOpsHeaderHasARowInDocsOps) {
  const std::set<std::string> declared = declared_functions(read("core/include/minitrain/core/ops.h"));
  const std::set<std::string> documented = documented_ops(read("docs/ops.md"));
  EXPECT_GT(declared.size(), 50u) << "the parser no longer finds the declarations of ops.h";
  for (const std::string& name : declared)
    EXPECT_TRUE(documented.count(name)) << "ops.h declares '" << name << "' but docs/ops.md has no row for it";
}

TEST(OpsDoc, EveryRowNamesADeclaredOpOrTensorMethod) {
  const std::string ops = read("core/include/minitrain/core/ops.h");
  const std::string tensor = read("core/include/minitrain/core/tensor.h");
  for (const std::string& name : documented_ops(read("docs/ops.md"))) {
    const std::regex call("\\b" + name + "\\(");
    EXPECT_TRUE(std::regex_search(ops, call) || std::regex_search(tensor, call))
        << "docs/ops.md has a row for '" << name << "', which neither ops.h nor tensor.h declares";
  }
}

}  // namespace
