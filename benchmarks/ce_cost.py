"""What the target form costs in the loss: cross-entropy forward + backward on a mixed batch with
dense soft targets (fn.msda.mix's `targets="dense"`: K float32 a sample) against index targets
(`targets="index"`: own class, partner class, own weight; dali_msda.pytorch.mixed_cross_entropy).

    python benchmarks/ce_cost.py                      # batch 256, K = 1,000 and 21,843, CPU
    python benchmarks/ce_cost.py --device cuda        # on a GPU (CUDA events)

Both forms in the same run, rounds interleaved, each timed as the best of --rounds rounds of
--steps steps; the ratio is index / dense. Label smoothing 0.1 (timm's default) in both. The
dense targets' bytes per batch are what the pipeline hands over (and the GPU holds) besides.
"""

import argparse
import json
import os
import platform
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "benchmarks"), ROOT]
from common import machine_info, output_file  # noqa: E402
from dali_msda._cli import HelpFormatter, int_at_least  # noqa: E402
from dali_msda.pytorch import mixed_cross_entropy  # noqa: E402


def make_batch(batch, k, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    own = torch.randint(0, k, (batch,), generator=g)
    partner = own.flip(0)
    weight = torch.rand(batch, generator=g)
    eps = 0.1
    dense = torch.full((batch, k), eps / k)
    rows = torch.arange(batch)
    dense[rows, own] += weight * (1 - eps)
    dense[rows, partner] += (1 - weight) * (1 - eps)
    logits = torch.randn(batch, k, generator=g)
    to = dict(device=device)
    return (logits.to(**to), dense.to(**to), own.to(**to), partner.to(**to), weight.to(**to),
            eps)


def time_steps(fn, steps, device):
    """Seconds per step of fn() (forward + backward), by CUDA events on a GPU."""
    if device == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        start.record()
        for _ in range(steps):
            fn()
        end.record()
        torch.cuda.synchronize()
        return start.elapsed_time(end) / 1e3 / steps
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - t0) / steps


def measure(batch, k, device, steps, rounds):
    logits0, dense, own, partner, weight, eps = make_batch(batch, k, device)
    logits = logits0.clone().requires_grad_(True)

    def dense_step():
        loss = torch.nn.functional.cross_entropy(logits, dense, label_smoothing=0.0)
        loss.backward()
        logits.grad = None

    def index_step():
        loss = mixed_cross_entropy(logits, own, partner, weight, label_smoothing=eps)
        loss.backward()
        logits.grad = None

    # the two forms give the same loss (the dense rows carry the smoothing)
    a = torch.nn.functional.cross_entropy(logits0, dense).item()
    b = mixed_cross_entropy(logits0, own, partner, weight, label_smoothing=eps).item()
    assert abs(a - b) <= 1e-5 * max(1.0, abs(a)), (a, b)
    for f in (dense_step, index_step):  # warm-up
        time_steps(f, 2, device)
    best = {"dense": float("inf"), "index": float("inf")}
    for _ in range(rounds):
        best["dense"] = min(best["dense"], time_steps(dense_step, steps, device))
        best["index"] = min(best["index"], time_steps(index_step, steps, device))
    return {"batch": batch, "K": k, "device": device,
            "dense_ms": 1e3 * best["dense"], "index_ms": 1e3 * best["index"],
            "index_over_dense": best["index"] / best["dense"],
            "dense_target_bytes": batch * k * 4, "index_target_bytes": batch * 12}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=HelpFormatter)
    ap.add_argument("--batch", type=int_at_least(1), default=256, help="samples a step")
    ap.add_argument("--classes", type=int_at_least(1), nargs="+", default=[1000, 21843],
                    help="K, the number of classes (one row each)")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where the loss runs")
    ap.add_argument("--steps", type=int_at_least(1), default=10,
                    help="forward + backward steps a round")
    ap.add_argument("--rounds", type=int_at_least(1), default=5,
                    help="rounds of each form in turn; the best is kept")
    ap.add_argument("--threads", type=int_at_least(1), default=None,
                    help="torch CPU threads (default: "
                    "torch's)")
    ap.add_argument("--out", default=None, type=output_file, help="JSON file for the rows")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    machine = dict(machine_info("gpu" if args.device == "cuda" else "cpu"),
                   platform=platform.platform())  # torch_threads, and gpu on a GPU
    rows = [measure(args.batch, k, args.device, args.steps, args.rounds) for k in args.classes]
    print(f"cross-entropy forward + backward, batch {args.batch}, {args.device}"
          f" ({machine.get('gpu') or str(machine['torch_threads']) + ' threads'}), best of "
          f"{args.rounds} x {args.steps} steps")
    print(f"{'K':>7} {'dense ms':>9} {'index ms':>9} {'index/dense':>11} {'dense targets':>14}")
    for r in rows:
        print(f"{r['K']:>7} {r['dense_ms']:9.3f} {r['index_ms']:9.3f} "
              f"{r['index_over_dense']:11.2f} {r['dense_target_bytes'] / 2**20:11.1f} MiB")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"machine": machine, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
