#!/usr/bin/env python3
"""PyTorch scaled_dot_product_attention timings for bench_cuda_attention --reference.

Same shapes as the C++ benchmark (batch = max(1, tokens // seq), heads = hidden // head_dim,
bf16, [batch, heads, seq, head_dim]); medians of --iters CUDA-event-timed calls after --warmup.
Writes tab-separated lines "causal head_dim seq fwd_ms bwd_ms fwdbwd_ms" to stdout (or --out)
and the torch version and chosen SDPA backend as '#' comments. Without torch or a CUDA device it
says so on stderr and exits 3, so the caller can run the C++ benchmark alone.
"""
import argparse
import statistics
import sys


def parse_list(text):
    return [int(x) for x in text.split(",") if x]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seqs", default="4096,8192,16384,32768")
    p.add_argument("--head-dims", default="128,64")
    p.add_argument("--tokens", type=int, default=16384)
    p.add_argument("--hidden", type=int, default=2048)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--out", default="-")
    a, _ = p.parse_known_args()  # the C++ benchmark's other flags (--simple) pass through
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        print("sdpa_reference: torch is not installed", file=sys.stderr)
        return 3
    if not torch.cuda.is_available():
        print("sdpa_reference: no CUDA device for torch", file=sys.stderr)
        return 3

    def median_ms(fn):
        for _ in range(a.warmup):
            fn()
        times = []
        for _ in range(a.iters):
            start = torch.cuda.Event(enable_timing=True)
            stop = torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            stop.record()
            stop.synchronize()
            times.append(start.elapsed_time(stop))
        return statistics.median(times)

    out = sys.stdout if a.out == "-" else open(a.out, "w")
    print(f"# torch {torch.__version__}, {torch.cuda.get_device_name()}", file=out)
    for causal in (True, False):
        for d in parse_list(a.head_dims):
            for s in parse_list(a.seqs):
                b, h = max(1, a.tokens // s), a.hidden // d
                q, k, v = (torch.randn(b, h, s, d, device="cuda", dtype=torch.bfloat16,
                                       requires_grad=True) for _ in range(3))
                g = torch.randn(b, h, s, d, device="cuda", dtype=torch.bfloat16)
                o = F.scaled_dot_product_attention(q, k, v, is_causal=causal)

                def fwd():
                    with torch.no_grad():
                        F.scaled_dot_product_attention(q, k, v, is_causal=causal)

                def bwd():
                    torch.autograd.grad(o, (q, k, v), g, retain_graph=True)

                def both():
                    y = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
                    torch.autograd.grad(y, (q, k, v), g)

                row = (int(causal), d, s, median_ms(fwd), median_ms(bwd), median_ms(both))
                print("\t".join(str(x) for x in row), file=out, flush=True)
                del q, k, v, g, o
                torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
