#!/usr/bin/python3
"""PyTorch eager reference training benchmark for longtrain (CPU fp32, or CUDA bf16).

Trains the same Llama-style decoder as the C++ trainer (token embedding,
pre-norm blocks with RMSNorm -> GQA attention with HF "rotate_half" RoPE ->
RMSNorm -> SwiGLU MLP, final RMSNorm, untied LM head, no biases) on exactly
the token batches the C++ benchmark used, and reports its throughput so the
bench can print the ratio longtrain / PyTorch.

On the CPU it must run with Debian's interpreter (torch 1.13, CPU):

  # called by the C++ bench after it has written its batch file:
  /usr/bin/python3 bench/pytorch_reference.py --batches FILE \
      --dim 256 --layers 4 --heads 8 --kv-heads 4 --ffn 688 \
      --threads 2 --warmup 2 --lr 3e-4 --seed 0

  # standalone: write a batch file from random byte windows of a text file
  /usr/bin/python3 bench/pytorch_reference.py --make-batches FILE \
      --text ../shared/data/tinyshakespeare.txt \
      --steps 8 --batch 8 --seq 512 --vocab 256 --seed 0

  # on a GPU (bench/gpu_train_vs_pytorch.sh), with a CUDA build of torch >= 2.0:
  python3 bench/pytorch_reference.py --batches FILE --device cuda \
      --precision bf16 --attention sdpa --fused-adamw \
      --dim 2048 --layers 22 --heads 32 --kv-heads 4 --ffn 5632 --warmup 3

Defaults are the CPU comparison's: --device cpu, --precision fp32, manual
attention (explicit causal mask), multi-tensor AdamW. --precision bf16 runs
forward and loss under torch.autocast(dtype=torch.bfloat16) with fp32 master
parameters (as longtrain's bf16 mode keeps fp32 masters). --attention sdpa
uses F.scaled_dot_product_attention(is_causal=True) (GQA via enable_gqa where
the installed torch has it, else repeated k/v); on cuda only sdpa is allowed
(the manual path would build a [seq, seq] mask). --fused-adamw asks for
torch.optim.AdamW(fused=True).

Batch file (little-endian): b"LTBATCH1", int64 steps, batch, seq_len, vocab,
int32 tokens[steps][batch][seq_len], int32 targets[steps][batch][seq_len].

Protocol: train on every step in file order; the first --warmup steps are
untimed; each later step (forward + backward + grad clip 1.0 + AdamW step)
is timed with time.perf_counter (on cuda after torch.cuda.synchronize()). Output: one `step N loss L time_ms T` line
per step, then the machine-readable summary lines
  pytorch_tokens_per_s_median <float>   (batch*seq / median timed step time)
  pytorch_final_loss <float>
  pytorch_params <int>
  pytorch_peak_memory_bytes <int>       (cuda only: torch.cuda.max_memory_allocated)
  pytorch_peak_reserved_bytes <int>     (cuda only: torch.cuda.max_memory_reserved)
"""
import argparse
import contextlib
import math
import os
import statistics
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

MAGIC = b"LTBATCH1"


def write_batches(path, text_path, steps, batch, seq, vocab, seed):
    data = np.fromfile(text_path, dtype=np.uint8).astype(np.int32)
    if vocab < 256:
        data %= vocab  # byte-level tokens; only a smaller vocab needs folding
    rng = np.random.default_rng(seed)
    offs = rng.integers(0, len(data) - seq - 1, size=(steps, batch))
    win = data[offs[..., None] + np.arange(seq + 1)]  # [steps, batch, seq+1]
    with open(path, "wb") as f:
        f.write(MAGIC + struct.pack("<4q", steps, batch, seq, vocab))
        f.write(np.ascontiguousarray(win[..., :-1]).astype("<i4").tobytes())
        f.write(np.ascontiguousarray(win[..., 1:]).astype("<i4").tobytes())


def read_batches(path):
    with open(path, "rb") as f:
        if f.read(8) != MAGIC:
            sys.exit(f"{path}: bad magic (expected {MAGIC!r})")
        steps, batch, seq, vocab = struct.unpack("<4q", f.read(32))
        n = steps * batch * seq
        arr = np.frombuffer(f.read(8 * n), dtype="<i4")
    if arr.size != 2 * n:
        sys.exit(f"{path}: truncated ({arr.size} of {2 * n} int32 values)")
    arr = arr.astype(np.int64).reshape(2, steps, batch, seq)
    return torch.from_numpy(arr[0]), torch.from_numpy(arr[1]), vocab


