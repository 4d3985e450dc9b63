#!/opt/torch-current/bin/python
"""Golden values for Muon from torch.optim.Muon: tests/reference/fixtures/muon_f64.safetensors and muon_f32.safetensors.

    /opt/torch-current/bin/python tests/reference/fixtures_muon.py           # regenerate
    /opt/torch-current/bin/python tests/reference/fixtures_muon.py --check   # compare bytes, write nothing

torch.optim.Muon exists only in recent torch (2.9 and later), so this script runs under the venv in
/opt/torch-current (it needs torch only: st_io.py writes the files) and is not registered in
make_fixtures.py. The torch version is in each file's metadata ("torch").
tests/parity/test_muon_parity.cpp reads the files; no Python is needed at test time.

Two cases, ten steps each, on a tall (12x5) and a wide (5x12) matrix with gradients given by the fixture
(their scale varies from step to step) and a learning rate changed before every step, as a schedule does:
- "nesterov": torch's defaults (nesterov, momentum 0.95, adjust_lr_fn None = "original"), lr 0.02,
  weight decay 0.1;
- "plain_rms": nesterov off, momentum 0.9, adjust_lr_fn "match_rms_adamw", lr 0.01, weight decay 0.05.
For a case "c" the file holds c.init.<p>, c.step.K.grad.<p> (the gradient fed in), c.step.K.<p> (the
parameter after the step), c.lr (per step), c.final.momentum_buffer.<p>, and c.bf16.step.K.<p> (see
below), with <p> = tall, wide; metadata "c.hparams" (JSON). "ns.in" and "ns.out" are one Newton-Schulz
orthogonalisation (7x4, default coefficients, 5 steps) on its own.

What torch computes (torch/optim/_muon.py, the source rather than the docstring): the momentum buffer is
an exponential average, buf.lerp_(grad, 1 - momentum), and the Nesterov update grad.lerp(buf, momentum);
decoupled weight decay param.mul_(1 - lr * weight_decay) with the unadjusted lr; Newton-Schulz divides by
the Frobenius norm clamped below at eps, transposes tall matrices and runs in bfloat16 for every parameter
dtype. minitrain runs Newton-Schulz in the parameter's dtype instead (on a CPU bfloat16 buys nothing and
rounds to 3 significant digits). So c.step.K.<p> come from torch.optim.Muon with that one cast removed:
torch's _zeropower_via_newtonschulz is replaced, for the call, by a copy of its code in which
`grad.to(dtype=torch.bfloat16, copy=True)` is `grad.clone()` (and the script checks that on a bfloat16
input the copy returns exactly what torch's function returns). c.bf16.step.K.<p> come from the unmodified
torch.optim.Muon, to show that the difference is that rounding and nothing else.
"""
import argparse
import json
import os
import platform
import sys

import torch
import torch.optim._muon as torch_muon

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import st_io  # noqa: E402

OUT_DIR = os.path.join(HERE, "fixtures")
DTYPES = {"f64": torch.float64, "f32": torch.float32}
STEPS = 10
GRAD_SCALES = [1.0, 0.3, 2.0, 0.05, 1.5, 0.8, 3.0, 0.1, 1.0, 0.5]
CASES = {
    "nesterov": dict(lr=0.02, weight_decay=0.1, momentum=0.95, nesterov=True, adjust_lr_fn=None),
    "plain_rms": dict(lr=0.01, weight_decay=0.05, momentum=0.9, nesterov=False, adjust_lr_fn="match_rms_adamw"),
}
SHAPES = {"tall": (12, 5), "wide": (5, 12)}


def zeropower_in_input_dtype(grad, ns_coefficients, ns_steps, eps):
    """torch's _zeropower_via_newtonschulz (torch 2.9-2.15) with the bfloat16 cast replaced by a copy."""
    if ns_steps >= 100:
        raise ValueError("Number of steps must be less than 100 for computational efficiency")
    if len(grad.shape) != 2:
        raise ValueError("Input tensor gradient must be a 2D matrix")
    if len(ns_coefficients) != 3:
        raise ValueError("Coefficients must be a tuple of exactly 3 values")
    a, b, c = ns_coefficients
    ortho_grad = grad.clone()  # torch: grad.to(dtype=torch.bfloat16, copy=True)
    if grad.size(0) > grad.size(1):
        ortho_grad = ortho_grad.T
    ortho_grad.div_(ortho_grad.norm().clamp(min=eps))
    for _ in range(ns_steps):
        gram_matrix = ortho_grad @ ortho_grad.T
        gram_update = torch.addmm(gram_matrix, gram_matrix, gram_matrix, beta=b, alpha=c)
        ortho_grad = torch.addmm(ortho_grad, gram_update, ortho_grad, beta=a)
    if grad.size(0) > grad.size(1):
        ortho_grad = ortho_grad.T
    return ortho_grad


