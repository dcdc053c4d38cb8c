"""method="resizemix" in the operator (spec 10) against reference.py, bit for bit: the op
reports the scale tau (as `lam`) and the centre it used (`output_params`), the reference resizes
the partner with them. Then the draws: tau ~ U(scale_min, scale_max), one per batch in batch
mode with a centre per sample (the official code), centres uniform; and the arguments' errors."""

import numpy as np
import pytest
from scipy import stats

from dali_msda import reference as ref

from conftest import class_labels, random_images, run_mix
from test_errors import expect_error
from test_properties import LEVEL
from test_reference_match import (LAYOUT_SHAPES, SIZES, assert_images_match,
                                  check_against_reference, sample_shape)


INTERPS = ["nearest", "bilinear"]


@pytest.mark.parametrize("interp", INTERPS)
@pytest.mark.parametrize("layout", list(LAYOUT_SHAPES))
@pytest.mark.parametrize("dtype", [np.uint8, np.float16, np.float32])
@pytest.mark.parametrize("mode", ["batch", "elem"])
def test_matches_reference(device, mode, dtype, layout, interp):
    params = check_against_reference(device, "resizemix", mode, dtype, layout, batch=6,
                                     resize_interp=interp)
    assert ((params[:, 1] >= 0.1) & (params[:, 1] <= 0.8)).all()  # the default scales


@pytest.mark.parametrize("interp", INTERPS)
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("layout", list(LAYOUT_SHAPES))
@pytest.mark.parametrize("dtype", [np.uint8, np.float16, np.float32])
@pytest.mark.parametrize("mode", ["batch", "elem"])
def test_matches_reference_at_realistic_sizes(device, mode, dtype, layout, size, interp):
    check_against_reference(device, "resizemix", mode, dtype, layout, batch=5,
                            shape=sample_shape(layout, *size), seed=size[1] + len(layout),
                            resize_interp=interp)


@pytest.mark.parametrize("interp", INTERPS)
@pytest.mark.parametrize("layout", ["HWC", "CHW"])
@pytest.mark.parametrize("out_dtype", [np.float16, np.float32])
def test_fused_normalisation_mirror_and_layout(device, layout, out_dtype, interp):
    """The partner is flipped by its own flag, then resized; normalised, transposed."""
    rng = np.random.default_rng(6)
    batch, shape = 6, sample_shape(layout, 224, 200)
    images = random_images(rng, batch, shape, np.uint8)
    labels = class_labels(batch)
    mirror = np.array([1, 0, 1, 1, 0, 0])
    lam = rng.uniform(0.1, 0.9, batch).astype(np.float32)
    center = rng.uniform(0, 1, (batch, 2)).astype(np.float32)
    other = {"HWC": "CHW", "CHW": "HWC"}[layout]
    norm = dict(mean=[124.0, 116.0, 104.0], std=[58.0, 57.0, 57.5])
    from conftest import NP_TO_DALI
    mixed, targets, masks, params = run_mix(
        images, labels, device=device, layout=layout, method="resizemix", mode="elem",
        num_classes=batch, lam=lam, center=center, mirror=mirror, output_layout=other,
        dtype=NP_TO_DALI[out_dtype], resize_interp=interp, **norm)
    exp, exp_t, exp_m = ref.mix(images, labels, "resizemix", lam=lam, center=center,
                                layout=layout, num_classes=batch, mirror=mirror,
                                output_layout=other, dtype=out_dtype, resize_interp=interp,
                                **norm)
    np.testing.assert_array_equal(masks, exp_m)
    assert_images_match(mixed, exp)
    np.testing.assert_allclose(targets, exp_t, rtol=0, atol=1e-6)


