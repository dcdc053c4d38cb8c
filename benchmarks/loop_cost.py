"""Mixing inside the training loop: what one call costs, `dali_msda.pytorch.Mixer` (fn.msda.mix
in DALI's dynamic mode) against timm's `Mixup` (`mixup_fn(x, y)`), on the same batch.

    python benchmarks/loop_cost.py                    # CPU, batch 128, Mixup and CutMix
    python benchmarks/loop_cost.py --device cuda --batch 256    # a GPU (CUDA events)
    python benchmarks/loop_cost.py --channels-last    # for a channels_last model (see below)

The batch is what a loop holds after its loader: normalised float32 [B, 3, 224, 224] images and
int64 class ids (K = 1,000), on the device. Both produce the mixed batch and label-smoothed
(0.1) dense targets, in timm's batch mode (one draw per batch) and per-sample mode ("elem",
timm's Python loop over the samples); `--modes ... pair` adds timm's pair mode (a loop over the
pairs i, B - 1 - i, one draw mixing both). timm is timm's own `timm.data.Mixup` where timm imports,
else its re-implementation from benchmarks/baselines.py (the same tensor operations; the
results name which). Before timing, each is checked on the batch: ours against
dali_msda.reference from its reported draw, timm's by its own targets (each sample's lam read
from its target row: Mixup's output is lam x_i + (1 - lam) x_j, CutMix's takes a 1 - lam share of
its pixels from x_j and the rest from x_i).

`--channels-last`: the mixed batch is wanted in channels_last memory, for a channels_last model
(timm's train.py --channels-last): timm's call is followed by the conversion timm's train.py
makes after it (`x.contiguous(memory_format=torch.channels_last)`), ours is one call
(`Mixer(memory_format=torch.channels_last)`: the conversion fused into the mix).

Timing: calls of the two alternate (A B A B ...), each timed alone, the best of --iters; on a
GPU from a CUDA event recorded before the call to one recorded after the device is
synchronised (DALI's stream included), so the host's part of the call (the labels read back,
Python) counts as it does in a loop. timm mixes in place: its calls mix the batch that its
previous call left, which costs the same.
"""

import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]

from common import machine_info, output_file  # noqa: E402
from dali_msda import reference as ref  # noqa: E402
from dali_msda._cli import HelpFormatter, int_at_least  # noqa: E402
from dali_msda.pytorch import Mixer  # noqa: E402

import baselines  # noqa: E402

K, SMOOTHING = 1000, 0.1


def smooth_one_hot(y, device):
    off = SMOOTHING / K
    t = torch.full((len(y), K), off, device=device)
    t.scatter_(1, y[:, None], 1.0 - SMOOTHING + off)
    return t


