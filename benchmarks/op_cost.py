"""What fn.msda.mix costs, against what users would pick instead, measured in one run.

    python benchmarks/op_cost.py             # quick: batch 64, Mixup and CutMix, u8f32 + fused
    python benchmarks/op_cost.py --full      # the whole matrix (every method, batch 64 and 256,
                                             # every dtype case, label maps: minutes, GBs)
    python benchmarks/op_cost.py [--device cpu|gpu|all] [--batch 64 256]
                                 [--dtypes u8f32 f16 f32 fused seg] [--methods ...]
                                 [--json FILE | --update-results]

Results go to out/op_cost.json (git-ignored); --update-results replaces the committed
benchmarks/results/op_cost.json.

For each device, batch size and dtype case (u8f32: uint8 in, float32 out; f16; f32), on the same
224 x 224 x 3 batch, it times (best of --iters runs after warm-up, for every implementation):
- ours: fn.msda.mix in a pipeline fed by a zero-copy external source; the op's own cost is
  its marginal cost: (time of a pipeline with 1 + R instances of the op - time with 1) / R,
  which removes the pipeline's fixed overhead (the 1-instance pipeline time is reported too);
- the torch ways (benchmarks/baselines.py): timm batch / per-element, torchvision v2, official
  HMix / GMix batch code, on NCHW tensors (uint8 input is converted with .float() first, as a
  training loop would);
- DALI built-ins composed: Mixup from permute_batch + random.beta + arithmetic; CutMix from
  multi_paste of the batch and its reversal;
- the memory-traffic floor: the bytes the op must read (the input once) and write (the output),
  divided by the bandwidth of a plain torch copy measured in the same run.
Every implementation is checked against dali_msda.reference before it is timed. Inputs rotate
over --cold-mib MiB of copies, so nobody is timed on data its previous call left in cache.
"""

import argparse
import gc
import glob
import json
import math
import os
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
# benchmarks/ for its helpers, the checkout for dali_msda (whose plugin is its own build, or the
# installed package's when the checkout has none)
sys.path[:0] = [HERE, os.path.dirname(HERE)]

import dali_msda  # noqa: E402
from dali_msda import reference as ref  # noqa: E402
from dali_msda._cli import HelpFormatter, int_at_least  # noqa: E402
from dali_msda.pipelines import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402
from nvidia.dali import fn, pipeline_def, types  # noqa: E402

import baselines  # noqa: E402
from common import (add_output_args, machine_info, output_path, progress,  # noqa: E402
                    time_it)

H = W = 224
C = 3
CASES = {"u8f32": ("uint8", "float32"), "f16": ("float16", "float16"),  # input -> output
         "f32": ("float32", "float32")}
DALI_T = {"uint8": types.UINT8, "float16": types.FLOAT16, "float32": types.FLOAT}
TORCH_T = {"uint8": torch.uint8, "float16": torch.float16, "float32": torch.float32}


def make_images(rng, batch, dtype):
    if dtype == "uint8":
        return rng.integers(0, 256, (batch, H, W, C), dtype=np.uint8)
    return (rng.random((batch, H, W, C), dtype=np.float32) * 255).astype(dtype)


class Rotating:
    """Cycles through `items` on every call: a working set larger than the CPU caches, so that
    no implementation is timed on data left in cache by its previous call (a training loop gets
    a fresh batch every step)."""

    def __init__(self, items):
        self.items, self.k = list(items), 0

    def __call__(self):
        item = self.items[self.k]
        self.k = (self.k + 1) % len(self.items)
        return item


def last_level_cache_mib():
    """The largest CPU cache Linux reports (sysfs), in MiB; 0 where it reports none."""
    sizes = []
    for path in glob.glob("/sys/devices/system/cpu/cpu0/cache/index*/size"):
        try:
            with open(path) as f:
                text = f.read().strip()
        except OSError:
            continue
        unit = {"K": 1 / 1024, "M": 1, "G": 1024}.get(text[-1:], 1 / 2 ** 20)
        try:
            sizes.append(float(text.rstrip("KMG")) * unit)
        except ValueError:
            continue
    return max(sizes, default=0)


