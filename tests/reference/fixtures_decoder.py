#!/opt/torch-current/bin/python
"""Golden values for today's decoder in minitrain's GPT: tests/reference/fixtures/decoder_f64.safetensors and
decoder_f32.safetensors.

    /opt/torch-current/bin/python tests/reference/fixtures_decoder.py           # regenerate
    /opt/torch-current/bin/python tests/reference/fixtures_decoder.py --check   # compare bytes, write nothing

A plain PyTorch decoder written here the way Llama / Qwen3 / modded-nanogpt write theirs (separate q, k, v and
gate/up projections, torch.nn.RMSNorm, F.scaled_dot_product_attention with enable_gqa, F.silu), so that it shares
no code with minitrain. Two models:
  llama      RMSNorm, rotary positions in the halves (rotate_half) layout, SwiGLU, grouped-query attention
             (4 query heads, 2 kv heads), no biases, untied LM head.
  qk_softcap RMSNorm, rotary in the interleaved layout with theta 500000, QK-norm with learned gains and a free
             attention scale (0.2), multi-query attention (1 kv head), ReLU² MLP, tied head, logits soft-capped
             at 5.
For model "m" the file holds m.param.<name> under minitrain's names (c_attn.weight = [W_q; W_k; W_v],
mlp.c_fc.weight = [W_gate; W_up]), m.idx and m.targets (int64), m.logits, m.loss and m.grad.<name>, and the
metadata "m.config": minitrain's checkpoint JSON of the config (train::gpt_config_from_json reads it).
The float32 file holds torch's float64 results on the float32-rounded weights, rounded once to float32 (as
fixtures_sdpa.py does). Current torch runs this (SDPA's enable_gqa, torch.nn.RMSNorm); the version is in the metadata ("torch").
tests/parity/test_decoder_parity.cpp reads the files; no Python is needed at test time.
"""
import argparse
import json
import os
import platform
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import st_io  # noqa: E402

OUT_DIR = os.path.join(HERE, "fixtures")
DTYPES = {"f64": torch.float64, "f32": torch.float32}

MODELS = {
    "llama": dict(block_size=12, vocab_size=29, n_layer=2, n_head=4, n_kv_head=2, n_embd=32, mlp_hidden=48,
                  activation="silu", gated_mlp=True, rope_theta=10000.0, rope_layout="halves", qk_norm=False,
                  attention_scale=None, tie_embeddings=False, logit_softcap=0.0, norm_eps=1e-5),
    "qk_softcap": dict(block_size=12, vocab_size=29, n_layer=2, n_head=4, n_kv_head=1, n_embd=32, mlp_hidden=128,
                       activation="relu_squared", gated_mlp=False, rope_theta=500000.0, rope_layout="interleaved",
                       qk_norm=True, attention_scale=0.2, tie_embeddings=True, logit_softcap=5.0, norm_eps=1e-6),
}


def minitrain_config_json(c):
    """The config as minitrain's checkpoints store it (train/src/gpt_config_io.cpp)."""
    return json.dumps(dict(
        block_size=c["block_size"], vocab_size=c["vocab_size"], n_layer=c["n_layer"], n_head=c["n_head"],
        n_embd=c["n_embd"], dropout=0.0, bias=False, activation=c["activation"], positional="rotary",
        attention_scale=c["attention_scale"], seed=1, norm="rms_norm", norm_eps=c["norm_eps"],
        gated_mlp=c["gated_mlp"], mlp_hidden=c["mlp_hidden"], n_kv_head=c["n_kv_head"], qk_norm=c["qk_norm"],
        rope_theta=c["rope_theta"], rope_layout=c["rope_layout"], tie_embeddings=c["tie_embeddings"],
        logit_softcap=c["logit_softcap"]), sort_keys=True)