class RMSNorm(nn.Module):
    def __init__(self, dim, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        x32 = x.float()
        y = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return y.type_as(x) * self.weight


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class Attention(nn.Module):
    def __init__(self, dim, heads, kv_heads, sdpa=None):
        super().__init__()
        self.heads, self.kv_heads, self.hd = heads, kv_heads, dim // heads
        self.sdpa = sdpa  # None: manual attention; else "gqa" or "repeat" (how k/v reach SDPA)
        self.q_proj = nn.Linear(dim, heads * self.hd, bias=False)
        self.k_proj = nn.Linear(dim, kv_heads * self.hd, bias=False)
        self.v_proj = nn.Linear(dim, kv_heads * self.hd, bias=False)
        self.o_proj = nn.Linear(heads * self.hd, dim, bias=False)

    def forward(self, x, cos, sin, mask):
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.heads, self.hd).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.kv_heads, self.hd).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.kv_heads, self.hd).transpose(1, 2)
        cos, sin = cos.to(q.dtype), sin.to(q.dtype)  # no-op in fp32; bf16 under autocast
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = self.heads // self.kv_heads
        if self.sdpa == "gqa" and rep > 1:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
            return self.o_proj(out.transpose(1, 2).reshape(b, t, -1))
        if rep > 1:  # GQA: kv head j serves query heads j*rep .. j*rep+rep-1
            k = k.repeat_interleave(rep, dim=1)
            v = v.repeat_interleave(rep, dim=1)
        if self.sdpa:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            return self.o_proj(out.transpose(1, 2).reshape(b, t, -1))
        scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(self.hd))
        scores = scores.masked_fill(mask, float("-inf"))
        out = F.softmax(scores, dim=-1) @ v
        return self.o_proj(out.transpose(1, 2).reshape(b, t, -1))


class MLP(nn.Module):
    def __init__(self, dim, ffn):
        super().__init__()
        self.gate_proj = nn.Linear(dim, ffn, bias=False)
        self.up_proj = nn.Linear(dim, ffn, bias=False)
        self.down_proj = nn.Linear(ffn, dim, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    def __init__(self, dim, heads, kv_heads, ffn, sdpa=None):
        super().__init__()
        self.attn_norm = RMSNorm(dim)
        self.attn = Attention(dim, heads, kv_heads, sdpa)
        self.mlp_norm = RMSNorm(dim)
        self.mlp = MLP(dim, ffn)

    def forward(self, x, cos, sin, mask):
        h = x + self.attn(self.attn_norm(x), cos, sin, mask)
        return h + self.mlp(self.mlp_norm(h))


class Llama(nn.Module):
    def __init__(self, vocab, dim, layers, heads, kv_heads, ffn, theta=10000.0, sdpa=None):
        super().__init__()
        self.hd = dim // heads
        self.theta = theta
        self.sdpa = sdpa
        self.embed = nn.Embedding(vocab, dim)
        self.blocks = nn.ModuleList(
            Block(dim, heads, kv_heads, ffn, sdpa) for _ in range(layers))
        self.norm = RMSNorm(dim)
        self.lm_head = nn.Linear(dim, vocab, bias=False)
        # HF Llama's init, as longtrain does it: every matrix N(0, 0.02).
        for p in self.parameters():
            if p.dim() == 2:
                nn.init.normal_(p, 0.0, 0.02)
        self._rope_len = -1

    def rope(self, t, device):
        if self._rope_len != t:  # cached: same seq_len every step
            inv = self.theta ** (-torch.arange(0, self.hd, 2, dtype=torch.float32) / self.hd)
            freqs = torch.outer(torch.arange(t, dtype=torch.float32), inv)
            emb = torch.cat((freqs, freqs), dim=-1)  # [t, hd], computed on the CPU
            self._cos, self._sin = emb.cos().to(device), emb.sin().to(device)
            self._mask = None  # SDPA masks by itself: no [t, t] mask
            if not self.sdpa:
                self._mask = torch.triu(torch.ones(t, t, dtype=torch.bool), diagonal=1).to(device)
            self._rope_len = t
        return self._cos, self._sin, self._mask

    def forward(self, tokens, targets):
        cos, sin, mask = self.rope(tokens.shape[1], tokens.device)
        x = self.embed(tokens)
        for blk in self.blocks:
            x = blk(x, cos, sin, mask)
        logits = self.lm_head(self.norm(x))
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.reshape(-1))


def make_optimizer(params, lr, fused=False):
    kw = dict(lr=lr, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    if fused:
        try:
            return torch.optim.AdamW(params, fused=True, **kw), "fused"
        except (TypeError, RuntimeError, ValueError) as e:
            sys.exit(f"--fused-adamw: torch {torch.__version__} cannot build a fused AdamW "
                     f"here ({e})")
    try:  # multi-tensor (foreach) AdamW; falls back if unsupported
        return torch.optim.AdamW(params, foreach=True, **kw), "foreach"
    except (TypeError, RuntimeError):
        return torch.optim.AdamW(params, **kw), "single-tensor"


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batches", help="batch file to train on")
    ap.add_argument("--make-batches", metavar="FILE", help="write a batch file and exit")
    ap.add_argument("--text", default="../shared/data/tinyshakespeare.txt")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--vocab", type=int, default=256)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--kv-heads", type=int, default=4)
    ap.add_argument("--ffn", type=int, default=688)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rope-theta", type=float, default=10000.0)
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                    help="bf16: autocast around forward and loss, fp32 master parameters")
    ap.add_argument("--attention", choices=("manual", "sdpa"),
                    help="default: manual on cpu, sdpa on cuda (cuda allows only sdpa)")
    ap.add_argument("--fused-adamw", action="store_true",
                    help="torch.optim.AdamW(fused=True) instead of the foreach one")
    a = ap.parse_args()
    if a.attention is None:
        a.attention = "sdpa" if a.device == "cuda" else "manual"
    if a.device == "cuda" and a.attention != "sdpa":
        ap.error("--device cuda needs --attention sdpa (manual attention builds a [seq, seq] mask)")
    return ap, a


