#!/usr/bin/python3
"""Draws a longtrain run's curves from its metrics.jsonl into a PNG.

  launch/plot_metrics.py runs/quickstart/metrics.jsonl                 # -> runs/quickstart/metrics.png
  launch/plot_metrics.py runs/x/metrics.jsonl -o x.png --title "8B at 128K"

Three panels over the step: the training loss (and the eval loss where the run evaluated), the
throughput in tokens/s, and the learning rate. A resumed run appends to metrics.jsonl and may
log some steps twice (those after its checkpoint); the last line of a step wins, as it is the
run that continued. Non-finite values (null in the file) are left out of the curves.

Needs matplotlib (Debian: python3-matplotlib, installed by launch/install_deps.sh); it draws
with the Agg backend, so no display is needed. Exit status: 0 when the PNG was written, 2 for a
missing, empty or malformed metrics file or a missing matplotlib.
"""
import argparse
import json
import math
import os
import sys


class InputError(Exception):
    pass


def read_metrics(path):
    """{split: {step: line}} from metrics.jsonl; the last line of a step wins."""
    if not os.path.exists(path):
        raise InputError(f"metrics file '{path}' does not exist")
    by_split = {"train": {}, "eval": {}}
    with open(path) as f:
        for number, text in enumerate(f, 1):
            if not text.strip():
                continue
            try:
                line = json.loads(text)
                by_split.setdefault(line["split"], {})[int(line["step"])] = line
            except (ValueError, KeyError, TypeError) as e:
                raise InputError(f"{path}:{number}: not a metrics line ({e}): {text.strip()[:80]}")
    if not by_split["train"]:
        raise InputError(f"metrics file '{path}' has no training steps (is the run just starting?)")
    return by_split


def series(lines, key):
    """(steps, values) of `key`, in step order, without missing or non-finite values."""
    points = [(step, line.get(key)) for step, line in sorted(lines.items())]
    points = [(s, v) for s, v in points if isinstance(v, (int, float)) and math.isfinite(v)]
    return [s for s, _ in points], [v for _, v in points]


def plot(by_split, out, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (loss_ax, speed_ax, lr_ax) = plt.subplots(3, 1, figsize=(9, 10), sharex=True)
    loss_ax.plot(*series(by_split["train"], "loss"), label="train", linewidth=1)
    if by_split["eval"]:
        loss_ax.plot(*series(by_split["eval"], "loss"), "o-", label="eval", markersize=3)
    loss_ax.set_ylabel("loss (nats)")
    loss_ax.legend()
    speed_ax.plot(*series(by_split["train"], "tokens_per_s"), color="tab:green", linewidth=1)
    speed_ax.set_ylabel("tokens/s")
    lr_ax.plot(*series(by_split["train"], "lr"), color="tab:orange", linewidth=1)
    lr_ax.set_ylabel("learning rate")
    lr_ax.set_xlabel("step")
    for ax in (loss_ax, speed_ax, lr_ax):
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(
        description="Draws loss, tokens/s and learning-rate curves from metrics.jsonl to a PNG.")
    parser.add_argument("metrics", help="a run's metrics.jsonl (in logging.dir)")
    parser.add_argument("-o", "--output", help="PNG to write (default: metrics.png beside it)")
    parser.add_argument("--title", help="figure title (default: the metrics file's path)")
    args = parser.parse_args()
    out = args.output or os.path.join(os.path.dirname(args.metrics) or ".", "metrics.png")
    try:
        by_split = read_metrics(args.metrics)
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise InputError("matplotlib is not installed: apt-get install python3-matplotlib "
                             "(or run launch/install_deps.sh)")
        plot(by_split, out, args.title or args.metrics)
    except InputError as e:
        print(f"plot_metrics.py: error: {e}", file=sys.stderr)
        return 2
    steps = sorted(by_split["train"])
    print(f"wrote {out}: steps {steps[0]}..{steps[-1]} ({len(steps)} training steps, "
          f"{len(by_split['eval'])} evals)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
