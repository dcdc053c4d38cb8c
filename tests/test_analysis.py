"""dali_msda.analysis: the mask statistics, checked against brute force and known facts."""

import numpy as np
import pytest

from dali_msda import analysis


def brute_force_covariance(masks):
    """Cov(M(p), M(q)) averaged over every ordered pixel pair at each rounded distance."""
    masks = np.asarray(masks, np.float64)
    n, h, w = masks.shape
    flat = masks.reshape(n, -1)
    cov = (flat[:, :, None] * flat[:, None, :]).mean(0) - np.outer(flat.mean(0), flat.mean(0))
    ys, xs = np.divmod(np.arange(h * w), w)
    dist = np.rint(np.hypot(ys[:, None] - ys[None, :], xs[:, None] - xs[None, :])).astype(int)
    d = np.unique(dist)
    return d, np.array([cov[dist == k].mean() for k in d]), np.array([(dist == k).sum()
                                                                       for k in d])


@pytest.mark.parametrize("shape", [(7, 6, 5), (3, 4, 9), (20, 8, 8)])
def test_covariance_by_distance_equals_brute_force(shape):
    rng = np.random.default_rng(sum(shape))
    masks = rng.random(shape) ** 2 * (rng.random(shape[:1])[:, None, None] > 0.3)
    d, cov, pairs = analysis.covariance_by_distance(masks)
    d2, cov2, pairs2 = brute_force_covariance(masks)
    np.testing.assert_array_equal(d, d2)
    np.testing.assert_array_equal(pairs, pairs2)
    np.testing.assert_allclose(cov, cov2, rtol=0, atol=1e-12)


def test_covariance_along_axes_equals_brute_force():
    rng = np.random.default_rng(2)
    masks = (rng.random((9, 6, 7)) > 0.5) * rng.random((9, 1, 7))
    d, along_y, along_x = analysis.covariance_along_axes(masks)
    flat = masks.reshape(9, -1).astype(np.float64)
    cov = (flat[:, :, None] * flat[:, None, :]).mean(0) - np.outer(flat.mean(0), flat.mean(0))
    ys, xs = np.divmod(np.arange(42), 7)
    for k in d:
        same_col = (xs[:, None] == xs[None, :]) & (np.abs(ys[:, None] - ys[None, :]) == k)
        same_row = (ys[:, None] == ys[None, :]) & (np.abs(xs[:, None] - xs[None, :]) == k)
        assert along_y[k] == pytest.approx(cov[same_col].mean(), abs=1e-12)
        assert along_x[k] == pytest.approx(cov[same_row].mean(), abs=1e-12)


@pytest.fixture(scope="module")
def stats(tmp_path_factory):
    return analysis.analyse(size=32, samples=4000, hmix_ratios=(0.5,), seed=3,
                            seg_root=str(tmp_path_factory.mktemp("seg") / "data"))


def test_every_mask_mean_matches_the_label_weights(stats):
    for name, m in stats["methods"].items():
        # the label weight is the mask mean sample by sample (correct_lam), so the means agree
        assert m["mask_mean"] == pytest.approx(m["label_weight"]["mean"], abs=1e-6), name
        assert np.mean(m["per_pixel_mean"]) == pytest.approx(m["mask_mean"], abs=1e-6), name


def test_mixup_covariance_is_var_lam_at_every_distance(stats):
    m = stats["methods"]["mixup"]
    cov = np.array(m["covariance"]["value"])
    # one value per mask: the covariance of any two pixels is Var(lam), exactly
    np.testing.assert_allclose(cov, m["label_weight"]["var"], rtol=0, atol=1e-9)
    # and Var(lam) of Beta(1, 1) is 1/12; 4000 draws: standard error 0.0012, 5 of them allowed
    assert m["label_weight"]["var"] == pytest.approx(1 / 12, abs=0.006)


