"""The op's dtype conversions are exact: every float16 value to float32, and float32 to float16
and to uint8 (round half to even, saturation, NaN -> 0) as NumPy does them.

Rows are 257 values long, so that the vector loops' scalar tails are exercised too; the whole
module runs a second time with DALI_MSDA_NO_F16C=1 (the portable path that CPUs without
AVX2 + F16C take).
"""

import os
import subprocess
import sys

import numpy as np
from nvidia.dali import fn, pipeline_def, types

from conftest import to_numpy

ROW = 257


def rows(values):
    """values as an image of ROW-long rows (padded with zeros), one channel."""
    n = -(-values.size // ROW) * ROW
    out = np.zeros(n, dtype=values.dtype)
    out[:values.size] = values.ravel()
    return out.reshape(-1, ROW, 1)


def passthrough(image, out_dtype, device):
    """A batch of one: its own partner, so the op only converts."""
    @pipeline_def(batch_size=1, num_threads=1, device_id=0 if device == "gpu" else None, seed=1)
    def pipe():
        x = fn.external_source(source=lambda: [image], batch=True, layout="HWC")
        y = fn.external_source(source=lambda: [np.array([0], np.int32)], batch=True)
        if device == "gpu":
            x = x.gpu()
        return fn.msda.mix(x, y, method="mixup", num_classes=1, dtype=out_dtype)[0]

    p = pipe()
    p.build()
    return to_numpy(p.run()[0])[0]


def test_every_float16_to_float32(device):
    h = rows(np.arange(65536, dtype=np.uint16).view(np.float16))
    out = passthrough(h, types.FLOAT, device)
    exp = h.astype(np.float32)
    nan = np.isnan(exp)
    np.testing.assert_array_equal(np.isnan(out), nan)
    np.testing.assert_array_equal(out.view(np.uint32)[~nan], exp.view(np.uint32)[~nan])


def test_float32_to_float16_rounds_to_nearest_even(device):
    rng = np.random.default_rng(0)
    vals = rng.integers(0, 2 ** 32, 256 * 256, dtype=np.uint64).astype(np.uint32).view(np.float32)
    vals = vals.copy()
    edges = [0.0, -0.0, 65504, 65519.99, 65520, 1e-8, 6e-8, 3e-8, 2.98e-8, 6.1e-5, 6.0e-5,
             np.inf, -np.inf, 1 / 3, 2049, 2051, 0.5 + 2 ** -12, 1 + 2 ** -11, 1 + 3 * 2 ** -11]
    vals[:len(edges)] = edges
    vals = rows(vals)
    out = passthrough(vals, types.FLOAT16, device)
    with np.errstate(over="ignore"):
        exp = vals.astype(np.float16)
    same = (out.view(np.uint16) == exp.view(np.uint16)) | (np.isnan(out) & np.isnan(exp))
    assert same.all(), np.argwhere(~same)[:5]


def test_float32_to_uint8_rounds_half_to_even_and_saturates(device):
    vals = np.array([-1e30, -3.0, -0.5, 0.0, 0.49, 0.5, 1.5, 2.5, 2.500001, 127.5, 128.5, 254.5,
                     254.6, 255.0, 255.5, 300.0, np.inf, -np.inf, np.nan], np.float32)
    vals = np.tile(vals, 20)  # through the vector loops and the tail
    out = passthrough(rows(vals), types.UINT8, device).ravel()[:vals.size]
    exp = [0, 0, 0, 0, 0, 0, 2, 2, 3, 128, 128, 254, 255, 255, 255, 255, 255, 0, 0] * 20
    np.testing.assert_array_equal(out, exp)
    # float16 -> uint8 too
    with np.errstate(over="ignore", invalid="ignore"):
        h = vals.astype(np.float16)
    out = passthrough(rows(h), types.UINT8, device).ravel()[:vals.size]
    h = h.astype(np.float32)
    np.testing.assert_array_equal(out, np.rint(np.clip(np.nan_to_num(h, nan=0), 0, 255)))


def test_portable_path_without_f16c():
    if os.environ.get("DALI_MSDA_NO_F16C"):
        return  # this is the second run
    env = dict(os.environ, DALI_MSDA_NO_F16C="1")
    here = os.path.dirname(__file__)
    # this file's conversions, the float16 mixing loops (GMix spans, the fused path) and the
    # fused uint8 -> float32 rows (the plain rule's vector loop otherwise)
    for args in (["-k", "cpu", __file__],
                 ["-k", "cpu and ((fused_matches or non_finite or realistic_sizes) and float16 "
                        "or fused_matches and uint8-float32 or overflows)",
                  os.path.join(here, "test_reference_match.py")]):
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                               *args], capture_output=True, text=True, env=env, cwd=here)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
        assert " passed" in proc.stdout
