"""Plot benchmark JSON results to PNG.

    python benchmarks/plot.py [--results out]     # or benchmarks/results (the committed ones)

Every op_cost*.json and throughput*.json in the folder gets a PNG of the same name beside it.

op_cost.png: per (dtype, batch) panel, time per batch of each method/mode for ours, the
memory-traffic floor, the fastest torch way and DALI built-ins (log scale).
throughput.png: pipeline images/s without and with each method, and the ratio.
"""

import argparse
import glob
import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


DTYPE_NAMES = {"u8f32": "uint8 -> float32", "f16": "float16", "f32": "float32",
               "fused": "fused: uint8 HWC -> normalised, flipped float16 CHW (DALI built-ins: "
                        "crop_mirror_normalize, then the op)"}


def plot_op_cost(path, out):
    data = json.load(open(path))
    rows = [r for r in data["rows"] if "ours_ms" in r]  # label-map rows (seg) have their table
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
            "DALI built-ins": [r.get("dali built-ins_ms", r.get("cmn + mix_ms", np.nan))
                               for r in sel],
        }
        width = 0.2
        for k, (name, vals) in enumerate(series.items()):
            ax.bar(x + (k - 1.5) * width, vals, width, label=name, color=f"C{k}")
        ax.set_yscale("log")
        ax.set_xticks(x)
        ax.set_xticklabels(labels, fontsize=8)
        ax.set_ylabel("ms per batch")
        ax.set_title(f"{device}, batch {batch} x 224 x 224 x 3, "
                     f"{DTYPE_NAMES.get(dtype, dtype)}", fontsize=10)
    m = next(iter(data["machine"].values()))
    where = m.get("gpu") or m["cpu"]
    inch = 1 / fig.get_figheight()  # figure fraction of one inch, for the bands on top
    fig.suptitle(f"fn.msda.mix cost: {where}, {data['threads']} threads, DALI {m['dali']}, "
                 f"torch {m['torch']}", fontsize=10, y=1 - 0.08 * inch, va="top")
    # one legend for all panels, in a band of its own under the title: it never covers a bar
    handles, names = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, names, loc="upper center", ncol=len(names), fontsize=8,
               bbox_to_anchor=(0.5, 1 - 0.35 * inch))
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.7 * inch))
    fig.savefig(out, dpi=90)


def plot_throughput(path, out):
    data = json.load(open(path))
    rows = data["rows"]
    fig, ax = plt.subplots(figsize=(max(7, 0.9 * len(rows)), 3.8))
    names = [r["variant"].replace(" ", "\n") for r in rows]
    vals = [r["images_per_s"] for r in rows]
    colors = ["gray" if r["variant"] == "none" else "C1" if "CMN" in r["variant"] else "C0"
              for r in rows]  # no mixing, CMN + mix, fused (or the one mixed variant of old runs)
    bars = ax.bar(names, vals, color=colors)
    for b, r in zip(bars, rows):
        ax.text(b.get_x() + b.get_width() / 2, b.get_height(), f"{r['ratio_to_none']:.2f}x",
                ha="center", va="bottom", fontsize=8)
    ax.set_ylim(0, 1.15 * max(vals))  # room for the ratio labels above the bars
    m = data["machine"]
    ax.set_ylabel("images/s")
    ax.set_title(f"ImageNet train pipeline ({m['device']}, batch {data['batch_size']}, "
                 f"{data['dtype']}, mode {data['mode']}), DALI {m['dali']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=90)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default="out",
                    help="folder of the JSON results (default out/; benchmarks/results holds "
                         "the committed ones)")
    args = ap.parse_args(argv)
    paths = sorted(glob.glob(os.path.join(args.results, "*.json")))
    plotted = 0
    for path in paths:
        name = os.path.basename(path)
        fn_ = (plot_op_cost if name.startswith("op_cost") else
               plot_throughput if name.startswith("throughput") else None)
        if fn_ is not None:
            out = os.path.splitext(path)[0] + ".png"
            fn_(path, out)
            print(f"wrote {out}")
            plotted += 1
    if not plotted:
        raise SystemExit(f"no op_cost*.json or throughput*.json in {args.results}/: run "
                         "benchmarks/op_cost.py or benchmarks/throughput.py first")


if __name__ == "__main__":
    main()
