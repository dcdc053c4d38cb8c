"""FMix as reference.py defines it (spec 9): the reference itself, its noise, spectrum and masks
(the operator against it: test_fmix_op.py)."""

import math

import numpy as np
import pytest

from dali_msda import reference as ref


@pytest.mark.parametrize("h,w", [(32, 32), (24, 37), (1, 8), (224, 224)])
def test_intended_spectrum_is_the_weighted_noise(h, w):
    # the image's own rfft2 gives back weights * (re + i im) at every bin that irfft2 keeps
    # as it is (interior columns: not the DC column, not the Nyquist column of an even width)
    rng = np.random.default_rng(h * 1000 + w)
    noise = rng.standard_normal((h, w // 2 + 1, 2))
    img = ref.fmix_low_freq(noise, h, w)
    spectrum = ref.fmix_weights(h, w)[..., None] * noise
    expected = spectrum[..., 0] + 1j * spectrum[..., 1]
    got = np.fft.rfft2(img)
    cols = slice(1, (w - 1) // 2 + 1)
    np.testing.assert_allclose(got[:, cols], expected[:, cols], rtol=1e-9,
                               atol=1e-9 * np.abs(expected).max())


def test_weights_decay_as_one_over_f_to_the_power():
    wts = ref.fmix_weights(64, 64, decay_power=3.0)
    assert wts[0, 0] == wts[0, 1] == 64.0 ** 3  # f clamped at 1 / max(H, W)
    assert wts[0, 8] == pytest.approx((64 / 8) ** 3)
    assert wts[8, 8] == pytest.approx((64 / (8 * math.sqrt(2))) ** 3)


def test_the_drawn_noise_bound_and_the_decay_power_limit():
    """Spec 9: the polar method's largest output on 32-bit coordinates, sqrt(-2 ln s) at the
    smallest s = 2 (2^-32)^2, is below the bound the spec uses; a decay_power at the bound's limit
    keeps every value of the transforms finite, one past it is refused (not computed from
    infinities: the weights overflow there, the official code's masks are then NaNs)."""
    assert math.sqrt(-2.0 * math.log(2.0 * 2.0 ** -64)) < ref.FMIX_DRAWN_NOISE_MAX < 9.346
    h, w = 31, 45
    noise = np.full((h, w // 2 + 1, 2), ref.FMIX_DRAWN_NOISE_MAX)
    lo = ref.fmix_max_decay_power(h, w, ref.FMIX_DRAWN_NOISE_MAX)
    # the largest accepted, to the last bit: the next float64 up is refused
    assert ref.fmix_image_bounded(h, w, lo, ref.FMIX_DRAWN_NOISE_MAX)
    assert not ref.fmix_image_bounded(h, w, np.nextafter(lo, np.inf), ref.FMIX_DRAWN_NOISE_MAX)
    assert ref.fmix_max_decay_power(1, 1, 1e300) == math.inf
    # (the bound: 4 bins noise_max max(H, W) ** d = DBL_MAX)
    assert lo == pytest.approx((math.log(np.finfo(np.float64).max) - math.log(
        4 * h * (w // 2 + 1) * ref.FMIX_DRAWN_NOISE_MAX)) / math.log(w), rel=1e-9)
    assert np.isfinite(ref.fmix_low_freq(noise, h, w, lo)).all()
    assert np.isfinite(ref.fmix_low_freq(-noise, h, w, lo)).all()
    with pytest.raises(ValueError, match="decay_power 184.0 is too large for FMix masks of 31 x "
                       "45"):
        ref.fmix_low_freq(noise, h, w, 184.0)
    with np.errstate(all="ignore"):  # what computing it anyway gives
        assert not np.isfinite(ref.fmix_weights(h, w, 200.0)).all()


def test_the_official_spectrum_never_varies_more_than_one_cycle_across_the_width():
    rng = np.random.default_rng(5)
    for h, w in ((32, 32), (40, 25), (224, 224)):
        noise = rng.standard_normal((h, w // 2 + 1, 2))
        official = np.fft.rfft(ref.fmix_low_freq(noise, h, w, official=True), axis=1)
        intended = np.fft.rfft(ref.fmix_low_freq(noise, h, w), axis=1)
        energy = lambda f: (np.abs(f[:, 2:]) ** 2).sum() / (np.abs(f) ** 2).sum()
        assert energy(official) < 1e-20  # only frequencies 0 and 1 along the width
        assert energy(intended) > 1e-3   # the intended masks do vary faster


@pytest.mark.parametrize("lam", [0.0, 0.3, 0.5, 0.77, 1.0])
def test_masks_are_binary_with_num_ones_and_exact_label_weight(lam):
    rng = np.random.default_rng(int(lam * 100))
    for round_up in (False, True):
        low = ref.fmix_low_freq(rng.standard_normal((30, 21, 2)), 30, 40)
        mask, weight = ref.fmix_mask(lam, low, round_up)
        n = 30 * 40
        num = math.ceil(lam * n) if round_up else math.floor(lam * n)
        assert mask.dtype == np.float32 and set(np.unique(mask)) <= {0.0, 1.0}
        # (the mean in float64: NumPy 1 compares a float32 mean with a float by value)
        assert mask.sum() == num and weight == num / n == mask.mean(dtype=np.float64)
        if 0 < num < n:  # the ones are the largest values of the low-frequency image
            assert low[mask == 1].min() >= low[mask == 0].max()


def test_the_mask_mean_follows_lam_over_draws():
    rng = np.random.default_rng(11)
    lams = rng.beta(1.0, 1.0, 400)
    weights = [ref.fmix_sample(rng, lam, 16, 16)[1] for lam in lams]
    assert np.abs(np.array(weights) - lams).max() <= 1 / 256  # within one pixel of lam H W