def check_copy_matches_torch():
    """On bfloat16 input the cast is a plain copy, so the two functions must agree bit for bit."""
    gen = torch.Generator().manual_seed(11)
    for shape in ((12, 5), (5, 12), (6, 6)):
        g = torch.randn(shape, generator=gen, dtype=torch.float64).to(torch.bfloat16)
        args = ((3.4445, -4.775, 2.0315), 5, 1e-7)
        if not torch.equal(torch_muon._zeropower_via_newtonschulz(g, *args), zeropower_in_input_dtype(g, *args)):
            sys.exit("fixtures_muon.py: the copy of _zeropower_via_newtonschulz no longer matches this torch's (%s)"
                     % torch.__version__)


def run(case, dtype, grads, init, ns):
    """Ten steps of torch.optim.Muon with Newton-Schulz `ns`; returns the parameters after each step, the lrs
    and the final momentum buffers."""
    h = CASES[case]
    params = {name: init[name].clone().requires_grad_(True) for name in SHAPES}
    opt = torch.optim.Muon(list(params.values()), **h)
    saved = torch_muon._zeropower_via_newtonschulz
    torch_muon._zeropower_via_newtonschulz = ns
    try:
        after, lrs = [], []
        for step in range(STEPS):
            lr = h["lr"] * (1 - 0.06 * step)  # a schedule: the lr changes before every step
            for group in opt.param_groups:
                group["lr"] = lr
            for name, p in params.items():
                p.grad = grads[step][name].clone()
            opt.step()
            after.append({name: p.detach().clone() for name, p in params.items()})
            lrs.append(lr)
    finally:
        torch_muon._zeropower_via_newtonschulz = saved
    buffers = {name: opt.state[p]["momentum_buffer"].clone() for name, p in params.items()}
    return after, lrs, buffers


def fixture(dtype):
    out, meta = {}, {}
    gen = torch.Generator().manual_seed(5)
    for case in CASES:
        init = {name: torch.randn(shape, generator=gen, dtype=torch.float64).to(dtype) for name, shape in SHAPES.items()}
        grads = [{name: (GRAD_SCALES[step] * torch.randn(shape, generator=gen, dtype=torch.float64)).to(dtype)
                  for name, shape in SHAPES.items()} for step in range(STEPS)]
        after, lrs, buffers = run(case, dtype, grads, init, zeropower_in_input_dtype)
        after_bf16, _, _ = run(case, dtype, grads, init, torch_muon._zeropower_via_newtonschulz)
        for name in SHAPES:
            out["%s.init.%s" % (case, name)] = init[name]
            out["%s.final.momentum_buffer.%s" % (case, name)] = buffers[name]
            for step in range(STEPS):
                out["%s.step.%d.grad.%s" % (case, step, name)] = grads[step][name]
                out["%s.step.%d.%s" % (case, step, name)] = after[step][name]
                out["%s.bf16.step.%d.%s" % (case, step, name)] = after_bf16[step][name]
        out[case + ".lr"] = torch.tensor(lrs, dtype=dtype)
        h = dict(CASES[case], adjust_lr_fn=CASES[case]["adjust_lr_fn"] or "original", steps=STEPS,
                 ns_coefficients=[3.4445, -4.775, 2.0315], ns_steps=5, eps=1e-7)
        meta[case + ".hparams"] = json.dumps(h, sort_keys=True)
    m = torch.randn(7, 4, generator=gen, dtype=torch.float64).to(dtype)
    out["ns.in"] = m
    out["ns.out"] = zeropower_in_input_dtype(m, (3.4445, -4.775, 2.0315), 5, 1e-7)
    return out, meta


def build_all():
    files = {}
    for short, dtype in DTYPES.items():
        tensors, meta = fixture(dtype)
        meta.update({"generator": "tests/reference/fixtures_muon.py", "torch": torch.__version__,
                     "python": platform.python_version(), "threads": "1", "dtype": short})
        files["muon_%s.safetensors" % short] = st_io.serialize(tensors, meta)
    return files


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed files, write nothing")
    parser.add_argument("--out_dir", default=OUT_DIR)
    args = parser.parse_args()
    if not hasattr(torch.optim, "Muon"):
        sys.exit("fixtures_muon.py needs a torch with torch.optim.Muon (2.9 or later); this is " + torch.__version__)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    check_copy_matches_torch()
    files = build_all()
    differ = st_io.write_or_check(files, args.out_dir, args.check)
    print("torch %s" % torch.__version__)
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
