"""Golden values for a 2-layer GPT in nanoGPT's architecture: one forward/backward, and 10 training steps.

gpt_<dtype>:   param.<name> for every state-dict name (lm_head.weight is the tied wte weight), idx, targets,
               logits, loss, and grad.<name> for every state-dict name (the tied pair share one gradient).
train_<dtype>: 10 steps from the same weights as gpt_<dtype>, nanoGPT's loop: lr from the warmup+cosine
               schedule, forward, backward, clip the global grad norm, AdamW (decay on dim >= 2 tensors).
               batch.K.x / batch.K.y, and per step lr, loss, grad_norm (before clipping); final.<name> are the
               weights after the last step. The hyperparameters are in the metadata ("hparams", JSON).
nanogpt_state_dict: the float32 weights alone, as a PyTorch user would save them (nanoGPT names, config
               and a character vocabulary in the metadata): the file minitrain's import reads.

Tokens are float tensors of exact integers (minitrain reads F32/F64 only).
"""
import json

import torch

import nanogpt_model as ng

CONFIG = ng.GPTConfig(block_size=16, vocab_size=48, n_layer=2, n_head=4, n_embd=32, dropout=0.0, bias=True)
# 48 characters; sorted (uppercase first) they are the vocabulary, ids in code-point order as CharTokenizer.
VOCABULARY = "".join(sorted("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUV"))
HPARAMS = dict(learning_rate=6e-3, min_lr=6e-4, warmup_iters=3, lr_decay_iters=8, weight_decay=0.1,
               beta1=0.9, beta2=0.99, eps=1e-8, grad_clip=1.0, steps=10, batch_size=4)


def initial_model(seed=1337):
    """nanoGPT's initialisation in float32, then small noise on the LayerNorm and bias parameters (all ones and
    zeros at init, which would hide a wrong affine or bias term)."""
    torch.manual_seed(seed)
    model = ng.GPT(CONFIG)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 1:
                p.add_(0.02 * torch.randn(p.shape, generator=gen))
    return model


def _weights(model, prefix):
    return {prefix + k: v.detach().clone() for k, v in model.state_dict().items()}


def _pattern_batch(gen, batch, T, vocab):
    """Arithmetic sequences mod vocab (random start and stride 1..3): learnable, so 10 steps move the loss."""
    start = torch.randint(0, vocab, (batch, 1), generator=gen)
    stride = torch.randint(1, 4, (batch, 1), generator=gen)
    seq = (start + stride * torch.arange(T + 1)) % vocab
    return seq[:, :-1].contiguous(), seq[:, 1:].contiguous()


def gpt_fixture(dtype):
    model = initial_model().to(dtype)
    gen = torch.Generator().manual_seed(7)
    idx = torch.randint(0, CONFIG.vocab_size, (4, CONFIG.block_size), generator=gen)
    targets = torch.randint(0, CONFIG.vocab_size, (4, CONFIG.block_size), generator=gen)
    logits, loss = model(idx, targets)
    loss.backward()
    out = _weights(model, "param.")
    grads = {name: p.grad for name, p in model.named_parameters()}
    for name in model.state_dict():
        # lm_head.weight is wte's Parameter: named_parameters() lists it once, as transformer.wte.weight
        out["grad." + name] = (grads.get(name, grads["transformer.wte.weight"])).clone()
    out.update(idx=idx.to(dtype), targets=targets.to(dtype), logits=logits.detach(), loss=loss.detach())
    return out, {"config": json.dumps(CONFIG.as_dict(), sort_keys=True)}


def train_fixture(dtype):
    h = HPARAMS
    model = initial_model().to(dtype)
    opt = ng.nanogpt_adamw(model, h["weight_decay"], h["learning_rate"], (h["beta1"], h["beta2"]), h["eps"])
    gen = torch.Generator().manual_seed(11)
    out = {}
    lrs, losses, norms = [], [], []
    for step in range(h["steps"]):
        lr = ng.nanogpt_lr(step, h["warmup_iters"], h["lr_decay_iters"], h["learning_rate"], h["min_lr"])
        for group in opt.param_groups:
            group["lr"] = lr
        x, y = _pattern_batch(gen, h["batch_size"], CONFIG.block_size, CONFIG.vocab_size)
        _, loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), h["grad_clip"])
        opt.step()
        out["batch.%d.x" % step], out["batch.%d.y" % step] = x.to(dtype), y.to(dtype)
        lrs.append(lr)
        losses.append(loss.item())
        norms.append(norm.item())
    out.update(_weights(model, "final."))
    out.update(lr=torch.tensor(lrs, dtype=dtype), loss=torch.tensor(losses, dtype=dtype),
               grad_norm=torch.tensor(norms, dtype=dtype))
    return out, {"hparams": json.dumps(h, sort_keys=True), "config": json.dumps(CONFIG.as_dict(), sort_keys=True)}


def state_dict_fixture():
    """Exactly what `st_io.save("model.safetensors", model.state_dict(), metadata)` gives a PyTorch user."""
    model = initial_model()
    return _weights(model, ""), {"format": "pt", "config": json.dumps(CONFIG.as_dict(), sort_keys=True),
                                 "tokenizer": VOCABULARY}