def default_cold_mib(device):
    """Twice the largest cache the data pass through (the CPU's; on the GPU, where the inputs
    live in device memory, its L2), and at least 128 MiB: enough copies that no call is timed
    on data that a previous call left in cache."""
    if device == "gpu":
        cache = torch.cuda.get_device_properties(0).L2_cache_size / 2 ** 20
    else:
        cache = last_level_cache_mib()
    return max(128, math.ceil(2 * cache))


def cold_copies(nbytes, cold_bytes):
    return max(1, math.ceil(cold_bytes / max(nbytes, 1)))


def dali_pipe(image_sets, device, body, threads, inputs=1):
    """A pipeline whose `body(x_1, ..., x_inputs)` reads `inputs` zero-copy external sources,
    each rotating over its own copies of the images (so that no op reads data another op or
    the previous iteration left in cache)."""
    batch = image_sets[0].shape[0]
    sets = list(image_sets)
    while len(sets) < inputs * max(1, len(image_sets)):
        sets.append(image_sets[0].copy())
    if device == "gpu":
        sets = [torch.from_numpy(im).cuda() for im in sets]
    per_input = len(sets) // inputs
    feeds = [Rotating(sets[k * per_input:(k + 1) * per_input]) for k in range(inputs)]

    @pipeline_def(batch_size=batch, num_threads=threads, device_id=0 if device == "gpu" else None,
                  seed=7, prefetch_queue_depth=1)
    def pipe():
        xs = [fn.external_source(source=f, batch=True, layout="HWC", no_copy=True,
                                 device=device) for f in feeds]
        return body(*xs)

    p = pipe()
    p.build()
    return p


def free_pipelines():
    """Frees the pipelines no longer referenced: a DALI pipeline sits in reference cycles, so
    without a collection each one timed (with its outputs and input copies, ~0.5 GB at batch 64)
    stays until Python's collector happens to run (a quick run peaked at 7 GB, 2 GB with this)."""
    gc.collect()


def run_synced(pipe, device):
    """One iteration, finished: on the GPU the device is synchronised (DALI's stream included),
    as the torch timings are."""
    def run():
        out = pipe.run()
        if device == "gpu":
            torch.cuda.synchronize()
        return out
    return run


def interleaved_min(fns, iters, warmup=2):
    """The best time (s) of each of `fns` over `iters` rounds, one call of each per round (A B C
    A B C ...), so that a shared machine's drifts hit them alike."""
    for fn_ in fns:
        for _ in range(warmup):
            fn_()
    best = [math.inf] * len(fns)
    for _ in range(iters):
        for k, fn_ in enumerate(fns):
            t = time.perf_counter()
            fn_()
            best[k] = min(best[k], time.perf_counter() - t)
    return best


def marginal_ms(image_sets, device, outputs_of, threads, iters, extra=4, floor=None):
    """Per-instance cost of the ops that `outputs_of(x)` adds, in ms, and the time of the
    pipeline with one instance. Every instance reads its own input (its own copies, rotating),
    so the extra instances are timed on cold data like the first one and like the torch ways.
    `floor` (a copy_floor): the copy is timed in the same rounds, and its best time returned
    third (seconds; None without it)."""
    def body(*xs):
        return tuple(o for x in xs for o in outputs_of(x))
    fns = [run_synced(dali_pipe(image_sets, device, body, threads, 1), device),
           run_synced(dali_pipe(image_sets, device, body, threads, 1 + extra), device)]
    times = interleaved_min(fns + ([floor.run] if floor else []), iters)
    del fns
    free_pipelines()
    per = max(times[1] - times[0], 0.0) / extra * 1e3
    return per, times[0] * 1e3, times[2] if floor else None


