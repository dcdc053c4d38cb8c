"""The operator against the NumPy reference (dali_msda/reference.py).

The op reports the parameters it drew (`output_params`); the reference, given the same
parameters, must reproduce masks and the uint8, float16 and float32 outputs bit for bit, and
targets to 1e-6.
"""

import numpy as np
import pytest

from dali_msda import pipelines
from dali_msda import reference as ref

from conftest import class_labels, random_images, run_mix, special_values

METHODS = ["mixup", "cutmix", "hmix", "gmix"]
LAYOUT_SHAPES = {  # uneven H != W so that axes cannot be confused
    "HWC": (12, 17, 3),
    "CHW": (3, 12, 17),
    "FHWC": (2, 12, 17, 3),
    "FCHW": (2, 3, 12, 17),
}


def reference_from_params(images, labels, params, layout, num_classes, **kwargs):
    apply = params[:, 0] == 1.0
    lam = params[:, 1]
    center = params[:, 2:4].astype(np.int64)
    return ref.mix(images, labels, kwargs.pop("method"), lam=lam, center=center, apply=apply,
                   layout=layout, num_classes=num_classes, **kwargs)


def assert_images_match(actual, expected):
    """Bit for bit for every output dtype: the op blends in float32 in the reference's order
    and rounds to float16 / uint8 to nearest even, as NumPy does."""
    assert actual.dtype == expected.dtype
    if actual.dtype.kind == "f":  # bits: a NaN's sign and payload too (spec 7's canonical NaN)
        bits = np.dtype(f"u{actual.dtype.itemsize}")
        np.testing.assert_array_equal(actual.view(bits), expected.view(bits))
    else:
        np.testing.assert_array_equal(actual, expected)


def check_against_reference(device, method, mode, dtype, layout, batch, seed=7, out_dtype=None,
                            shape=None, **kwargs):
    rng = np.random.default_rng(seed)
    images = random_images(rng, batch, shape or LAYOUT_SHAPES[layout], dtype)
    labels = class_labels(batch)
    op_kwargs = dict(kwargs)
    if out_dtype is not None:
        from conftest import NP_TO_DALI
        op_kwargs["dtype"] = NP_TO_DALI[out_dtype]
    mixed, targets, masks, params = run_mix(images, labels, device=device, layout=layout,
                                            method=method, mode=mode, num_classes=batch,
                                            seed=seed, **op_kwargs)
    if mode == "batch":  # one draw for the whole batch (ResizeMix: a centre per sample)
        same = params[:, :2] if method == "resizemix" else params
        assert (same == same[0]).all(), "batch mode: one draw for the whole batch"
    exp_mixed, exp_targets, exp_masks = reference_from_params(
        images, labels, params, layout, batch, method=method, dtype=out_dtype, **kwargs)
    np.testing.assert_array_equal(masks, exp_masks)
    assert_images_match(mixed, exp_mixed)
    np.testing.assert_allclose(targets, exp_targets, rtol=0, atol=1e-6)
    return params


@pytest.mark.parametrize("layout", list(LAYOUT_SHAPES))
@pytest.mark.parametrize("dtype", [np.uint8, np.float16, np.float32])
@pytest.mark.parametrize("mode", ["batch", "elem"])
@pytest.mark.parametrize("method", METHODS)
def test_matches_reference(device, method, mode, dtype, layout):
    check_against_reference(device, method, mode, dtype, layout, batch=6)


# ---- at the sizes users run ------------------------------------------------------------------
# A 224 x 224 x 3 sample is cut into several work items: CPU tasks of about TASK_ELEMS elements
# (whole rows; mix.cc kTaskElems) and GPU blocks of rows. The small images above fit in one task;
# these do not, so a wrong row offset in a task that starts mid-image fails here.
TASK_ELEMS = 1 << 16
SIZES = [(224, 224), (200, 296)]  # ImageNet's crop, and a non-square one (H != W)


def sample_shape(layout, h, w, c=3, frames=2):
    dims = {"H": h, "W": w, "C": c, "F": frames}
    return tuple(dims[d] for d in layout)


