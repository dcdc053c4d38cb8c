"""Plot benchmark JSON results to PNG.

    python benchmarks/plot.py [--op-cost benchmarks/results/op_cost.json]
                              [--throughput benchmarks/results/throughput.json]

op_cost.png: per (dtype, batch) panel, time per batch of each method/mode for ours, the
memory-traffic floor, the fastest torch way and DALI built-ins (log scale).
throughput.png: pipeline images/s without and with each method, and the ratio.
"""

import argparse
import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_op_cost(path, out):
    data = json.load(open(path))
    rows = data["rows"]
    panels = sorted({(r["device"], r["dtype"], r["batch"]) for r in rows})
    fig, axes = plt.subplots(len(panels), 1, figsize=(11, 3.2 * len(panels)), squeeze=False)
    for ax, (device, dtype, batch) in zip(axes[:, 0], panels):
        sel = [r for r in rows if (r["device"], r["dtype"], r["batch"]) == (device, dtype, batch)]
        labels = [f"{r['method']}\n{r['mode']}" for r in sel]
        x = np.arange(len(sel))
        series = {
            "ours (fn.msda.mix)": [r["ours_ms"] for r in sel],
            "memory floor": [r["floor_ms"] for r in sel],
            "fastest torch": [min([v for k, v in r.items() if k.startswith("torch: ")] or
                                  [np.nan]) for r in sel],
            "DALI built-ins": [r.get("dali built-ins_ms", np.nan) for r in sel],
        }
        width = 0.2
        for k, (name, vals) in enumerate(series.items()):
            ax.bar(x + (k - 1.5) * width, vals, width, label=name)
        ax.set_yscale("log")
        ax.set_xticks(x)
        ax.set_xticklabels(labels, fontsize=8)
        ax.set_ylabel("ms per batch")
        ax.set_title(f"{device}, batch {batch} x 224 x 224 x 3, {dtype}", fontsize=10)
        ax.legend(fontsize=7, ncol=4)
    m = next(iter(data["machine"].values()))
    fig.suptitle(f"fn.msda.mix cost: {m['cpu']}, {data['threads']} threads, DALI {m['dali']}, "
                 f"torch {m['torch']}", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.985))
    fig.savefig(out, dpi=90)


def plot_throughput(path, out):
    data = json.load(open(path))
    rows = data["rows"]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    names = [r["variant"] for r in rows]
    vals = [r["images_per_s"] for r in rows]
    bars = ax.bar(names, vals, color=["gray"] + ["C0"] * (len(rows) - 1))
    for b, r in zip(bars, rows):
        ax.text(b.get_x() + b.get_width() / 2, b.get_height(), f"{r['ratio_to_none']:.2f}x",
                ha="center", va="bottom", fontsize=8)
    m = data["machine"]
    ax.set_ylabel("images/s")
    ax.set_title(f"ImageNet train pipeline ({m['device']}, batch {data['batch_size']}, "
                 f"{data['dtype']}, mode {data['mode']}), DALI {m['dali']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=90)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--op-cost", default="benchmarks/results/op_cost.json")
    ap.add_argument("--throughput", default="benchmarks/results/throughput.json")
    args = ap.parse_args()
    for path, fn_ in ((args.op_cost, plot_op_cost), (args.throughput, plot_throughput)):
        if os.path.exists(path):
            out = os.path.splitext(path)[0] + ".png"
            fn_(path, out)
            print(f"wrote {out}")


if __name__ == "__main__":
    main()
