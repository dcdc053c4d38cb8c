"""Label maps through the op (spec 11): the mixed map equals reference.mix_seg on both backends,
for every method, mode, layout and map type, at 224 x 224 and a non-square size, with and
without mirror and the fused normalisation; bad maps get clear errors."""

import numpy as np
import pytest

from dali_msda import reference as ref

from conftest import class_labels, random_images, run_mix
from test_errors import expect_error

METHODS = list(ref.METHODS)


def coordinate_maps(batch, h, w, dtype):
    """Maps whose every pixel holds a value of its own (its coordinates, wrapped for uint8), so
    that a pixel taken from a wrong place shows."""
    k = np.arange(batch * h * w).reshape(batch, h, w)
    return (k % 251 if dtype == np.uint8 else k * 7 + 3).astype(dtype)


def check_maps(device, method, mode, h, w, seg_dtype, hw1=False, layout="HWC", seed=3, **kw):
    rng = np.random.default_rng(seed)
    batch = 6
    shape = (h, w, 3) if layout == "HWC" else (3, h, w)
    images = random_images(rng, batch, shape, np.uint8)
    seg = coordinate_maps(batch, h, w, seg_dtype)
    if hw1:
        seg = seg[..., None]
    mirror = kw.pop("mirror", None)
    outs = run_mix(images, class_labels(batch), device=device, method=method, mode=mode,
                   num_classes=batch, layout=layout, seg=seg, seg_layout="HWC" if hw1 else "HW",
                   mirror=mirror, seed=seed, **kw)
    mixed, targets, maps, masks, params = outs
    assert maps.dtype == seg.dtype and maps.shape == seg.shape
    expect = ref.mix_seg(seg, masks, method, lam=params[:, 1],
                         center=params[:, 2:4].astype(np.int64), apply=params[:, 0] == 1.0,
                         mirror=mirror)
    np.testing.assert_array_equal(maps, expect)
    return maps, masks, params


@pytest.mark.parametrize("seg_dtype", [np.uint8, np.int32])
@pytest.mark.parametrize("mode", ["batch", "elem", "pair"])
@pytest.mark.parametrize("method", METHODS)
def test_maps_match_reference(device, method, mode, seg_dtype):
    check_maps(device, method, mode, 224, 224, seg_dtype)
    check_maps(device, method, mode, 37, 52, seg_dtype, hw1=True, layout="CHW")


@pytest.mark.parametrize("method", METHODS)
def test_maps_follow_mirror_and_the_fused_path(device, method):
    rng = np.random.default_rng(1)
    mirror = rng.integers(0, 2, 6)
    check_maps(device, method, "elem", 64, 96, np.int32, mirror=mirror,
               mean=[1.0, 2.0, 3.0], std=[4.0, 5.0, 6.0], output_layout="CHW")
    check_maps(device, method, "elem", 31, 33, np.uint8, mirror=mirror,
               resize_interp="bilinear" if method == "resizemix" else "nearest")


def test_the_hard_rule_and_ignore_labels(device):
    """Where M is fractional the label of the larger weight, ties (M = 0.5) to the own: Mixup
    with lam 0.5 and 0.49; an ignore label passes through where its map is chosen."""
    h = w = 16
    images = np.zeros((2, h, w, 3), np.uint8)
    seg = np.stack([np.full((h, w), 3, np.uint8), np.full((h, w), 255, np.uint8)])
    seg[0, 0, 0] = 255
    for lam, own in ((0.5, True), (0.49, False), (0.51, True)):
        _, _, maps, masks, _ = run_mix(images, class_labels(2), device=device, method="mixup",
                                       mode="batch", num_classes=2, seg=seg, seg_layout="HW",
                                       lam=np.full(2, lam, np.float32))
        np.testing.assert_array_equal(maps[0], seg[0] if own else seg[1])
        np.testing.assert_array_equal(maps[1], seg[1] if own else seg[0])


def test_ties_inside_an_hmix_box_row(device):
    """HMix with a = lam / lam_box = 0.5 exactly (20 x 20, r = 0.5, lam = 0.4, centre (3, 10)):
    the rows through the box hold M = 0.5 beside it, where the own label wins (the tie rule
    on the rows that mix per pixel, not only on whole own rows)."""
    h = w = 20
    images = np.zeros((2, h, w, 3), np.uint8)
    seg = np.stack([np.full((h, w), 1, np.uint8), np.full((h, w), 2, np.uint8)])
    mirror = None
    for mirror in (None, np.int32([1, 0])):
        _, _, maps, masks, params = run_mix(
            images, class_labels(2), device=device, method="hmix", mode="batch",
            num_classes=2, seg=seg, seg_layout="HW", hmix_ratio=0.5, mirror=mirror,
            lam=np.full(2, 0.4, np.float32), center=np.float32([[3.5 / h, 10.5 / w]] * 2))
        assert (masks[0] == 0.5).any() and (masks[0] == 0).any()
        np.testing.assert_array_equal(maps[0], np.where(masks[0] >= 0.5, 1, 2))
        expect = ref.mix_seg(seg, masks, "hmix", lam=params[:, 1],
                             center=params[:, 2:4].astype(np.int64), mirror=mirror)
        np.testing.assert_array_equal(maps, expect)


def test_bad_maps(device):
    images = np.zeros((4, 8, 8, 3), np.uint8)
    good = np.zeros((4, 8, 8), np.uint8)
    for seg, fragment in [
            (np.zeros((4, 8, 9), np.uint8),
             r"`seg` maps must have shape \(H, W\) or \(H, W, 1\) of their images, \(8, 8\); "
             r"got \(8, 9\) for sample 0"),
            (np.zeros((4, 7, 8), np.uint8), r"got \(7, 8\) for sample 0"),
            (np.zeros((4, 8, 8, 3), np.uint8), r"got \(8, 8, 3\) for sample 0"),
            (good.astype(np.float32), r"`seg` \(label maps\) must be uint8 or int32; got float32"),
            (good.astype(np.int64), r"`seg` \(label maps\) must be uint8 or int32; got int64")]:
        expect_error(fragment, images=images, seg=seg, device=device,
                     seg_layout="HWC" if seg.ndim == 4 else "HW")
    expect_error(r"`seg` \(label maps\) is not supported for sequences",
                 images=np.zeros((4, 2, 8, 8, 3), np.uint8), layout="FHWC",
                 seg=np.zeros((4, 8, 8), np.uint8), seg_layout="HW", device=device)
