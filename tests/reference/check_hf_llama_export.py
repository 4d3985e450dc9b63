#!/opt/torch-current/bin/python
"""A minitrain Llama export must load in transformers (LlamaForCausalLM.from_pretrained) with no missing,
unexpected or mis-shaped keys and give minitrain's logits. Run by ctest (tests/parity/CMakeLists.txt) with
the venv's python; exits 77 (ctest: skipped) when torch or transformers is missing.

For each variant (no flags: grouped-query attention, untied head, no biases; --bias --tied: biases in every
projection, tied head) write_llama_export writes a random model's directory and its own float32 logits for
a fixed batch; transformers' float32 logits for the same batch must agree within 1e-5 relative to the
largest logit (parity.h's measure).
"""
import argparse
import os
import subprocess
import sys
import tempfile

try:
    import torch
    import transformers
    from transformers import LlamaForCausalLM
except ImportError as e:
    print("skipped: %s (needs torch and transformers)" % e)
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import st_io  # noqa: E402

LIMIT = 1e-5


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--writer", required=True, help="path of the write_llama_export program")
    args = parser.parse_args()
    torch.set_num_threads(1)
    failures = 0
    with tempfile.TemporaryDirectory(prefix="check_hf_llama_") as work:
        for name, flags in [("gqa_untied", []), ("bias_tied", ["--bias", "--tied"])]:
            directory = os.path.join(work, name)
            subprocess.run([args.writer, directory] + flags, check=True)
            model, info = LlamaForCausalLM.from_pretrained(directory, output_loading_info=True)
            model.eval()
            problems = {k: v for k, v in info.items() if v}
            if problems:
                print("FAIL %s: loading info %s" % (name, problems))
                failures += 1
            ref = st_io.load(os.path.join(work, name + ".logits.safetensors"))[0]
            with torch.no_grad():
                logits = model(ref["idx"]).logits.float()
            scale = max(ref["logits"].abs().max().item(), 1e-30)
            err = (logits - ref["logits"]).abs().max().item() / scale
            ok = err <= LIMIT
            failures += not ok
            print("%s %s: relative error %.2g (limit %g), tied %s, biases %s" % (
                "ok" if ok else "FAIL", name, err, LIMIT, model.config.tie_word_embeddings,
                model.config.attention_bias))
    print("torch %s, transformers %s" % (torch.__version__, transformers.__version__))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
