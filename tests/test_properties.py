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


# ---- statistical tests of the operator's own draws ------------------------------------------
# Each test rejects at level LEVEL (two-sided) and draws enough for a power of at least POWER
# against a 10 % error in the parameter it checks, in either direction; the power is computed
# below (and the normal approximation behind it checked by simulation in
# test_stated_power_holds_by_simulation), so a test that cannot see such an error fails.
LEVEL, POWER, ERROR = 1e-3, 0.9, 0.10
Z = stats.norm.isf(LEVEL / 2)


def draws(n, batch=1000, **kwargs):
    """`params` rows of n samples drawn in elem mode, over several iterations of `batch`."""
    images = np.zeros((batch, 1, 1, 1), dtype=np.uint8)
    runs = run_mix(images, class_labels(batch, 2), iterations=-(-n // batch), mode="elem",
                   num_classes=2, output_mask=False, **kwargs)
    runs = [runs] if isinstance(runs, tuple) else runs
    return np.concatenate([r[-1] for r in runs])[:n]


def beta_spread(alpha):
    """E and Var of S = (lam - 1/2)^2 for lam ~ Beta(alpha, alpha): E S = 1 / (4 (2a + 1)),
    E S^2 = 3 / (16 (2a + 1)(2a + 3)). The mean of lam is 1/2 whatever alpha, so the spread is
    what alpha sets; S is bounded, so float32 rounding of lam near 0 and 1 does not matter."""
    m = 1.0 / (4.0 * (2 * alpha + 1))
    return m, 3.0 / (16.0 * (2 * alpha + 1) * (2 * alpha + 3)) - m * m


def alpha_z(lam, alpha):
    m, v = beta_spread(alpha)
    s = (np.asarray(lam, np.float64) - 0.5) ** 2
    return (s.mean() - m) / np.sqrt(v / len(s))


def alpha_test_power(n, alpha, true_alpha):
    """P(|alpha_z| > Z) when lam ~ Beta(true_alpha, true_alpha) (normal approximation)."""
    m0, v0 = beta_spread(alpha)
    m1, v1 = beta_spread(true_alpha)
    lo, hi = m0 - Z * np.sqrt(v0 / n), m0 + Z * np.sqrt(v0 / n)
    sd1 = np.sqrt(v1 / n)
    return stats.norm.cdf((lo - m1) / sd1) + stats.norm.sf((hi - m1) / sd1)


def binomial_power(n, p, true_p):
    """P(two-sided exact binomial test at LEVEL rejects p) when the count ~ Bin(n, true_p)."""
    k = np.arange(n + 1)
    pmf0 = stats.binom.pmf(k, n, p)
    pvals = np.array([min(1.0, pmf0[pmf0 <= pmf0[i] * (1 + 1e-7)].sum()) for i in k])
    return stats.binom.pmf(k[pvals < LEVEL], n, true_p).sum()


def wrong(value):
    return (value * (1 - ERROR), value * (1 + ERROR))


@pytest.mark.parametrize("alpha", [0.2, 1.0, 3.0])
def test_lam_follows_beta(alpha):
    n = 10000
    for alt in wrong(alpha):  # the stated power: >= 0.9 against alpha off by 10 %
        assert alpha_test_power(n, alpha, alt) >= POWER, (alpha, alt)
    lam = draws(n, method="mixup", alpha=alpha, seed=17)[:, 1].astype(np.float64)
    assert np.mean(lam[1:] == lam[:-1]) < 0.01  # a fresh draw per sample
    assert abs(alpha_z(lam, alpha)) < Z  # alpha itself
    assert stats.kstest(lam, stats.beta(alpha, alpha).cdf).pvalue > LEVEL  # the whole shape


def test_batch_mode_lam_follows_beta_across_batches():
    batch, iters, alpha = 2, 6000, 0.5
    for alt in wrong(alpha):
        assert alpha_test_power(iters, alpha, alt) >= POWER
    images = np.zeros((batch, 1, 1, 1), dtype=np.uint8)
    runs = run_mix(images, class_labels(batch), method="mixup", mode="batch", alpha=alpha,
                   num_classes=batch, iterations=iters, seed=3, output_mask=False)
    params = np.stack([r[-1] for r in runs])
    assert (params == params[:, :1]).all()  # one draw per batch
    lam = params[:, 0, 1].astype(np.float64)
    assert np.mean(lam[1:] == lam[:-1]) < 0.01  # a fresh draw per batch
    assert abs(alpha_z(lam, alpha)) < Z
    assert stats.kstest(lam, stats.beta(alpha, alpha).cdf).pvalue > LEVEL


def uniform_counts(values, size):
    counts = np.bincount(values, minlength=size)
    assert counts.size == size, "a value outside [0, size)"
    return counts


def centre_test_power(n, size, reps=200, seed=0):
    """Simulated power of the chi-square uniformity test of `n` centres against the centre's
    range off by 10 % (drawn over 0.9 size, or over 1.1 size and clipped to the last pixel)."""
    rng = np.random.default_rng(seed)
    powers = []
    for span in (int(size * (1 - ERROR)), int(size * (1 + ERROR))):
        hits = 0
        for _ in range(reps):
            v = np.minimum(rng.integers(0, span, n), size - 1)
            hits += stats.chisquare(np.bincount(v, minlength=size)).pvalue < LEVEL
        powers.append(hits / reps)
    return min(powers)


def test_centres_are_uniform():
    n, h, w = 20000, 224, 296
    for size in (h, w):
        assert centre_test_power(n, size) >= POWER
    images = np.zeros((1000, h, w, 1), dtype=np.uint8)
    runs = run_mix(images, class_labels(1000, 2), iterations=n // 1000, method="cutmix",
                   mode="elem", num_classes=2, seed=23, output_mask=False)
    params = np.concatenate([r[-1] for r in runs])
    cy, cx = params[:, 2].astype(int), params[:, 3].astype(int)
    assert stats.chisquare(uniform_counts(cy, h)).pvalue > LEVEL
    assert stats.chisquare(uniform_counts(cx, w)).pvalue > LEVEL
    # rows and columns are drawn independently (8 x 8 bins keep the expected counts large)
    table = np.zeros((8, 8))
    np.add.at(table, (cy * 8 // h, cx * 8 // w), 1)
    assert stats.chi2_contingency(table).pvalue > LEVEL


@pytest.mark.parametrize("prob", [0.25, 0.8])
def test_apply_probability(prob):
    n = 10000
    for alt in wrong(prob):
        assert binomial_power(n, prob, alt) >= POWER, alt
    params = draws(n, method="mixup", prob=prob, seed=31)
    applied = int(params[:, 0].sum())
    assert stats.binomtest(applied, n, prob).pvalue > LEVEL


def test_unapplied_samples_are_unmixed():
    batch = 400
    images = np.zeros((batch, 2, 2, 1), dtype=np.uint8)
    _, _, masks, params = run_mix(images, class_labels(batch), method="mixup", mode="elem",
                                  prob=0.5, num_classes=batch, seed=31)
    unmixed = params[:, 0] == 0
    assert 0 < unmixed.sum() < batch
    np.testing.assert_array_equal(masks[unmixed], 1.0)


def test_stated_power_holds_by_simulation():
    """The normal approximation behind alpha_test_power, checked by simulating the test on
    NumPy's Beta draws: at the sample sizes above, a 10 % error in alpha is rejected at least
    POWER of the time (less 0.05 for the simulation's own noise), and the true alpha rarely."""
    rng = np.random.default_rng(0)
    reps = 300
    for alpha, n in [(0.2, 10000), (1.0, 10000), (3.0, 10000), (0.5, 6000)]:
        for alt in wrong(alpha):
            rejected = np.mean([abs(alpha_z(rng.beta(alt, alt, n), alpha)) > Z
                                for _ in range(reps)])
            assert rejected >= POWER - 0.05, (alpha, alt, rejected)
        false_alarms = np.mean([abs(alpha_z(rng.beta(alpha, alpha, n), alpha)) > Z
                                for _ in range(reps)])
        assert false_alarms <= 0.02


# ---- the support of every discrete draw, exactly --------------------------------------------
# A distribution test at a fixed seed can pass a draw whose range is off by one at an edge (a
# centre drawn from [0, H - 1) gave p = 0.003 in test_centres_are_uniform, above its level).
# On small sizes, every value of the support is drawn many times over: the set of values seen
# must be the support, exactly (a value missing when the draw is right has probability below
# size * (1 - 1 / size) ** n, under 1e-100 here).

@pytest.mark.parametrize("method,mode", [("cutmix", "elem"), ("cutmix", "batch"),
                                         ("resizemix", "batch"), ("fmix", "elem")])
@pytest.mark.parametrize("h,w", [(1, 1), (2, 3), (5, 7)])
def test_every_centre_of_the_support_is_drawn_and_no_other(method, mode, h, w):
    batch, iterations = 64, 30  # n = 1920 draws per axis (batch mode: 30, but ResizeMix
    # draws a centre per sample in batch mode, the others one per batch: see below)
    images = np.zeros((batch, h, w, 1), dtype=np.uint8)
    runs = run_mix(images, class_labels(batch), iterations=iterations, method=method,
                   mode=mode, num_classes=batch, seed=h * 10 + w, output_mask=False)
    params = np.stack([r[-1] for r in runs])  # iterations x batch x (apply, lam, cy, cx)
    if mode == "batch" and method != "resizemix":
        assert (params == params[:, :1]).all()
        params = params[:, :1]
    cy, cx = params[..., 2].ravel(), params[..., 3].ravel()
    if params[..., 2].size < 400 and h * w > 1:  # one draw per batch: too few; draw more
        more = run_mix(images[:2], class_labels(2), iterations=600, method=method, mode=mode,
                       num_classes=2, seed=h * 10 + w + 1, output_mask=False)
        cy = np.concatenate([cy, [r[-1][0, 2] for r in more]])
        cx = np.concatenate([cx, [r[-1][0, 3] for r in more]])
    assert set(cy.astype(int)) == set(range(h)), sorted(set(cy))
    assert set(cx.astype(int)) == set(range(w)), sorted(set(cx))


def test_relative_centres_reach_both_edges():
    """An explicit relative centre maps [0, 1) onto every pixel: 0 -> 0, just below 1 -> the
    last pixel, k / size -> k (spec 2)."""
    h, w, batch = 5, 7, 8
    rel = np.array([0.0, 0.9999999, 1 / 5, 4 / 5, 1 / 7, 6 / 7, 0.5, 0.2999], np.float32)
    center = np.stack([rel, rel[::-1]], 1)
    _, _, _, params = run_mix(np.zeros((batch, h, w, 1), np.uint8), class_labels(batch),
                              method="cutmix", mode="elem", num_classes=batch,
                              center=center, lam=np.full(batch, 0.5, np.float32))
    expect = [[ref.center_from_relative(a, h), ref.center_from_relative(b, w)] for a, b in center]
    np.testing.assert_array_equal(params[:, 2:], expect)
    assert params[0, 2] == 0 and params[1, 2] == h - 1  # both edges, rows
    assert params[-1, 3] == 0 and params[-2, 3] == w - 1  # and columns (rel reversed)
    assert params[2, 2] == 1 and params[3, 2] == 4 and params[4, 2] == 0


@pytest.mark.parametrize("prob", [0.0, 0.5, 1.0])
def test_apply_decision_takes_both_values_only_when_it_may(prob):
    params = draws(2000, method="mixup", prob=prob, seed=41)
    seen = set(params[:, 0].astype(int))
    assert seen == ({0} if prob == 0.0 else {1} if prob == 1.0 else {0, 1}), seen
