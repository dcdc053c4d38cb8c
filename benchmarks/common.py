"""Shared benchmark helpers: timing, machine description, progress output."""

import argparse
import os
import platform
import sys
import time


def machine_info(device):
    import nvidia.dali as dali

    info = {"host": platform.node(), "python": platform.python_version(),
            "cpu": _cpu_model(), "cores": os.cpu_count(), "dali": dali.__version__,
            "device": device}
    try:
        import torch
        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        if device == "gpu" and torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        info["torch"] = None
    return info


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def output_file(text):
    """An argparse `type` for --json: a file to write, not a folder (refused when the command
    line is read, not after the run it would record)."""
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text!r} is a folder; give the file to write")
    return text


def add_output_args(ap, name):
    """--json / --update-results: results go to out/NAME.json (git-ignored) unless asked to
    replace the committed ones in benchmarks/results/."""
    ap.add_argument("--json", default=None, type=output_file,
                    help=f"write the results here (default: out/{name}.json)")
    ap.add_argument("--update-results", action="store_true",
                    help=f"write benchmarks/results/{name}.json, the committed results, "
                         "instead of out/")


def output_path(args, name):
    if args.json:
        return args.json
    return os.path.join(RESULTS_DIR if args.update_results else "out", f"{name}.json")


def time_it(fn, iters, warmup=2, sync=None, stat=min):
    """Seconds per call of fn() over `iters` calls after `warmup` calls: the minimum by default
    (interference from other work on a shared machine only ever adds time, so the best of N is
    the most repeatable figure, and it is taken alike for every implementation)."""
    for _ in range(warmup):
        fn()
    if sync:
        sync()
    samples = []
    for _ in range(iters):
        t = time.perf_counter()
        fn()
        if sync:
            sync()
        samples.append(time.perf_counter() - t)
    return stat(samples)


def progress(done, total, label, stream=None):
    stream = stream or sys.stderr  # looked up at each call (it may be replaced, e.g. by pytest)
    width = 30
    k = int(width * done / max(total, 1))
    stream.write(f"\r[{'#' * k}{'.' * (width - k)}] {done}/{total} {label[:60]:60s}")
    if done == total:
        stream.write("\n")
    stream.flush()
