"""Golden values for minitrain's nn modules: Linear, LayerNorm, Embedding, causal multi-head attention,
the MLP (GELU, erf form) and the pre-LN Block, each with its nanoGPT parameter names.

For a module "m" the file holds m.param.<name> (its weights), m.x (or m.ids for Embedding), m.grad_out, m.out,
m.grad.x and m.grad.param.<name>; the metadata entry "m.config" (JSON) gives the constructor arguments.
Weights are redrawn after construction (LayerNorm gains around 1, non-zero biases), so that every parameter
changes the output: a zero bias would hide a bias that is added twice or not at all.
"""
import copy
import json
import math

import torch
import torch.nn as nn

import nanogpt_model as ng


def _redraw(module, gen):
    with torch.no_grad():
        for name, p in module.named_parameters():
            if isinstance(_owner(module, name), (ng.LayerNorm, nn.LayerNorm)) and name.endswith("weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen, dtype=torch.float64))
            elif p.dim() == 1:
                p.copy_(0.2 * torch.randn(p.shape, generator=gen, dtype=torch.float64))
            elif isinstance(_owner(module, name), nn.Embedding):
                p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64))
            else:  # (out, in): keep activations O(1)
                p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64) / math.sqrt(p.shape[1]))


def _owner(module, param_name):
    for part in param_name.split(".")[:-1]:
        module = getattr(module, part)
    return module


def _specs():
    """(name, config, constructor, input kind, input shape)."""
    small = lambda **kw: ng.GPTConfig(block_size=8, vocab_size=10, n_layer=1, dropout=0.0, **kw)  # noqa: E731
    return [
        ("linear", {"in_features": 5, "out_features": 3, "bias": True},
         lambda c: nn.Linear(c["in_features"], c["out_features"], bias=c["bias"]), "x", (2, 4, 5)),
        ("linear_no_bias", {"in_features": 6, "out_features": 4, "bias": False},
         lambda c: nn.Linear(c["in_features"], c["out_features"], bias=c["bias"]), "x", (3, 6)),
        ("layer_norm", {"dim": 6, "bias": True}, lambda c: ng.LayerNorm(c["dim"], c["bias"]), "x", (3, 2, 6)),
        ("layer_norm_no_bias", {"dim": 5, "bias": False}, lambda c: ng.LayerNorm(c["dim"], c["bias"]), "x", (4, 5)),
        ("embedding", {"num_embeddings": 7, "embedding_dim": 4},
         lambda c: nn.Embedding(c["num_embeddings"], c["embedding_dim"]), "ids", (2, 3)),
        ("attention", {"n_embd": 16, "n_head": 4, "bias": True},
         lambda c: ng.CausalSelfAttention(small(n_head=c["n_head"], n_embd=c["n_embd"], bias=c["bias"])),
         "x", (2, 6, 16)),
        ("attention_no_bias", {"n_embd": 12, "n_head": 3, "bias": False},
         lambda c: ng.CausalSelfAttention(small(n_head=c["n_head"], n_embd=c["n_embd"], bias=c["bias"])),
         "x", (3, 5, 12)),
        ("mlp", {"n_embd": 8, "bias": True},
         lambda c: ng.MLP(small(n_embd=c["n_embd"], bias=c["bias"])), "x", (2, 3, 8)),
        ("block", {"n_embd": 16, "n_head": 2, "bias": True},
         lambda c: ng.Block(small(n_head=c["n_head"], n_embd=c["n_embd"], bias=c["bias"])), "x", (2, 5, 16)),
        ("block_no_bias", {"n_embd": 12, "n_head": 4, "bias": False},
         lambda c: ng.Block(small(n_head=c["n_head"], n_embd=c["n_embd"], bias=c["bias"])), "x", (2, 7, 12)),
    ]


def fixture(dtype, seed=5):
    gen = torch.Generator().manual_seed(seed)
    tensors, metadata = {}, {}
    for name, config, make, kind, shape in _specs():
        torch.manual_seed(seed)  # construction draws torch's default init; _redraw then replaces it
        module64 = make(config).to(torch.float64)
        _redraw(module64, gen)
        if kind == "ids":
            ids = torch.tensor([[1, 3, 1], [6, 1, 3]])  # repeats scatter-add; rows 0, 2, 4, 5 get no gradient
            x64 = None
        else:
            x64 = torch.randn(shape, generator=gen, dtype=torch.float64)
        module = copy.deepcopy(module64).to(dtype)
        if kind == "ids":
            y = module(ids)
        else:
            x = x64.to(dtype).requires_grad_(True)
            y = module(x)
        grad_out = torch.randn(y.shape, generator=gen, dtype=torch.float64).to(dtype)
        y.backward(grad_out)
        metadata[name + ".config"] = json.dumps(config, sort_keys=True)
        tensors[name + ".out"] = y.detach()
        tensors[name + ".grad_out"] = grad_out
        if kind == "ids":
            tensors[name + ".ids"] = ids.to(dtype)
        else:
            tensors[name + ".x"] = x.detach()
            tensors[name + ".grad.x"] = x.grad
        for pname, p in module.named_parameters():
            tensors["%s.param.%s" % (name, pname)] = p.detach()
            tensors["%s.grad.param.%s" % (name, pname)] = p.grad
    return tensors, metadata
