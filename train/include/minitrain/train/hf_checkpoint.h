// Hugging Face model directories of any family minitrain reads, chosen by config.json's "model_type".
// Each family's layout is in its own file (hf_gpt2.h, hf_llama.h); this only dispatches, for the programs
// (`sample --init_from`, `train_gpt --init_from`).
#pragma once

#include <minitrain/train/imported_gpt.h>

#include <string>
#include <vector>

namespace minitrain::train {

// The model types load_hf_checkpoint reads: {"gpt2", "llama"}.
std::vector<std::string> hf_model_types();

// Reads <dir>/config.json's model_type and loads the directory with that family's reader (load_hf_gpt2
// for "gpt2", load_hf_llama for "llama"). Throws std::invalid_argument naming the file and the model types accepted.
ImportedGPT load_hf_checkpoint(const std::string& dir, const ImportSettings& settings = {});

}  // namespace minitrain::train
