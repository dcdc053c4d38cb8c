"""Endurance: run the training pipeline with mixing for many iterations and sample its memory.

    python benchmarks/soak.py                                # 10,000 iterations, CPU (and GPU)
    python benchmarks/soak.py --iterations 2000 --device cpu

The pipeline is `imagenet_train` on the embedded dataset (or --data) with a live MixSchedule,
iterated through `dali_msda.pytorch.MixIterator`, so every epoch end (a reader reset, the
iterator's own scheduling) and a mixing change every epoch (the method cycles through the four)
are part of the run. The process's resident memory (VmRSS) is sampled every `--every`
iterations, and on a GPU the device memory in use (cudaMemGetInfo). Flat after warm-up is the
bar: the report gives the figures at the end of warm-up and at the end, and the growth per 1,000
iterations from a least-squares line through the samples after warm-up. Not a CI test.
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import add_output_args, machine_info, output_path, progress  # noqa: E402


def rss_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmRSS in /proc/self/status (Linux only)")


def gpu_used_mib(device_id):
    import torch

    free, total = torch.cuda.mem_get_info(device_id)
    return (total - free) / 2**20


def soak(device, args):
    import numpy as np

    from dali_msda.pipelines import MixConfig, MixSchedule, embedded_dataset, imagenet_train
    from dali_msda.pytorch import MixIterator

    root = args.data or os.path.join(embedded_dataset(), "train")
    schedule = MixSchedule(MixConfig(method="hmix", mode=args.mode))
    pipe = imagenet_train(root, batch_size=args.batch_size, num_threads=args.threads,
                          device=device, crop=args.crop, dtype=args.dtype, mix=schedule,
                          seed=1)
    loader = MixIterator(pipe)
    methods = ["mixup", "cutmix", "hmix", "gmix"]
    samples, done, epoch = [], 0, 0
    t0 = time.perf_counter()
    while done < args.iterations:
        loader.set_mix(method=methods[epoch % 4])
        for images, targets in loader:
            done += 1
            if done % args.every == 0 or done == 1:
                if device == "gpu":
                    import torch
                    torch.cuda.synchronize()
                row = {"iteration": done, "seconds": time.perf_counter() - t0,
                       "rss_mib": rss_mib()}
                if device == "gpu":
                    row["gpu_used_mib"] = gpu_used_mib(pipe.device_id)
                samples.append(row)
                progress(done, args.iterations,
                         f"{device}: RSS {row['rss_mib']:.0f} MiB" +
                         (f", GPU {row['gpu_used_mib']:.0f} MiB" if device == "gpu" else ""))
            if done >= args.iterations:
                break
        epoch += 1
    if args.iterations % args.every:  # progress() ends its line at the last iteration only
        sys.stderr.write("\n")
    warm = [s for s in samples if s["iteration"] >= args.warmup]
    report = {"device": device, "iterations": done, "epochs": epoch,
              "images": done * args.batch_size, "seconds": time.perf_counter() - t0,
              "samples": samples}
    for key in ["rss_mib"] + (["gpu_used_mib"] if device == "gpu" else []):
        it = np.array([s["iteration"] for s in warm], float)
        mem = np.array([s[key] for s in warm], float)
        slope = float(np.polyfit(it, mem, 1)[0]) * 1000 if len(warm) > 2 else float("nan")
        report[key] = {"start": samples[0][key], "after_warmup": warm[0][key] if warm else None,
                       "end": samples[-1][key], "max": max(s[key] for s in samples),
                       "growth_per_1000_iterations": slope}
    return report


def main(argv=None):
    from dali_msda._cli import HelpFormatter, int_at_least

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=HelpFormatter)
    ap.add_argument("--data", default=None, help="ImageFolder tree (default: embedded train/)")
    ap.add_argument("--device", choices=["auto", "cpu", "gpu"], default="auto",
                    help="auto: the CPU pipeline, and the GPU one where DALI sees a GPU")
    ap.add_argument("--iterations", type=int_at_least(1), default=10000, help="batches to run")
    ap.add_argument("--warmup", type=int_at_least(0), default=1000,
                    help="iterations before the bar applies")
    ap.add_argument("--every", type=int_at_least(1), default=100,
                    help="sample memory every N iterations")
    ap.add_argument("--batch-size", type=int_at_least(1), default=16, help="images a batch")
    ap.add_argument("--crop", type=int_at_least(1), default=224, help="training crop side, px")
    ap.add_argument("--dtype", choices=["float16", "float32"], default="float16",
                    help="the batch's image type")
    ap.add_argument("--mode", choices=["batch", "elem"], default="elem",
                    help="one draw a batch, or one a sample")
    ap.add_argument("--threads", type=int_at_least(1), default=os.cpu_count(),
                    help="DALI CPU threads")
    add_output_args(ap, "soak")
    args = ap.parse_args(argv)
    from dali_msda import has_gpu

    devices = (["cpu"] + (["gpu"] if has_gpu() else [])) if args.device == "auto" else \
        [args.device]
    result = {"machine": machine_info(devices[-1]), "args": vars(args), "runs": []}
    for device in devices:
        run = soak(device, args)
        result["runs"].append(run)
        for key in ("rss_mib", "gpu_used_mib"):
            if key in run:
                r = run[key]
                print(f"{device} {key}: start {r['start']:.0f}, after warm-up "
                      f"{r['after_warmup']:.0f}, end {r['end']:.0f}, max {r['max']:.0f} MiB; "
                      f"{r['growth_per_1000_iterations']:+.2f} MiB per 1000 iterations after "
                      f"warm-up ({run['iterations']} iterations, {run['epochs']} epochs, "
                      f"{run['seconds']:.0f} s)", flush=True)
    path = output_path(args, "soak")
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
    print(f"wrote {path}")
    return result


if __name__ == "__main__":
    main()
