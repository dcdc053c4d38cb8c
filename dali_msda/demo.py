"""Demo: mix a batch of real photographs with every method and save a PNG grid.

    python -m dali_msda.demo [--out out/demo.png] [--seg-out out/demo_seg.png]
                             [--device auto|cpu|gpu] [--mode elem|batch]

The photographs are the colour sample images that scikit-image ships (astronaut, cat, coffee,
rocket, motorcycle, Hubble deep field), read and decoded by DALI (fn.readers.file +
fn.decoders.image), resized to 224 x 224, then mixed by fn.msda.mix with each method in one
pipeline. Each grid row is one method; each cell shows the mixed image, its mask (white = the
sample's own image) and its two largest target entries.

A second grid (`--seg-out`) mixes six image / label-map pairs of the embedded segmentation set
(dali_msda.pipelines.segmentation_dataset) with every method and ClassMix: each cell is the
mixed image with the mixed map laid over it (one colour per class, black = ignore), and beside
it the mixed map alone, so that one sees the map follow the image's mask.
"""

import argparse
import os
import sys

import numpy as np

import dali_msda
from dali_msda import has_gpu, to_numpy
from dali_msda._cli import SEED, HelpFormatter, positive_float
from dali_msda.pipelines.data import PHOTOS as DATASET_PHOTOS, photo_path
from nvidia.dali import fn, pipeline_def, types

PHOTOS = DATASET_PHOTOS[:6]  # the colour photographs: (file in skimage/data, class name)
SIZE = 224


def photo_paths():
    try:
        return [photo_path(f) for f, _ in PHOTOS]
    except (ImportError, FileNotFoundError) as e:
        sys.exit(f"The demo needs scikit-image's sample photographs: {e}")


def build_pipeline(paths, device, mode, seed, alpha):
    gpu = device == "gpu"

    @pipeline_def(batch_size=len(paths), num_threads=2, device_id=0 if gpu else None, seed=seed)
    def pipe():
        jpegs, labels = fn.readers.file(files=paths, labels=list(range(len(paths))),
                                        random_shuffle=False, name="Reader")
        images = fn.decoders.image(jpegs, device="mixed" if gpu else "cpu",
                                   output_type=types.RGB)
        images = fn.resize(images, resize_x=SIZE, resize_y=SIZE)
        outs = []
        for method in dali_msda.METHODS:
            mixed, targets, mask = fn.msda.mix(images, labels, method=method, mode=mode,
                                               alpha=alpha, num_classes=len(paths),
                                               output_mask=True)
            outs += [mixed, targets, mask]
        return tuple(outs)

    p = pipe()
    p.build()
    return p


def seg_pairs(count=6):
    from dali_msda.pipelines import segmentation_dataset, segmentation_pairs

    try:
        images, masks = segmentation_pairs(os.path.join(segmentation_dataset(), "val"))
    except (ImportError, FileNotFoundError) as e:
        sys.exit(f"The demo needs scikit-image's sample photographs: {e}")
    return images[:count], masks[:count]


SEG_METHODS = list(dali_msda.METHODS) + list(dali_msda.MAP_METHODS)


def build_seg_pipeline(images, masks, device, mode, seed, alpha):
    gpu = device == "gpu"
    n = len(images)

    from dali_msda.pipelines.data import SEG_CLASSES
    from dali_msda.pipelines.segmentation import decode_pair, pair_readers, resize_pair

    @pipeline_def(batch_size=n, num_threads=2, device_id=0 if gpu else None, seed=seed)
    def pipe():
        jpegs, pngs, labels = pair_readers(images, masks)  # labels: the pair index
        x, m = resize_pair(*decode_pair(jpegs, pngs, gpu, len(SEG_CLASSES)), SIZE)
        if gpu:
            m = m.gpu()
        outs = []
        for method in SEG_METHODS:
            mixed, _, maps = fn.msda.mix(x, labels, m, method=method, mode=mode, alpha=alpha,
                                         num_classes=n, ignore_index=255)
            outs += [mixed, maps]
        return tuple(outs)

    p = pipe()
    p.build()
    return p


def colour_maps(maps):
    """uint8 label maps as RGB: tab10-like colours per class, black for 255 (ignore)."""
    palette = np.array([(31, 119, 180), (44, 160, 44), (140, 86, 75), (255, 127, 14),
                        (214, 39, 40), (148, 103, 189), (227, 119, 194), (188, 189, 34),
                        (23, 190, 207), (127, 127, 127)], np.uint8)
    out = palette[maps.astype(np.int64) % len(palette)]
    out[maps == 255] = 0
    return out


