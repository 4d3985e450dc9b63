// Internal: whether a tensor name ends with a suffix (".attn.bias", ".rotary_emb.inv_freq"), for the
// readers of other frameworks' files (nanogpt_io, hf_gpt2, hf_llama).
#pragma once

#include <string>

namespace minitrain::train::detail {

inline bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace minitrain::train::detail
