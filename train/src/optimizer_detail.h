// Internal: the checks and helpers every optimizer's source file shares (optimizer.cpp, muon.cpp).
#pragma once

#include <minitrain/train/optimizer.h>

#include <map>
#include <string>
#include <vector>

namespace minitrain::train::detail {

// Throws "<optimizer>: parameter group <group>: <what>, got <value>" unless ok.
void check_option(bool ok, const char* optimizer, std::size_t group, const char* what, double value);
std::vector<ParamGroup> one_group(NamedParameters params);
// Copies state[key] into slot; throws naming the key when it is missing or its shape differs.
void load_slot(const std::map<std::string, Tensor>& state, const std::string& key, Tensor& slot);

}  // namespace minitrain::train::detail