def render_seg_grid(results, class_names, path):
    from PIL import Image, ImageDraw, ImageFont

    thumb, small, pad, label_w = 150, 75, 6, 90
    cols = len(next(iter(results.values()))[0])
    cell_w = thumb + small + 2 * pad
    legend_h = 30
    width = label_w + cols * cell_w
    height = 30 + legend_h + len(results) * (thumb + pad)
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    draw.text((pad, 8), "dali-msda with label maps: mixed image with the mixed map over it / "
              "the mixed map; partner of sample i is B-1-i", fill="black", font=font)
    swatches = colour_maps(np.arange(len(class_names), dtype=np.uint8))
    for k, name in enumerate(class_names):
        x = pad + k * 105
        draw.rectangle([x, 30, x + 12, 42], fill=tuple(int(v) for v in swatches[k]))
        draw.text((x + 16, 30), name, fill="black", font=font)
    for r, (method, (mixed, maps)) in enumerate(results.items()):
        y = 30 + legend_h + r * (thumb + pad)
        draw.text((pad, y + thumb // 2), method, fill="black", font=font)
        for c in range(cols):
            x = label_w + c * cell_w
            colours = colour_maps(maps[c].reshape(maps[c].shape[:2]))
            over = (0.55 * mixed[c] + 0.45 * colours).round().astype(np.uint8)
            canvas.paste(Image.fromarray(over).resize((thumb, thumb)), (x, y))
            canvas.paste(Image.fromarray(colours).resize((small, small), Image.NEAREST),
                         (x + thumb + pad // 2, y))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    canvas.save(path)


def render_grid(results, names, path):
    from PIL import Image, ImageDraw, ImageFont

    thumb, mask_h, text_h, label_w, pad = 160, 60, 30, 90, 6
    cols = len(names)
    cell_h = thumb + mask_h + text_h + pad
    width = label_w + cols * (thumb + pad)
    height = 30 + len(results) * cell_h
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    draw.text((pad, 8), "dali-msda: mixed image / mask (white = own image) / top targets; "
              "partner of sample i is B-1-i", fill="black", font=font)
    for r, (method, (mixed, targets, masks)) in enumerate(results.items()):
        y = 30 + r * cell_h
        draw.text((pad, y + thumb // 2), method, fill="black", font=font)
        for c in range(cols):
            x = label_w + c * (thumb + pad)
            canvas.paste(Image.fromarray(mixed[c]).resize((thumb, thumb)), (x, y))
            m = Image.fromarray((masks[c] * 255).round().astype(np.uint8))
            canvas.paste(m.resize((mask_h, mask_h)).convert("RGB"), (x, y + thumb + 2))
            draw.rectangle([x - 1, y + thumb + 1, x + mask_h, y + thumb + 2 + mask_h],
                           outline="gray")
            top = np.argsort(targets[c])[::-1][:2]
            lines = [f"{names[k]} {targets[c][k]:.2f}" for k in top if targets[c][k] > 0]
            draw.text((x + mask_h + 4, y + thumb + 4), "\n".join(lines), fill="black", font=font)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    canvas.save(path)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m dali_msda.demo",
                                 description=__doc__.splitlines()[0],
                                 formatter_class=HelpFormatter)
    ap.add_argument("--out", default="out/demo.png", help="PNG grid to write")
    ap.add_argument("--seg-out", default=None,
                    help="the label-map grid (default: demo_seg.png beside --out; '' to skip)")
    ap.add_argument("--device", choices=["auto", "cpu", "gpu"], default="auto",
                    help="auto: the GPU when DALI sees one")
    ap.add_argument("--mode", choices=list(dali_msda.MODES), default="elem",
                    help="elem: every sample draws its own lam and centre (default here, so "
                         "that one grid shows many masks); batch: one draw for the batch; "
                         "pair: one draw for each pair of samples")
    ap.add_argument("--alpha", type=positive_float, default=1.0, help="Beta(alpha, alpha) of lam")
    ap.add_argument("--seed", type=SEED, default=2022, help="the pipeline's seed")
    args = ap.parse_args(argv)
    device = ("gpu" if has_gpu() else "cpu") if args.device == "auto" else args.device
    names = [n for _, n in PHOTOS]
    pipe = build_pipeline(photo_paths(), device, args.mode, args.seed, args.alpha)
    outs = [to_numpy(o) for o in pipe.run()]
    results = {}
    print(f"device={device} mode={args.mode} alpha={args.alpha} seed={args.seed}")
    for k, method in enumerate(dali_msda.METHODS):
        mixed, targets, masks = outs[3 * k:3 * k + 3]
        results[method] = (mixed, targets, masks)
        assert np.allclose(targets.sum(axis=1), 1.0, atol=1e-6)
        print(f"{method:7s} " + "  ".join(
            f"{names[i]}:{targets[i, i]:.2f}" for i in range(len(names))))
    render_grid(results, names, args.out)
    print(f"wrote {args.out}")
    # beside --out, written the way --out is (relative stays relative)
    seg_out = (os.path.join(os.path.dirname(args.out), "demo_seg.png")
               if args.seg_out is None else args.seg_out)
    if seg_out:
        from dali_msda.pipelines.data import SEG_CLASSES

        images, masks = seg_pairs()
        outs = [to_numpy(o) for o in build_seg_pipeline(images, masks, device, args.mode,
                                                        args.seed, args.alpha).run()]
        seg_results = {m: (outs[2 * k], outs[2 * k + 1]) for k, m in enumerate(SEG_METHODS)}
        render_seg_grid(seg_results, [n for _, n in SEG_CLASSES], seg_out)
        print(f"wrote {seg_out}")


if __name__ == "__main__":
    main()
