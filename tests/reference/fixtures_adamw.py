"""Golden values for AdamW with nanoGPT's training-loop pieces, on two parameters and given gradients.

Ten steps of: lr from the warmup + cosine schedule (nanoGPT's get_lr), gradients from the fixture, global
grad-norm clipping (torch.nn.utils.clip_grad_norm_), then torch.optim.AdamW with weight decay on the
matrix `w` and none on the vector `b` (nanoGPT's two parameter groups). The gradient scale alternates so
that some steps are clipped and some are not, and the schedule passes through warmup, decay and min_lr.

The file holds init.w, init.b; step.K.grad.w / .b (the gradients fed in, before clipping) and step.K.w / .b
(the values after the step); lr and grad_norm per step; final.exp_avg.* and final.exp_avg_sq.* (the
moments after the last step). "hparams" (JSON) in the metadata.

torch's AdamW: p ← p·(1 − lr·wd); m, v updated; p ← p − lr/(1 − β1^t) · m / (√v/√(1 − β2^t) + eps).
minitrain's AdamW puts eps in the same place, so the plain torch call is the matching one.
"""
import json

import torch

import nanogpt_model as ng

HPARAMS = dict(learning_rate=0.1, min_lr=0.01, warmup_iters=3, lr_decay_iters=8, weight_decay=0.1,
               beta1=0.9, beta2=0.95, eps=1e-8, grad_clip=1.0, steps=10)
GRAD_SCALES = [0.05, 1.0, 0.1, 2.0, 0.02, 0.5, 1.5, 0.08, 3.0, 0.3]


def fixture(dtype):
    h = HPARAMS
    gen = torch.Generator().manual_seed(3)
    w = torch.randn(4, 5, generator=gen, dtype=torch.float64).to(dtype).requires_grad_(True)
    b = torch.randn(5, generator=gen, dtype=torch.float64).to(dtype).requires_grad_(True)
    out = {"init.w": w.detach().clone(), "init.b": b.detach().clone()}
    opt = torch.optim.AdamW([{"params": [w], "weight_decay": h["weight_decay"]}, {"params": [b], "weight_decay": 0.0}],
                            lr=h["learning_rate"], betas=(h["beta1"], h["beta2"]), eps=h["eps"], foreach=False)
    lrs, norms = [], []
    for step, scale in enumerate(GRAD_SCALES):
        lr = ng.nanogpt_lr(step, h["warmup_iters"], h["lr_decay_iters"], h["learning_rate"], h["min_lr"])
        for group in opt.param_groups:
            group["lr"] = lr
        gw = (scale * torch.randn(w.shape, generator=gen, dtype=torch.float64)).to(dtype)
        gb = (scale * torch.randn(b.shape, generator=gen, dtype=torch.float64)).to(dtype)
        w.grad, b.grad = gw.clone(), gb.clone()
        norms.append(torch.nn.utils.clip_grad_norm_([w, b], h["grad_clip"]).item())
        opt.step()
        out["step.%d.grad.w" % step], out["step.%d.grad.b" % step] = gw, gb
        out["step.%d.w" % step], out["step.%d.b" % step] = w.detach().clone(), b.detach().clone()
        lrs.append(lr)
    for name, p in (("w", w), ("b", b)):
        out["final.exp_avg." + name] = opt.state[p]["exp_avg"].clone()
        out["final.exp_avg_sq." + name] = opt.state[p]["exp_avg_sq"].clone()
    out["lr"] = torch.tensor(lrs, dtype=dtype)
    out["grad_norm"] = torch.tensor(norms, dtype=dtype)
    return out, {"hparams": json.dumps(h, sort_keys=True)}
