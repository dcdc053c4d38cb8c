"""Images/s of the ImageNet train pipeline with and without fn.msda.mix, per method.

    python benchmarks/throughput.py [--data IMAGEFOLDER] [--device cpu|gpu] [--imagenet-sized]
                                    [--json FILE | --update-results]

Results go to out/throughput.json (git-ignored); --update-results replaces the committed
benchmarks/results/throughput.json (throughput_imagenet_sized.json with --imagenet-sized).

The same pipeline (reader, fused decode + random crop, resize, flip + normalise) is run without
mixing and, for each method, with crop_mirror_normalize followed by fn.msda.mix ("CMN+mix")
and with the flip and normalisation fused into fn.msda.mix ("fused", the pipeline's default);
the ratio to the unmixed pipeline is what mixing costs end to end. Each variant's first batch is
checked (shapes, types, finite images, targets that are distributions, mixed or one-hot as they
should be). The variants are interleaved in rounds (A B C ... A B C ...) so that drifts of a
shared machine hit them alike; the figure is the median over rounds. GPU timings end with a
device synchronisation. Defaults to the embedded dataset.
"""

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
# benchmarks/ for its helpers, the checkout for dali_msda (whose plugin is its own build, or the
# installed package's when the checkout has none)
sys.path[:0] = [HERE, os.path.dirname(HERE)]

from dali_msda._cli import HelpFormatter, int_at_least  # noqa: E402
from dali_msda.pipelines import MixConfig, embedded_dataset, imagenet_train  # noqa: E402
from dali_msda.pipelines.data import IMAGENET_SIDES  # noqa: E402
from dali_msda.pipelines.common import resolve_device  # noqa: E402

from common import add_output_args, machine_info, output_path, progress  # noqa: E402


def torch_sync():
    import torch

    torch.cuda.synchronize()


def images_per_s(pipe, batches, sync):
    t = time.perf_counter()
    for _ in range(batches):
        pipe.run()
    sync()
    return batches * pipe.max_batch_size / (time.perf_counter() - t)


def check_outputs(pipe, variant, num_classes, crop, dtype):
    """One batch of a variant, checked: CHW images of the right type and size, finite; targets
    are distributions, one-hot without mixing and mixed with it (prob 1)."""
    images, targets = (np.stack([np.array(o[i]) for i in range(len(o))])
                       for o in (t.as_cpu() if hasattr(t, "as_cpu") else t
                                 for t in pipe.run()[:2]))
    n = pipe.max_batch_size
    assert images.shape == (n, 3, crop, crop) and images.dtype == np.dtype(dtype), images.shape
    assert np.isfinite(images.astype(np.float32)).all()
    assert targets.shape == (n, num_classes)
    np.testing.assert_allclose(targets.sum(1), 1.0, atol=1e-5)
    top = np.sort(targets, axis=1)
    if variant == "none":
        assert (top[:, -1] == 1.0).all(), f"{variant}: targets are not one-hot"
    else:
        assert (top[:, -1] < 1.0).any(), f"{variant}: no sample was mixed"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=HelpFormatter)
    ap.add_argument("--data", default=None, help="ImageFolder root (default: embedded train/)")
    ap.add_argument("--imagenet-sized", action="store_true",
                    help="use the embedded dataset made at ImageNet's photo size (400-500 px) "
                         "instead of its small default (160-288 px)")
    ap.add_argument("--device", choices=["auto", "cpu", "gpu"], default="auto",
                    help="auto: the GPU when DALI sees one")
    ap.add_argument("--batch-size", type=int_at_least(1), default=64, help="images a batch")
    ap.add_argument("--threads", type=int_at_least(1), default=os.cpu_count(),
                    help="DALI CPU threads")
    ap.add_argument("--crop", type=int_at_least(1), default=224, help="training crop side, px")
    ap.add_argument("--dtype", choices=["float16", "float32"], default="float16",
                    help="the batch's image type")
    ap.add_argument("--mode", choices=["batch", "elem"], default="batch",
                    help="one draw a batch, or one a sample")
    ap.add_argument("--methods", nargs="+", default=["mixup", "cutmix", "hmix", "gmix"],
                    help="one pipeline (CMN+mix and fused) each")
    ap.add_argument("--batches", type=int_at_least(1), default=10,
                    help="batches per round and variant")
    ap.add_argument("--rounds", type=int_at_least(1), default=5,
                    help="rounds of every variant in turn; the median is reported")
    add_output_args(ap, "throughput")
    args = ap.parse_args(argv)
    args.json = output_path(args, "throughput_imagenet_sized" if args.imagenet_sized
                            else "throughput")
    device = resolve_device(args.device)
    data = args.data or os.path.join(
        embedded_dataset(sides=IMAGENET_SIDES) if args.imagenet_sized else embedded_dataset(),
        "train")
    # none: crop_mirror_normalize, no mixing; "<method> CMN+mix": the two operators;
    # "<method> fused": flip + normalisation fused into fn.msda.mix (the pipeline's default)
    variants = ["none"] + [f"{m} {k}" for m in args.methods for k in ("CMN+mix", "fused")]
    sync = torch_sync if device == "gpu" else (lambda: None)
    pipes = {}
    for v in variants:
        method, kind = (v.split() + [None])[:2]
        mix = None if v == "none" else MixConfig(method=method, mode=args.mode)
        pipes[v] = imagenet_train(data, batch_size=args.batch_size, num_threads=args.threads,
                                  device=device, crop=args.crop, dtype=args.dtype, mix=mix,
                                  seed=1, fused=kind == "fused")
        pipes[v].build()
        check_outputs(pipes[v], v, pipes[v].num_classes, args.crop, args.dtype)
        for _ in range(3):  # warm-up: buffers, decoder state
            pipes[v].run()
    rates = {v: [] for v in variants}
    total = args.rounds * len(variants)
    for r in range(args.rounds):
        for k, v in enumerate(variants):
            progress(r * len(variants) + k + 1, total, f"round {r + 1}: {v}")
            rates[v].append(images_per_s(pipes[v], args.batches, sync))
    base = statistics.median(rates["none"])
    rows = []
    for v in variants:
        med = statistics.median(rates[v])
        rows.append({"variant": v, "images_per_s": med, "ratio_to_none": med / base,
                     "per_round": rates[v]})
    result = {"machine": machine_info(device), "data": data, "batch_size": args.batch_size,
              "threads": args.threads, "crop": args.crop, "dtype": args.dtype,
              "mode": args.mode, "rows": rows}
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(result, f, indent=2)
    print(f"\nImageNet training pipeline throughput: {device}, batch {args.batch_size}, "
          f"{args.threads} threads, crop {args.crop}, {args.dtype}, mode {args.mode}, data "
          f"{data} (median of {args.rounds} rounds of {args.batches} batches)")
    print("| device | mix | images/s | ratio to no mixing |\n|---|---|---|---|")
    for row in rows:
        print(f"| {device} | {row['variant']} | {row['images_per_s']:.1f} | "
              f"{row['ratio_to_none']:.3f} |")
    print(f"wrote {args.json}")
    return result


if __name__ == "__main__":
    main()
