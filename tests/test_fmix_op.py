"""method="fmix" in the operator (spec 9) against reference.py.

Given the noise (`fmix_noise`), both backends equal the reference bit for bit: masks, every
dtype and layout, the fused arguments, at the sizes users run. The rounding coin is not an
input: it is read off the op's mask (ceil or floor of lam H W ones) and then checked to be fair.
With the op's own noise (Philox normals) the masks must have the reference's statistics: mask
means ~ Beta(alpha, alpha) and the covariance by distance of masks from NumPy's noise.
"""

import numpy as np
import pytest
from scipy import stats

from dali_msda import analysis
from dali_msda import reference as ref

from conftest import NP_TO_DALI, class_labels, random_images, run_mix
from test_errors import expect_error
from test_properties import LEVEL, binomial_power
from test_reference_match import LAYOUT_SHAPES, assert_images_match, sample_shape


def noise_for(rng, batch, h, w, same=False):
    noise = rng.standard_normal((1 if same else batch, h, w // 2 + 1, 2)).astype(np.float32)
    return np.repeat(noise, batch, 0) if same else noise


def round_up_from(masks, lam):
    """The op's coin per sample: its mask has ceil(lam H W) ones (True) or floor (False)."""
    h, w = masks.shape[1:]
    ones = masks.reshape(len(masks), -1).sum(1)
    ceil = np.array([np.ceil(float(v) * h * w) for v in lam])
    floor = np.array([np.floor(float(v) * h * w) for v in lam])
    assert np.all((ones == ceil) | (ones == floor)), (ones, ceil, floor)
    return ones == ceil


def check(device, mode, dtype, layout, shape, seed, out_dtype=None, **fused):
    rng = np.random.default_rng(seed)
    batch = 5
    images = random_images(rng, batch, shape, dtype)
    labels = class_labels(batch)
    h, w = shape[layout.index("H")], shape[layout.index("W")]
    noise = noise_for(rng, batch, h, w, same=mode == "batch")
    lam = np.full(batch, rng.uniform(0.05, 0.95), np.float32) if mode == "batch" else \
        rng.uniform(0, 1, batch).astype(np.float32)
    if mode == "pair":  # one draw per pair: sample i's for i and batch - 1 - i
        src = np.minimum(np.arange(batch), batch - 1 - np.arange(batch))
        noise, lam = noise[src], lam[src]
    op_kw = dict(fused)
    if out_dtype is not None:
        op_kw["dtype"] = NP_TO_DALI[out_dtype]
    mixed, targets, masks, params = run_mix(
        images, labels, device=device, layout=layout, method="fmix", mode=mode,
        num_classes=batch, seed=seed, lam=lam, fmix_noise=noise, **op_kw)
    apply = params[:, 0] == 1.0
    assert apply.all() and np.array_equal(params[:, 1], lam)
    mixed_rows = np.arange(batch) != batch // 2
    round_up = round_up_from(masks[mixed_rows], lam[mixed_rows])
    round_up = np.insert(round_up, batch // 2, False)  # the middle sample is not mixed
    ref_kw = {k: v for k, v in fused.items() if k != "output_layout"}
    exp_mixed, exp_targets, exp_masks = ref.mix(
        images, labels, "fmix", lam=lam, center=np.zeros((batch, 2), np.int64), layout=layout,
        num_classes=batch, dtype=out_dtype, fmix_noise=noise, fmix_round_up=round_up,
        output_layout=fused.get("output_layout"), **ref_kw)
    np.testing.assert_array_equal(masks, exp_masks)
    assert_images_match(mixed, exp_mixed)
    np.testing.assert_allclose(targets, exp_targets, rtol=0, atol=1e-6)
    # the label weight is the mask mean, exactly (to float32 rounding of the target)
    own = targets[np.arange(batch), np.arange(batch)]
    np.testing.assert_allclose(own, masks.reshape(batch, -1).mean(1), rtol=0, atol=1e-6)
    if mode == "batch":
        mixed_rows = [i for i in range(batch) if i != batch // 2]
        assert all(np.array_equal(masks[i], masks[mixed_rows[0]]) for i in mixed_rows)
    return masks


@pytest.mark.parametrize("layout", list(LAYOUT_SHAPES))
@pytest.mark.parametrize("dtype", [np.uint8, np.float16, np.float32])
@pytest.mark.parametrize("mode", ["batch", "elem"])
def test_matches_reference(device, mode, dtype, layout):
    check(device, mode, dtype, layout, LAYOUT_SHAPES[layout], seed=3)


@pytest.mark.parametrize("size", [(224, 224), (200, 296), (31, 45)], ids=lambda s: "x".join(
    map(str, s)))
@pytest.mark.parametrize("layout", list(LAYOUT_SHAPES))
@pytest.mark.parametrize("mode", ["batch", "elem"])
def test_matches_reference_at_realistic_sizes(device, mode, layout, size):
    """ImageNet sizes (several CPU tasks and GPU blocks per sample), a non-square one and odd
    widths (W // 2 + 1 bins)."""
    shape = sample_shape(layout, *size)
    seed = size[1] + len(layout) + (mode == "elem")
    dtype, out_dtype = [(np.uint8, None), (np.float16, np.float32), (np.uint8, np.float16)][
        seed % 3]
    check(device, mode, dtype, layout, shape, seed, out_dtype=out_dtype)


@pytest.mark.parametrize("layout", ["HWC", "CHW"])
def test_fused_normalisation_mirror_and_layout(device, layout):
    rng = np.random.default_rng(8)
    other = {"HWC": "CHW", "CHW": "HWC"}[layout]
    check(device, "elem", np.uint8, layout, sample_shape(layout, 224, 224), seed=9,
          out_dtype=np.float16, mean=[124.0, 116.0, 104.0], std=[58.0, 57.0, 57.5],
          mirror=rng.integers(0, 2, 5), output_layout=other)


def test_drawn_masks_batch_and_elem(device):
    """Without fmix_noise: binary masks with ceil / floor(lam H W) ones; one mask for the whole
    batch in batch mode, a different one per sample in elem mode; the same seed repeats."""
    batch, h, w = 8, 40, 56
    images = np.zeros((batch, h, w, 3), np.uint8)
    labels = class_labels(batch)
    for mode in ("batch", "elem"):
        runs = [run_mix(images, labels, device=device, method="fmix", mode=mode,
                        num_classes=batch, seed=11) for _ in range(2)]
        (_, targets, masks, params), again = runs
        np.testing.assert_array_equal(masks, again[2])
        assert set(np.unique(masks)) <= {0.0, 1.0}
        round_up_from(masks, params[:, 1])
        own = targets[np.arange(batch), np.arange(batch)]
        np.testing.assert_allclose(own, masks.reshape(batch, -1).mean(1), atol=1e-6)
        distinct = {masks[i].tobytes() for i in range(batch)}
        assert len(distinct) == (1 if mode == "batch" else batch), mode


def test_elem_mode_masks_differ_for_equal_explicit_draws(device):
    """In elem mode every sample draws its own noise: samples given the same lam and centre
    still get masks of their own (a mask is shared only where the noise is too: batch mode)."""
    batch, h, w = 6, 32, 48
    images = np.zeros((batch, h, w, 3), np.uint8)
    _, _, masks, params = run_mix(images, class_labels(batch), device=device, method="fmix",
                                  mode="elem", num_classes=batch, seed=4,
                                  lam=np.full(batch, 0.4, np.float32),
                                  center=np.full((batch, 2), 0.5, np.float32))
    assert (params[:, 1] == np.float32(0.4)).all()
    assert len({masks[i].tobytes() for i in range(batch)}) == batch


def test_mask_table_is_the_same_on_the_span_and_fused_paths():
    """The CPU's two mixing paths (spans; fused gather) apply the same FMix table."""
    rng = np.random.default_rng(12)
    batch, h, w = 4, 64, 96
    images = random_images(rng, batch, (h, w, 3), np.float32)
    labels = class_labels(batch)
    plain = run_mix(images, labels, method="fmix", mode="elem", num_classes=batch, seed=5)
    fused = run_mix(images, labels, method="fmix", mode="elem", num_classes=batch, seed=5,
                    mean=[0.0], std=[1.0])
    np.testing.assert_array_equal(plain[2], fused[2])
    np.testing.assert_array_equal(plain[0], fused[0])


# ---- the op's own noise: statistics ------------------------------------------------------------

def test_coin_is_fair_and_mask_means_follow_beta():
    """The ceil / floor coin is a fair coin (binomial test, power > 0.9 against 0.45 / 0.55) and
    the mask means, num / (H W), follow Beta(alpha, alpha) (KS; the 1 / (H W) rounding is far
    below what KS resolves)."""
    alpha, size, n = 0.7, 32, 4096
    masks, weights = analysis.sample_masks("fmix", size, n, alpha=alpha, batch=256, seed=21)
    lam_hw = weights * size * size  # integer: num
    assert np.allclose(lam_hw, np.rint(lam_hw), atol=1e-3)
    assert stats.kstest(weights, stats.beta(alpha, alpha).cdf).pvalue > LEVEL
    # the coin, read off each mask with the lam the op reports (output_params)
    images = np.zeros((256, size, size, 1), np.uint8)
    runs = run_mix(images, class_labels(256), iterations=16, method="fmix", mode="elem",
                   alpha=alpha, num_classes=256, seed=22)
    ups = np.concatenate([round_up_from(r[2], r[3][:, 1]) for r in runs])
    assert len(ups) == 4096
    for p in (0.45, 0.55):
        assert binomial_power(len(ups), 0.5, p) > 0.9
    assert stats.binomtest(int(ups.sum()), len(ups), 0.5).pvalue > LEVEL


def test_covariance_matches_reference_noise():
    """Masks from the op's Philox noise against masks from NumPy's noise (reference.py), lam
    fixed at 0.5 so that only the noise varies: the covariance of two pixels at distance 1..8
    agrees within 4 standard errors (estimated from 20 groups of masks). Measured: a spectrum
    decay off by 10 % moves these by 5-8 standard errors."""
    size, n, groups, batch = 32, 4000, 20, 200
    images = np.zeros((batch, size, size, 1), np.uint8)
    runs = run_mix(images, class_labels(batch), iterations=n // batch, method="fmix",
                   mode="elem", num_classes=batch, lam=np.full(batch, 0.5, np.float32),
                   seed=31)
    op_masks = np.concatenate([r[2] for r in runs])
    rng = np.random.default_rng(32)
    ref_masks = np.stack([ref.fmix_sample(rng, 0.5, size, size)[0] for _ in range(n)])

    def curve(masks):
        parts = np.array([analysis.covariance_by_distance(g)[1][1:9]
                          for g in np.array_split(masks, groups)])
        return parts.mean(0), parts.std(0, ddof=1) / np.sqrt(groups)

    (a, sa), (b, sb) = curve(op_masks), curve(ref_masks)
    z = (a - b) / np.hypot(sa, sb)
    assert np.all(np.abs(z) < 4.0), (a, b, z)


def test_masks_of_other_samples_and_batches_are_uncorrelated():
    """In elem mode each sample's noise comes from its own stream: the masks of neighbouring
    samples, and of the same sample in successive batches, are uncorrelated (lam fixed at 0.5;
    the mean correlation of 597 / 600 pairs within 4 standard errors of 0) and never equal.
    Streams that overlapped (one sample's noise a shifted copy of its neighbour's, or a batch's
    the last one's) would correlate these far beyond that."""
    size, batch, iterations = 32, 200, 4
    images = np.zeros((batch, size, size, 1), np.uint8)
    runs = run_mix(images, class_labels(batch), iterations=iterations, method="fmix",
                   mode="elem", num_classes=batch, lam=np.full(batch, 0.5, np.float32),
                   seed=41)
    masks = np.stack([r[2].reshape(batch, -1) for r in runs]).astype(np.float64) - 0.5
    assert len({m.tobytes() for m in masks.reshape(-1, size * size)}) == batch * iterations

    def corr(a, b):
        return (a * b).sum(-1) / np.sqrt((a * a).sum(-1) * (b * b).sum(-1))

    for r in (corr(masks[:, :-1], masks[:, 1:]).ravel(),  # neighbours in a batch
              corr(masks[:-1], masks[1:]).ravel()):       # a sample in successive batches
        assert abs(r.mean()) < 4 * r.std(ddof=1) / np.sqrt(len(r)), (r.mean(), r.std())


# ---- errors ------------------------------------------------------------------------------------

def test_bad_fmix_arguments(device):
    """Each names the argument, the rule and the value (images 8 x 8: noise (8, 5, 2))."""
    rng = np.random.default_rng(0)
    good = noise_for(rng, 4, 8, 8)
    expect_error(r"`decay_power` must be a finite number > 0; got 0", method="fmix",
                 decay_power=0.0, device=device)
    expect_error(r"`decay_power` must be a finite number > 0; got nan", method="fmix",
                 decay_power=float("nan"), device=device)
    expect_error(r"`decay_power` must be a finite number > 0; got inf", method="fmix",
                 decay_power=float("inf"), device=device)
    expect_error(r"`fmix_noise` must have shape \(8, 5, 2\) \(H, W // 2 \+ 1, 2\) or \(80,\) "
                 r"for images of H = 8, W = 8; got \(8, 4, 2\) for sample 0", method="fmix",
                 mode="elem", fmix_noise=good[:, :, :4], device=device)
    bad = good.copy()
    bad[2, 3, 1, 0] = np.inf
    expect_error(r"`fmix_noise` must be finite; got inf at index 32 of sample 2", method="fmix",
                 mode="elem", fmix_noise=bad, device=device)
    expect_error(r"`fmix_noise` must be the same for every sample; got .* for sample 0 and .* "
                 r"for sample 1\. .*first difference at index 0", method="fmix", mode="batch",
                 fmix_noise=good, device=device)


def test_decay_power_up_to_the_float64_limit(device):
    """Spec 9: just inside the limit the masks are the reference's bit for bit (at 31 x 45 and
    d = 183.5 the weights of the two lowest frequencies along the width outweigh the others by
    e^68, so the image is constant down each column to the last bit: ties, taken in row-major
    order); just past it a batch with an FMix sample is refused, naming the size, the noise's
    bound and the limit, for the drawn noise and for a given one (whose bound is its largest
    value); a batch without one is not."""
    h, w, batch = 31, 45, 4
    limit = ref.fmix_max_decay_power(h, w, ref.FMIX_DRAWN_NOISE_MAX)
    assert 183.5 < limit < 184.0, limit
    masks = check(device, "elem", np.uint8, "HWC", (h, w, 3), seed=5, decay_power=183.5)
    assert any(len(np.unique(m, axis=0)) > 1 for m in masks)  # a tie split inside a column
    images = np.zeros((batch, h, w, 3), np.uint8)
    kw = dict(method="fmix", mode="elem", num_classes=batch, device=device)
    _, _, drawn, params = run_mix(images, class_labels(batch), decay_power=183.5, **kw)
    round_up_from(drawn, params[:, 1])
    with pytest.raises(RuntimeError, match=r"`decay_power` 184\.5 is too large for FMix masks of "
                       r"H = 31, W = 45: the spectrum's weights, up to max\(H, W\) \*\* "
                       r"decay_power, times the noise \(magnitudes up to 9\.3455\) overflow "
                       r"float64; at this size `decay_power` must be at most ") as e:
        run_mix(images, class_labels(batch), decay_power=184.5, **kw)
    stated = float(str(e.value).split("must be at most ")[1].split(".\n")[0].rstrip("."))
    assert stated == pytest.approx(limit, rel=1e-5)
    # the stated limit, as the float32 argument it is, is accepted: rounded down, not to nearest
    assert np.float32(stated) <= limit
    run_mix(images, class_labels(batch), decay_power=stated, **kw)
    loud = noise_for(np.random.default_rng(2), batch, h, w) * np.float32(1e37)
    loud_max = float(np.abs(loud).max())
    assert ref.fmix_max_decay_power(h, w, loud_max) < 165.0 < limit
    expect_error(r"`decay_power` 165 is too large for FMix masks of H = 31, W = 45: .* "
                 r"\(magnitudes up to \d\.\d+e\+37\) overflow", images=images,
                 labels=class_labels(batch), decay_power=165.0, fmix_noise=loud, **kw)
    run_mix(images, class_labels(batch), decay_power=165.0, **kw)  # drawn noise: within
    kw["method"] = "mixup"
    run_mix(images, class_labels(batch), decay_power=1000.0, **kw)


def test_flat_noise_is_accepted(device):
    rng = np.random.default_rng(1)
    images = random_images(rng, 4, (8, 8, 3), np.uint8)
    noise = noise_for(rng, 4, 8, 8)
    kw = dict(method="fmix", mode="elem", num_classes=4, lam=np.full(4, 0.4, np.float32),
              device=device)
    a = run_mix(images, class_labels(4), fmix_noise=noise, **kw)
    b = run_mix(images, class_labels(4), fmix_noise=noise.reshape(4, -1), **kw)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_coin_is_fair_at_every_fixed_lam_and_independent():
    """The ceil / floor coin at a FIXED lam: fair whatever the fraction of lam H W (a coin made a
    function of that fraction is fair on average over lam, which the test above cannot see, and
    constant at a fixed lam, which this one does), and independent from sample to sample (the
    sequence's lag-1 correlation and the runs)."""
    size, batch, iterations = 16, 256, 10  # 2560 coins per lam
    for p in (0.45, 0.55):
        assert binomial_power(batch * iterations, 0.5, p) > 0.9
    images = np.zeros((batch, size, size, 1), np.uint8)
    for frac in (0.05, 0.5, 0.95):  # lam H W = 100 + frac
        lam = np.float32((100 + frac) / (size * size))
        runs = run_mix(images, class_labels(batch), iterations=iterations, method="fmix",
                       mode="elem", num_classes=batch, seed=int(frac * 100),
                       lam=np.full(batch, lam, np.float32))
        ups = np.concatenate([round_up_from(r[2], r[3][:, 1]) for r in runs])  # batch even:
        # every sample is mixed
        assert stats.binomtest(int(ups.sum()), len(ups), 0.5).pvalue > LEVEL, frac
        x = ups.astype(float) - ups.mean()
        r1 = (x[1:] * x[:-1]).sum() / (x * x).sum()
        assert abs(r1) < 4 / np.sqrt(len(ups)), (frac, r1)  # uncorrelated neighbours


@pytest.mark.parametrize("size", [(224, 224), (31, 45)], ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("kind", ["zeros", "dc", "cos_x", "cos_y"])
def test_ties_go_to_the_lower_index(device, kind, size):
    """Spec 9's tie rule (equal values: the lower row-major index first), on noise whose image
    is full of exact ties: zero noise and a DC bin alone (a constant image: the first ones
    pixels in row-major order), a bin of frequency (0, 3) alone (every column constant: the
    rows' ties) and (5, 0) alone (every row constant). The op equals the reference's stable
    sort, for lams that cut inside a run of ties. The waves' ties are ties in both only where
    both round alike: the op takes numpy.fft.irfft2's steps with NumPy 2's pocketfft (spec 9)."""
    if kind.startswith("cos") and int(np.__version__.split(".")[0]) < 2:
        pytest.skip("NumPy < 2 computes irfft2 with another FFT (its rounding breaks the ties)")
    h, w = size
    noise = np.zeros((h, w // 2 + 1, 2), np.float32)
    if kind == "dc":
        noise[0, 0, 0] = 1.0
    elif kind == "cos_x":
        noise[0, 3, 0] = 1.0
    elif kind == "cos_y":
        noise[5, 0, 1] = 1.0
    lam = np.float32([0.3, 0.77, 0.5, 0.123])
    batch = len(lam)
    _, _, masks, params = run_mix(
        np.zeros((batch, h, w, 3), np.uint8), class_labels(batch), device=device,
        method="fmix", mode="elem", num_classes=batch, lam=lam,
        fmix_noise=np.repeat(noise[None], batch, 0))
    low = ref.fmix_low_freq(noise, h, w)
    round_up = round_up_from(masks, lam)
    for i in range(batch):
        want, _ = ref.fmix_mask(lam[i], low, round_up[i])
        np.testing.assert_array_equal(masks[i], want, err_msg=f"sample {i}")
    if kind in ("zeros", "dc"):  # all tied: the first pixels in row-major order
        ones = masks.reshape(batch, -1).sum(1).astype(int)
        for i in range(batch):
            assert masks[i].reshape(-1)[:ones[i]].all() and not masks[i].reshape(-1)[ones[i]:].any()
