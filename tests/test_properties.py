"""Spec section 8: properties every implementation must satisfy, including statistical tests of
the operator's own random draws (lam ~ Beta(alpha, alpha), uniform centres, apply probability)."""

import numpy as np
import pytest
from scipy import stats

from dali_msda import reference as ref

from conftest import class_labels, random_images, run_mix

METHODS = ["mixup", "cutmix", "hmix", "gmix"]


def own_weight(targets, batch):
    """Label weight of each sample's own class (labels are 0..B-1, distinct)."""
    return targets[np.arange(batch), np.arange(batch)]


@pytest.mark.parametrize("mode", ["batch", "elem"])
@pytest.mark.parametrize("method", METHODS)
def test_targets_are_distributions_and_match_the_mask(device, method, mode):
    batch = 8
    rng = np.random.default_rng(0)
    images = random_images(rng, batch, (20, 24, 3), np.uint8)
    for mixed, targets, masks, params in run_mix(images, class_labels(batch), iterations=5,
                                                 device=device, method=method, mode=mode,
                                                 num_classes=batch, alpha=0.7):
        np.testing.assert_allclose(targets.sum(axis=1), 1.0, atol=1e-6)
        assert targets.min() >= 0.0 and targets.max() <= 1.0
        mask_mean = masks.astype(np.float64).mean(axis=(1, 2))
        np.testing.assert_allclose(own_weight(targets, batch), mask_mean, atol=1e-6)
        assert masks.min() >= 0.0 and masks.max() <= 1.0


def test_cutmix_box_is_partner_and_outside_is_own(device):
    batch = 6
    rng = np.random.default_rng(1)
    images = random_images(rng, batch, (32, 40, 3), np.float32)
    for mixed, _, masks, params in run_mix(images, class_labels(batch), iterations=4,
                                           device=device, method="cutmix", mode="elem",
                                           num_classes=batch):
        assert set(np.unique(masks)) <= {0.0, 1.0}
        for i in range(batch):
            j = batch - 1 - i
            inside = masks[i] == 0.0
            np.testing.assert_array_equal(mixed[i][inside], images[j][inside])
            np.testing.assert_array_equal(mixed[i][~inside], images[i][~inside])
            if inside.any():  # the box is a rectangle
                rows, cols = np.nonzero(inside)
                assert inside[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()


def test_hmix_inside_partner_outside_blend(device):
    batch = 4
    rng = np.random.default_rng(2)
    images = random_images(rng, batch, (30, 30, 3), np.float32)
    mixed, targets, masks, params = run_mix(images, class_labels(batch), device=device,
                                            method="hmix", mode="elem", num_classes=batch,
                                            lam=[0.6, 0.3, 0.45, 0.8],
                                            center=[[0.5, 0.5]] * batch)
    for i in range(batch):
        j = batch - 1 - i
        inside = masks[i] == 0.0
        assert inside.any()
        np.testing.assert_array_equal(mixed[i][inside], images[j][inside])
        a = np.unique(masks[i][~inside])
        assert a.size == 1
        expected = a[0] * images[i] + (np.float32(1) - a[0]) * images[j]
        np.testing.assert_array_equal(mixed[i][~inside], expected[~inside])
        # mean(M) = a * lam_box = lam: HMix keeps the sampled lam as label weight
        np.testing.assert_allclose(own_weight(targets, batch)[i], params[i, 1], atol=1e-6)


def test_hmix_ratio_zero_is_mixup(device):
    batch = 6
    rng = np.random.default_rng(3)
    images = random_images(rng, batch, (16, 16, 3), np.uint8)
    kw = dict(device=device, mode="elem", num_classes=batch, seed=99, iterations=3)
    hmix = run_mix(images, class_labels(batch), method="hmix", hmix_ratio=0.0, **kw)
    mixup = run_mix(images, class_labels(batch), method="mixup", **kw)
    for a, b in zip(hmix, mixup):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)


def test_gmix_centre_and_label_gap(device):
    batch = 64
    rng = np.random.default_rng(4)
    images = random_images(rng, batch, (32, 32, 1), np.float32)
    for _, targets, masks, params in run_mix(images, class_labels(batch), iterations=3,
                                             device=device, method="gmix", mode="elem",
                                             num_classes=batch):
        w = own_weight(targets, batch)
        for i in range(batch):
            if i == batch - 1 - i:
                continue
            lam, cy, cx = params[i, 1], int(params[i, 2]), int(params[i, 3])
            assert masks[i, cy, cx] == (1.0 if lam < 0.5 else 0.0)
            if lam < 0.5:
                assert w[i] <= 0.435
            else:
                assert w[i] >= 0.565


