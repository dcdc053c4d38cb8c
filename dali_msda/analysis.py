"""Mask statistics: what separates the mixing methods, measured on the operator's own masks.

    python -m dali_msda.analysis [--size 64] [--samples 4000] [--out-dir out/analysis]

The paper's view (Park et al., NeurIPS 2022) is that mixed-sample augmentations differ by the
statistics of their masks. For every method (HMix at several `hmix_ratio`), N masks are drawn
by fn.msda.mix itself (`output_mask`, elem mode, alpha 1 by default) at the given size, and
three statistics are computed:

- the distribution of the label weight w (the share of the own image in the target);
- the per-pixel mean of the mask, E[M(p)] (where in the image the own image tends to stay);
- the covariance of the mask at two pixels, Cov(M(p), M(q)), as a function of their distance
  |p - q|, averaged over all pairs at that distance (an exact FFT autocorrelation, binned to
  whole pixels). Mixup's mask is one value per image: its covariance is Var(lam) at every
  distance. A box or a blob makes nearby pixels agree more than distant ones, so the curve falls
  with distance; how fast it falls, and from where, is what tells the methods apart.

FMix is drawn by the operator too (the intended spectrum, spec 9); for comparison, masks with the
official code's spectrum, which indexes the wrong axis and so never varies more than one cycle
across the width, come from dali_msda/reference.py (`--no-fmix` leaves both out). ClassMix's
masks come from label maps: those of the embedded segmentation set's training split
(dali_msda.pipelines.segmentation_dataset), resized to the mask size by nearest neighbour, 255
not counted (`--no-classmix` leaves it out).

Writes analysis.json (all numbers) and, with matplotlib, analysis.png.
"""

import argparse
import json
import os
import sys
import textwrap

import numpy as np

from dali_msda import methods as _methods, to_numpy
from dali_msda._cli import SEED, HelpFormatter, int_at_least, positive_float, unit_float
from nvidia.dali import fn, pipeline_def

METHODS = list(_methods.ALL)