def task_start_rows(layout, shape):
    """Image rows (q % H) at which a CPU task other than the first starts."""
    h, w = shape[layout.index("H")], shape[layout.index("W")]
    inner = shape[-1] if layout.endswith("C") else 1
    rows = int(np.prod(shape)) // (w * inner)
    per_task = max(1, TASK_ELEMS // (w * inner))
    return sorted({q % h for q in range(per_task, rows, per_task)})


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("layout", list(LAYOUT_SHAPES))
@pytest.mark.parametrize("dtype", [np.uint8, np.float16, np.float32])
@pytest.mark.parametrize("mode", ["batch", "elem"])
@pytest.mark.parametrize("method", METHODS)
def test_matches_reference_at_realistic_sizes(device, method, mode, dtype, layout, size):
    shape = sample_shape(layout, *size)
    assert task_start_rows(layout, shape), "the sample must span several CPU tasks"
    seed = 1 + METHODS.index(method) + 10 * list(LAYOUT_SHAPES).index(layout) + size[1]
    check_against_reference(device, method, mode, dtype, layout, batch=5, shape=shape, seed=seed)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("layout", list(LAYOUT_SHAPES))
@pytest.mark.parametrize("dtype", [np.uint8, np.float16, np.float32])
@pytest.mark.parametrize("method", METHODS)
def test_task_boundaries_inside_the_box(device, method, dtype, layout, size):
    """Boxes placed so that CPU task boundaries cut through them, for every layout and dtype."""
    h, w = size
    shape = sample_shape(layout, h, w)
    batch = 6
    rng = np.random.default_rng(5)
    images = random_images(rng, batch, shape, dtype)
    labels = class_labels(batch)
    lam = np.array([0.3, 0.2, 0.35, 0.25, 0.4, 0.3], np.float32)
    starts = task_start_rows(layout, shape)
    # each box centred a few rows off a row where a task starts; columns anywhere
    rows = [starts[i % len(starts)] + (-6, 3, 0, 9, -2, 5)[i] for i in range(batch)]
    center = np.array([[(r + 0.5) / h, (0.1 + 0.16 * i)] for i, r in enumerate(rows)],
                      np.float32)
    if method in ("cutmix", "hmix"):  # every box is cut by a task boundary
        side = {"cutmix": np.sqrt(1 - lam), "hmix": np.sqrt(0.5 * (1 - lam))}[method]
        for i in range(batch):
            cy, cx = (ref.center_from_relative(v, n) for v, n in zip(center[i], (h, w)))
            y0, y1, _, _ = ref.cut_box(float(side[i]), cy, cx, h, w)
            assert any(y0 < r < y1 for r in starts), (i, (y0, y1), starts)
    mixed, targets, masks, params = run_mix(images, labels, device=device, layout=layout,
                                            method=method, mode="elem", num_classes=batch,
                                            lam=lam, center=center)
    exp_mixed, exp_targets, exp_masks = ref.mix(images, labels, method, lam=lam, center=center,
                                                layout=layout, num_classes=batch)
    np.testing.assert_array_equal(masks, exp_masks)
    assert_images_match(mixed, exp_mixed)
    np.testing.assert_allclose(targets, exp_targets, rtol=0, atol=1e-6)


@pytest.mark.parametrize("batch", [1, 2, 3, 5, 7])
@pytest.mark.parametrize("method", METHODS)
def test_odd_and_tiny_batches(device, method, batch):
    rng = np.random.default_rng(batch)
    images = random_images(rng, batch, (9, 11, 3), np.uint8)
    labels = class_labels(batch)
    mixed, targets, masks, params = run_mix(images, labels, device=device, method=method,
                                            mode="elem", num_classes=batch, seed=batch)
    exp = reference_from_params(images, labels, params, "HWC", batch, method=method)
    np.testing.assert_array_equal(mixed, exp[0])
    np.testing.assert_allclose(targets, exp[1], atol=1e-6)
    if batch % 2 == 1:  # the middle sample is its own partner: unchanged, own label
        mid = batch // 2
        np.testing.assert_array_equal(mixed[mid], images[mid])
        np.testing.assert_array_equal(masks[mid], 1.0)
        np.testing.assert_array_equal(targets[mid], np.eye(batch, dtype=np.float32)[mid])


@pytest.mark.parametrize("out_dtype", [np.uint8, np.float16, np.float32])
@pytest.mark.parametrize("in_dtype", [np.uint8, np.float32])
def test_output_dtype(device, in_dtype, out_dtype):
    check_against_reference(device, "hmix", "elem", in_dtype, "HWC", batch=4,
                            out_dtype=out_dtype)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("layout", ["HWC", "FCHW"])
def test_explicit_lam_and_center(device, method, layout):
    rng = np.random.default_rng(3)
    batch = 6
    images = random_images(rng, batch, LAYOUT_SHAPES[layout], np.uint8)
    labels = class_labels(batch)
    lam = np.array([0.0, 0.3, 0.5, 0.77, 1.0, 0.25], dtype=np.float32)
    center = np.array([[0.0, 0.0], [0.5, 0.25], [0.999, 0.999], [0.1, 0.9], [0.3, 0.6],
                       [0.5, 0.5]], dtype=np.float32)
    mixed, targets, masks, params = run_mix(images, labels, device=device, layout=layout,
                                            method=method, mode="elem", num_classes=batch,
                                            lam=lam, center=center, hmix_ratio=0.7)
    np.testing.assert_array_equal(params[:, 1], lam)
    h, w = 12, 17
    assert [tuple(p) for p in params[:, 2:4].astype(int)] == [
        (ref.center_from_relative(cy, h), ref.center_from_relative(cx, w)) for cy, cx in center]
    exp_mixed, exp_targets, exp_masks = ref.mix(images, labels, method, lam=lam, center=center,
                                                layout=layout, num_classes=batch, hmix_ratio=0.7)
    np.testing.assert_array_equal(masks, exp_masks)
    np.testing.assert_array_equal(mixed, exp_mixed)
    np.testing.assert_allclose(targets, exp_targets, atol=1e-6)


@pytest.mark.parametrize("method", METHODS)
def test_label_smoothing_and_soft_labels(device, method):
    rng = np.random.default_rng(11)
    batch, k = 4, 7
    images = random_images(rng, batch, (10, 10, 3), np.float32)
    soft = rng.dirichlet(np.ones(k), size=batch).astype(np.float32)
    mixed, targets, masks, params = run_mix(images, soft, device=device, method=method,
                                            mode="elem", label_smoothing=0.1, seed=5)
    exp = reference_from_params(images, soft, params, "HWC", None, method=method,
                                label_smoothing=0.1)
    np.testing.assert_array_equal(mixed, exp[0])
    np.testing.assert_allclose(targets, exp[1], atol=1e-6)
    assert targets.shape == (batch, k)


@pytest.mark.parametrize("method", ["cutmix", "hmix"])
@pytest.mark.parametrize("mode", ["batch", "elem"])
def test_exact_box_matches_reference(device, method, mode):
    """box="exact" (a side of exactly cut_h) on both backends, fused path included, at 224."""
    check_against_reference(device, method, mode, np.uint8, "HWC", batch=6, box="exact",
                            shape=(224, 224, 3))
    check_against_reference(device, method, mode, np.uint8, "HWC", batch=5, box="exact",
                            shape=(31, 33, 3), out_dtype=np.float16, mean=[1.0, 2.0, 3.0],
                            std=[4.0, 5.0, 6.0], output_layout="CHW")


def test_cutmix_without_lam_correction(device):
    batch = 4
    rng = np.random.default_rng(2)
    images = random_images(rng, batch, (16, 16, 3), np.uint8)
    params = check_against_reference(device, "cutmix", "elem", np.uint8, "HWC", batch,
                                     correct_lam=False)
    _, targets, _, _ = run_mix(images, class_labels(batch), device=device, method="cutmix",
                               mode="elem", num_classes=batch, correct_lam=False, seed=7)
    applied = params[:, 0] == 1
    idx = np.arange(batch)
    np.testing.assert_allclose(targets[idx, idx][applied], params[applied, 1], atol=1e-6)


def test_method_id_per_sample(device):
    """`method_id` (an argument input) picks the method per sample, overriding `method`."""
    batch = 8
    rng = np.random.default_rng(21)
    images = random_images(rng, batch, (14, 18, 3), np.uint8)
    labels = class_labels(batch)
    ids = np.array([0, 1, 2, 3, 3, 2, 1, 0], dtype=np.int32)
    mixed, targets, masks, params = run_mix(images, labels, device=device, method="mixup",
                                            method_id=ids, mode="elem", num_classes=batch,
                                            seed=4)
    for i in range(batch):  # each sample against the reference run with its own method
        exp = reference_from_params(images, labels, params, "HWC", batch,
                                    method=ref.METHODS[ids[i]])
        np.testing.assert_array_equal(mixed[i], exp[0][i])
        np.testing.assert_array_equal(masks[i], exp[2][i])
        np.testing.assert_allclose(targets[i], exp[1][i], atol=1e-6)


def test_equal_draws_share_a_mask_only_with_equal_methods_and_ratios(device):
    """In elem mode samples given the same lam and centre have equal draws; a sample reuses the
    previous one's mask only where that mask is its own too: not across another method or
    another HMix ratio (each sample against the reference run with its own)."""
    batch = 8
    rng = np.random.default_rng(22)
    images = random_images(rng, batch, (20, 28, 3), np.uint8)
    labels = class_labels(batch)
    explicit = dict(lam=np.full(batch, 0.6, np.float32),
                    center=np.tile(np.float32([0.4, 0.55]), (batch, 1)))
    ids = np.array([1, 2, 1, 2, 0, 3, 3, 0], dtype=np.int32)  # cutmix / hmix, mixup / gmix
    ratios = np.array([0.2, 0.9] * 4, np.float32)
    for kw, method_of, ratio_of in [
            (dict(method="mixup", method_id=ids), lambda i: ref.METHODS[ids[i]], lambda i: 0.5),
            (dict(method="hmix", hmix_ratio=ratios), lambda i: "hmix", lambda i: ratios[i])]:
        mixed, targets, masks, params = run_mix(images, labels, device=device, mode="elem",
                                                num_classes=batch, seed=4, **explicit, **kw)
        for i in range(batch):
            exp = reference_from_params(images, labels, params, "HWC", batch,
                                        method=method_of(i), hmix_ratio=float(ratio_of(i)))
            np.testing.assert_array_equal(masks[i], exp[2][i], err_msg=f"sample {i}")
            np.testing.assert_array_equal(mixed[i], exp[0][i])
            np.testing.assert_allclose(targets[i], exp[1][i], atol=1e-6)


# ---- fused normalisation, mirror and layout change --------------------------------------------
IMAGENET_MEAN, IMAGENET_STD = list(pipelines.IMAGENET_MEAN), list(pipelines.IMAGENET_STD)
OTHER_LAYOUT = {"HWC": "CHW", "CHW": "HWC", "FHWC": "FCHW", "FCHW": "FHWC"}


def check_fused(device, method, mode, in_dtype, out_dtype, layout, shape, *, norm, flip,
                transpose, batch=5, seed=3, **extra):
    rng = np.random.default_rng(seed)
    images = random_images(rng, batch, shape, in_dtype)
    labels = class_labels(batch)
    kw, ref_kw = {}, {}
    if norm:  # one value per channel for RGB, one for all channels otherwise
        rgb = shape[layout.index("C")] == 3
        kw.update(mean=IMAGENET_MEAN if rgb else [120.0], std=IMAGENET_STD if rgb else [60.0])
    if transpose:
        kw["output_layout"] = ref_kw["output_layout"] = OTHER_LAYOUT[layout]
    mirror = rng.integers(0, 2, batch).astype(np.int32) if flip else None
    from conftest import NP_TO_DALI
    mixed, targets, masks, params = run_mix(images, labels, device=device, layout=layout,
                                            method=method, mode=mode, num_classes=batch,
                                            mirror=mirror, dtype=NP_TO_DALI[out_dtype],
                                            seed=seed, **kw, **extra)
    exp_mixed, exp_targets, exp_masks = reference_from_params(
        images, labels, params, layout, batch, method=method, dtype=out_dtype, mirror=mirror,
        **{k: kw[k] for k in ("mean", "std") if k in kw}, **ref_kw,
        **{k: v for k, v in extra.items() if k in ("hmix_ratio", "label_smoothing")})
    np.testing.assert_array_equal(masks, exp_masks)
    assert_images_match(mixed, exp_mixed)
    np.testing.assert_allclose(targets, exp_targets, rtol=0, atol=1e-6)
    return mixed


@pytest.mark.parametrize("fused", ["norm", "flip", "transpose", "all"])
@pytest.mark.parametrize("layout", ["HWC", "CHW"])
@pytest.mark.parametrize("in_dtype,out_dtype", [(np.uint8, np.float16), (np.uint8, np.float32),
                                                (np.float16, np.float16),
                                                (np.float32, np.uint8)])
@pytest.mark.parametrize("mode", ["batch", "elem"])
@pytest.mark.parametrize("method", METHODS)
def test_fused_matches_reference(device, method, mode, in_dtype, out_dtype, layout, fused):
    """At 224 x 224 x 3 (several CPU tasks and GPU tiles per sample)."""
    shape = sample_shape(layout, 224, 224)
    check_fused(device, method, mode, in_dtype, out_dtype, layout, shape,
                norm=fused in ("norm", "all"), flip=fused in ("flip", "all"),
                transpose=fused in ("transpose", "all"))


@pytest.mark.parametrize("layout", list(LAYOUT_SHAPES))
@pytest.mark.parametrize("method", METHODS)
def test_fused_small_and_sequences(device, method, layout):
    """Small odd shapes (no vector path), sequences (no mirror), C = 1 and C = 4."""
    seq = layout.startswith("F")
    for c in (1, 4):
        shape = sample_shape(layout, 7, 9, c=c)
        check_fused(device, method, "elem", np.uint8, np.float32, layout, shape, norm=True,
                    flip=not seq, transpose=True, batch=3, label_smoothing=0.1)


@pytest.mark.parametrize("out_dtype", [np.float16, np.float32])
@pytest.mark.parametrize("method", ["mixup", "cutmix", "gmix"])
def test_fused_std_whose_reciprocal_overflows(device, method, out_dtype):
    """std 1e-39: 1 / std is infinite, and a pixel equal to the mean becomes 0 x inf, a NaN,
    written as the canonical NaN (spec 7); the others +-inf. uint8 images at 224 x 224 (the
    vector paths), a corner of zeros so that mixed pixels equal the mean 0 too."""
    rng = np.random.default_rng(5)
    images = random_images(rng, 5, (224, 224, 3), np.uint8)
    images[:, :40, :40] = 0
    labels = class_labels(5)
    kw = dict(mean=[0.0], std=[1e-39])
    mirror = np.array([0, 1, 0, 1, 1], np.int32)
    from conftest import NP_TO_DALI
    mixed, _, _, params = run_mix(images, labels, device=device, method=method, mode="elem",
                                  num_classes=5, mirror=mirror, dtype=NP_TO_DALI[out_dtype],
                                  output_layout="CHW", seed=4, **kw)
    with np.errstate(invalid="ignore", over="ignore"):  # 0 x inf, by design
        exp, _, _ = reference_from_params(images, labels, params, "HWC", 5, method=method,
                                          dtype=out_dtype, mirror=mirror, output_layout="CHW",
                                          **kw)
    assert np.isnan(exp).any() and np.isinf(exp).any()
    assert_images_match(mixed, exp)


def test_fused_one_by_one_images_and_batch_one(device):
    for batch in (1, 2):
        check_fused(device, "cutmix", "elem", np.float32, np.float16, "HWC", (1, 1, 3),
                    norm=True, flip=True, transpose=True, batch=batch)


def test_mirror_as_constant(device):
    """`mirror=1` for the whole batch equals the per-sample input of ones."""
    rng = np.random.default_rng(9)
    images = random_images(rng, 4, (16, 20, 3), np.uint8)
    labels = class_labels(4)
    a = run_mix(images, labels, device=device, method="cutmix", mode="elem", num_classes=4,
                mirror=np.ones(4, np.int32), output_layout="CHW", seed=2)
    b = run_mix(images, labels, device=device, method="cutmix", mode="elem", num_classes=4,
                output_layout="CHW", seed=2, mirror=1)
    unflipped = run_mix(images, labels, device=device, method="cutmix", mode="elem",
                        num_classes=4, output_layout="CHW", seed=2)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], unflipped[0])  # and mirroring changes the output


