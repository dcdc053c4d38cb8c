"""Shared helpers: run fn.msda.mix on given NumPy batches on the CPU or GPU backend.

Tests take the device as a parameter (`device` fixture): GPU cases skip where DALI sees no GPU.
"""

import glob
import os
import random

import numpy as np
import pytest

from dali_msda import has_gpu, to_numpy  # noqa: F401  (loads the plugin)
from dali_msda._sources import sanitize_flags
from nvidia.dali import fn, pipeline_def, types

HAS_GPU = has_gpu()

# tests/test_fuzz.py: one seed per run, shown in pytest's header (set it to repeat a run)
FUZZ_SEED = int(os.environ.get("DALI_MSDA_FUZZ_SEED") or random.SystemRandom().randrange(2**32))


def free_port():
    """A TCP port free on this machine now (for torchrun's --master_port)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pytest_report_header(config):
    return [f"fuzz seed: DALI_MSDA_FUZZ_SEED={FUZZ_SEED}"]


def pytest_terminal_summary(terminalreporter):
    # also at the end, where `pytest -q` (tests/run.sh) shows it: the header is hidden there
    terminalreporter.write_line(f"fuzz seed: DALI_MSDA_FUZZ_SEED={FUZZ_SEED} (set it to repeat "
                                "this run's property-based tests)")


DEVICES = ["cpu", pytest.param("gpu", marks=pytest.mark.skipif(not HAS_GPU, reason="no GPU"))]

NP_TO_DALI = {np.float32: types.FLOAT, np.float16: types.FLOAT16, np.uint8: types.UINT8}


@pytest.fixture(params=DEVICES)
def device(request):
    return request.param


def constant_batch(values, dtype):
    """An external_source callback returning the same batch, one array per sample, each time."""
    batch = [np.array(v, dtype=dtype) for v in values]
    return lambda: batch


def build_mix_pipeline(images, labels, device="cpu", layout="HWC", lam=None, center=None,
                       method_id=None, mirror=None, fmix_noise=None, seed=1234, output_mask=True,
                       output_params=True, checkpoint=None, enable_checkpointing=False,
                       seg=None, seg_layout=None, boxes=None, box_labels=None, **kwargs):
    """A pipeline feeding the same `images` / `labels` batches every iteration into the op.

    `lam` (B floats), `center` (B x 2), `method_id` and `mirror` (B ints) and `fmix_noise`
    (B x H x (W // 2 + 1) x 2) become per-sample argument inputs when given, as do `alpha`,
    `prob` and `hmix_ratio` given as arrays (B floats); `seg` (B label
    maps) the op's third input, on the images' device; `boxes` / `box_labels` (B arrays of
    N_i x 4 float32 / N_i int32) per-sample argument inputs; other keyword arguments go to
    fn.msda.mix unchanged (constants).
    """
    per_sample = {name: [np.ascontiguousarray(v) for v in values]
                  for name, values in (("boxes", boxes), ("box_labels", box_labels))
                  if values is not None}
    seg = None if seg is None else list(seg)
    images = list(images)
    labels = list(labels)
    batch_size = len(images)

    @pipeline_def(batch_size=batch_size, num_threads=2, device_id=0 if device == "gpu" else None,
                  seed=seed, enable_checkpointing=enable_checkpointing, checkpoint=checkpoint,
                  prefetch_queue_depth=1)
    def pipe():
        x = fn.external_source(source=lambda: images, batch=True, layout=layout or None)
        y = fn.external_source(source=lambda: labels, batch=True)
        if device == "gpu":
            x = x.gpu()
        args = dict(kwargs)
        scalars = [(name, args.pop(name, None), np.float32) for name in
                   ("alpha", "prob", "hmix_ratio")]  # constants, or arrays: per sample
        for name, values, dtype in (("lam", lam, np.float32), ("center", center, np.float32),
                                    ("method_id", method_id, np.int32),
                                    ("mirror", mirror, np.int32),
                                    ("fmix_noise", fmix_noise, np.float32), *scalars):
            if values is not None and np.ndim(values) == 0:  # a constant, not an input
                args[name] = values
            elif values is not None:  # (a source with a parameter gets the iteration index)
                args[name] = fn.external_source(source=constant_batch(values, dtype), batch=True)
        for name, values in per_sample.items():  # as given: dtype and shape unchanged
            args[name] = fn.external_source(source=(lambda v: lambda: v)(values), batch=True)
        inputs = [x, y]
        if seg is not None:
            m = fn.external_source(source=lambda: seg, batch=True, layout=seg_layout)
            inputs.append(m.gpu() if device == "gpu" else m)
        outs = fn.msda.mix(*inputs, output_mask=output_mask, output_params=output_params,
                           **args)
        return tuple(outs)

    p = pipe()
    p.build()
    return p


def run_mix(images, labels, iterations=1, **kwargs):
    """Outputs of the op as NumPy arrays: a tuple per iteration (one tuple if iterations == 1)."""
    p = build_mix_pipeline(images, labels, **kwargs)
    results = [tuple(to_numpy(o) for o in p.run()) for _ in range(iterations)]
    return results[0] if iterations == 1 else results


def random_images(rng, batch, shape, dtype):
    if np.dtype(dtype) == np.uint8:
        return rng.integers(0, 256, (batch, *shape), dtype=np.uint8)
    return (rng.standard_normal((batch, *shape)) * 50 + 100).astype(dtype)


def class_labels(batch, num_classes=None):
    """Distinct class ids where possible, so that label weights can be read off the targets."""
    num_classes = num_classes or batch
    return np.array([[i % num_classes] for i in range(batch)], dtype=np.int32)


def special_values(rng, shape, dtype):
    """Finite values with NaNs (payloads, both signs), infinities and -0.0 mixed in."""
    x = (rng.standard_normal(shape) * 100).astype(dtype)
    flat = x.reshape(-1).view(f"u{x.itemsize}")
    idx = rng.choice(flat.size, flat.size // 5, replace=False)
    if x.dtype == np.float16:
        specials = np.array([0x7e01, 0xfe55, 0x7c00, 0xfc00, 0x8000, 0x7d00], np.uint16)
    else:
        specials = np.array([0x7fc00123, 0xffc0abcd, 0x7f800000, 0xff800000, 0x80000000,
                             0x7f812345], np.uint32)
    flat[idx] = specials[rng.integers(0, len(specials), idx.size)]
    return x


# ---- the embedded ImageNet-like dataset (dali_msda.pipelines.embedded_dataset), for the pipeline
# tests: N_CLASSES classes, N_TRAIN training and N_VAL validation images

N_CLASSES, N_TRAIN, N_VAL = 14, 14 * 30, 14 * 8


@pytest.fixture(scope="session")
def data_root(tmp_path_factory):
    from dali_msda.pipelines import embedded_dataset

    return embedded_dataset(str(tmp_path_factory.mktemp("embedded") / "data"))


def arrays(outputs):
    """A pipeline's outputs as NumPy batches (one array of stacked samples per output)."""
    return [np.stack([np.array(o[i]) for i in range(len(o))]) for o in outputs]


# ---- C++ test libraries: the plugin's host/device code compiled for the host, loaded by ctypes

def cuda_includes():
    """Include flags for the CUDA headers DALI's float16.h pulls in (cuda_fp16.h, crt/, and
    CCCL's nv/target): the nvidia-cuda-runtime, -crt and -cccl wheels, else a toolkit."""
    candidates = []
    try:
        import nvidia.cu13 as cu13
        candidates += [os.path.join(p, "include") for p in cu13.__path__]
    except ImportError:
        pass
    for env in ("CUDA_HOME", "CUDA_PATH"):
        if os.environ.get(env):
            candidates.append(os.path.join(os.environ[env], "include"))
    candidates += glob.glob("/usr/local/cuda*/include")
    for c in candidates:
        if all(os.path.exists(os.path.join(c, f)) for f in ("cuda_fp16.h", "crt/host_config.h")):
            flags = ["-isystem", c]
            if os.path.isdir(os.path.join(c, "cccl")):  # CUDA 13 keeps CCCL there
                flags += ["-isystem", os.path.join(c, "cccl")]
            return flags
    raise RuntimeError("no CUDA headers found: pip install nvidia-cuda-runtime nvidia-cuda-crt "
                       "nvidia-cuda-cccl")


def build_test_library(folder, name, sources, link_dali_core=False):
    """Compiles `sources` (with dali_msda/csrc on the include path, DALI's and the CUDA headers
    beside it, the plugin's floating-point flags) into folder/<name>.so and loads it; linked to
    DALI's libdali_core where `link_dali_core` (to call DALI's own code, not only its headers)."""
    import ctypes
    import subprocess

    import nvidia.dali.sysconfig as sc

    os.makedirs(folder, exist_ok=True)
    lib = os.path.join(folder, name + ".so")
    csrc = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "dali_msda", "csrc")
    cmd = [os.environ.get("CXX", "g++"), "-std=c++20", "-O1", "-shared", "-fPIC",
           "-ffp-contract=off", "-fno-trapping-math", "-isystem", sc.get_include_dir(),
           *cuda_includes(), "-I", csrc, *sources, "-o", lib]
    if link_dali_core:
        cmd += [f"-L{sc.get_lib_dir()}", "-ldali_core", f"-Wl,-rpath,{sc.get_lib_dir()}"]
    cmd += sanitize_flags()  # under tests/sanitize.sh, instrumented as the plugin is
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, f"{name} build failed: {' '.join(cmd)}\n{proc.stderr[-4000:]}"
    return ctypes.CDLL(lib)