def sdpa_mode(device, heads, kv_heads):
    """How k/v reach SDPA: "gqa" (enable_gqa=True) or "repeat" (repeat_interleave)."""
    if not hasattr(F, "scaled_dot_product_attention"):
        sys.exit(f"--attention sdpa: torch {torch.__version__} has no "
                 "torch.nn.functional.scaled_dot_product_attention (needs torch >= 2.0)")
    if heads == kv_heads:
        return "repeat"  # nothing to repeat
    q = torch.zeros(1, 2, 1, 8, device=device)
    kv = torch.zeros(1, 1, 1, 8, device=device)
    try:  # enable_gqa arrived in torch 2.5
        F.scaled_dot_product_attention(q, kv, kv, is_causal=True, enable_gqa=True)
        return "gqa"
    except (TypeError, RuntimeError):
        return "repeat"


def check_device(device):
    if device == "cuda" and not torch.cuda.is_available():
        sys.exit(f"--device cuda: torch {torch.__version__} sees no CUDA device")
    if device == "cuda":
        print(f"device: {torch.cuda.get_device_name()}", flush=True)


def train(a, model, opt, tokens, targets):
    """Trains on every step in order; returns the timed step times and the last loss."""
    cuda = a.device == "cuda"
    autocast = (torch.autocast(device_type=a.device, dtype=torch.bfloat16)
                if a.precision == "bf16" else contextlib.nullcontext())
    times, loss_val = [], float("nan")
    for s in range(tokens.shape[0]):
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with autocast:
            loss = model(tokens[s], targets[s])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if cuda:
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        loss_val = loss.item()
        if s >= a.warmup:
            times.append(dt)
        print(f"step {s} loss {loss_val:.4f} time_ms {dt * 1e3:.1f}"
              + ("" if s >= a.warmup else " (warmup)"), flush=True)
    return times, loss_val


def main():
    ap, a = parse_args()
    if a.make_batches:
        write_batches(a.make_batches, a.text, a.steps, a.batch, a.seq, a.vocab, a.seed)
        print(f"wrote {a.make_batches}: steps {a.steps} batch {a.batch} "
              f"seq {a.seq} vocab {a.vocab}")
        return
    if not a.batches:
        ap.error("need --batches FILE (or --make-batches FILE)")
    if a.dim % a.heads or a.heads % a.kv_heads or (a.dim // a.heads) % 2:
        ap.error("need dim % heads == 0, heads % kv_heads == 0, even head dim")
    check_device(a.device)
    sdpa = sdpa_mode(a.device, a.heads, a.kv_heads) if a.attention == "sdpa" else None

    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    tokens, targets, vocab = read_batches(a.batches)
    steps, batch, seq = tokens.shape
    if a.warmup >= steps:
        sys.exit(f"need more steps ({steps}) than warmup steps ({a.warmup})")
    tokens, targets = tokens.to(a.device), targets.to(a.device)

    model = Llama(vocab, a.dim, a.layers, a.heads, a.kv_heads, a.ffn, a.rope_theta, sdpa)
    model.to(a.device)
    n_params = sum(p.numel() for p in model.parameters())
    opt, opt_kind = make_optimizer(model.parameters(), a.lr, a.fused_adamw)
    attention = a.attention + (f" ({sdpa})" if sdpa else "")
    print(f"torch {torch.__version__} threads {torch.get_num_threads()} adamw {opt_kind} "
          f"steps {steps} batch {batch} seq {seq} vocab {vocab} params {n_params} "
          f"device {a.device} precision {a.precision} attention {attention}", flush=True)

    times, loss_val = train(a, model, opt, tokens, targets)
    print(f"pytorch_tokens_per_s_median {batch * seq / statistics.median(times):.1f}")
    print(f"pytorch_final_loss {loss_val:.6f}")
    print(f"pytorch_params {n_params}")
    if a.device == "cuda":
        print(f"pytorch_peak_memory_bytes {torch.cuda.max_memory_allocated()}")
        print(f"pytorch_peak_reserved_bytes {torch.cuda.max_memory_reserved()}")


if __name__ == "__main__":
    main()
