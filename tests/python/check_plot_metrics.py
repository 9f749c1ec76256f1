#!/usr/bin/python3
"""Checks launch/plot_metrics.py: a PNG from a metrics.jsonl, clear errors for bad input.

Writes a tiny metrics.jsonl (train and eval lines, a step logged twice as after a resume, a null
value), runs plot_metrics.py on it and on METRICS_JSONL if given (a real run's file), and
requires a PNG each time: the 8-byte PNG signature, an IHDR chunk with a nonzero size, and an
IEND chunk at the end. A missing, an empty and a malformed file must each exit 2 with a message
naming the file. Exits 77 (ctest's skip code) when matplotlib is not importable.

Usage: check_plot_metrics.py PLOT_METRICS_PY WORK_DIR [METRICS_JSONL]
"""
import json
import os
import struct
import subprocess
import sys

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

TINY = [
    {"step": 0, "split": "eval", "loss": 5.5, "accuracy": 0.01, "exact_match": 0},
    {"step": 1, "split": "train", "loss": 5.4, "lr": 1e-4, "tokens_per_s": 1000.0},
    {"step": 2, "split": "train", "loss": 5.0, "lr": 2e-4, "tokens_per_s": 1100.0},
    {"step": 2, "split": "train", "loss": 5.1, "lr": 2e-4, "tokens_per_s": 1050.0},
    {"step": 3, "split": "train", "loss": None, "lr": 3e-4, "tokens_per_s": 1200.0},
    {"step": 3, "split": "eval", "loss": 4.9, "accuracy": 0.02, "exact_match": 0},
]


def fail(message):
    print(f"FAILED: {message}", file=sys.stderr)
    sys.exit(1)


def run(script, *args):
    return subprocess.run([sys.executable, script, *args], capture_output=True, text=True)


def check_png(path):
    with open(path, "rb") as f:
        blob = f.read()
    if not blob.startswith(PNG_SIGNATURE):
        fail(f"{path} does not start with the PNG signature")
    length, kind = struct.unpack(">I4s", blob[8:16])
    width, height = struct.unpack(">II", blob[16:24])
    if kind != b"IHDR" or length != 13 or width == 0 or height == 0:
        fail(f"{path}: first chunk {kind!r} {width}x{height}, expected IHDR with a nonzero size")
    if blob[-8:-4] != b"IEND":
        fail(f"{path} does not end with an IEND chunk (truncated?)")
    print(f"{path}: PNG {width}x{height}, {len(blob)} bytes")


def plot_ok(script, metrics, out):
    if os.path.exists(out):
        os.remove(out)
    r = run(script, metrics, "-o", out)
    if r.returncode != 0:
        fail(f"plot_metrics.py {metrics} exited {r.returncode}: {r.stderr}")
    print(r.stdout.strip())
    check_png(out)


def plot_fails(script, metrics, expected):
    r = run(script, metrics, "-o", metrics + ".png")
    if r.returncode != 2 or metrics not in r.stderr or expected not in r.stderr:
        fail(f"plot_metrics.py {metrics}: exit {r.returncode}, stderr {r.stderr!r}; expected 2 "
             f"and a message naming the file with {expected!r}")
    print(f"refused as expected: {r.stderr.strip()}")


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    script, work = sys.argv[1], sys.argv[2]
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("SKIP: matplotlib is not importable by " + sys.executable +
              " (apt-get install python3-matplotlib)")
        return 77
    os.makedirs(work, exist_ok=True)
    tiny = os.path.join(work, "tiny_metrics.jsonl")
    with open(tiny, "w") as f:
        f.writelines(json.dumps(line) + "\n" for line in TINY)
    plot_ok(script, tiny, os.path.join(work, "tiny.png"))
    if len(sys.argv) == 4:
        plot_ok(script, sys.argv[3], os.path.join(work, "run.png"))
    plot_fails(script, os.path.join(work, "missing.jsonl"), "does not exist")
    empty = os.path.join(work, "empty.jsonl")
    open(empty, "w").close()
    plot_fails(script, empty, "no training steps")
    bad = os.path.join(work, "bad.jsonl")
    with open(bad, "w") as f:
        f.write('{"step": 1, "split": "train", "loss": 5.0}\n{"step": 2, "spl\n')
    plot_fails(script, bad, ":2: not a metrics line")
    return 0


if __name__ == "__main__":
    sys.exit(main())