def test_cutmix_covariance_falls_with_distance(stats):
    cov = np.array(stats["methods"]["cutmix"]["covariance"]["value"])
    half = len(cov) // 2
    assert (np.diff(cov[:16]) < 0).all()  # nearer pixels agree more, out to half the image
    assert cov[0] > 0.15 and cov[0] - cov[16] > 0.1
    mixup = np.array(stats["methods"]["mixup"]["covariance"]["value"])
    assert cov[half] < mixup[half]  # unlike Mixup's flat line
    # HMix lies between: its box makes the curve fall, its Mixup part keeps it above CutMix far
    hmix = np.array(stats["methods"]["hmix r=0.5"]["covariance"]["value"])
    assert hmix[0] > hmix[16] and hmix[16] > cov[16]


def test_cli_writes_json_and_refuses_bad_sizes(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DALI_MSDA_CACHE", str(tmp_path / "cache"))  # ClassMix's maps
    out = analysis.main(["--size", "16", "--samples", "128", "--hmix-ratios", "0.5",
                         "--out-dir", str(tmp_path)])
    assert (tmp_path / "analysis.json").exists() and set(out["methods"]) == {
        "mixup", "cutmix", "hmix r=0.5", "gmix", "fmix", "resizemix",
        "fmix, official spectrum (ref.)", "classmix"}
    for flag, value, rule in (("--size", "1", "an integer >= 2"),
                              ("--samples", "1", "an integer >= 2"),
                              ("--alpha", "0", "a finite number > 0"),
                              ("--hmix-ratios", "1.5", "a number in [0, 1]"),
                              ("--seed", "-1", "an integer in [0, 2147483647]")):
        with pytest.raises(SystemExit):
            analysis.main([flag, value])
        assert f"argument {flag}: must be {rule}; got '{value}'" in capsys.readouterr().err


def test_fmix_official_spectrum_varies_one_cycle_across_the_width(stats):
    # at half the width a single cycle is at its opposite phase: along a row the official
    # masks decorrelate far more than the intended ones (0.01 against 0.05 over seeds 3-5 at
    # 4000 masks); down a column, where both use the full spectrum, they agree (0.09 both).
    # The intended masks are not isotropic either: complex noise in the rfft grid's fx = 0
    # column has half the power of a conjugate pair (spec 9)
    official = stats["methods"]["fmix, official spectrum (ref.)"]["covariance_along_axes"]
    intended = stats["methods"]["fmix"]["covariance_along_axes"]
    assert official["along_rows"][16] < intended["along_rows"][16] - 0.02
    assert abs(official["down_columns"][16] - intended["down_columns"][16]) < 0.02
    assert intended["along_rows"][16] < intended["down_columns"][16] - 0.02


def test_classmix_statistics(stats):
    """ClassMix pastes half of the partner's classes: with these maps (a background texture and
    one to three objects, so n = 2..4 classes, k = 1..2 of them) its label weight spreads over
    (0, 1) with both ends reachable, and its mask is binary."""
    m = stats["methods"]["classmix"]
    hist = np.array(m["label_weight"]["histogram"])
    assert 0.25 < m["label_weight"]["mean"] < 0.75
    assert (hist[:5] > 0).any() and (hist[-5:] > 0).any()  # near 0 and near 1 both occur
    cov = m["covariance"]["value"]
    assert cov[0] == pytest.approx(m["mask_mean"] - m["mask_mean"] ** 2, abs=0.02)  # binary
    assert cov[0] > cov[10] > 0  # nearby pixels agree more than distant ones


def test_classmix_masks_follow_the_maps_batch_after_batch():
    """sample_masks feeds the label maps in turn, batch after batch (map (it * batch + k) % M to
    sample k of batch it), so that every map counts: each map here has two classes split at its
    own column, and ClassMix pastes one of the partner's two, so each mask shows which map its
    partner had."""
    size, batch, n_maps = 16, 4, 6
    maps = np.zeros((n_maps, size, size), np.uint8)
    for m in range(n_maps):
        maps[m, :, 2 + m:] = 1
    masks, _ = analysis.sample_masks("classmix", size, 12, batch=batch, maps=maps)
    for n, mask in enumerate(masks):
        it, k = divmod(n, batch)
        partner = maps[(it * batch + batch - 1 - k) % n_maps]
        assert any(np.array_equal(mask == 0, partner == c) for c in (0, 1)), (n, mask[0])
