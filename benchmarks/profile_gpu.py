"""Where a DALI pipeline's time goes, iteration by iteration: a torch.profiler (CUPTI) trace of
the ImageNet train pipeline, summarised.

    python benchmarks/profile_gpu.py [--device gpu|cpu] [--batch-size 64] [--iterations 20]
                                     [--imagenet-sized] [--json FILE | --update-results]

Variants (batch mode unless said): no mixing (crop_mirror_normalize); CutMix as CMN + mix; CutMix,
GMix fused (the pipeline's default) and FMix fused per sample (its masks made on the host). Each
is built, warmed up, then iterated through MixIterator (as a training loop reads it) under
torch.profiler with CPU and CUDA activities. Per iteration the summary gives: each kernel's time
(ours, `msda`, and DALI's), host-to-device bytes and time, the runtime calls that allocate or
synchronise, the GPU's busy time and its idle gaps inside the profiled window, and the op's own
host time inside RunImpl, step by step (draws, FMix masks, planning, upload, launch), which the
op writes when DALI_MSDA_PROFILE names a file (set here). Without a GPU (`--device cpu`) the same
pipelines run on the CPU: the trace then has no device activity and the op's steps are the CPU
backend's (draws, FMix masks, the mix on the thread pool, targets).
"""

import argparse
import collections
import json
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]

# the runtime calls counted: allocations and synchronisations (a pipeline in steady state should
# make none of the first and only the iterator's of the second)
ALLOC_CALLS = ("cudaMalloc", "cudaMallocAsync", "cudaMallocHost", "cudaHostAlloc", "cudaFree",
               "cudaFreeAsync", "cudaFreeHost", "cuMemAlloc", "cuMemFree", "cuMemCreate")
SYNC_CALLS = ("cudaDeviceSynchronize", "cudaStreamSynchronize", "cudaEventSynchronize",
              "cuStreamSynchronize", "cuEventSynchronize", "cuCtxSynchronize")


def union_length(intervals):
    """Total length covered by (start, end) intervals."""
    total, end = 0.0, None
    for a, b in sorted(intervals):
        if end is None or a > end:
            total += b - a
            end = b
        elif b > end:
            total += b - end
            end = b
    return total


def memcpy_kind(name):
    n = name.lower()
    return "h2d" if "htod" in n else "d2h" if "dtoh" in n else "d2d" if "dtod" in n else "other"


def summarize_trace(events, iterations, window=None):
    """Summary of a chrome trace's events (torch.profiler's export: dicts with cat, name, ts,
    dur in microseconds, args), per iteration. `window`: (start, end) of the profiled loop in the
    trace's clock; device activity outside it is left out."""
    def inside(e):
        return window is None or (e["ts"] >= window[0] and e["ts"] + e.get("dur", 0) <= window[1])

    kernels = collections.defaultdict(lambda: [0, 0.0])
    copies = collections.defaultdict(lambda: [0, 0.0, 0])  # kind -> count, us, bytes
    calls = collections.Counter()
    busy = []
    for e in events:
        cat, name, dur = e.get("cat", ""), e.get("name", ""), float(e.get("dur", 0) or 0)
        if e.get("ph") != "X" or not inside(e):
            continue
        if cat == "kernel":
            kernels[name][0] += 1
            kernels[name][1] += dur
            busy.append((e["ts"], e["ts"] + dur))
        elif cat in ("gpu_memcpy", "gpu_memset"):
            kind = memcpy_kind(name) if cat == "gpu_memcpy" else "memset"
            c = copies[kind]
            c[0] += 1
            c[1] += dur
            c[2] += int((e.get("args") or {}).get("bytes", 0) or 0)
            busy.append((e["ts"], e["ts"] + dur))
        elif cat in ("cuda_runtime", "cuda_driver"):
            base = name.split("_v")[0]
            if base.startswith(ALLOC_CALLS) or base.startswith(SYNC_CALLS):
                calls[base] += 1
    it = max(1, iterations)
    ours = sum(v[1] for k, v in kernels.items() if "msda" in k.lower())
    span = (window[1] - window[0]) if window else (
        max(b for _, b in busy) - min(a for a, _ in busy) if busy else 0.0)
    gpu_busy = union_length(busy)
    return {
        "iterations": iterations,
        "window_us_per_iter": span / it,
        "gpu_busy_us_per_iter": gpu_busy / it,
        "gpu_idle_us_per_iter": max(span - gpu_busy, 0.0) / it,
        "msda_kernel_us_per_iter": ours / it,
        "kernels": sorted(({"name": k, "calls_per_iter": v[0] / it, "us_per_iter": v[1] / it,
                            "ours": "msda" in k.lower()} for k, v in kernels.items()),
                          key=lambda r: -r["us_per_iter"]),
        "copies": {k: {"calls_per_iter": v[0] / it, "us_per_iter": v[1] / it,
                       "bytes_per_iter": v[2] / it} for k, v in copies.items()},
        "alloc_calls_per_iter": {k: v / it for k, v in calls.items() if k.startswith(ALLOC_CALLS)},
        "sync_calls_per_iter": {k: v / it for k, v in calls.items() if k.startswith(SYNC_CALLS)},
    }


