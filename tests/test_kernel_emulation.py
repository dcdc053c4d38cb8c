"""The CUDA kernel's work, emulated on the CPU: tests/kernel_harness.cc runs MixThread
(dali_msda/csrc/mix/kernel.h, the function the kernel calls) for every block and thread of the
launch mix.cu plans, with the GPU backend's host-side planning (PlanSample, SoftTarget). Its
outputs must equal the NumPy reference bit for bit, whatever the launch geometry, no vector
access may be misaligned, none may fall outside its sample's memory (the harness keeps each
sample's image, output, mask and map apart, with gaps between them), and what it moves (32-byte
sectors per warp-wide access) is counted against the bytes the op must move, so that the GPU
path's indexing, coalescing and traffic are tested where no GPU is at hand."""

import ctypes
import os

import numpy as np
import pytest

from conftest import build_test_library, special_values
from dali_msda import methods, reference as ref

HERE = os.path.dirname(os.path.abspath(__file__))
CSRC = os.path.join(os.path.dirname(HERE), "dali_msda", "csrc")
TYPES = {np.dtype(np.uint8): 0, np.dtype(np.float16): 1, np.dtype(np.float32): 2}
METHODS = {**{m: methods.METHOD_IDS[m] for m in methods.METHODS},
           "resizemix-bilinear": methods.METHOD_IDS["resizemix"]}


def build_harness(folder):
    """Compiles tests/kernel_harness.cc (with fmix.cc and fmix_noise.cc) into
    folder/harness.so and loads it (linked to DALI's libdali_core: its Philox generator)."""
    so = build_test_library(folder, "harness", [os.path.join(HERE, "kernel_harness.cc"),
                                                os.path.join(CSRC, "mix", "fmix.cc"),
                                                os.path.join(CSRC, "mix", "fmix_noise.cc")],
                            link_dali_core=True)
    so.msda_emulate_kernel.restype = ctypes.c_int
    return so


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    return build_harness(str(tmp_path_factory.mktemp("harness")))


P = ctypes.c_void_p
I64 = ctypes.c_int64


class Inputs(ctypes.Structure):  # tests/kernel_harness.cc: struct Inputs
    _fields_ = [("method", ctypes.c_int), ("n", ctypes.c_int), ("frames", I64),
                ("H", ctypes.c_int), ("W", ctypes.c_int), ("C", ctypes.c_int),
                ("in_planar", ctypes.c_int), ("out_planar", ctypes.c_int),
                ("images", P), ("out", P), ("masks", P), ("targets", P), ("params", P),
                ("lam", P), ("cy", P), ("cx", P), ("apply", P), ("mirror", P),
                ("class_ids", P), ("soft_labels", P), ("K", ctypes.c_int),
                ("eps", ctypes.c_float), ("hmix_ratio", ctypes.c_float),
                ("correct_lam", ctypes.c_int), ("mean_std", P), ("sms", ctypes.c_int),
                ("blocks_per_sm", ctypes.c_int), ("threads", ctypes.c_int),
                ("fmix_noise", P), ("fmix_round_up", P), ("decay_power", ctypes.c_float),
                ("resize_linear", ctypes.c_int), ("exact_box", ctypes.c_int), ("plan", P),
                ("traffic", P), ("seg", P), ("seg_out", P), ("seg_bytes", ctypes.c_int),
                ("force_general", ctypes.c_int), ("methods", P),
                ("tables_shift", ctypes.c_int)]


H200_LAUNCH = (132, 8, 256)  # an H200's SMs x resident blocks x kernel.h kBlockThreads
PLAN_KEYS = ("vec_c", "unit_px", "groups", "units", "blocks", "mask_vec")
TRAFFIC_KEYS = ("image_load_sector_bytes", "image_store_sector_bytes", "aux_load_sector_bytes",
                "aux_store_sector_bytes", "image_load_bytes", "image_store_bytes",
                "aux_load_bytes", "aux_store_bytes", "image_load_accesses",
                "image_store_accesses", "aux_load_accesses", "aux_store_accesses",
                "image_load_distinct_bytes", "image_store_distinct_bytes",
                "desc_load_sector_bytes", "desc_load_accesses")