def rotate(x, positions, theta, layout):
    """RoPE on x (B, H, T, D) at `positions`: pairs (2i, 2i+1) rotated as complex numbers (Meta's Llama) or pairs
    (i, i + D/2) with rotate_half (transformers' apply_rotary_pos_emb); angle = position * theta^(-2i/D)."""
    D = x.shape[-1]
    inv_freq = 1.0 / (theta ** (torch.arange(0, D, 2, dtype=torch.float64) / D))
    angles = positions.to(torch.float64)[:, None] * inv_freq[None, :]  # (T, D/2)
    if layout == "interleaved":
        rotation = torch.polar(torch.ones_like(angles), angles)
        pairs = torch.view_as_complex(x.to(torch.float64).reshape(*x.shape[:-1], D // 2, 2).contiguous())
        return torch.view_as_real(pairs * rotation).reshape(x.shape).to(x.dtype)
    emb = torch.cat([angles, angles], dim=-1)
    cos, sin = emb.cos().to(x.dtype), emb.sin().to(x.dtype)
    half = D // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


class Block(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        C, hs = c["n_embd"], c["n_embd"] // c["n_head"]
        self.c, self.hs = c, hs
        self.ln_1 = torch.nn.RMSNorm(C, eps=c["norm_eps"])
        self.q_proj = torch.nn.Linear(C, c["n_head"] * hs, bias=False)
        self.k_proj = torch.nn.Linear(C, c["n_kv_head"] * hs, bias=False)
        self.v_proj = torch.nn.Linear(C, c["n_kv_head"] * hs, bias=False)
        self.o_proj = torch.nn.Linear(C, C, bias=False)
        if c["qk_norm"]:
            self.q_norm = torch.nn.RMSNorm(hs, eps=c["norm_eps"])
            self.k_norm = torch.nn.RMSNorm(hs, eps=c["norm_eps"])
        self.ln_2 = torch.nn.RMSNorm(C, eps=c["norm_eps"])
        H = c["mlp_hidden"]
        if c["gated_mlp"]:
            self.gate_proj = torch.nn.Linear(C, H, bias=False)
        self.up_proj = torch.nn.Linear(C, H, bias=False)
        self.down_proj = torch.nn.Linear(H, C, bias=False)

    def attention(self, x):
        c, hs = self.c, self.hs
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, c["n_head"], hs)
        k = self.k_proj(x).view(B, T, c["n_kv_head"], hs)
        v = self.v_proj(x).view(B, T, c["n_kv_head"], hs).transpose(1, 2)
        if c["qk_norm"]:
            q, k = self.q_norm(q), self.k_norm(k)
        q, k = q.transpose(1, 2), k.transpose(1, 2)
        positions = torch.arange(T)
        q = rotate(q, positions, c["rope_theta"], c["rope_layout"])
        k = rotate(k, positions, c["rope_theta"], c["rope_layout"])
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=c["attention_scale"], enable_gqa=True)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, -1))

    def mlp(self, x):
        if self.c["gated_mlp"]:
            return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))
        return self.down_proj(torch.relu(self.up_proj(x)).square())

    def forward(self, x):
        x = x + self.attention(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class Decoder(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.wte = torch.nn.Embedding(c["vocab_size"], c["n_embd"])
        self.blocks = torch.nn.ModuleList([Block(c) for _ in range(c["n_layer"])])
        self.ln_f = torch.nn.RMSNorm(c["n_embd"], eps=c["norm_eps"])
        self.lm_head = torch.nn.Linear(c["n_embd"], c["vocab_size"], bias=False)
        if c["tie_embeddings"]:
            self.lm_head.weight = self.wte.weight

    def forward(self, idx, targets):
        x = self.wte(idx)
        for block in self.blocks:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        cap = self.c["logit_softcap"]
        if cap > 0:
            logits = cap * torch.tanh(logits / cap)
        return logits, F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))

    def minitrain_tensors(self, of):
        """{minitrain name: of(torch parameter)} with q|k|v and gate|up packed as minitrain's GPT packs them."""
        out = {"transformer.wte.weight": of(self.wte.weight), "transformer.ln_f.weight": of(self.ln_f.weight),
               "lm_head.weight": of(self.lm_head.weight)}
        for i, b in enumerate(self.blocks):
            p = "transformer.h.%d." % i
            out[p + "ln_1.weight"] = of(b.ln_1.weight)
            out[p + "ln_2.weight"] = of(b.ln_2.weight)
            out[p + "attn.c_attn.weight"] = torch.cat([of(b.q_proj.weight), of(b.k_proj.weight), of(b.v_proj.weight)])
            out[p + "attn.c_proj.weight"] = of(b.o_proj.weight)
            if self.c["qk_norm"]:
                out[p + "attn.q_norm.weight"] = of(b.q_norm.weight)
                out[p + "attn.k_norm.weight"] = of(b.k_norm.weight)
            fc = [of(b.gate_proj.weight), of(b.up_proj.weight)] if self.c["gated_mlp"] else [of(b.up_proj.weight)]
            out[p + "mlp.c_fc.weight"] = torch.cat(fc)
            out[p + "mlp.c_proj.weight"] = of(b.down_proj.weight)
        return out