@pytest.mark.parametrize("fused", [None, "HWC", "CHW"])
@pytest.mark.parametrize("in_dtype,out_dtype", [(np.float16, np.float16),
                                                (np.float32, np.float32),
                                                (np.float16, np.float32),
                                                (np.float32, np.float16),
                                                (np.float16, np.uint8)])
@pytest.mark.parametrize("method", METHODS)
def test_non_finite_inputs(device, method, in_dtype, out_dtype, fused):
    """NaN, inf and -0.0 inputs give the reference's bits on both backends: where the mask is 1
    or 0 the other image is not read; same-type copies keep NaN payloads; conversions give the
    canonical NaN. Fused: normalised, to HWC or to CHW (whose rows take the CPU's vector loops
    of float16 output)."""
    rng = np.random.default_rng(13)
    batch = 4
    images = special_values(rng, (batch, 40, 56, 3), in_dtype)
    labels = class_labels(batch)
    from conftest import NP_TO_DALI
    kw = dict(mean=IMAGENET_MEAN, std=IMAGENET_STD) if fused else {}
    if fused == "CHW":
        kw["output_layout"] = "CHW"
    mixed, targets, masks, params = run_mix(images, labels, device=device, method=method,
                                            mode="elem", num_classes=batch, alpha=0.4,
                                            dtype=NP_TO_DALI[out_dtype], **kw)
    exp_mixed, _, exp_masks = reference_from_params(images, labels, params, "HWC", batch,
                                                    method=method, dtype=out_dtype, **kw)
    np.testing.assert_array_equal(masks, exp_masks)
    np.testing.assert_array_equal(mixed.view(f"u{mixed.itemsize}"),
                                  exp_mixed.view(f"u{exp_mixed.itemsize}"))