def fmix_inputs(n, h, w):
    """FMix noise (float32, n x H x (W // 2 + 1) x 2) and rounding coins for a test batch: the
    same for the harness and the reference (fixed seed)."""
    rng = np.random.default_rng(h * 1000 + w)
    return (rng.standard_normal((n, h, w // 2 + 1, 2)).astype(np.float32),
            np.arange(n) % 2 == 1)


def device_like(a, alignment=256, offset=0):
    """A copy of `a` whose data starts 256-byte aligned, as DALI's device buffers do (NumPy's
    are 16-byte aligned: a sector count would see every warp's first sector half used), or
    `offset` bytes past such an address (a tensor viewed from inside another, say)."""
    raw = np.empty(a.nbytes + alignment + offset, np.uint8)
    start = -raw.ctypes.data % alignment + offset
    out = raw[start:start + a.nbytes].view(a.dtype).reshape(a.shape)
    out[...] = a
    return out


def emulate(so, images, layout, method, params, labels, out_dtype, *, out_layout=None,
            mirror=None, mean=None, std=None, launch=H200_LAUNCH, eps=0.0, hmix_ratio=0.5,
            correct_lam=True, info=None, box="even", seg=None, mask_out=True,
            force_general=False, count_traffic=True, offsets=(0, 0), tables_shift=0):
    """The GPU backend's outputs for given draws: (mixed, targets, masks, params rows).
    `method`: a name, or one per sample (the op's per-sample method lists). `launch`: (SMs,
    resident blocks per SM, threads per block); `info` (a dict) receives the plan (PLAN_KEYS,
    and "plain": which kernel instance ran, launch.h PlainKind: 0 general, 1 plain for boxes, 2
    plain for boxes, Gaussian and bit masks) and the traffic counts (TRAFFIC_KEYS; counted only
    when `count_traffic`, which takes time). `mask_out`: the mask outputs asked for (without
    them, masks are None); `force_general`: never a plain instance. `offsets`: where the
    images and the outputs start, in bytes past a 256-byte aligned address; `tables_shift`:
    the GMix tables', in floats (0-3) past a 16-byte aligned one."""
    n = images.shape[0]
    sh = images.shape[1:]
    out_layout = out_layout or layout
    h, w, c = (sh[layout.index(d)] for d in "HWC")
    frames = sh[0] if layout.startswith("F") else 1
    out_shape = (n,) + tuple(sh[layout.index(d)] for d in out_layout)
    keep = []

    def ptr(a, dtype=None):
        if a is None:
            return None
        a = np.ascontiguousarray(a, dtype=dtype)
        keep.append(a)
        return a.ctypes.data_as(P)

    out = device_like(np.zeros(out_shape, dtype=out_dtype), offset=offsets[1])
    masks = device_like(np.full((n, h, w), -1.0, dtype=np.float32))
    images = device_like(images, offset=offsets[0])
    soft = np.asarray(labels).dtype.kind == "f"
    k = labels.shape[1] if soft else int(np.max(labels)) + 1
    # 256-byte aligned as DALI's buffers are (so that the aux sector counts do not depend on
    # where NumPy happened to put them)
    targets = device_like(np.full((n, k), -1.0, dtype=np.float32))
    rows = device_like(np.full((n, 4), -1.0, dtype=np.float32))
    mean_std = None
    if mean is not None or std is not None:
        m, s = (np.broadcast_to(np.asarray(v if v is not None else d, np.float32), (c,))
                for v, d in ((mean, 0.0), (std, 1.0)))
        mean_std = np.concatenate([m, s])
    per_sample = not isinstance(method, str)  # a method per sample
    names = list(method) if per_sample else [method]
    noise, round_up = fmix_inputs(n, h, w) if "fmix" in names else (None, None)
    plan = np.zeros(len(PLAN_KEYS) + 1, np.int64)
    seg = None if seg is None else device_like(np.ascontiguousarray(seg))
    seg_out = None if seg is None else device_like(np.full(seg.shape, 77, seg.dtype))
    traffic = np.zeros(len(TRAFFIC_KEYS), np.int64)
    a = Inputs(method=METHODS[names[0]], n=n, frames=frames, H=h, W=w, C=c,
               in_planar=int(layout.index("C") < layout.index("H")),
               out_planar=int(out_layout.index("C") < out_layout.index("H")),
               images=ptr(images), out=out.ctypes.data_as(P),
               masks=masks.ctypes.data_as(P) if mask_out else None,
               targets=targets.ctypes.data_as(P), params=rows.ctypes.data_as(P),
               lam=ptr(params["lam"], np.float32), cy=ptr(params["cy"], np.int32),
               cx=ptr(params["cx"], np.int32), apply=ptr(params["apply"], np.uint8),
               mirror=ptr(mirror, np.int32),
               class_ids=None if soft else ptr(np.ravel(labels), np.int32),
               soft_labels=ptr(labels, np.float32) if soft else None, K=k, eps=eps,
               hmix_ratio=hmix_ratio, correct_lam=int(correct_lam), mean_std=ptr(mean_std),
               sms=launch[0], blocks_per_sm=launch[1], threads=launch[2],
               fmix_noise=ptr(noise, np.float32), fmix_round_up=ptr(round_up, np.uint8),
               decay_power=3.0, resize_linear=int("resizemix-bilinear" in names),
               exact_box=int(box == "exact"),
               seg=ptr(seg), seg_out=None if seg is None else seg_out.ctypes.data_as(P),
               seg_bytes=0 if seg is None else np.dtype(seg.dtype).itemsize,
               plan=plan.ctypes.data_as(P),
               traffic=traffic.ctypes.data_as(P) if info is not None and count_traffic
               else None,
               force_general=int(force_general),
               methods=ptr([METHODS[m] for m in names], np.int32) if per_sample else None,
               tables_shift=tables_shift)
    rc = so.msda_emulate_kernel(TYPES[images.dtype], TYPES[np.dtype(out_dtype)],
                                ctypes.byref(a))
    assert rc == 0, {-3: "a vector access was misaligned",
                     -4: "an access outside its sample's or buffer's memory"}.get(rc, rc)
    if info is not None:
        info.update(zip(PLAN_KEYS + ("plain",), plan.tolist()))
        info.update(zip(TRAFFIC_KEYS, traffic.tolist()))
        info["seg"] = seg_out
    return out, targets, masks if mask_out else None, rows


def reference(images, layout, method, params, labels, out_dtype, **kw):
    kw = {k: v for k, v in kw.items() if k not in ("launch", "info", "seg", "offsets",
                                                 "tables_shift")}
    if "out_layout" in kw:
        kw["output_layout"] = kw.pop("out_layout")
    if method == "fmix":
        h, w = (images.shape[1 + layout.index(d)] for d in "HW")
        kw["fmix_noise"], kw["fmix_round_up"] = fmix_inputs(images.shape[0], h, w)
    if method == "resizemix-bilinear":
        method, kw["resize_interp"] = "resizemix", "bilinear"
    return ref.mix(images, labels, method, lam=params["lam"],
                   center=np.stack([params["cy"], params["cx"]], 1), apply=params["apply"],
                   layout=layout, num_classes=None if np.asarray(labels).dtype.kind == "f"
                   else int(np.max(labels)) + 1, dtype=out_dtype,
                   label_smoothing=kw.pop("eps", 0.0), **kw)


def reference_maps(seg, masks, method, params, mirror=None):
    """reference.mix_seg for the draws `params` and the reference's masks of `method`."""
    return ref.mix_seg(seg, masks, method.split("-")[0], lam=params["lam"],
                       center=np.stack([params["cy"], params["cx"]], 1), apply=params["apply"],
                       mirror=mirror)


def check(so, images, layout, method, params, labels, out_dtype, **kw):
    """The emulated kernel against the reference: with mask outputs (and label maps where given)
    as planned (a plain instance where PlainLaunch allows it) and with the general instance
    forced, then without mask outputs, bit for bit all."""
    info = kw.pop("info", None)
    if info is None and kw.get("seg") is not None:
        info = {}
    out, targets, masks, rows = emulate(so, images, layout, method, params, labels, out_dtype,
                                        info=info, **kw)
    general = {}
    out_g, targets_g, masks_g, rows_g = emulate(so, images, layout, method, params, labels,
                                                out_dtype, info=general, force_general=True,
                                                count_traffic=False, **kw)
    assert general["plain"] == 0
    np.testing.assert_array_equal(out_g.view(f"u{out_g.itemsize}"),
                                  out.view(f"u{out.itemsize}"))
    np.testing.assert_array_equal(targets_g, targets)
    np.testing.assert_array_equal(masks_g, masks)
    np.testing.assert_array_equal(rows_g, rows)
    if kw.get("seg") is not None:
        np.testing.assert_array_equal(general["seg"], info["seg"])
    else:
        out2, targets2, _, rows2 = emulate(so, images, layout, method, params, labels,
                                           out_dtype, mask_out=False, **kw)
        np.testing.assert_array_equal(out2.view(f"u{out2.itemsize}"),
                                      out.view(f"u{out.itemsize}"))
        np.testing.assert_array_equal(targets2, targets)
        np.testing.assert_array_equal(rows2, rows)
    exp, exp_t, exp_m = reference(images, layout, method, params, labels, out_dtype, **kw)
    np.testing.assert_array_equal(masks, exp_m)
    assert out.dtype == exp.dtype and out.shape == exp.shape
    np.testing.assert_array_equal(out.view(f"u{out.itemsize}"), exp.view(f"u{exp.itemsize}"))
    np.testing.assert_allclose(targets, exp_t, rtol=0, atol=1e-6)
    expected_rows = np.stack([params["apply"].astype(np.float32), params["lam"],
                              params["cy"], params["cx"]], 1).astype(np.float32)
    np.testing.assert_array_equal(rows, expected_rows)
    return out


# W = 17: the per-pixel fallback; W = 16: the vector path (W a multiple of 8 and 4), whose
# samples are 16-byte aligned for every type here (13 x 16 x 3 elements: 624 elements)
SHAPES = {"HWC": (13, 17, 3), "CHW": (3, 13, 17), "FCHW": (2, 3, 13, 17), "FHWC": (2, 13, 17, 3)}
VEC_SHAPES = {"HWC": (13, 16, 3), "CHW": (3, 13, 16), "FCHW": (2, 3, 13, 16),
              "FHWC": (2, 13, 16, 3)}
DTYPE_PAIRS = [(i, o) for i in (np.uint8, np.float16, np.float32)
               for o in (np.uint8, np.float16, np.float32)]
FUSED = {  # fused arguments per case: none, normalisation, mirror + layout change, all
    "plain": {},
    "norm": {"mean": [100.0, 120.0, 90.0], "std": [50.0, 60.0, 55.0]},
    "flip+layout": {"mirror": True, "transpose": True},
    "all": {"mean": [100.0, 120.0, 90.0], "std": [50.0, 60.0, 55.0], "mirror": True,
            "transpose": True},
}
OTHER_LAYOUT = {"HWC": "CHW", "CHW": "HWC", "FHWC": "FCHW", "FCHW": "FHWC"}


def fused_kwargs(name, layout, n, rng):
    f = dict(FUSED[name])
    kw = {k: f[k] for k in ("mean", "std") if k in f}
    if f.get("transpose"):
        kw["out_layout"] = OTHER_LAYOUT[layout]
    if f.get("mirror") and not layout.startswith("F"):
        kw["mirror"] = rng.integers(0, 2, n)
    return kw


def random_images(rng, n, shape, dtype):
    return (rng.random((n, *shape)) * 255).astype(dtype)


# launches: (SMs, resident blocks per SM, threads per block): an H200's; a few blocks, so that
# each thread takes many units; 7 threads (units advance by carries over rows and pairs); one
# thread alone
LAUNCHES = [H200_LAUNCH, (2, 1, 32), (3, 2, 7), (1, 1, 1)]


@pytest.mark.parametrize("fused", list(FUSED))
@pytest.mark.parametrize("launch", range(len(LAUNCHES)))
@pytest.mark.parametrize("path", ["vector", "fallback"])
@pytest.mark.parametrize("layout", list(SHAPES))
@pytest.mark.parametrize("method", list(METHODS))
def test_kernel_matches_reference(harness, method, layout, path, launch, fused):
    rng = np.random.default_rng(len(layout) * 7 + launch)
    n = 5
    in_dt, out_dt = DTYPE_PAIRS[(launch * 4 + len(fused)) % len(DTYPE_PAIRS)]
    shape = (VEC_SHAPES if path == "vector" else SHAPES)[layout]
    images = random_images(rng, n, shape, in_dt)
    h, w = shape[layout.index("H")], shape[layout.index("W")]
    params = ref.draw_params(rng, n, h, w, alpha=0.8, prob=0.8, mode="elem")
    labels = rng.integers(0, 7, n)
    info = {}
    check(harness, images, layout, method, params, labels, out_dt, launch=LAUNCHES[launch],
          eps=0.1, info=info, **fused_kwargs(fused, layout, n, rng))
    assert (info["vec_c"] == 3) == (path == "vector"), info


@pytest.mark.parametrize("method", ["cutmix", "hmix"])
@pytest.mark.parametrize("width", [33, 32], ids=["fallback", "vector"])
def test_exact_box(harness, method, width):
    rng = np.random.default_rng(width)
    n = 7
    images = random_images(rng, n, (31, width, 3), np.uint8)
    params = ref.draw_params(rng, n, 31, width, alpha=1.0, mode="elem")
    check(harness, images, "HWC", method, params, rng.integers(0, 5, n), np.float16,
          box="exact", mean=[1.0, 2.0, 3.0], std=[4.0, 5.0, 6.0], out_layout="CHW",
          mirror=rng.integers(0, 2, n))


@pytest.mark.parametrize("width", [41, 40], ids=["fallback", "vector"])
@pytest.mark.parametrize("fused", ["plain", "all"])
@pytest.mark.parametrize("in_dt,out_dt", DTYPE_PAIRS)
def test_every_dtype_pair(harness, in_dt, out_dt, fused, width):
    rng = np.random.default_rng(3)
    n, layout = 4, "HWC"
    images = random_images(rng, n, (30, width, 3), in_dt)
    params = ref.draw_params(rng, n, 30, width, alpha=1.0, mode="elem")
    info = {}
    check(harness, images, layout, "hmix", params, rng.integers(0, 9, n), out_dt, info=info,
          **fused_kwargs(fused, layout, n, rng))
    assert (info["vec_c"] == 3) == (width == 40)


@pytest.mark.parametrize("layout", ["HWC", "CHW"])
@pytest.mark.parametrize("channels", [1, 2, 4, 5])
@pytest.mark.parametrize("method", ["cutmix", "gmix", "fmix", "resizemix", "resizemix-bilinear"])
def test_channel_counts(harness, method, channels, layout):
    """C = 1, 2 and 4 on the vector path (a template instance each), C = 5 on the fallback."""
    rng = np.random.default_rng(channels)
    n = 6
    shape = (24, 32, channels) if layout == "HWC" else (channels, 24, 32)
    for in_dt, out_dt in [(np.uint8, np.float16), (np.float32, np.float32),
                          (np.float16, np.uint8)]:
        images = random_images(rng, n, shape, in_dt)
        params = ref.draw_params(rng, n, 24, 32, alpha=1.0, mode="elem")
        kw = {"mean": list(range(10, 10 + channels)), "std": [40.0 + c for c in range(channels)],
              "mirror": rng.integers(0, 2, n), "out_layout": OTHER_LAYOUT[layout]}
        info = {}
        check(harness, images, layout, method, params, rng.integers(0, 4, n), out_dt, eps=0.1,
              info=info, **kw)
        assert info["vec_c"] == (channels if channels <= 4 else 0)


@pytest.mark.parametrize("n", [1, 2, 3, 7])
@pytest.mark.parametrize("shape", [(1, 1, 3), (1, 8, 3), (2, 16, 1), (9, 24, 4)])
def test_small_batches_and_images(harness, n, shape):
    """Batch 1 and odd batches (the middle sample alone), 1 x 1 images, and samples whose
    stride breaks 16-byte alignment (1 x 8 x 3 uint8: 24 bytes, 8-byte aligned: the vector
    path's 8-byte loads serve them, kernel.h VectorAlignment)."""
    rng = np.random.default_rng(n * 100 + shape[1])
    for method in ("mixup", "hmix", "gmix", "fmix", "resizemix"):
        images = random_images(rng, n, shape, np.uint8)
        params = ref.draw_params(rng, n, shape[0], shape[1], alpha=1.0, mode="elem")
        info = {}
        check(harness, images, "HWC", method, params, rng.integers(0, 3, n), np.float16,
              mean=[1.0], std=[3.0], mirror=rng.integers(0, 2, n), info=info)
        if shape == (1, 8, 3):
            assert info["vec_c"] == 3


@pytest.mark.parametrize("width", [65528, 65544])
@pytest.mark.parametrize("layout", ["HWC", "CHW"])
def test_resizemix_rows_either_side_of_2_16(harness, width, layout):
    """ResizeMix's nearest gather divides (c - x0) W by the box width in 32 bits while W < 2^16
    and in 64 bits from there (kernel.h ResizedNearestUnit): both sides, 3 channels, mirrored
    partners, equal to the reference."""
    rng = np.random.default_rng(width)
    n, h = 4, 6
    shape = (h, width, 3) if layout == "HWC" else (3, h, width)
    images = random_images(rng, n, shape, np.uint8)
    params = ref.draw_params(rng, n, h, width, alpha=1.0, mode="elem")
    # the scales: boxes of 1-6 rows, one the whole image ((c - x0) W reaches 2^32 at 65,544)
    params["lam"] = np.array([0.35, 1.0, 0.5, 0.2], np.float32)
    info = {}
    check(harness, images, layout, "resizemix", params, rng.integers(0, 3, n), np.float16,
          mirror=np.array([0, 1, 1, 0]), info=info)
    assert info["vec_c"] == 3


@pytest.mark.parametrize("method", ["resizemix", "resizemix-bilinear"])
@pytest.mark.parametrize("layout", ["HWC", "CHW"])
def test_resizemix_box_of_the_whole_image(harness, method, layout):
    """tau = 1: the box is the whole image, the partner shown at its own size. The last row's
    and column's taps must stay inside the partner (bilinear: its second tap, of weight 0
    there, clamped to the edge; a tap past it reads beyond the sample, which the harness
    refuses), and the mixed sample is its partner exactly, mirrored by the partner's flag;
    equal to the reference. One sample at tau just below 1 (a box a pixel short)."""
    rng = np.random.default_rng(12)
    n, h, w = 4, 224, 224
    shape = (h, w, 3) if layout == "HWC" else (3, h, w)
    images = random_images(rng, n, shape, np.uint8)
    params = ref.draw_params(rng, n, h, w, alpha=1.0, mode="elem")
    params["lam"] = np.array([1.0, 1.0, 0.999, 1.0], np.float32)
    mirror = np.array([0, 1, 1, 0])
    out = check(harness, images, layout, method, params, rng.integers(0, 3, n), np.float32,
                mirror=mirror)
    w_axis = 1 if layout == "HWC" else 2
    for i in np.nonzero(params["lam"] == 1.0)[0]:
        j = n - 1 - i
        partner = np.flip(images[j], w_axis) if mirror[j] else images[j]
        np.testing.assert_array_equal(out[i], partner.astype(np.float32))


@pytest.mark.parametrize("width", [20, 21])
def test_soft_labels_and_identity_samples(harness, width):
    rng = np.random.default_rng(4)
    n = 5  # the middle sample is its own partner
    images = random_images(rng, n, (16, width, 3), np.float32)
    params = ref.draw_params(rng, n, 16, width, alpha=1.0, prob=0.6, mode="elem")
    soft = rng.dirichlet(np.ones(6), size=n).astype(np.float32)
    check(harness, images, "HWC", "gmix", params, soft, np.float32, eps=0.2)


@pytest.mark.parametrize("size", [(224, 224), (200, 296)], ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("layout", list(SHAPES))
@pytest.mark.parametrize("method", list(METHODS))
def test_kernel_at_realistic_sizes(harness, method, layout, size):
    """The launch mix.cu plans for ImageNet-sized samples, with and without fused arguments."""
    h, w = size
    dims = {"H": h, "W": w, "C": 3, "F": 2}
    shape = tuple(dims[d] for d in layout)
    rng = np.random.default_rng(h + len(layout))
    n = 5
    for k, (in_dt, out_dt) in enumerate([(np.uint8, np.float32), (np.float16, np.float16),
                                         (np.uint8, np.float16)]):
        images = random_images(rng, n, shape, in_dt)
        params = ref.draw_params(rng, n, h, w, alpha=0.8, prob=0.9, mode="elem")
        check(harness, images, layout, method, params, rng.integers(0, 7, n), out_dt, eps=0.1,
              **fused_kwargs(["plain", "norm", "all"][k], layout, n, rng))


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("in_dt,out_dt", [(np.float16, np.float16), (np.float32, np.float32),
                                          (np.float16, np.float32), (np.float32, np.float16),
                                          (np.float32, np.uint8)])
@pytest.mark.parametrize("fused", ["plain", "norm"])
@pytest.mark.parametrize("width", [31, 32], ids=["fallback", "vector"])
def test_non_finite_inputs_bit_for_bit(harness, method, in_dt, out_dt, fused, width):
    """NaN (with payloads), +-inf and -0.0: the GPU's work gives the reference's bits, as the CPU
    backend must (tests/test_reference_match.py: test_non_finite_inputs)."""
    rng = np.random.default_rng(5)
    n = 4
    images = special_values(rng, (n, 24, width, 3), in_dt)
    params = ref.draw_params(rng, n, 24, width, alpha=0.5, mode="elem")
    check(harness, images, "HWC", method, params, rng.integers(0, 5, n), out_dt,
          **fused_kwargs(fused, "HWC", n, rng))


def plan_launch(so, n, frames, h, w, c, in_bytes, aligned=True, launch=H200_LAUNCH):
    out = (ctypes.c_int64 * 7)()
    so.msda_plan_launch.restype = None
    so.msda_plan_launch(n, I64(frames), h, w, c, in_bytes, int(aligned), *launch, out)
    return dict(zip(PLAN_KEYS + ("units_per_block",), list(out)))


def test_plan_launch(harness):
    """The launch mix.cu plans: the vector path where the shape and alignment allow it, a
    persistent grid of at most SMs x resident blocks, every unit in exactly one block's range."""
    main = plan_launch(harness, 256, 1, 224, 224, 3, 1)
    assert main["vec_c"] == 3 and main["unit_px"] == 8 and main["groups"] == 28
    assert main["units"] == 128 * 224 * 28 and main["blocks"] == 132 * 8
    assert plan_launch(harness, 256, 1, 224, 224, 3, 4)["unit_px"] == 4  # float32 input
    for kw, why in [(dict(w=17), "odd width"), (dict(c=5), "C > 4"),
                    (dict(aligned=False), "a misaligned sample"), (dict(w=4, in_bytes=2),
                                                                   "width below a unit")]:
        args = dict(n=7, frames=2, h=9, w=16, c=3, in_bytes=1, aligned=True) | kw
        plan = plan_launch(harness, **args)
        assert plan["vec_c"] == 0 and plan["unit_px"] == 1, why
        assert plan["units"] == 4 * 2 * 9 * args["w"], why  # (n + 1) / 2 pairs, pixel units
    for n, h, w, launch in [(1, 1, 1, H200_LAUNCH), (3, 5, 8, (2, 1, 32)),
                            (256, 224, 224, (3, 2, 7)), (65537, 2, 2, H200_LAUNCH)]:
        plan = plan_launch(harness, n, 1, h, w, 3, 1, launch=launch)
        blocks, per_block = plan["blocks"], plan["units_per_block"]
        assert 1 <= blocks <= launch[0] * launch[1]
        assert plan["units"] <= blocks * per_block < plan["units"] + blocks  # every unit once
        assert blocks == min(launch[0] * launch[1], -(-plan["units"] // launch[2]))


@pytest.mark.parametrize("planar", [(0, 0), (1, 1), (0, 1)])
def test_offsets_of_samples_beyond_2_31_elements(harness, planar):
    """The kernel's address and unit arithmetic is 64-bit: a sequence of 3 frames of
    50,000 x 50,000 x 2 (15e9 elements a sample, 2.3e13 units in a batch of 1,000)."""
    frames, h, w, c, n = 3, 50_000, 50_000, 2, 1000
    out = np.zeros(10, np.int64)
    harness.msda_offsets.restype = None
    for f, r, col, ch in [(2, h - 1, w - 1, c - 1), (1, 12345, 43210, 0), (0, 0, 0, 1)]:
        u = ((n // 2 - 1) * frames + f) * h * w + r * w + col  # pair n/2 - 1, fallback units
        step = 7 * h * w + 3 * w + 11
        harness.msda_offsets(I64(frames), h, w, c, *planar, I64(f), r, col, ch, n, I64(u),
                             I64(step), out.ctypes.data_as(P))
        frame = f * h * w * c
        planar_at = frame + (ch * h + r) * w + col
        interleaved_at = frame + (r * w + col) * c + ch
        assert out[0] == (planar_at if planar[0] else interleaved_at)
        assert out[1] == (planar_at if planar[1] else interleaved_at)
        assert list(out[2:6]) == [n // 2 - 1, f, r, col]
        v = u + step  # the advanced position, decomposed with Python's integers
        expect = [v // (frames * h * w), v // (h * w) % frames, v // w % h, v % w]
        assert list(out[6:10]) == expect


def test_fmix_normal_generator(harness):
    """params.h StandardNormals (FMix noise; the op drives it with Philox): N(0, 1) by KS, and
    the two values of a pair uncorrelated (|r| < 4 standard errors; a correlation of 0.05
    between them is 11 standard errors at this n)."""
    from scipy import stats

    n = 200_000
    out = np.empty(n, np.float64)
    harness.msda_standard_normals.restype = None
    harness.msda_standard_normals(ctypes.c_uint32(7), I64(n), out.ctypes.data_as(P))
    assert stats.kstest(out, "norm").pvalue > 1e-3
    assert abs(out.mean()) < 4 / np.sqrt(n) and abs(out.var() - 1) < 4 * np.sqrt(2 / n)
    for a, b in ((out[0::2], out[1::2]), (out[1:-1:2], out[2::2])):  # within / across pairs
        assert abs(np.corrcoef(a, b)[0, 1]) < 4 / np.sqrt(len(a))


def polar_normals(seed, count):
    """Marsaglia's polar method as spec'd for FMix's noise, one pair at a time, from the 32-bit
    stream of std::mt19937(seed) (NumPy's legacy MT19937 seeded alike gives the same words)."""
    import math

    words = np.random.RandomState(seed).randint(0, 2**32, size=3 * count + 256, dtype=np.uint32)
    coords = (words.view(np.int32).astype(np.float64) + 0.5) * 2.0**-31
    out, k = [], 0
    while len(out) < count:
        u, v = float(coords[k]), float(coords[k + 1])
        k += 2
        s = u * u + v * v
        if s >= 1.0:
            continue
        f = math.sqrt(-2.0 * math.log(s) / s)
        out += [u * f, v * f]
    return np.array(out[:count])


@pytest.mark.parametrize("count", [1, 2, 63, 64, 127, 128, 129, 1001, 25_425])
def test_fmix_normals_are_the_polar_methods_one_pair_at_a_time(harness, count):
    """StandardNormals draws its candidate pairs a block at a time and transforms the accepted
    ones afterwards: its values are those of drawing and testing one pair at a time, in order,
    bit for bit (counts around the block of 64 pairs, odd counts, a 224 x 224 mask's noise /
    2), so a seed's FMix masks do not depend on how the generator is written."""
    out = np.empty(count, np.float64)
    harness.msda_standard_normals.restype = None
    harness.msda_standard_normals(ctypes.c_uint32(11), I64(count), out.ctypes.data_as(P))
    np.testing.assert_array_equal(out, polar_normals(11, count))


PHILOX_STATES = [  # (key, counter hi, counter lo, phase)
    (0x0123456789ABCDEF, 7, 42, 1), (2**64 - 1, 2**64 - 1, 2**64 - 3, 2),
    (99, 5, 2**64 - 40, 3),  # the low counter wraps into the high one within the words drawn
]


@pytest.mark.parametrize("state", PHILOX_STATES + [
    (5, 0, 0, 0), (1, 2, 2**64 - 32, 1),  # the first fill of 32 blocks ends at the wrap
    (2**63, 2**64 - 1, 2**64 - 1, 3)])     # the whole 128-bit counter wraps to 0
def test_fmix_noise_words_are_those_of_dalis_philox(harness, state):
    """PhiloxWords (FMix's noise words, computed 32 blocks at a time) returns the words of DALI's
    Philox4x32_10 in the same state, from its next word on: every phase, the low counter
    wrapping into the high one inside a fill and at a fill's end, the 128-bit counter wrapping
    to 0, across several fills (3,000 words)."""
    key, hi, lo, phase = state
    ours, dali = np.zeros(3000, np.uint32), np.ones(3000, np.uint32)
    harness.msda_philox_words.restype = None
    harness.msda_philox_words(ctypes.c_uint64(key), ctypes.c_uint64(hi), ctypes.c_uint64(lo),
                              phase, I64(3000), ours.ctypes.data_as(P), dali.ctypes.data_as(P))
    np.testing.assert_array_equal(ours, dali)
    assert len(np.unique(ours)) > 2900


@pytest.mark.parametrize("state", PHILOX_STATES)
def test_the_ops_fmix_mask_is_that_of_dalis_stream(harness, state):
    """A mask made as the op makes it (MakeFMixMasks, from a job's generator) is the mask of
    normals drawn from DALI's generator in that state, from its next word on (key, both
    counter halves and phase as they are), 224 x 224 and an odd size: the noise of a seed's
    masks is that stream's, not another that passes the statistical tests as well."""
    key, hi, lo, phase = state
    harness.msda_fmix_job_mask.restype = None
    for h, w in ((224, 224), (37, 53)):
        size = (h * w + 7) // 8
        op, dali = np.zeros(size, np.uint8), np.ones(size, np.uint8)
        harness.msda_fmix_job_mask(ctypes.c_uint64(key), ctypes.c_uint64(hi),
                                   ctypes.c_uint64(lo), phase, h, w, I64(h * w * 2 // 5),
                                   op.ctypes.data_as(P), dali.ctypes.data_as(P))
        np.testing.assert_array_equal(op, dali)
        assert np.unpackbits(op, bitorder="little")[:h * w].sum() == h * w * 2 // 5


@pytest.mark.parametrize("jobs,threads", [(0, 4), (1, 4), (7, 3), (256, 16), (5, 1), (3, 0)])
def test_parallel_jobs(harness, jobs, threads):
    """The GPU op's FMix mask threads (fmix.h ParallelJobs): every job exactly once, on any
    thread count; an exception in a job reaches the caller after all threads are joined."""
    counts = np.zeros(max(jobs, 1), np.int64)
    assert harness.msda_parallel_jobs(I64(jobs), threads, I64(-1), counts.ctypes.data_as(P)) == 0
    np.testing.assert_array_equal(counts[:jobs], np.arange(1, jobs + 1))
    if jobs:
        counts[:] = 0
        assert harness.msda_parallel_jobs(I64(jobs), threads, I64(jobs - 1),
                                          counts.ctypes.data_as(P)) == 1
        np.testing.assert_array_equal(counts[:jobs], np.arange(1, jobs + 1))


# ---- what the launch moves, counted by the harness ---------------------------------------------

TRAFFIC_CASES = {  # case: (sample shape, layout, in, out, fused arguments)
    "fused_u8_f16_chw": ((224, 224, 3), "HWC", np.uint8, np.float16,
                         dict(mean=[123.7, 116.3, 103.5], std=[58.4, 57.1, 57.4],
                              out_layout="CHW")),
    "u8_f32": ((224, 224, 3), "HWC", np.uint8, np.float32, {}),
    "f16_f16": ((224, 224, 3), "HWC", np.float16, np.float16, {}),
    "f32_f32_chw": ((3, 224, 224), "CHW", np.float32, np.float32, {}),
}
# sectors per warp-wide access over the bytes asked for, by design: a lane's block is N bytes
# read with the widest aligned vector (A bytes), lanes N bytes apart, so one access touches
# 32 lanes x A bytes spread over 32 x N bytes: N / A times the sectors of a contiguous access
# when A < 32 (uint8 HWC: 24-byte blocks, 8-byte loads: 3x; float16 HWC: 48 / 16: 2x for loads,
# and for every HWC output: 16-byte stores 48 or 96 bytes apart), 1x for planes (16 B a lane).
EXPECTED_SECTOR_RATIO = {"fused_u8_f16_chw": (3.0, 1.0), "u8_f32": (3.0, 2.0),
                         "f16_f16": (2.0, 2.0), "f32_f32_chw": (1.0, 1.0)}


def traffic(so, case, method, n=8, seed=0):
    shape, layout, in_dt, out_dt, kw = TRAFFIC_CASES[case]
    rng = np.random.default_rng(seed)
    images = random_images(rng, n, shape, in_dt)
    params = ref.draw_params(rng, n, 224, 224, alpha=1.0, mode="elem")
    if case.startswith("fused"):
        kw = dict(kw, mirror=np.arange(n) % 2)
    labels = rng.integers(0, 1000, n)
    check(so, images, layout, method, params, labels, out_dt, **kw)
    info = {}  # counted as training runs it: no mask outputs
    emulate(so, images, layout, method, params, labels, out_dt, info=info, mask_out=False, **kw)
    info["input_bytes"] = images.nbytes
    info["output_bytes"] = n * 224 * 224 * 3 * np.dtype(out_dt).itemsize
    return info


@pytest.mark.parametrize("method", ["mixup", "cutmix", "hmix", "gmix", "fmix"])
@pytest.mark.parametrize("case", list(TRAFFIC_CASES))
def test_memory_traffic(harness, case, method):
    """Each input byte read once and each output byte written once (the memory floor), in
    sectors as well as in bytes, and the sectors per warp access the design predicts (a
    re-read, a wrong stride or a lost vector width shows here before any GPU runs it)."""
    t = traffic(harness, case, method)
    assert t["vec_c"] == 3
    assert t["image_load_bytes"] == t["image_load_distinct_bytes"] == t["input_bytes"]
    assert t["image_store_bytes"] == t["image_store_distinct_bytes"] == t["output_bytes"]
    loads, stores = EXPECTED_SECTOR_RATIO[case]
    assert t["image_load_sector_bytes"] == pytest.approx(loads * t["input_bytes"], rel=1e-3)
    assert t["image_store_sector_bytes"] == pytest.approx(stores * t["output_bytes"], rel=1e-3)
    # masks and tables: a few loads per unit that hit L1 (GMix: 8 column factors a unit)
    assert t["aux_load_sector_bytes"] < 0.5 * t["input_bytes"] * (20 if method == "gmix" else 1)
    # the plain instances' descriptor fields: one sector a warp access (the warp's units belong
    # to one or two pairs: a broadcast), at most 9 fields of each sample a unit
    assert t["desc_load_sector_bytes"] <= 32 * 1.1 * t["desc_load_accesses"]
    assert t["desc_load_accesses"] * 32 <= 2 * 9 * t["units"] * 1.1
    assert (t["desc_load_accesses"] > 0) == (t["plain"] > 0)


# ---- label maps (spec 11) ---------------------------------------------------------------------


@pytest.mark.parametrize("seg_dtype", [np.uint8, np.int32])
@pytest.mark.parametrize("width", [33, 32], ids=["fallback", "vector"])
@pytest.mark.parametrize("method", list(METHODS))
def test_label_maps_match_reference(harness, method, width, seg_dtype):
    """The mixed maps through the kernel's work equal reference.mix_seg, mirror included, with
    maps of distinct values (coordinates) so that a wrong pixel shows."""
    rng = np.random.default_rng(width + len(method))
    n, h = 7, 31
    images = random_images(rng, n, (h, width, 3), np.uint8)
    params = ref.draw_params(rng, n, h, width, alpha=1.0, prob=0.9, mode="elem")
    mirror = rng.integers(0, 2, n)
    seg = (np.arange(n * h * width) % (250 if seg_dtype == np.uint8 else 10**6)).astype(
        seg_dtype).reshape(n, h, width)
    info = {}
    kw = dict(mean=[1.0, 2.0, 3.0], std=[4.0, 5.0, 6.0], out_layout="CHW", mirror=mirror)
    check(harness, images, "HWC", method, params, rng.integers(0, 5, n), np.float16, info=info,
          seg=seg, **kw)
    _, _, masks = reference(images, "HWC", method, params, rng.integers(0, 5, n), np.float16,
                            **kw)
    np.testing.assert_array_equal(info["seg"], reference_maps(seg, masks, method, params, mirror))


@pytest.mark.parametrize("width", [33, 32], ids=["fallback", "vector"])
def test_label_map_tie_takes_own_map(harness, width):
    """Mixup with lam = 0.5 exactly: M = 0.5 at every pixel, a tie, which takes the sample's own
    map (spec 11: M >= 0.5); one float32 step below 0.5 takes the partner's. Without this case
    no draw of the tests above lands on a tie in the kernel path."""
    rng = np.random.default_rng(5)
    n, h = 5, 9
    images = random_images(rng, n, (h, width, 3), np.uint8)
    seg = (np.arange(n * h * width) % 250).astype(np.uint8).reshape(n, h, width)
    for lam, own in ((0.5, True), (np.nextafter(np.float32(0.5), np.float32(0)), False)):
        params = {"lam": np.full(n, lam, np.float32), "cy": np.zeros(n, np.int32),
                  "cx": np.zeros(n, np.int32), "apply": np.ones(n, bool)}
        info = {}
        check(harness, images, "HWC", "mixup", params, rng.integers(0, 5, n), np.float16,
              info=info, seg=seg)
        partner = seg[::-1].copy()
        partner[n // 2] = seg[n // 2]  # the middle sample is its own partner
        np.testing.assert_array_equal(info["seg"], seg if own else partner, err_msg=str(lam))


@pytest.mark.parametrize("in_dt", [np.uint8, np.float16, np.float32])
@pytest.mark.parametrize("method", list(METHODS))
def test_plain_instance_is_taken_where_allowed(harness, method, in_dt):
    """PlainLaunch: a plain instance runs for integral inputs on the vector path, the box one
    (1) where every mask is a box (Mixup, CutMix, HMix) and there are no mask outputs or label
    maps, else the one of masks (2): GMix and FMix, and every method but ResizeMix with mask
    outputs or maps; never for ResizeMix. It equals the reference there at 224 x 224 (mirror,
    normalisation, both output layouts; masks and maps too). A 1 / std that overflows (std
    1e-39) could make a NaN: the general instance then."""
    rng = np.random.default_rng(3)
    n = 5
    images = random_images(rng, n, (224, 224, 3), in_dt)
    params = ref.draw_params(rng, n, 224, 224, alpha=1.0, prob=0.8, mode="elem")
    labels = rng.integers(0, 10, n)
    kind = {"mixup": 1, "cutmix": 1, "hmix": 1, "gmix": 2, "fmix": 2}.get(method, 0)
    expected = kind if in_dt == np.uint8 else 0
    seg = (np.arange(n * 224 * 224) % 250).astype(np.uint8).reshape(n, 224, 224)
    for out_layout in ("CHW", "HWC"):
        kw = dict(mean=[100.0, 120.0, 90.0], std=[50.0, 60.0, 55.0], out_layout=out_layout,
                  mirror=rng.integers(0, 2, n))
        info = {}
        out, *_ = emulate(harness, images, "HWC", method, params, labels, np.float16,
                          mask_out=False, info=info, **kw)
        assert info["plain"] == expected, info
        exp, _, exp_m = reference(images, "HWC", method, params, labels, np.float16, **kw)
        np.testing.assert_array_equal(out.view(np.uint16), exp.view(np.uint16))
        # with mask outputs and label maps: the instance of masks (or the general one)
        info = {}
        out, _, masks, _ = emulate(harness, images, "HWC", method, params, labels, np.float16,
                                   info=info, seg=seg, **kw)
        assert info["plain"] == (2 if expected else 0), info
        np.testing.assert_array_equal(out.view(np.uint16), exp.view(np.uint16))
        np.testing.assert_array_equal(masks, exp_m)
        np.testing.assert_array_equal(info["seg"],
                                      reference_maps(seg, exp_m, method, params, kw["mirror"]))
    for kw, plain in ((dict(mean=[0.0], std=[1e-39]), False), ({}, True)):
        info = {}
        emulate(harness, images, "HWC", method, params, labels, np.float32, mask_out=False,
                info=info, **kw)
        assert info["plain"] == (expected if plain else 0), (kw, info)
    info = {}  # the per-pixel fallback (W = 17) never
    emulate(harness, images[:, :, :17].copy(), "HWC", method, params, labels, np.float16,
            mask_out=False, info=info)
    assert info["plain"] == 0
    # 4 channels: mask outputs (and maps) on the general instance (PlainWritesMasksAndMaps)
    rgba = random_images(rng, n, (16, 16, 4), in_dt)
    small = ref.draw_params(rng, n, 16, 16, alpha=1.0, prob=0.8, mode="elem")
    check(harness, rgba, "HWC", method, small, labels, np.float16)
    for mask_out, plain in ((False, expected), (True, 0)):
        info = {}
        emulate(harness, rgba, "HWC", method, small, labels, np.float16, mask_out=mask_out,
                info=info)
        assert info["plain"] == plain, (mask_out, info)


@pytest.mark.parametrize("methods,plain", [
    (["cutmix", "gmix", "fmix", "mixup", "hmix", "fmix", "gmix"], 2),
    (["gmix", "cutmix", "cutmix", "fmix", "mixup", "hmix", "cutmix"], 2),
    (["hmix", "mixup", "cutmix", "cutmix", "mixup", "hmix", "cutmix"], 1),
    (["cutmix", "gmix", "resizemix", "fmix", "mixup", "resizemix", "hmix"], 0),
])
def test_per_sample_methods_in_one_launch(harness, methods, plain):
    """A batch of several methods (the op's per-sample method lists): each sample's mask kind is
    its own, in the plain instances (read per sample, not per launch) as in the general one;
    each output, target and mask equals the reference of the sample's own method, at 224 x 224
    (uint8 HWC -> normalised, mirrored float16 CHW); with label maps too."""
    rng = np.random.default_rng(len(methods[0]) + plain)
    n = len(methods)
    images = random_images(rng, n, (224, 224, 3), np.uint8)
    params = ref.draw_params(rng, n, 224, 224, alpha=1.0, prob=0.9, mode="elem")
    labels = rng.integers(0, 10, n)
    kw = dict(mean=[100.0, 120.0, 90.0], std=[50.0, 60.0, 55.0], out_layout="CHW",
              mirror=rng.integers(0, 2, n))
    seg = (np.arange(n * 224 * 224) % 250).astype(np.uint8).reshape(n, 224, 224)
    exp = {m: reference(images, "HWC", m, params, labels, np.float16, **kw)
           for m in set(methods)}
    pick = lambda k: np.stack([exp[m][k][i] for i, m in enumerate(methods)])  # noqa: E731
    runs = [(dict(mask_out=False), plain), (dict(), plain and 2), (dict(seg=seg), plain and 2),
            (dict(force_general=True), 0)]
    for extra, instance in runs:
        info = {}
        out, targets, masks, _ = emulate(harness, images, "HWC", methods, params, labels,
                                         np.float16, info=info, count_traffic=False,
                                         **extra, **kw)
        assert info["plain"] == instance, (extra, info)
        np.testing.assert_array_equal(out.view(np.uint16), pick(0).view(np.uint16))
        np.testing.assert_allclose(targets, pick(1), rtol=0, atol=1e-6)
        if masks is not None:
            np.testing.assert_array_equal(masks, pick(2))
        if "seg" in extra:
            maps = [reference_maps(seg, exp[m][2], m, params, kw["mirror"]) for m in methods]
            np.testing.assert_array_equal(info["seg"],
                                          np.stack([maps[i][i] for i in range(n)]))


@pytest.mark.parametrize("out_layout", ["CHW", "HWC"])
def test_odd_height_batches_take_the_vector_path(harness, out_layout):
    """An odd H with W = 8 mod 16 and 3 channels: a uint8 sample is 8 mod 16 bytes long, so every
    other sample of a contiguous batch starts 8 bytes off 16. Its 24-byte runs are read 8 bytes
    at a time, so the vector path serves the whole batch (it once sent it to the per-pixel
    fallback); equal to the reference, no access misaligned."""
    rng = np.random.default_rng(17)
    n, h, w = 5, 37, 40
    images = random_images(rng, n, (h, w, 3), np.uint8)
    params = ref.draw_params(rng, n, h, w, alpha=1.0, mode="elem")
    kw = dict(mean=[100.0, 110.0, 120.0], std=[50.0, 60.0, 70.0], out_layout=out_layout,
              mirror=rng.integers(0, 2, n))
    for method in ("mixup", "cutmix", "gmix"):
        info = {}
        check(harness, images, "HWC", method, params, rng.integers(0, 3, n), np.float16,
              info=info, **kw)
        assert info["vec_c"] == 3 and info["unit_px"] == 8, method


# (input type and layout, output type and layout, bytes past 16-byte alignment of the images
# and of the outputs, whether the vector path may serve them): its accesses are a unit's run of
# P pixels, 24 bytes of uint8 HWC (8-byte loads), 8 of a uint8 plane, 48 of float16 HWC, 16 of
# a float32 plane or a float16 output plane (16-byte accesses)
OFFSET_CASES = [
    (np.uint8, "HWC", np.float16, "CHW", 0, 0, True),
    (np.uint8, "HWC", np.float16, "CHW", 8, 0, True),
    (np.uint8, "HWC", np.float16, "CHW", 4, 0, False),
    (np.uint8, "HWC", np.float16, "CHW", 12, 0, False),
    (np.uint8, "HWC", np.float16, "CHW", 1, 0, False),
    (np.uint8, "HWC", np.float16, "CHW", 2, 0, False),
    (np.uint8, "HWC", np.float16, "CHW", 0, 8, False),
    (np.uint8, "HWC", np.float16, "CHW", 0, 4, False),
    (np.uint8, "HWC", np.uint8, "HWC", 8, 8, True),
    (np.uint8, "HWC", np.uint8, "HWC", 8, 4, False),
    (np.uint8, "CHW", np.float32, "CHW", 8, 0, True),
    (np.uint8, "CHW", np.float32, "CHW", 4, 0, False),
    (np.float16, "HWC", np.float16, "HWC", 8, 0, False),
    (np.float16, "HWC", np.float16, "HWC", 0, 2, False),
    (np.float32, "CHW", np.float32, "CHW", 4, 0, False),
    (np.float32, "CHW", np.float32, "CHW", 0, 8, False),
]


@pytest.mark.parametrize("in_dt,layout,out_dt,out_layout,in_off,out_off,vector", OFFSET_CASES)
def test_samples_off_alignment_take_the_vector_path_only_where_it_may(
        harness, in_dt, layout, out_dt, out_layout, in_off, out_off, vector):
    """A batch whose samples start off 16-byte alignment (a tensor viewed from inside a larger
    buffer, as DLPack hands over a slice of a framework's tensor): the vector path where every
    access of its runs is aligned (launch.h VectorAlignment), else the per-pixel fallback; never
    a misaligned access (it would fault on a GPU), equal to the reference either way."""
    rng = np.random.default_rng(in_off * 16 + out_off)
    n, h, w = 4, 5, 16  # 5 x 16 pixels: every sample's size a multiple of 16 bytes
    shape = (h, w, 3) if layout == "HWC" else (3, h, w)
    images = random_images(rng, n, shape, in_dt)
    params = ref.draw_params(rng, n, h, w, alpha=1.0, mode="elem")
    for method in ("cutmix", "gmix", "resizemix"):
        info = {}
        check(harness, images, layout, method, params, rng.integers(0, 3, n), out_dt,
              out_layout=out_layout, mirror=rng.integers(0, 2, n), offsets=(in_off, out_off),
              info=info)
        assert info["vec_c"] == (3 if vector else 0), (method, info["vec_c"])


@pytest.mark.parametrize("shift", [1, 2, 3])
@pytest.mark.parametrize("in_dt,layout", [(np.uint8, "HWC"), (np.float32, "CHW")])
def test_gaussian_tables_off_16_byte_alignment(harness, shift, in_dt, layout):
    """The op's upload puts GMix's tables behind the sample descriptors (DALI's ToContiguousGPU
    promises them 4-byte alignment only), so a unit's P column factors need not be 16-byte
    aligned: then they are read a float at a time (kernel.h TableMask). GMix with the tables
    1-3 floats off alignment, in the general instance and (uint8) the plain one of masks: equal
    to the reference, no access misaligned."""
    rng = np.random.default_rng(shift)
    n, h, w = 5, 9, 24
    shape = (h, w, 3) if layout == "HWC" else (3, h, w)
    images = random_images(rng, n, shape, in_dt)
    params = ref.draw_params(rng, n, h, w, alpha=1.0, mode="elem")
    info = {}
    check(harness, images, layout, "gmix", params, rng.integers(0, 3, n), np.float32,
          mirror=rng.integers(0, 2, n), tables_shift=shift, info=info)
    assert info["vec_c"] == 3 and info["plain"] == (2 if in_dt == np.uint8 else 0)
