"""The CUDA kernel's work, emulated on the CPU: tests/kernel_harness.cc runs MixBlock
(dali_msda/csrc/mix/kernel.h, the function the kernel calls) for every block and thread of a
launch, with the GPU backend's host-side planning (PlanSample, SoftTarget). Its outputs must
equal the NumPy reference bit for bit, whatever the launch geometry, so that the GPU path's
indexing, mask writes and target copies are tested where no GPU is at hand."""

import ctypes
import glob
import os
import subprocess

import numpy as np
import pytest

from dali_msda import reference as ref

HERE = os.path.dirname(os.path.abspath(__file__))
CSRC = os.path.join(os.path.dirname(HERE), "dali_msda", "csrc")
TYPES = {np.dtype(np.uint8): 0, np.dtype(np.float16): 1, np.dtype(np.float32): 2}
METHODS = {"mixup": 0, "cutmix": 1, "hmix": 2, "gmix": 3}


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


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    import nvidia.dali.sysconfig as sc

    lib = str(tmp_path_factory.mktemp("harness") / "harness.so")
    cmd = [os.environ.get("CXX", "g++"), "-std=c++20", "-O1", "-shared", "-fPIC",
           "-ffp-contract=off", "-fno-trapping-math", "-isystem", sc.get_include_dir(),
           *cuda_includes(), "-I", CSRC, os.path.join(HERE, "kernel_harness.cc"),
           "-o", lib]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, f"harness build failed: {' '.join(cmd)}\n{proc.stderr[-4000:]}"
    so = ctypes.CDLL(lib)
    so.msda_emulate_kernel.restype = ctypes.c_int
    return so


def emulate(so, images, layout, method, params, labels, out_dtype, rows_per_block, nthreads,
            eps=0.0, hmix_ratio=0.5, correct_lam=True):
    n = images.shape[0]
    sh = images.shape[1:]
    h, w = sh[layout.index("H")], sh[layout.index("W")]
    inner = sh[-1] if layout.endswith("C") else 1
    outer = int(np.prod(sh)) // (h * w * inner)
    out = np.zeros(images.shape, dtype=out_dtype)
    masks = np.full((n, h, w), -1.0, dtype=np.float32)
    k = labels.shape[1]
    targets = np.full((n, k), -1.0, dtype=np.float32)
    lam = np.ascontiguousarray(params["lam"], dtype=np.float32)
    cy = np.ascontiguousarray(params["cy"], dtype=np.int32)
    cx = np.ascontiguousarray(params["cx"], dtype=np.int32)
    apply = np.ascontiguousarray(params["apply"], dtype=np.uint8)
    images = np.ascontiguousarray(images)
    labels = np.ascontiguousarray(labels, dtype=np.float32)
    ptr = lambda a: a.ctypes.data_as(ctypes.c_void_p)  # noqa: E731
    rc = so.msda_emulate_kernel(
        TYPES[images.dtype], TYPES[np.dtype(out_dtype)], METHODS[method], n,
        ctypes.c_int64(outer), h, w, inner, ptr(images), ptr(out), ptr(masks), ptr(targets),
        ptr(lam), ptr(cy), ptr(cx), ptr(apply), ptr(labels), k, ctypes.c_float(eps),
        ctypes.c_float(hmix_ratio), int(correct_lam), rows_per_block, nthreads)
    assert rc == 0
    return out, targets, masks


SHAPES = {"HWC": (13, 17, 3), "CHW": (3, 13, 17), "FCHW": (2, 3, 13, 17), "FHWC": (2, 13, 17, 3)}


@pytest.mark.parametrize("rows_per_block,nthreads", [(1, 1), (5, 3), (7, 32), (1000, 256)])
@pytest.mark.parametrize("layout", list(SHAPES))
@pytest.mark.parametrize("method", list(METHODS))
def test_kernel_matches_reference(harness, method, layout, rows_per_block, nthreads):
    rng = np.random.default_rng(len(layout) * 7 + rows_per_block)
    n = 5
    cases = [(np.uint8, np.float32), (np.float16, np.float16), (np.float32, np.uint8)]
    in_dt, out_dt = cases[rows_per_block % 3]
    images = (rng.random((n, *SHAPES[layout])) * 255).astype(in_dt)
    h, w = SHAPES[layout][layout.index("H")], SHAPES[layout][layout.index("W")]
    params = ref.draw_params(rng, n, h, w, alpha=0.8, prob=0.8, mode="elem")
    labels = np.eye(7, dtype=np.float32)[rng.integers(0, 7, n)]
    out, targets, masks = emulate(harness, images, layout, method, params, labels, out_dt,
                                  rows_per_block, nthreads, eps=0.1)
    exp, exp_t, exp_m = ref.mix(images, labels, method, lam=params["lam"],
                                center=np.stack([params["cy"], params["cx"]], 1),
                                apply=params["apply"], layout=layout, label_smoothing=0.1,
                                dtype=out_dt)
    np.testing.assert_array_equal(masks, exp_m)
    np.testing.assert_array_equal(out, exp)
    np.testing.assert_allclose(targets, exp_t, atol=1e-6)


GPU_BLOCK_ELEMS, GPU_BLOCK_THREADS = 8192, 256  # mix.cu: kBlockElems, kBlockSize


@pytest.mark.parametrize("size", [(224, 224), (200, 296)], ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("layout", list(SHAPES))
@pytest.mark.parametrize("method", list(METHODS))
def test_kernel_at_realistic_sizes(harness, method, layout, size):
    """The launch geometry mix.cu uses for ImageNet-sized samples: many row blocks per sample,
    rows longer than a block of threads."""
    h, w = size
    dims = {"H": h, "W": w, "C": 3, "F": 2}
    shape = tuple(dims[d] for d in layout)
    inner = 3 if layout.endswith("C") else 1
    rows_per_block = max(1, GPU_BLOCK_ELEMS // (w * inner))
    rng = np.random.default_rng(h + len(layout))
    n = 5
    for in_dt, out_dt in [(np.uint8, np.float32), (np.float16, np.float16),
                          (np.float32, np.uint8)]:
        images = (rng.random((n, *shape)) * 255).astype(in_dt)
        params = ref.draw_params(rng, n, h, w, alpha=0.8, prob=0.9, mode="elem")
        labels = np.eye(7, dtype=np.float32)[rng.integers(0, 7, n)]
        out, targets, masks = emulate(harness, images, layout, method, params, labels, out_dt,
                                      rows_per_block, GPU_BLOCK_THREADS, eps=0.1)
        exp, exp_t, exp_m = ref.mix(images, labels, method, lam=params["lam"],
                                    center=np.stack([params["cy"], params["cx"]], 1),
                                    apply=params["apply"], layout=layout, label_smoothing=0.1,
                                    dtype=out_dt)
        np.testing.assert_array_equal(masks, exp_m)
        np.testing.assert_array_equal(out, exp)
        np.testing.assert_allclose(targets, exp_t, atol=1e-6)
