#!/usr/bin/env python3
"""Times the same GPT training step in PyTorch and in minitrain, alternating, and prints the ratios.

Run with the Python that has torch (Debian's python3-torch runs under /usr/bin/python3); add more PyTorch
installs with --torch-python (e.g. a venv with the current release from pip):
    /usr/bin/python3 bench/pytorch_peer.py --config nano --build build \
        [--torch-python /opt/torch-current/bin/python] [--record]

Each PyTorch setting runs in a fresh process (thread counts are fixed at start-up); minitrain runs
build/bench/bench_train. A step is forward, cross-entropy, backward, AdamW, zero_grad, as in nanoGPT's
train.py. --record appends the figures (machine, date, commit) to bench/RESULTS.md.
"""
import argparse
import datetime
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time

CONFIGS = {  # n_layer, n_head, n_embd, block_size, batch_size (vocab 65, no bias, no dropout)
    "nano": (4, 4, 128, 64, 12),
    "small": (6, 6, 384, 256, 8),
}
# (torch intra-op threads, BLAS threads, OMP_WAIT_POLICY; "default" leaves it unset)
TORCH_SETTINGS = [(1, 1, "PASSIVE"), (1, 2, "PASSIVE"), (2, 2, "PASSIVE"), (2, 2, "default")]


def torch_worker(config, steps, warmup):
    """Runs in a child process whose thread environment was set by the parent; prints one line."""
    import torch
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "reference"))
    from nanogpt_model import GPT, GPTConfig

    n_layer, n_head, n_embd, block, batch = CONFIGS[config]
    torch.manual_seed(0)
    model = GPT(GPTConfig(block, 65, n_layer, n_head, n_embd, 0.0, False))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.99), weight_decay=0.1)
    times = []
    for s in range(warmup + steps):
        x = torch.randint(0, 65, (batch, block))
        y = torch.randint(0, 65, (batch, block))
        t = time.perf_counter()
        _, loss = model(x, y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if s >= warmup:
            times.append((time.perf_counter() - t) * 1e3)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"RESULT {statistics.median(times):.2f} {min(times):.2f} {max(times):.2f} {rss:.1f} {torch.__version__}")


def torch_generate_worker(config):
    """nanoGPT's generate (greedy here, so that the work is fixed): for every new token, forward the whole
    cropped context, project only the last position, append. Prints tokens/s for a full block."""
    import torch
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "reference"))
    from nanogpt_model import GPT, GPTConfig

    n_layer, n_head, n_embd, block, _ = CONFIGS[config]
    torch.manual_seed(0)
    model = GPT(GPTConfig(block, 65, n_layer, n_head, n_embd, 0.0, False)).eval()
    tr = model.transformer

    def generate(new_tokens):
        idx = torch.zeros((1, 1), dtype=torch.long)
        for _ in range(new_tokens):
            cond = idx[:, -block:]
            x = tr.wte(cond) + tr.wpe(torch.arange(cond.shape[1], dtype=torch.long))
            for b in tr.h:
                x = b(x)
            logits = model.lm_head(tr.ln_f(x[:, [-1], :]))
            idx = torch.cat((idx, torch.argmax(logits[:, -1, :], dim=-1, keepdim=True)), dim=1)

    with torch.no_grad():
        generate(8)
        t = time.perf_counter()
        generate(block - 1)
        elapsed = time.perf_counter() - t
    print(f"RESULT {(block - 1) / elapsed:.2f} {torch.__version__}")


