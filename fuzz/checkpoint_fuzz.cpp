// libFuzzer target for the checkpoint loader: what `sample` and `train_gpt --resume` do with a file,
// from its bytes to a restored model. The metadata (format, iter, optimizer steps, generator states),
// the GPT config and the tokenizer are all validated before the model is built.
//
// Any input may be rejected with std::runtime_error or std::invalid_argument (the loaders' documented
// errors); nothing may crash, leak, hang, or fail in another way (std::bad_alloc from a config that
// claims a huge model, std::length_error, std::out_of_range from an unchecked .at()): those abort, so
// libFuzzer reports them.
//
//   scripts/fuzz.sh 60    # builds both fuzz targets and runs each for 60 s
//   build-fuzz/fuzz/checkpoint_fuzz -max_len=16384 build-fuzz/corpus-checkpoint fuzz/corpus-checkpoint
#include <minitrain/core/safetensors.h>
#include <minitrain/data/char_tokenizer.h>
#include <minitrain/nn/gpt.h>
#include <minitrain/train/checkpoint.h>
#include <minitrain/train/gpt_config_io.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>

using namespace minitrain;

namespace {

void load_like_the_programs(const uint8_t* data, size_t size) {
  const train::CheckpointContents c =
      train::checkpoint_from_safetensors(parse_safetensors(data, size, "<fuzz>"), "<fuzz>");
  const nn::GPTConfig config = train::gpt_config_from_json(c.metadata_value("gpt_config"));
  const data::CharTokenizer tokenizer = data::CharTokenizer::from_string(c.metadata_value("tokenizer"));
  train::check_config_matches_tensors(config, c.model, c.path);
  if (tokenizer.vocab_size() != config.vocab_size) throw std::invalid_argument("tokenizer size");
  nn::GPT model(config);
  train::AdamW optimizer(model.named_parameters());
  Generator data_gen(0);
  train::restore_checkpoint(c, model, &optimizer, {{"data", &data_gen}});
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    load_like_the_programs(data, size);
  } catch (const std::runtime_error&) {
  } catch (const std::invalid_argument&) {
  } catch (...) {
    std::abort();  // any other failure is a bug: report it
  }
  return 0;
}