def model_fixture(name, c, dtype, seed):
    torch.manual_seed(seed)
    model = Decoder(c)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in model.parameters():  # weights of a trained-looking size; gains away from 1
            if p.dim() == 1:
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(0.05 * torch.randn(p.shape, generator=gen))
        # The float32 file: torch computes in float64 on the float32-rounded weights and the results are
        # rounded once to float32, so the comparison measures minitrain's float32 arithmetic alone (torch's own
        # float32 run is ~1e-5 away from the exact values here, the whole float32 parity limit).
        for p in model.parameters():
            p.copy_(p.to(dtype).to(torch.float64))
    model = model.to(torch.float64)
    idx = torch.randint(0, c["vocab_size"], (3, c["block_size"]), generator=gen)
    targets = torch.randint(0, c["vocab_size"], (3, c["block_size"]), generator=gen)
    logits, loss = model(idx, targets)
    loss.backward()
    out = {name + ".param." + k: v.detach().to(dtype) for k, v in model.minitrain_tensors(lambda p: p).items()}
    if c["tie_embeddings"]:
        del out[name + ".param.lm_head.weight"]  # one tensor, stored once (minitrain ties it on load)
    for k, g in model.minitrain_tensors(lambda p: p.grad).items():
        if not (c["tie_embeddings"] and k == "lm_head.weight"):
            out[name + ".grad." + k] = g.detach().to(dtype)
    out.update({name + ".idx": idx, name + ".targets": targets, name + ".logits": logits.detach().to(dtype),
                name + ".loss": loss.detach().to(dtype)})
    return out, {name + ".config": minitrain_config_json(c)}


def build_all():
    files = {}
    for short, dtype in DTYPES.items():
        tensors = {}
        metadata = {"generator": "tests/reference/fixtures_decoder.py", "torch": torch.__version__,
                    "python": platform.python_version(), "threads": "1", "dtype": short}
        for seed, (name, c) in enumerate(sorted(MODELS.items())):
            t, m = model_fixture(name, c, dtype, 100 + seed)
            tensors.update(t)
            metadata.update(m)
        files["decoder_%s.safetensors" % short] = st_io.serialize(tensors, metadata)
    return files


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed files, write nothing")
    parser.add_argument("--out_dir", default=OUT_DIR)
    args = parser.parse_args()
    if not hasattr(torch.nn, "RMSNorm"):
        sys.exit("fixtures_decoder.py needs torch >= 2.5 (torch.nn.RMSNorm, SDPA's enable_gqa); this is " +
                 torch.__version__)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    differ = st_io.write_or_check(build_all(), args.out_dir, args.check)
    print("torch %s" % torch.__version__)
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