class TimmMixupLike:
    """timm.data.Mixup's call for one method (mixup_alpha or cutmix_alpha 1.0, prob 1,
    correct_lam, label smoothing) built from baselines.py's timm functions: numpy draws as timm
    makes them (lam ~ Beta(1, 1), the box centre uniform), the mixing in place (batch mode) or
    as a Python loop over a clone (elem; pair: over the pairs), the targets as timm's
    mixup_target."""

    def __init__(self, method, mode):
        self.method, self.mode = method, mode

    def __call__(self, x, y):
        n, _, h, w = x.shape
        count = {"batch": 1, "elem": n, "pair": n // 2}[self.mode]
        lam = np.random.beta(1.0, 1.0, size=count)
        cy, cx = np.random.randint(0, h, size=count), np.random.randint(0, w, size=count)
        if self.mode == "batch":
            fn_ = baselines.timm_mixup_batch if self.method == "mixup" else \
                baselines.timm_cutmix_batch
            x, weight = fn_(x, float(lam[0]), int(cy[0]), int(cx[0]))
            weight = torch.full((n,), float(weight), device=x.device)
        else:
            fn_ = getattr(baselines, f"timm_{self.method}_{self.mode}")
            x, weight = fn_(x, [float(v) for v in lam], [int(v) for v in cy],
                            [int(v) for v in cx])
            weight = torch.tensor(weight, dtype=torch.float32, device=x.device)
        own, partner = smooth_one_hot(y, x.device), smooth_one_hot(y.flip(0), x.device)
        return x, own * weight[:, None] + partner * (1.0 - weight[:, None])


def timm_mixup(method, mode):
    """(callable, name): timm's Mixup where timm imports, else TimmMixupLike."""
    try:
        import timm
        from timm.data import Mixup
    except ImportError:
        return TimmMixupLike(method, mode), "timm Mixup, re-implemented (baselines.py)"
    alphas = dict(mixup_alpha=1.0 if method == "mixup" else 0.0,
                  cutmix_alpha=1.0 if method == "cutmix" else 0.0)
    return (Mixup(**alphas, prob=1.0, switch_prob=0.0, mode=mode, correct_lam=True,
                  label_smoothing=SMOOTHING, num_classes=K), f"timm {timm.__version__} Mixup")


def lam_from_targets(t, y):
    """Each sample's own weight from its label-smoothed target row (own and partner classes
    differ: the labels are distinct)."""
    off = SMOOTHING / K
    on = 1.0 - SMOOTHING + off
    return ((t[torch.arange(len(y)), y] - off) / (on - off)).double().cpu().numpy()


def check_timm(method, out, targets, x0, y):
    """timm's output read back from its own targets (lam per sample)."""
    lam = lam_from_targets(targets, y)
    a, b = x0.double().cpu().numpy(), x0.flip(0).double().cpu().numpy()
    got = out.double().cpu().numpy()
    if method == "mixup":
        want = lam[:, None, None, None] * a + (1 - lam[:, None, None, None]) * b
        if not np.allclose(got, want, atol=1e-4):
            raise AssertionError("timm's Mixup differs from lam x_i + (1 - lam) x_j")
        return
    from_own, from_partner = got == a, (got == b) & (a != b)
    if not np.all(from_own | (got == b)):
        raise AssertionError("timm's CutMix has pixels from neither image")
    share = from_partner.reshape(len(y), -1).mean(1)  # where a == b, counted as the own
    same = (a == b).reshape(len(y), -1).mean(1)
    tol = 5e-6  # lam read from float32 targets; a pixel is 2e-5 of a 224 x 224 image
    if np.any(share - tol > 1 - lam) or np.any(share + same + tol < 1 - lam):
        raise AssertionError("timm's CutMix box share differs from its targets' 1 - lam")


def check_ours(method, mode, x, y, device, memory_format=None):
    mixer = Mixer(method=method, mode=mode, num_classes=K, label_smoothing=SMOOTHING, seed=1,
                  output_params=True, memory_format=memory_format)
    out, targets, params = mixer(x, y)
    if memory_format is not None and not out.is_contiguous(memory_format=memory_format):
        raise AssertionError(f"Mixer ({method}, {mode}) output is not in {memory_format}")
    params = params.cpu().numpy()
    want, want_t, _ = ref.mix(x.cpu().numpy(), y.cpu().numpy()[:, None], method,
                              lam=params[:, 1], center=params[:, 2:4].astype(np.int64),
                              apply=params[:, 0] == 1.0, layout="CHW", num_classes=K,
                              label_smoothing=SMOOTHING)
    if not np.array_equal(out.cpu().numpy(), want):
        raise AssertionError(f"Mixer ({method}, {mode}) differs from the reference")
    if not np.allclose(targets.cpu().numpy(), want_t, atol=1e-6):
        raise AssertionError(f"Mixer ({method}, {mode}) targets differ from the reference")


def timer(device):
    """seconds(fn): one call of fn, on a GPU from an event before it to one after the device
    is synchronised."""
    if device == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

        def seconds(fn):
            torch.cuda.synchronize()
            start.record()
            fn()
            torch.cuda.synchronize()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1e3
        return seconds

    def seconds(fn):
        t = time.perf_counter()
        fn()
        return time.perf_counter() - t
    return seconds


def measure(method, mode, batch, device, iters, seed=0, channels_last=False):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(batch, 3, 224, 224, generator=g).to(device)
    y = (torch.randperm(K, generator=g)[:batch]).to(device)  # distinct: lam readable
    timm_fn, timm_name = timm_mixup(method, mode)
    np.random.seed(seed)
    out, targets = timm_fn(x0.clone(), y)
    check_timm(method, out, targets, x0, y)
    memory_format = torch.channels_last if channels_last else None
    check_ours(method, mode, x0, y, device, memory_format)
    mixer = Mixer(method=method, mode=mode, num_classes=K, label_smoothing=SMOOTHING, seed=0,
                  memory_format=memory_format)
    x_timm = x0.clone()

    def timm_call():
        x, t = timm_fn(x_timm, y)
        return (x.contiguous(memory_format=torch.channels_last) if channels_last else x), t

    fns = {"ours": lambda: mixer(x0, y), "timm": timm_call}
    seconds = timer(device)
    for f in fns.values():  # warm-up
        f()
        f()
    best = {k: math.inf for k in fns}
    for _ in range(iters):
        for k, f in fns.items():
            best[k] = min(best[k], seconds(f))
    return {"method": method, "mode": mode, "batch": batch, "device": device,
            "ours_ms": best["ours"] * 1e3, "timm_ms": best["timm"] * 1e3,
            "timm_over_ours": best["timm"] / best["ours"], "timm": timm_name,
            "channels_last": channels_last}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=HelpFormatter)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                    help="where the batch lives and both mix")
    ap.add_argument("--batch", type=int_at_least(1), default=128,
                    help="even (timm's elem mode needs it)")
    ap.add_argument("--methods", nargs="+", default=["mixup", "cutmix"],
                    choices=["mixup", "cutmix"], help="the methods both offer")
    ap.add_argument("--modes", nargs="+", default=["batch", "elem"],
                    choices=["batch", "elem", "pair"],
                    help="one draw a batch, a sample, or a pair")
    ap.add_argument("--iters", type=int_at_least(1), default=10,
                    help="timed calls of each, the best kept")
    ap.add_argument("--threads", type=int_at_least(1), default=None, help="torch CPU threads")
    ap.add_argument("--out", default=None, type=output_file, help="JSON file for the rows")
    ap.add_argument("--channels-last", action="store_true",
                    help="the mixed batch wanted channels_last: timm's call then timm's "
                         "conversion, against Mixer(memory_format=torch.channels_last)")
    args = ap.parse_args(argv)
    if args.batch % 2:
        ap.error(f"--batch must be even (timm's elem and pair modes require it); got "
                 f"{args.batch}")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("loop_cost: --device cuda, but torch sees no GPU")
    rows = [measure(m, mode, args.batch, args.device, args.iters,
                    channels_last=args.channels_last)
            for m in args.methods for mode in args.modes]
    where = torch.cuda.get_device_name() if args.device == "cuda" else \
        f"CPU, {torch.get_num_threads()} threads"
    print(f"Mixing in the loop: Mixer(x, y) vs timm's mixup_fn(x, y), float32 "
          f"[{args.batch}, 3, 224, 224], K = {K}, {where}"
          f"{', output channels_last' if args.channels_last else ''}; best of {args.iters} calls "
          f"(ms per call, lower is better; timm / ours: how many times ours timm takes)\n")
    print("| method | mode | ours ms | timm ms | timm / ours | timm |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['method']} | {r['mode']} | {r['ours_ms']:.2f} | {r['timm_ms']:.2f} | "
              f"{r['timm_over_ours']:.2f} | {r['timm']} |")
    if args.out:
        machine = dict(machine_info("gpu" if args.device == "cuda" else "cpu"), where=where)
        with open(args.out, "w") as f:
            json.dump({"machine": machine, "rows": rows}, f, indent=2)
        print(f"wrote {args.out}")
    return rows


if __name__ == "__main__":
    main()
