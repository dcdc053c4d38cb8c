"""What the pipelines' data checks cost, each against the pipeline without it, in one run.

- fn.msda.image_check (every encoded image's structure read before decoding, so that a file no
  decoder can read stops training naming it): imagenet_train on the CPU, images/s with the check
  and without (`check_images=False`), alternating rounds; and, since a difference of 1 % is
  within that ratio's noise, the check's own time (the reader alone with and without it, many
  batches) as a share of the training pipeline's time an image (`cost`);
- DALI's checkpointing, which the training pipelines keep on always (its file reader shuffles
  differently with it, so a run that saves checkpoints would otherwise see other batches than
  one that does not): a reader + decode + resize pipeline, images/s with it on and off, and the
  reader alone with it on and off as a share of the training pipeline's time;
- label maps as class indices (fn.msda.image_check of their header, an ANY_DATA decode and
  fn.msda.label_map, so that palette PNGs give their indices) against the greyscale decode the
  segmentation pipelines used before (which turned a palette PNG's indices into grey levels of
  its colours): maps/s of the maps alone, and segmentation_train's images/s for scale.

    python benchmarks/data_checks.py [--rounds 5] [--batches 20] [--imagenet-sized]
                                     [--json out/data_checks.json | --update-results]

Figures are the best round of each variant (interference only ever adds time); ratios are of
the same run.
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import add_output_args, machine_info, output_path  # noqa: E402


def images_per_s(pipe, batches, batch_size):
    pipe.build()
    for _ in range(2):
        pipe.run()
    t = time.perf_counter()
    for _ in range(batches):
        pipe.run()
    return batches * batch_size / (time.perf_counter() - t)


def best_of(rounds, variants):
    """Best images/s per variant (name -> make pipeline), the variants alternating round by
    round so that each sees the same moments of a shared machine."""
    best = {name: 0.0 for name in variants}
    for _ in range(rounds):
        for name, measure in variants.items():
            best[name] = max(best[name], measure())
    return best


def main(argv=None):
    from dali_msda._cli import HelpFormatter, int_at_least

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=HelpFormatter)
    ap.add_argument("--rounds", type=int_at_least(1), default=5,
                    help="rounds of every variant in turn; the best is kept")
    ap.add_argument("--batches", type=int_at_least(1), default=20, help="batches a round")
    ap.add_argument("--batch-size", type=int_at_least(1), default=32, help="images a batch")
    ap.add_argument("--threads", type=int_at_least(1), default=os.cpu_count() or 2,
                    help="DALI CPU threads")
    ap.add_argument("--imagenet-sized", action="store_true",
                    help="the embedded set made at ImageNet's photo size (400-500 px)")
    add_output_args(ap, "data_checks")
    args = ap.parse_args(argv)

    import dali_msda  # noqa: F401
    from dali_msda.pipelines import (MixConfig, embedded_dataset, imagenet_train,
                                     segmentation_dataset, segmentation_pairs, segmentation_train)
    from nvidia.dali import fn, pipeline_def, types

    from dali_msda.pipelines.data import IMAGENET_SIDES

    root = (embedded_dataset(sides=IMAGENET_SIDES) if args.imagenet_sized
            else embedded_dataset()) + "/train"
    bs, threads = args.batch_size, args.threads

    def train(check):
        return lambda: images_per_s(
            imagenet_train(root, batch_size=bs, num_threads=threads, device="cpu",
                           dtype="float32", mix=MixConfig(method="cutmix"), seed=1,
                           check_images=check), args.batches, bs)

    def plain(checkpointing):
        @pipeline_def(batch_size=bs, num_threads=threads, device_id=None, seed=1,
                      enable_checkpointing=checkpointing)
        def pipe():
            jpegs, _ = fn.readers.file(file_root=root, shuffle_after_epoch=True, seed=42,
                                       pad_last_batch=True)
            images = fn.decoders.image_random_crop(jpegs, device="cpu", output_type=types.RGB)
            return fn.resize(images, resize_x=224, resize_y=224)
        return lambda: images_per_s(pipe(), args.batches, bs)

    def reader(check, checkpointing=False):
        """The reader alone (and the check): what the check and the checkpointing add, apart
        from the decode's noise."""
        @pipeline_def(batch_size=bs, num_threads=threads, device_id=None, seed=1,
                      enable_checkpointing=checkpointing)
        def pipe():
            jpegs, _ = fn.readers.file(file_root=root, shuffle_after_epoch=True, seed=42,
                                       pad_last_batch=True)
            return fn.msda.image_check(jpegs) if check else jpegs
        return lambda: images_per_s(pipe(), args.batches * 50, bs)

    seg_root = segmentation_dataset() + "/train"
    _, masks = segmentation_pairs(seg_root)

    def maps(indexed):
        @pipeline_def(batch_size=bs, num_threads=threads, device_id=None)
        def pipe():
            pngs, _ = fn.readers.file(files=masks, pad_last_batch=True)
            if not indexed:
                return fn.decoders.image(pngs, device="cpu", output_type=types.GRAY)
            checked = fn.msda.image_check(pngs, label_maps=True)
            decoded = fn.decoders.image(checked, device="cpu", output_type=types.ANY_DATA)
            return fn.msda.label_map(pngs, decoded, num_classes=256, ignore_index=-1)
        return lambda: images_per_s(pipe(), args.batches, bs)

    def seg():
        return lambda: images_per_s(
            segmentation_train(seg_root, num_classes=256, batch_size=bs, num_threads=threads,
                               device="cpu", dtype="float32", mix=MixConfig(method="cutmix")),
            args.batches, bs)

    result = {"machine": machine_info("cpu"), "batch_size": bs, "threads": threads,
              "rounds": args.rounds, "batches": args.batches,
              "photos": "imagenet-sized" if args.imagenet_sized else "small"}
    checks = best_of(args.rounds, {"with": train(True), "without": train(False)})
    alone = best_of(args.rounds, {"reader": reader(False), "reader+check": reader(True),
                                  "reader+checkpointing": reader(False, True)})
    us_check = 1e6 / alone["reader+check"] - 1e6 / alone["reader"]  # per image
    us_ckpt = 1e6 / alone["reader+checkpointing"] - 1e6 / alone["reader"]
    per_image_us = 1e6 / checks["without"]
    result["image_check"] = dict(checks, pipeline_ratio_cost=1 - checks["with"] / checks["without"],
                                 reader_alone=alone, extra_us_per_image=us_check,
                                 cost=us_check / per_image_us)
    ckpt = best_of(args.rounds, {"on": plain(True), "off": plain(False)})
    result["checkpointing"] = dict(ckpt, pipeline_ratio_cost=1 - ckpt["on"] / ckpt["off"],
                                   extra_us_per_image=us_ckpt, cost=us_ckpt / per_image_us)
    m = best_of(args.rounds, {"label_map": maps(True), "grey": maps(False)})
    pipeline = best_of(args.rounds, {"segmentation_train": seg()})["segmentation_train"]
    per_map_ms = 1000 / m["label_map"] - 1000 / m["grey"]  # extra ms per map
    result["label_maps"] = dict(
        m, extra_ms_per_map=per_map_ms,
        segmentation_train=pipeline,
        cost_of_pipeline=per_map_ms / (1000 / pipeline))
    out = output_path(args, "data_checks")
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    with open(out, "w") as f:
        json.dump(result, f, indent=1)
    print(f"image_check: training pipeline {checks['with']:.0f} vs {checks['without']:.0f} "
          f"images/s (ratio {100 * result['image_check']['pipeline_ratio_cost']:.2f} %); the "
          f"check alone {us_check:.2f} us an image = {100 * result['image_check']['cost']:.2f} % "
          f"of the pipeline's {per_image_us:.0f} us")
    print(f"checkpointing: {ckpt['on']:.0f} vs {ckpt['off']:.0f} images/s (ratio "
          f"{100 * result['checkpointing']['pipeline_ratio_cost']:.2f} %); with the reader "
          f"alone {us_ckpt:.2f} us an image = {100 * result['checkpointing']['cost']:.2f} %")
    print(f"label maps: {m['label_map']:.0f} (label_map) vs {m['grey']:.0f} (grey) maps/s, "
          f"{per_map_ms:.3f} ms more a map; segmentation_train {pipeline:.0f} images/s "
          f"(the maps' extra: {100 * result['label_maps']['cost_of_pipeline']:.2f} % of its "
          f"time)")
    print(f"-> {out}")
    return result


if __name__ == "__main__":
    main()