def trace_gpu_us(image_sets, outputs_of, threads, ours, iterations=10):
    """GPU time per iteration, from a torch.profiler (CUPTI) trace of a pipeline with one
    instance of `outputs_of`: with `ours`, fn.msda.mix's kernel and uploads (profile_gpu.op_gpu_us);
    else the time of every kernel in it (crop_mirror_normalize's, for the CMN row)."""
    import profile_gpu

    run = run_synced(dali_pipe(image_sets, "gpu", outputs_of, threads, 1), "gpu")
    s = profile_gpu.profile(run, iterations, "gpu")
    del run
    free_pipelines()
    if ours:
        return profile_gpu.op_gpu_us(s)
    return sum(k["us_per_iter"] for k in s["kernels"] if not k["ours"])


def labels_for(batch):
    return fn.external_source(source=lambda: [np.array([i % 1000], np.int32)
                                              for i in range(batch)], batch=True)


def check_ours(pipe, images, method, out_dtype, **fused):
    """Bit for bit against the reference, for every dtype (the op's contract). FMix draws its
    noise in the op: its masks come out of the op (`output_mask`) and the reference blends
    with them (tests/test_fmix_op.py checks the masks themselves against reference.py)."""
    outs = [dali_msda.to_numpy(o) for o in pipe.run()]
    ref_kw = {}
    if method == "fmix":
        ref_kw["given_masks"] = outs.pop(2)
    mixed, targets, params = outs[:3]
    if fused:
        ref_kw.update(mean=fused["mean"], std=fused["std"], output_layout="CHW",
                      mirror=outs[3].ravel().astype(bool))
    exp, exp_t, _ = ref.mix(images, np.arange(len(images)) % 1000, method, lam=params[:, 1],
                            center=params[:, 2:4].astype(np.int64), apply=params[:, 0] == 1,
                            layout="HWC", num_classes=1000, dtype=out_dtype, **ref_kw)
    if not np.array_equal(mixed.view(np.uint8), exp.view(np.uint8)):
        raise AssertionError(f"msda.mix {method} differs from the reference")
    if not np.allclose(targets, exp_t, atol=1e-6):
        raise AssertionError(f"msda.mix {method} targets differ from the reference")


def check_torch(fn_, x_nchw_float, images, method, mode, rng):
    batch = images.shape[0]
    draws = ref.draw_params(rng, batch, H, W, alpha=1.0, mode=mode)
    lam, cy, cx = draws["lam"], draws["cy"], draws["cx"]
    x = x_nchw_float.clone()
    if mode == "batch":
        out, _ = fn_(x, float(lam[0]), int(cy[0]), int(cx[0]))
    else:
        out, _ = fn_(x, [float(v) for v in lam], [int(v) for v in cy], [int(v) for v in cx])
    exp, _, _ = ref.mix(images.astype(np.float32), np.arange(batch) % 1000, method, lam=lam,
                        center=np.stack([cy, cx], 1), layout="HWC", num_classes=1000,
                        box=baselines.box_of(fn_))
    got = out.float().permute(0, 2, 3, 1).cpu().numpy()
    scale = float(np.abs(exp).max()) or 1.0
    tol = 1e-2 if x.dtype == torch.float16 else 1e-5
    if not np.allclose(got, exp, rtol=0, atol=tol * scale):
        raise AssertionError(f"torch baseline {fn_.__name__} differs from the reference")
    return float(lam[0]), int(cy[0]), int(cx[0]), draws


def builtin_mixup(batch, out_t, device):
    def body(x):
        perm = list(range(batch - 1, -1, -1))
        lam = fn.random.beta(alpha=1.0, beta=1.0)  # a CPU operator
        if device == "gpu":
            lam = lam.gpu()
        xf = fn.cast(x, dtype=types.FLOAT)
        other = fn.permute_batch(xf, indices=perm)
        return fn.cast(lam * xf + (1.0 - lam) * other, dtype=out_t)
    return body