def run_torch_generate(python, config, threads):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads),
               OMP_WAIT_POLICY="PASSIVE", MKL_NUM_THREADS=str(threads))
    code = ("import sys; sys.path.insert(0, %r); import pytorch_peer as p; import torch; "
            "torch.set_num_threads(%d); p.torch_generate_worker(%r)"
            % (os.path.dirname(os.path.abspath(__file__)), threads, config))
    out = subprocess.run([python, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    rate, version = re.search(r"RESULT (\S+) (\S+)", out).groups()
    return float(rate), version


def run_minitrain_generate(build, config, threads):
    out = subprocess.run([os.path.join(build, "bench", "bench_generate"), "--config", config, "--threads", str(threads),
                          "--repeats", "3"], capture_output=True, text=True, check=True).stdout
    return float(re.search(r"with KV cache: +(\S+) tokens/s", out).group(1))


def compare_generation(args, pythons):
    rates = {}
    for _ in range(args.rounds):
        for threads in (1, 2):
            rates.setdefault(f"minitrain KV cache threads={threads}", []).append(
                run_minitrain_generate(args.build, args.config, threads))
            for python in pythons:
                rate, version = run_torch_generate(python, args.config, threads)
                rates.setdefault(f"torch {version} nanoGPT generate threads={threads}", []).append(rate)
    rows = {name: statistics.median(r) for name, r in rates.items()}
    ours = max(v for k, v in rows.items() if k.startswith("minitrain"))
    lines = [f"{args.config} generation: tokens/s for block_size - 1 new tokens from a 1-token prompt, greedy, "
             f"median of {args.rounds} alternating rounds"]
    for name, rate in rows.items():
        lines.append(f"  {name:48s} {rate:9.1f} tokens/s")
    for version in sorted({k.split()[1] for k in rows if k.startswith("torch")}):
        best = max(v for k, v in rows.items() if k.startswith(f"torch {version} "))
        lines.append(f"  minitrain with KV cache / torch {version} nanoGPT generate = {ours / best:.1f}x")
    return lines


def run_torch(python, config, steps, warmup, torch_threads, blas_threads, wait):
    env = dict(os.environ, OMP_NUM_THREADS=str(torch_threads), OPENBLAS_NUM_THREADS=str(blas_threads),
               MKL_NUM_THREADS=str(blas_threads))
    env.pop("OMP_WAIT_POLICY", None)
    if wait != "default":
        env["OMP_WAIT_POLICY"] = wait
    code = ("import sys; sys.path.insert(0, %r); import pytorch_peer as p; import torch; "
            "torch.set_num_threads(%d); p.torch_worker(%r, %d, %d)"
            % (os.path.dirname(os.path.abspath(__file__)), torch_threads, config, steps, warmup))
    out = subprocess.run([python, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    median, lo, hi, rss, version = re.search(r"RESULT (\S+) (\S+) (\S+) (\S+) (\S+)", out).groups()
    return float(median), float(lo), float(hi), float(rss), version


def run_minitrain(build, config, steps, warmup, threads):
    out = subprocess.run([os.path.join(build, "bench", "bench_train"), "--config", config, "--steps", str(steps),
                          "--warmup", str(warmup), "--threads", str(threads), "--profile", "false"],
                         capture_output=True, text=True, check=True).stdout
    median, lo, hi = map(float, re.search(r"median (\S+) ms \(min (\S+), max (\S+)\)", out).groups())
    rss = float(re.search(r"peak RSS: (\S+) MiB", out).group(1))
    return median, lo, hi, rss


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="nano", choices=sorted(CONFIGS))
    ap.add_argument("--build", default="build")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=2, help="alternations of all runs (medians of rounds)")
    ap.add_argument("--torch-python", action="append", default=[],
                    help="another interpreter with a PyTorch install to time as well (repeatable)")
    ap.add_argument("--generate", action="store_true",
                    help="time sampling instead: minitrain's KV-cached generate against nanoGPT's generate")
    ap.add_argument("--record", action="store_true")
    args = ap.parse_args()
    pythons = [sys.executable] + args.torch_python
    if args.generate:
        lines = compare_generation(args, pythons)
        print("\n".join(lines))
        record(args, lines)
        return

    results = {}
    for _ in range(args.rounds):
        for threads in (1, 2):
            results.setdefault(f"minitrain threads={threads}", []).append(
                run_minitrain(args.build, args.config, args.steps, args.warmup, threads))
        for python in pythons:
            for t, b, w in TORCH_SETTINGS:
                r = run_torch(python, args.config, args.steps, args.warmup, t, b, w)
                results.setdefault(f"torch {r[4]} intra={t} blas={b} {w}", []).append(r[:4])

    rows = {name: tuple(statistics.median(r[i] for r in runs) for i in range(4)) for name, runs in results.items()}
    best_ours = min(v[0] for k, v in rows.items() if k.startswith("minitrain"))
    ours_rss = min(v[3] for k, v in rows.items() if k.startswith("minitrain"))
    versions = sorted({k.split()[1] for k in rows if k.startswith("torch")})
    lines = [f"{args.config}: median ms/step (min, max), peak RSS; {args.steps} steps after {args.warmup} warm-up, "
             f"median of {args.rounds} alternating rounds"]
    for name, (median, lo, hi, rss) in rows.items():
        lines.append(f"  {name:42s} {median:8.1f} ms ({lo:.1f}, {hi:.1f})  {rss:7.1f} MiB")
    for version in versions:
        mine = [v for k, v in rows.items() if k.startswith(f"torch {version} ")]
        best_torch = min(v[0] for v in mine)
        lines.append(f"  torch {version}: best PyTorch / best minitrain = {best_torch / best_ours:.2f}x time, "
                     f"{min(v[3] for v in mine) / ours_rss:.1f}x peak RSS")
    print("\n".join(lines))
    record(args, lines)


def record(args, lines):
    """--record: appends the figures with date, machine and commit to bench/RESULTS.md."""
    if args.record:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
        with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS.md"), "a") as f:
            f.write(f"\n## {datetime.date.today()} {platform.machine()} {os.cpu_count()} cores, commit {commit}\n\n```\n")
            f.write("\n".join(lines) + "\n```\n")


if __name__ == "__main__":
    main()