def parse_host_times(path):
    """The op's RunImpl lines (checks.h HostTimer): mean microseconds per call and step."""
    sums, n, uploads = collections.Counter(), 0, 0.0
    if not os.path.exists(path):
        return None
    with open(path) as f:
        for line in f:
            if not line.startswith("msda.Mix "):
                continue
            n += 1
            for tok in line.split()[2:]:
                key, _, val = tok.partition("=")
                if key == "upload_bytes":
                    uploads += float(val)
                elif key != "samples":
                    sums[key] += float(val)
    if not n:
        return None
    return {"calls": n, "upload_bytes_per_call": uploads / n,
            **{f"{k}_us": v / n for k, v in sums.items()}}


def profile(step, iterations, device, host_log=None):
    """Calls `step()` (one iteration: next(iterator), pipe.run(), ...) `iterations` times under
    torch.profiler after 3 unprofiled calls; returns the summary (and the op's host times when
    `host_log` is the DALI_MSDA_PROFILE file)."""
    import torch
    from torch.profiler import ProfilerActivity, record_function

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "gpu" else [])
    for _ in range(3):  # warm-up outside the trace
        step()
    if host_log and os.path.exists(host_log):
        os.unlink(host_log)
    with torch.profiler.profile(activities=activities) as prof:
        with record_function("dali_msda.profile_window"):
            for _ in range(iterations):
                step()
            if device == "gpu":
                torch.cuda.synchronize()
    with tempfile.TemporaryDirectory() as tmp:
        trace = os.path.join(tmp, "trace.json")
        prof.export_chrome_trace(trace)
        with open(trace) as f:
            events = json.load(f)["traceEvents"]
    marks = [e for e in events if e.get("name") == "dali_msda.profile_window" and "dur" in e]
    window = (marks[0]["ts"], marks[0]["ts"] + marks[0]["dur"]) if marks else None
    summary = summarize_trace(events, iterations, window)
    summary["op_host"] = parse_host_times(host_log) if host_log else None
    return summary


def op_gpu_us(summary):
    """The op's own GPU time per iteration in a summary: its kernel and its uploads (all the
    host-to-device copies of the window: in op_cost's pipelines the op makes the only ones)."""
    return summary["msda_kernel_us_per_iter"] + summary["copies"].get("h2d", {}).get(
        "us_per_iter", 0.0)


def variants():
    from dali_msda.pipelines import MixConfig

    return {"none (CMN only)": (None, True),
            "cutmix CMN + mix": (MixConfig(method="cutmix", mode="batch"), False),
            "cutmix fused": (MixConfig(method="cutmix", mode="batch"), True),
            "gmix fused": (MixConfig(method="gmix", mode="batch"), True),
            "fmix fused, per sample": (MixConfig(method="fmix", mode="elem"), True)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", choices=["auto", "cpu", "gpu"], default="auto")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--iterations", type=int, default=20)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--imagenet-sized", action="store_true")
    ap.add_argument("--data", default=None)
    from common import add_output_args, machine_info, output_path

    add_output_args(ap, "profile_gpu")
    args = ap.parse_args(argv)
    args.json = output_path(args, "profile_gpu")
    from dali_msda.pipelines import embedded_dataset, imagenet_train
    from dali_msda.pipelines.data import IMAGENET_SIDES
    from dali_msda.pipelines.common import resolve_device
    from dali_msda.pytorch import MixIterator

    device = resolve_device(args.device)
    data = args.data or os.path.join(
        embedded_dataset(sides=IMAGENET_SIDES) if args.imagenet_sized else embedded_dataset(),
        "train")
    host_log = os.path.join(tempfile.mkdtemp(), "msda_host.log")
    os.environ["DALI_MSDA_PROFILE"] = host_log  # read by the op at every RunImpl
    rows = []
    for name, (mix, fused) in variants().items():
        pipe = imagenet_train(data, batch_size=args.batch_size, num_threads=args.threads,
                              device=device, dtype="float16", mix=mix, seed=1, fused=fused)
        it = iter(MixIterator(pipe))
        summary = profile(lambda: next(it), args.iterations, device,
                          host_log if mix is not None else None)
        rows.append({"variant": name, **summary})
        host = summary["op_host"] or {}
        print(f"{name}: window {summary['window_us_per_iter']:.0f} us/iter, GPU busy "
              f"{summary['gpu_busy_us_per_iter']:.0f}, idle {summary['gpu_idle_us_per_iter']:.0f}; "
              f"msda kernel {summary['msda_kernel_us_per_iter']:.1f} us; "
              f"h2d {summary['copies'].get('h2d', {}).get('bytes_per_iter', 0) / 1e3:.1f} KB in "
              f"{summary['copies'].get('h2d', {}).get('us_per_iter', 0):.1f} us; "
              f"allocs {sum(summary['alloc_calls_per_iter'].values()):.1f}, syncs "
              f"{sum(summary['sync_calls_per_iter'].values()):.1f} per iter; op host "
              + (", ".join(f"{k} {v:.1f}" for k, v in host.items() if k.endswith("_us"))
                 or "-"))
        for k in summary["kernels"][:6]:
            print(f"    {k['us_per_iter']:9.1f} us  {k['calls_per_iter']:5.1f}x  {k['name'][:100]}")
    result = {"machine": machine_info(device), "data": data, "batch_size": args.batch_size,
              "iterations": args.iterations, "rows": rows}
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(result, f, indent=1)
    print(f"wrote {args.json}")
    return result


if __name__ == "__main__":
    main()