def builtin_cutmix(batch, draws, device):
    boxes = [ref.cut_box(math.sqrt(1 - float(draws["lam"][i])), int(draws["cy"][i]),
                         int(draws["cx"][i]), H, W) for i in range(batch)]
    anchors = [np.array([[0, 0], [b[0], b[2]]], np.int32) for b in boxes]
    shapes = [np.array([[H, W], [max(b[1] - b[0], 1), max(b[3] - b[2], 1)]], np.int32)
              for b in boxes]

    def body(x):
        perm = list(range(batch - 1, -1, -1))
        other = fn.permute_batch(x, indices=perm)
        a = fn.external_source(source=lambda: anchors, batch=True)
        s = fn.external_source(source=lambda: shapes, batch=True)
        return fn.multi_paste(x, other, in_anchors=a, out_anchors=a, shapes=s,
                              dtype=types.FLOAT)
    return body


FUSED_ARGS = dict(mean=list(IMAGENET_MEAN), std=list(IMAGENET_STD))  # the train pipeline's


def cold_sets(images, cold_bytes):
    """`images` and enough copies of it to span `cold_bytes`."""
    return [images] + [images.copy() for _ in range(cold_copies(images.nbytes, cold_bytes) - 1)]


class copy_floor:
    """The op's minimal traffic (read n_in bytes, write n_out): a plain torch copy moving the
    same bytes, on cold buffers (`run`, synchronised on the GPU); `ms(seconds)` turns its time
    into the floor in ms and `gbps(seconds)` into its bandwidth (bytes read + written)."""

    def __init__(self, n_in, n_out, tdev, sync, cold_bytes):
        self.half = (n_in + n_out) // 2
        pairs = [(torch.empty(self.half, dtype=torch.uint8, device=tdev),
                  torch.empty(self.half, dtype=torch.uint8, device=tdev))
                 for _ in range(cold_copies(2 * self.half, cold_bytes))]
        for a, b in pairs:
            a.fill_(1)
            b.fill_(2)
        self._next, self._sync, self._bytes = Rotating(pairs), sync, n_in + n_out

    def run(self):
        src, dst = self._next()
        dst.copy_(src)
        if self._sync:
            self._sync()

    def gbps(self, seconds):
        return 2 * self.half / seconds / 1e9

    def ms(self, seconds):
        return self._bytes / (2 * self.half / seconds) * 1e3


def region_maps(rng, batch, labels=21, regions=12):
    """Label maps of `regions` Voronoi cells around random points, each of a random label of
    `labels`: objects are regions in a segmentation map, so a row's labels come in runs."""
    yy, xx = np.mgrid[0:H, 0:W]
    maps = np.empty((batch, H, W), np.uint8)
    for b in range(batch):
        ys, xs = rng.integers(0, H, regions), rng.integers(0, W, regions)
        d = (yy[None] - ys[:, None, None]) ** 2 + (xx[None] - xs[:, None, None]) ** 2
        maps[b] = rng.integers(0, labels, regions).astype(np.uint8)[d.argmin(0)]
    return maps