def sample_masks(method, size, samples, alpha=1.0, hmix_ratio=0.5, batch=64, seed=0,
                 device="cpu", maps=None):
    """(masks float32 [N, size, size], label weights float64 [N]) drawn by fn.msda.mix in elem
    mode; the label weight is read off the targets (own class i, partner class B - 1 - i).
    `maps` (uint8 [M, size, size]): label maps fed as the op's third input, batch after batch
    in turn (ClassMix needs them; 255 is not a class)."""
    if batch % 2:
        raise ValueError(f"`batch` must be even (the middle of an odd batch is not mixed); got "
                         f"{batch}.")
    images = [np.zeros((size, size, 1), np.uint8)] * batch
    labels = [np.array([i], np.int32) for i in range(batch)]

    @pipeline_def(batch_size=batch, num_threads=2, device_id=0 if device == "gpu" else None,
                  seed=seed, prefetch_queue_depth=1)
    def pipe():
        x = fn.external_source(source=lambda: images, batch=True, layout="HWC")
        y = fn.external_source(source=lambda: labels, batch=True)
        inputs = [x.gpu() if device == "gpu" else x, y]
        if maps is not None:
            m = fn.external_source(source=lambda it: [maps[(it * batch + k) % len(maps)]
                                                      for k in range(batch)],
                                   batch=True, layout="HW")
            inputs.append(m.gpu() if device == "gpu" else m)
        outs = fn.msda.mix(*inputs, method=method, alpha=alpha, mode="elem",
                           hmix_ratio=hmix_ratio, num_classes=batch, output_mask=True,
                           ignore_index=255)
        return outs[1], outs[-1]

    p = pipe()
    p.build()
    masks, weights = [], []
    idx = np.arange(batch)
    for _ in range(-(-samples // batch)):
        targets, m = (to_numpy(o) for o in p.run())
        masks.append(m)
        weights.append(targets[idx, idx].astype(np.float64))
    return np.concatenate(masks)[:samples], np.concatenate(weights)[:samples]


def offset_covariance(masks):
    """(cov, count, dy, dx): for every offset (dy, dx) between two pixels, Cov(M(p), M(p +
    offset)) averaged over the `count` pixel pairs at that offset (FFT layout: offsets wrap
    around, negative ones at the end). Exact: sums of products over every offset come from one
    FFT autocorrelation of the zero-padded masks."""
    masks = np.asarray(masks, np.float64)
    n, h, w = masks.shape
    shape = (2 * h, 2 * w)

    def autocorr(x):  # sum_p x(p) x(p + delta) for every offset delta, summed over the batch
        f = np.fft.rfft2(x, shape)
        return np.fft.irfft2((f * np.conj(f)).sum(0) if x.ndim == 3 else f * np.conj(f), shape)

    second = sum(autocorr(masks[k:k + 256]) for k in range(0, n, 256)) / n
    first = autocorr(masks.mean(0))
    count = np.round(autocorr(np.ones((h, w))))
    dy = np.fft.fftfreq(shape[0], 1 / shape[0])[:, None]
    dx = np.fft.fftfreq(shape[1], 1 / shape[1])[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = np.where(count > 0, (second - first) / np.maximum(count, 1), np.nan)
    return cov, count, dy, dx


def covariance_by_distance(masks):
    """Cov(M(p), M(q)) averaged over all pixel pairs with round(|p - q|) = d, for d = 0 ..
    max; returns (distances, covariance, number of pairs)."""
    cov, count, dy, dx = offset_covariance(masks)
    valid = count > 0
    dist = np.rint(np.hypot(dy, dx)).astype(int)[valid]
    pairs = count[valid]
    total = np.bincount(dist, weights=(cov * count)[valid], minlength=dist.max() + 1)
    npairs = np.bincount(dist, weights=pairs, minlength=dist.max() + 1)
    keep = npairs > 0
    return np.arange(len(total))[keep], total[keep] / npairs[keep], npairs[keep]


def covariance_along_axes(masks):
    """(d, Cov at offsets (d, 0): down the columns, Cov at (0, d): along the rows), d = 0 ..
    min(H, W) - 1, each averaged over both signs of the offset."""
    cov, _, _, _ = offset_covariance(masks)
    h, w = np.asarray(masks).shape[1:]
    d = np.arange(min(h, w))
    along_y = (cov[d, 0] + cov[-d, 0]) / 2
    along_x = (cov[0, d] + cov[0, -d]) / 2
    return d, along_y, along_x


def variants(hmix_ratios, fmix=True):
    out = [("mixup", "mixup", {}), ("cutmix", "cutmix", {})]
    out += [(f"hmix r={r:g}", "hmix", {"hmix_ratio": r}) for r in hmix_ratios]
    return (out + [("gmix", "gmix", {})] + ([("fmix", "fmix", {})] if fmix else [])
            + [("resizemix", "resizemix", {})])


def segmentation_maps(size, root=None):
    """The embedded segmentation set's training maps, resized to size x size (nearest)."""
    import glob

    from PIL import Image

    from dali_msda.pipelines import segmentation_dataset

    files = sorted(glob.glob(os.path.join(segmentation_dataset(root), "train", "masks", "*")))
    return np.stack([np.asarray(Image.open(f).resize((size, size), Image.NEAREST))
                     for f in files])


def reference_fmix_masks(size, samples, alpha=1.0, seed=0, official=False):
    """FMix masks from dali_msda/reference.py with NumPy's noise: lam ~ Beta(alpha), the
    intended spectrum (as the operator's), or the official code's (`official`, spec 9)."""
    from dali_msda import reference as ref

    rng = np.random.default_rng(seed)
    out = [ref.fmix_sample(rng, rng.beta(alpha, alpha), size, size, official=official)
           for _ in range(samples)]
    return np.stack([m for m, _ in out]), np.array([w for _, w in out])


def analyse(size=64, samples=4000, alpha=1.0, hmix_ratios=(0.25, 0.5, 0.75), seed=0,
            device="cpu", bins=25, fmix=True, classmix=True, seg_root=None):
    results = {"size": size, "samples": samples, "alpha": alpha, "mode": "elem",
               "methods": {}}
    todo = [(name, lambda method=method, kw=kw: sample_masks(
        method, size, samples, alpha=alpha, seed=seed, device=device, **kw), method, kw)
        for name, method, kw in variants(hmix_ratios, fmix)]
    if fmix:
        todo += [("fmix, official spectrum (ref.)", lambda: reference_fmix_masks(
            size, samples, alpha, seed, official=True), "fmix",
            {"source": "reference.py", "official_spectrum": True})]
    if classmix:
        todo += [("classmix", lambda: sample_masks(
            "classmix", size, samples, seed=seed, device=device,
            maps=segmentation_maps(size, seg_root)), "classmix",
            {"maps": "embedded segmentation set, train"})]
    for name, draw, method, kw in todo:
        masks, w = draw()
        hist, edges = np.histogram(w, bins=bins, range=(0, 1), density=True)
        d, cov, pairs = covariance_by_distance(masks)
        da, along_y, along_x = covariance_along_axes(masks)
        pixel_mean = masks.astype(np.float64).mean(0)
        results["methods"][name] = {
            "method": method, **kw,
            "label_weight": {"mean": float(w.mean()), "var": float(w.var()),
                             "histogram": hist.tolist(), "bin_edges": edges.tolist()},
            "mask_mean": float(masks.mean()),
            "per_pixel_mean": np.round(pixel_mean, 6).tolist(),
            "covariance": {"distance": d.tolist(), "value": cov.tolist(),
                           "pairs": pairs.astype(np.int64).tolist()},
            "covariance_along_axes": {"distance": da.tolist(), "down_columns": along_y.tolist(),
                                      "along_rows": along_x.tolist()}}
    return results


def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = results["methods"]
    n = len(methods)
    fig = plt.figure(figsize=(15, 8))
    grid = fig.add_gridspec(2, n, height_ratios=[2.2, 1])
    ax_w = fig.add_subplot(grid[0, :n // 3])
    ax_c = fig.add_subplot(grid[0, n // 3:2 * n // 3])
    ax_f = fig.add_subplot(grid[0, 2 * n // 3:])
    # a qualitative palette and a line style per curve, so that nine curves stay apart (also in
    # grey); the HMix ratios share a colour family and differ by style
    palette = plt.cm.tab10.colors
    styles = ["-", "--", "-.", ":", (0, (5, 1)), (0, (3, 1, 1, 1)), (0, (1, 1)),
              (0, (8, 2, 2, 2)), (0, (4, 2, 1, 2, 1, 2))]
    look = {name: dict(color=palette[k % len(palette)], ls=styles[k % len(styles)], lw=1.6)
            for k, name in enumerate(methods)}
    for name, m in methods.items():
        edges = np.array(m["label_weight"]["bin_edges"])
        ax_w.plot((edges[:-1] + edges[1:]) / 2, m["label_weight"]["histogram"], label=name,
                  **look[name])
        cov = m["covariance"]
        ax_c.plot(cov["distance"], cov["value"], label=name, **look[name])
        if m["method"] == "fmix" or name == "cutmix":
            axes = m["covariance_along_axes"]
            colour = look[name]["color"]
            ax_f.plot(axes["distance"], axes["along_rows"], color=colour, label=f"{name}: rows")
            ax_f.plot(axes["distance"], axes["down_columns"], color=colour, ls="--",
                      label=f"{name}: columns")
    ax_w.set(title="label weight w (density)", xlabel="w", ylabel="density")
    ax_w.legend(fontsize=7, loc="upper left")
    ax_c.set(title="Cov(M(p), M(q)) by distance |p - q|", xlabel="distance (px)",
             ylabel="covariance")
    ax_c.axhline(0, color="grey", lw=0.5)
    ax_c.legend(fontsize=7, loc="upper right")
    ax_f.set(title="along a row (solid) / down a column (dashed)", xlabel="distance (px)")
    ax_f.axhline(0, color="grey", lw=0.5)
    ax_f.legend(fontsize=7, loc="upper right")
    for k, (name, m) in enumerate(methods.items()):
        ax = fig.add_subplot(grid[1, k])
        ax.imshow(np.array(m["per_pixel_mean"]), vmin=0, vmax=1, cmap="gray")
        ax.set_title("E[M(p)]:\n" + "\n".join(textwrap.wrap(name, 16)), fontsize=7)
        ax.axis("off")
    fig.suptitle(f"Mask statistics of fn.msda.mix ({results['samples']} masks per method, "
                 f"{results['size']} x {results['size']}, alpha {results['alpha']:g}, "
                 f"elem mode)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m dali_msda.analysis", description=__doc__,
                                 formatter_class=HelpFormatter)
    ap.add_argument("--size", type=int_at_least(2), default=64, help="mask side, px")
    ap.add_argument("--samples", type=int_at_least(2), default=4000, help="masks per method")
    ap.add_argument("--alpha", type=positive_float, default=1.0,
                    help="Beta(alpha, alpha) of each mask's weight")
    ap.add_argument("--hmix-ratios", type=unit_float, nargs="+", default=[0.25, 0.5, 0.75],
                    help="HMix's hmix_ratio values, one set of masks each")
    ap.add_argument("--device", choices=["cpu", "gpu"], default="cpu",
                    help="where the operator draws the masks")
    ap.add_argument("--seed", type=SEED, default=0, help="the operator's seed")
    ap.add_argument("--out-dir", default="out/analysis",
                    help="where analysis.json and analysis.png go")
    ap.add_argument("--no-fmix", action="store_true",
                    help="leave out FMix (the operator's and reference.py's official spectrum)")
    ap.add_argument("--no-classmix", action="store_true",
                    help="leave out ClassMix (its maps: the embedded segmentation set)")
    args = ap.parse_args(argv)
    results = analyse(args.size, args.samples, args.alpha, tuple(args.hmix_ratios), args.seed,
                      args.device, fmix=not args.no_fmix, classmix=not args.no_classmix)
    os.makedirs(args.out_dir, exist_ok=True)
    path = os.path.join(args.out_dir, "analysis.json")
    with open(path, "w") as f:
        json.dump(results, f)
    print(f"wrote {path}")
    for name, m in results["methods"].items():
        cov = m["covariance"]["value"]
        print(f"{name:30s} E[w] {m['label_weight']['mean']:.3f}  Var[w] "
              f"{m['label_weight']['var']:.4f}  cov at 0 px {cov[0]:.4f}, at "
              f"{args.size // 2} px {cov[min(args.size // 2, len(cov) - 1)]:.4f}")
    try:
        png = os.path.join(args.out_dir, "analysis.png")
        plot(results, png)
        print(f"wrote {png}")
    except ImportError:
        print("matplotlib is not installed: no PNG (pip install matplotlib)", file=sys.stderr)
    return results


if __name__ == "__main__":
    main()