def test_gmix_factors_equal_the_spec_formula():
    for lam, cy, cx, h, w in [(0.1, 3, 5, 12, 17), (0.49, 0, 0, 224, 224), (0.8, 100, 7, 64, 160)]:
        mask, weight = ref.gmix_mask(lam, cy, cx, h, w)
        direct = ref.gmix_mask_direct(lam, cy, cx, h, w)
        np.testing.assert_allclose(mask, direct, atol=1e-6)
        assert abs(weight - direct.mean()) < 1e-6


def test_mixup_lam_one_and_prob_zero_return_the_input(device):
    batch = 4
    rng = np.random.default_rng(5)
    images = random_images(rng, batch, (10, 12, 3), np.float32)
    mixed, targets, masks, _ = run_mix(images, class_labels(batch), device=device,
                                       method="mixup", num_classes=batch, lam=[1.0] * batch)
    np.testing.assert_array_equal(mixed, images)
    np.testing.assert_array_equal(targets, np.eye(batch, dtype=np.float32))
    eps, k = 0.1, 10
    for method in METHODS:
        for mode in ["batch", "elem"]:
            mixed, targets, masks, params = run_mix(images, class_labels(batch), device=device,
                                                    method=method, mode=mode, prob=0.0,
                                                    num_classes=k, label_smoothing=eps)
            np.testing.assert_array_equal(mixed, images)
            np.testing.assert_array_equal(masks, 1.0)
            assert (params[:, 0] == 0).all()
            smooth = np.full((batch, k), eps / k)
            smooth[np.arange(batch), np.arange(batch)] += 1 - eps
            np.testing.assert_allclose(targets, smooth, atol=1e-7)


@pytest.mark.parametrize("alpha", [0.2, 1.0, 3.0])
def test_lam_follows_beta(alpha):
    batch = 2000
    images = np.zeros((batch, 2, 2, 1), dtype=np.uint8)
    _, _, _, params = run_mix(images, class_labels(batch), method="mixup", mode="elem",
                              alpha=alpha, num_classes=batch, seed=17)
    lam = params[:, 1].astype(np.float64)
    assert stats.kstest(lam, stats.beta(alpha, alpha).cdf).pvalue > 1e-3
    # and a wrong alpha is rejected: the test has power
    assert stats.kstest(lam, stats.beta(alpha * 2, alpha * 2).cdf).pvalue < 1e-3


def test_batch_mode_lam_follows_beta_across_batches():
    batch, iters, alpha = 4, 400, 0.5
    images = np.zeros((batch, 2, 2, 1), dtype=np.uint8)
    runs = run_mix(images, class_labels(batch), method="mixup", mode="batch", alpha=alpha,
                   num_classes=batch, iterations=iters, seed=3)
    lam = np.array([r[3][0, 1] for r in runs], dtype=np.float64)
    assert all((r[3] == r[3][0]).all() for r in runs)
    assert len(np.unique(lam)) == iters
    assert stats.kstest(lam, stats.beta(alpha, alpha).cdf).pvalue > 1e-3


def test_centres_are_uniform():
    batch, h, w = 3000, 7, 13
    images = np.zeros((batch, h, w, 1), dtype=np.uint8)
    _, _, _, params = run_mix(images, class_labels(batch), method="cutmix", mode="elem",
                              num_classes=batch, seed=23)
    for counts, size in [(np.bincount(params[:, 2].astype(int), minlength=h), h),
                         (np.bincount(params[:, 3].astype(int), minlength=w), w)]:
        assert counts.size == size
        assert stats.chisquare(counts).pvalue > 1e-3
    # rows and columns are drawn independently
    table = np.zeros((h, w))
    np.add.at(table, (params[:, 2].astype(int), params[:, 3].astype(int)), 1)
    assert stats.chi2_contingency(table).pvalue > 1e-3


@pytest.mark.parametrize("prob", [0.25, 0.8])
def test_apply_probability(prob):
    batch = 2000
    images = np.zeros((batch, 2, 2, 1), dtype=np.uint8)
    _, _, masks, params = run_mix(images, class_labels(batch), method="mixup", mode="elem",
                                  prob=prob, num_classes=batch, seed=31)
    applied = int(params[:, 0].sum())
    assert stats.binomtest(applied, batch, prob).pvalue > 1e-3
    unmixed = (params[:, 0] == 0)
    np.testing.assert_array_equal(masks[unmixed], 1.0)