def run_seg_case(device, batch, methods, iters, threads, rng, rows, step, total, cold_bytes):
    """The op's extra cost with a label map (spec 11): uint8 HWC images and uint8 H x W maps
    (region maps; ClassMix also on noise maps, a label drawn per pixel: its worst case), uint8
    out, the same op with and without the map, both pipelines timed in the same interleaved
    rounds. ClassMix needs its map: its rows compare it with CutMix without one (the extra is
    then the map's mixing plus ClassMix's host-side mask making)."""
    images = make_images(rng, batch, "uint8")
    image_sets = cold_sets(images, cold_bytes)
    map_kinds = {"regions": cold_sets(region_maps(rng, batch), cold_bytes // 3),
                 "noise": cold_sets(rng.integers(0, 21, (batch, H, W), dtype=np.uint8),
                                    cold_bytes // 3)}
    if device == "gpu":
        image_sets = [torch.from_numpy(im).cuda() for im in image_sets]
        map_kinds = {k: [torch.from_numpy(m).cuda() for m in v] for k, v in map_kinds.items()}

    def pipe_of(method, map_sets):
        feed_x, feed_m = Rotating(image_sets), Rotating(map_sets or [])

        @pipeline_def(batch_size=batch, num_threads=threads,
                      device_id=0 if device == "gpu" else None, seed=7, prefetch_queue_depth=1)
        def pipe():
            x = fn.external_source(source=feed_x, batch=True, layout="HWC", no_copy=True,
                                   device=device)
            inputs = [x, labels_for(batch)]
            if map_sets:
                inputs.append(fn.external_source(source=feed_m, batch=True, layout="HW",
                                                 no_copy=True, device=device))
            return tuple(fn.msda.mix(*inputs, method=method, mode="elem", num_classes=1000))

        p = pipe()
        p.build()
        return run_synced(p, device)

    for method, maps in seg_runs(methods):
        step[0] += 1
        progress(step[0], total, f"{device} B={batch} seg {method} ({maps} maps)")
        base = "cutmix" if method == "classmix" else method
        without, with_map = interleaved_min([pipe_of(base, None),
                                             pipe_of(method, map_kinds[maps])], iters)
        free_pipelines()
        rows.append({"device": device, "batch": batch, "dtype": "seg", "method": method,
                     "maps": maps, "mode": "elem", "without_map_method": base,
                     "without_map_ms": without * 1e3, "with_map_ms": with_map * 1e3,
                     "map_extra_ms": (with_map - without) * 1e3,
                     "map_extra_ratio": with_map / without})


def summarise_seg(rows):
    lines = ["| device | batch | method (maps) | without map ms (method) | with map ms | "
             "extra ms | with / without |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['device']} | {r['batch']} | {r['method']} ({r['maps']}) | "
                     f"{r['without_map_ms']:.2f} ({r['without_map_method']}) | "
                     f"{r['with_map_ms']:.2f} | {r['map_extra_ms']:.2f} | "
                     f"{r['map_extra_ratio']:.2f} |")
    return "\n".join(lines)


def seg_runs(methods):
    """The label-map case's rows: each method on region maps (ClassMix among them), and ClassMix
    on noise maps."""
    return ([(m, "regions") for m in methods if m != "classmix"]
            + [("classmix", "regions"), ("classmix", "noise")])


def run_case(device, batch, case, methods, iters, threads, rng, rows, step, total, cold_bytes):
    if case == "seg":
        return run_seg_case(device, batch, methods, iters, threads, rng, rows, step, total,
                            cold_bytes)
    if case == "fused":
        return run_fused_case(device, batch, methods, iters, threads, rng, rows, step, total,
                              cold_bytes)
    in_dt, out_dt = CASES[case]
    images = make_images(rng, batch, in_dt)
    tdev = "cuda" if device == "gpu" else "cpu"
    sync = torch.cuda.synchronize if device == "gpu" else None
    image_sets = cold_sets(images, cold_bytes)
    x_sets = [torch.from_numpy(im).to(tdev).permute(0, 3, 1, 2).contiguous() for im in image_sets]
    x_nchw = x_sets[0]
    x_check = x_nchw.float() if in_dt == "uint8" else x_nchw  # never modified
    floor = copy_floor(images.nbytes, images.size * np.dtype(out_dt).itemsize, tdev, sync,
                       cold_bytes)

    for mode in ("batch", "elem"):
        for method in methods:
            step[0] += 1
            progress(step[0], total, f"{device} B={batch} {case} {method} {mode}")
            row = {"device": device, "batch": batch, "dtype": case, "method": method,
                   "mode": mode}

            def ours_body(x, with_params=False):
                outs = fn.msda.mix(x, labels_for(batch), method=method, mode=mode,
                                   num_classes=1000, dtype=DALI_T[out_dt],
                                   output_params=with_params,
                                   output_mask=with_params and method == "fmix")
                return tuple(outs)

            check_ours(dali_pipe(image_sets, device, lambda x: ours_body(x, True), threads),
                       images, method, out_dt)
            row["ours_ms"], row["ours_pipeline_ms"], copy_s = marginal_ms(
                image_sets, device, ours_body, threads, iters, floor=floor)
            row["floor_ms"], row["copy_GBps"] = floor.ms(copy_s), floor.gbps(copy_s)

            # torch ways
            table = baselines.BATCH if mode == "batch" else baselines.ELEM
            for name, fn_ in table.get(method, []):
                lam, cy, cx, draws = check_torch(fn_, x_check, images, method, mode, rng)
                if mode == "batch":
                    args = (lam, cy, cx)
                else:
                    args = ([float(v) for v in draws["lam"]], [int(v) for v in draws["cy"]],
                            [int(v) for v in draws["cx"]])
                if in_dt == "uint8":
                    nxt = Rotating(x_sets)
                    call = lambda: fn_(nxt().float(), *args)  # noqa: E731
                else:  # in-place ways (timm) mix working copies again and again
                    nxt = Rotating([x.clone() for x in x_sets])
                    call = lambda: fn_(nxt(), *args)  # noqa: E731
                row[f"torch: {name}_ms"] = time_it(call, iters, sync=sync) * 1e3

            # DALI built-ins composed
            builtin = None
            if method == "mixup":
                builtin = builtin_mixup(batch, DALI_T[out_dt], device)
            elif method == "cutmix" and out_dt == "float32":
                builtin = builtin_cutmix(batch, ref.draw_params(rng, batch, H, W, mode=mode),
                                         device)
            if builtin is not None:
                row["dali built-ins_ms"], _, _ = marginal_ms(
                    image_sets, device, lambda x: (builtin(x),), threads, iters)
            rows.append(row)


def run_fused_case(device, batch, methods, iters, threads, rng, rows, step, total, cold_bytes):
    """uint8 HWC in, float16 CHW out, flipped and normalised: what the train pipeline needs
    after the resize. Ours fused (one op) against crop_mirror_normalize alone (which users run
    anyway) and against crop_mirror_normalize followed by the mix (the unfused pipeline)."""
    images = make_images(rng, batch, "uint8")
    tdev = "cuda" if device == "gpu" else "cpu"
    sync = torch.cuda.synchronize if device == "gpu" else None
    image_sets = cold_sets(images, cold_bytes)
    floor = copy_floor(images.nbytes, images.size * 2, tdev, sync, cold_bytes)

    def coin():
        return fn.random.coin_flip(probability=0.5, dtype=types.INT32)

    def cmn(x, mirror):
        return fn.crop_mirror_normalize(x, dtype=types.FLOAT16, output_layout="CHW",
                                        mirror=mirror, **FUSED_ARGS)

    cmn_ms, _, _ = marginal_ms(image_sets, device, lambda x: (cmn(x, coin()),), threads, iters)
    if device == "gpu":
        cmn_gpu_us = trace_gpu_us(image_sets, lambda x: (cmn(x, coin()),), threads, ours=False)
    for mode in ("batch", "elem"):
        for method in methods:
            step[0] += 1
            progress(step[0], total, f"{device} B={batch} fused {method} {mode}")
            row = {"device": device, "batch": batch, "dtype": "fused", "method": method,
                   "mode": mode, "cmn_ms": cmn_ms}

            def fused_body(x, with_params=False):
                mirror = coin()
                outs = fn.msda.mix(x, labels_for(batch), method=method, mode=mode,
                                   num_classes=1000, dtype=types.FLOAT16, output_layout="CHW",
                                   mirror=mirror, output_params=with_params,
                                   output_mask=with_params and method == "fmix", **FUSED_ARGS)
                return tuple(outs) + ((mirror,) if with_params else ())

            def separate_body(x):
                outs = fn.msda.mix(cmn(x, coin()), labels_for(batch), method=method, mode=mode,
                                   num_classes=1000)
                return tuple(outs)

            check_ours(dali_pipe(image_sets, device, lambda x: fused_body(x, True), threads),
                       images, method, "float16", **FUSED_ARGS)
            row["ours_ms"], row["ours_pipeline_ms"], copy_s = marginal_ms(
                image_sets, device, fused_body, threads, iters, floor=floor)
            row["floor_ms"], row["copy_GBps"] = floor.ms(copy_s), floor.gbps(copy_s)
            row["cmn + mix_ms"], _, _ = marginal_ms(image_sets, device, separate_body, threads,
                                                    iters)
            if device == "gpu":  # the op's own GPU time and CMN's, from a CUPTI trace
                row["ours_gpu_us"] = trace_gpu_us(image_sets, fused_body, threads, ours=True)
                row["cmn_gpu_us"] = cmn_gpu_us
            rows.append(row)


def summarise_fused(rows):
    traced = any("ours_gpu_us" in r for r in rows)
    lines = ["| device | batch | method | mode | fused ms | CMN alone ms | fused / CMN | "
             "CMN + mix ms | floor ms | fused / floor |" +
             (" fused GPU us (trace) | CMN GPU us (trace) |" if traced else ""),
             "|---" * (12 if traced else 10) + "|"]
    for r in rows:
        gpu = (f" {r['ours_gpu_us']:.1f} | {r['cmn_gpu_us']:.1f} |" if "ours_gpu_us" in r
               else " - | - |" if traced else "")
        lines.append(f"| {r['device']} | {r['batch']} | {r['method']} | {r['mode']} | "
                     f"{r['ours_ms']:.2f} | {r['cmn_ms']:.2f} | {r['ours_ms'] / r['cmn_ms']:.2f} | "
                     f"{r['cmn + mix_ms']:.2f} | {r['floor_ms']:.2f} | "
                     f"{r['ours_ms'] / r['floor_ms']:.2f} |{gpu}")
    return "\n".join(lines)


def summarise(rows):
    fused = [r for r in rows if r["dtype"] == "fused"]
    seg = [r for r in rows if r["dtype"] == "seg"]
    rows = [r for r in rows if r["dtype"] not in ("fused", "seg")]
    lines = []
    if rows:
        lines += ["Mixing a batch: fn.msda.mix against the fastest torch way and DALI built-ins "
                  "(ms per batch, lower is better)",
                  "  ours/floor: the op's time over the memory floor (the bytes it must move at "
                  "this machine's copy bandwidth; 1.0 = as fast as a copy); torch/ours: how many "
                  "times the fastest torch way takes ours.", "",
                  "| device | batch | dtype | method | mode | ours ms | floor ms | ours/floor | "
                  "fastest torch ms (which) | torch/ours | DALI built-ins ms |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        torch_cols = {k[7:-3]: v for k, v in r.items() if k.startswith("torch: ")}
        if torch_cols:
            best = min(torch_cols, key=torch_cols.get)
            t_best = f"{torch_cols[best]:.2f} ({best})"
            speed = f"{torch_cols[best] / r['ours_ms']:.1f}x" if r["ours_ms"] > 0 else "-"
        else:
            t_best, speed = "-", "-"
        dali_b = f"{r['dali built-ins_ms']:.2f}" if "dali built-ins_ms" in r else "-"
        lines.append(f"| {r['device']} | {r['batch']} | {r['dtype']} | {r['method']} | "
                     f"{r['mode']} | {r['ours_ms']:.2f} | {r['floor_ms']:.2f} | "
                     f"{r['ours_ms'] / r['floor_ms']:.2f} | {t_best} | {speed} | {dali_b} |")
    if fused:
        lines += ["", "Fused: the flip, normalisation and CHW layout of crop_mirror_normalize "
                  "(CMN) done inside the mix, against CMN alone and CMN then the mix (ms per "
                  "batch)", "", summarise_fused(fused)]
    if seg:
        lines += ["", "Label maps: the op with and without a uint8 map to mix (ms per batch)",
                  "", summarise_seg(seg)]
    return "\n".join(lines).lstrip("\n")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=HelpFormatter)
    ap.add_argument("--full", action="store_true",
                    help="the whole matrix (defaults: batch 64 256, every dtype case and "
                         "method, 10 iterations) instead of the quick run (batch 64, u8f32 and "
                         "fused, Mixup and CutMix, 5 iterations)")
    ap.add_argument("--device", choices=["cpu", "gpu", "all"], default="all",
                    help="all: the CPU, and the GPU when DALI sees one")
    ap.add_argument("--batch", type=int_at_least(1), nargs="+", default=None,
                    help="batch sizes of 224 x 224 x 3 images (default: 64; --full 64 256)")
    ap.add_argument("--dtypes", nargs="+", default=None,
                    choices=list(CASES) + ["fused", "seg"],
                    help="u8f32: uint8 in, float32 out; f16, f32: float16 / float32 in and out; "
                         "fused: uint8 HWC in, float16 CHW out, flipped and normalised, against "
                         "crop_mirror_normalize; seg: the op with and without a uint8 label map "
                         "(and ClassMix)")
    ap.add_argument("--methods", nargs="+", default=None,
                    help="methods to time (default: mixup cutmix; --full every method)")
    ap.add_argument("--iters", type=int_at_least(1), default=None,
                    help="timed runs of each, the best kept (default: 5; --full 10)")
    ap.add_argument("--threads", type=int_at_least(1), default=os.cpu_count(),
                    help="DALI CPU threads and torch threads")
    ap.add_argument("--cold-mib", type=int_at_least(0), default=None,
                    help="rotate inputs (and copy buffers) over at least this many MiB, so that "
                         "nothing is timed on cached data (default: twice the largest cache: "
                         "the CPU's, or the GPU's L2; at least 128); 0: off")
    add_output_args(ap, "op_cost")
    args = ap.parse_args(argv)
    full = dict(batch=[64, 256], dtypes=list(CASES) + ["fused", "seg"],
                methods=list(dali_msda.METHODS), iters=10)
    quick = dict(batch=[64], dtypes=["u8f32", "fused"], methods=["mixup", "cutmix"], iters=5)
    for name, value in (full if args.full else quick).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.json = output_path(args, "op_cost")
    torch.set_num_threads(args.threads)
    has_gpu = torch.cuda.is_available()
    devices = ["cpu", "gpu"] if args.device == "all" else [args.device]
    if "gpu" in devices and not has_gpu:
        if args.device == "gpu":
            sys.exit("--device gpu: no CUDA device visible to torch")
        devices = ["cpu"]
    cold_mib = {d: default_cold_mib(d) if args.cold_mib is None else args.cold_mib
                for d in devices}
    rng = np.random.default_rng(0)
    rows = []
    # steps: a method in each mode; seg: its rows
    steps = sum(len(seg_runs(args.methods)) if case == "seg" else 2 * len(args.methods)
                for case in args.dtypes)
    total = len(devices) * len(args.batch) * steps
    step = [0]
    for device in devices:
        for batch in args.batch:
            for case in args.dtypes:
                run_case(device, batch, case, args.methods, args.iters, args.threads, rng,
                         rows, step, total, cold_mib[device] << 20)
    sys.stderr.write("\n")  # the progress line ends before the tables
    result = {"machine": {d: machine_info(d) for d in devices}, "threads": args.threads,
              "cold_mib": cold_mib,
              "image": [H, W, C], "rows": rows}
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(result, f, indent=2)
    print(f"\nop_cost: {', '.join(devices)}, {args.threads} threads, images {H} x {W} x {C}"
          f"{'' if args.full else ' (quick run; --full for the whole matrix)'}\n")
    print(summarise(rows))
    print(f"wrote {args.json}")
    return result


if __name__ == "__main__":
    main()