def test_partner_is_the_whole_image_resized():
    """Independent of reference.resized_partner: a partner whose pixel values encode their
    own (row, col) shows, inside the box, exactly the nearest-neighbour grid of the whole
    partner, and the own image everywhere else."""
    h, w, batch = 224, 160, 2
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    coded = np.stack([rows, cols, np.zeros_like(rows)], -1).astype(np.float32)
    images = np.stack([np.full((h, w, 3), -1.0, np.float32), coded])
    tau = np.float32(0.37)
    mixed, targets, masks, params = run_mix(
        images, class_labels(batch), method="resizemix", mode="elem", num_classes=batch,
        lam=np.full(batch, tau), center=np.array([[0.99, 0.02]] * batch, np.float32))
    bh, bw = int(np.floor(h * float(tau))), int(np.floor(w * float(tau)))
    inside = masks[0] == 0.0
    ys, xs = np.nonzero(inside)
    assert inside.sum() == bh * bw and ys.max() == h - 1 and xs.min() == 0  # shifted inside
    y0, x0 = ys.min(), xs.min()
    got = mixed[0][inside].reshape(bh, bw, 3)
    np.testing.assert_array_equal(got[..., 0], np.broadcast_to((np.arange(bh) * h // bh)[:, None],
                                                               (bh, bw)))
    np.testing.assert_array_equal(got[..., 1], np.broadcast_to(np.arange(bw) * w // bw, (bh, bw)))
    assert (mixed[0][~inside] == -1.0).all()
    assert targets[0, 0] == pytest.approx(1 - bh * bw / (h * w), abs=1e-6)
    assert y0 == h - bh and x0 == 0


def test_bilinear_reproduces_a_ramp():
    """Independent of reference.py: bilinear resizing (align_corners=False) of a ramp is the
    ramp at the source coordinates (i + 1/2) H / h - 1/2 (clamped at 0): the op shows exactly
    that, to float32 rounding, inside the box; and a mirrored partner's column ramp reversed."""
    h, w, batch = 224, 200, 2
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    ramp = np.stack([rows, cols, cols], -1).astype(np.float32)
    images = np.stack([np.full((h, w, 3), -1.0, np.float32), ramp])
    tau = np.float32(0.45)
    for flip in (0, 1):
        mixed, _, masks, _ = run_mix(
            images, class_labels(batch), method="resizemix", mode="elem", num_classes=batch,
            lam=np.full(batch, tau), center=np.full((batch, 2), 0.5, np.float32),
            resize_interp="bilinear", mirror=np.array([0, flip]))
        inside = masks[0] == 0.0
        bh, bw = int(np.floor(h * float(tau))), int(np.floor(w * float(tau)))
        got = mixed[0][inside].reshape(bh, bw, 3)
        sy = np.maximum((np.arange(bh) + 0.5) * h / bh - 0.5, 0)
        sx = np.maximum((np.arange(bw) + 0.5) * w / bw - 0.5, 0)
        np.testing.assert_allclose(got[..., 0], np.broadcast_to(sy[:, None], (bh, bw)),
                                   atol=1e-3)
        want_x = (w - 1 - sx) if flip else sx
        np.testing.assert_allclose(got[..., 1], np.broadcast_to(want_x, (bh, bw)), atol=1e-3)


@pytest.mark.parametrize("interp", INTERPS)
def test_a_box_of_the_whole_image_is_the_partner(device, interp):
    """Independent of reference.py: at tau = 1 the box is the whole image and the partner is
    shown at its own size, so each mixed sample is its partner exactly (mirrored by the
    partner's flag), its label weight 0. (That the last row's and column's taps stay inside
    the partner is checked access by access in test_kernel_emulation's twin of this test.)"""
    rng = np.random.default_rng(9)
    batch, h, w = 4, 224, 224
    images = random_images(rng, batch, (h, w, 3), np.float32)
    mirror = np.array([0, 1, 1, 0])
    mixed, targets, masks, params = run_mix(
        images, class_labels(batch), device=device, method="resizemix", mode="elem",
        num_classes=batch, lam=np.ones(batch, np.float32),
        center=rng.uniform(0, 1, (batch, 2)).astype(np.float32), resize_interp=interp,
        mirror=mirror)
    assert (masks == 0.0).all()
    for i in range(batch):
        j = batch - 1 - i
        np.testing.assert_array_equal(mixed[i], images[j][:, ::-1] if mirror[j] else images[j])
        assert targets[i, i] == 0.0 and targets[i, j] == 1.0


def test_draws():
    """tau ~ U(scale_min, scale_max) (KS, and its range), centres uniform over the rows and the
    columns (chi-square; images not square, so that a centre drawn over the other side shows);
    batch mode: one tau per batch, centres differing across the batch and uniform too (drawn
    from the batch's stream, sample after sample)."""
    h, w = 48, 80
    images = np.zeros((200, h, w, 1), np.uint8)
    runs = run_mix(images, class_labels(200), iterations=10, method="resizemix", mode="elem",
                   num_classes=200, scale_min=0.2, scale_max=0.6, output_mask=False, seed=3)
    p = np.concatenate([r[-1] for r in runs])
    tau = p[:, 1].astype(np.float64)
    assert tau.min() >= 0.2 and tau.max() <= 0.6
    assert stats.kstest(tau, stats.uniform(0.2, 0.4).cdf).pvalue > LEVEL

    def uniform_centres(p):
        for k, n in ((2, h), (3, w)):
            assert p[:, k].min() >= 0 and p[:, k].max() < n
            assert stats.chisquare(np.bincount(p[:, k].astype(int), minlength=n)).pvalue > LEVEL

    uniform_centres(p)
    runs = run_mix(images, class_labels(200), iterations=5, method="resizemix", mode="batch",
                   num_classes=200, output_mask=False, seed=4)
    for r in runs:
        prm = r[-1]
        assert (prm[:, 1] == prm[0, 1]).all()  # one tau
        assert len({(a, b) for a, b in prm[:, 2:4]}) > 1  # a centre per sample
    uniform_centres(np.concatenate([r[-1] for r in runs]))


def test_bad_resizemix_arguments(device):
    expect_error(r"`scale_min` must be in \(0, 1\]; got 0", method="resizemix",
                 scale_min=0.0, device=device)
    expect_error(r"`scale_max` must be in \(0, 1\]; got 1.5", method="resizemix",
                 scale_max=1.5, device=device)
    expect_error(r"`scale_min` must be <= `scale_max`; got 0.7 > 0.5", method="resizemix",
                 scale_min=0.7, scale_max=0.5, device=device)
    expect_error(r"`resize_interp` must be \"nearest\" or \"bilinear\"; got \"cubic\"",
                 method="resizemix", resize_interp="cubic", device=device)
