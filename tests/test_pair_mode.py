"""mode="pair" (spec 2, timm's Mixup(mode="pair")): samples i and B - 1 - i share one draw and
one mask, each showing the other where the mask is 0. The first sample of a pair draws from its
stream as in elem mode; the second takes that draw and what follows it in the stream (FMix's
coin and noise, ResizeMix's scale, ClassMix's pick); an odd batch's middle sample is unmixed.
Per-sample arguments must agree within a pair; MixConfig.from_timm and the switching between
branches follow timm's pair mode (one branch per pair)."""

import numpy as np
import pytest
from nvidia.dali import fn, pipeline_def
from scipy import stats

from dali_msda import reference as ref
from dali_msda.pipelines import MixConfig
from dali_msda.pipelines.config import MixSchedule

from conftest import class_labels, random_images, run_mix
from test_classmix import check_run, region_maps, striped_maps
from test_errors import expect_error
from test_fmix_op import check as check_fmix
from test_reference_match import check_against_reference

METHODS = ["mixup", "cutmix", "hmix", "gmix", "fmix", "resizemix"]


@pytest.mark.parametrize("batch", [7, 8])
@pytest.mark.parametrize("method", METHODS)
def test_pairs_share_one_draw_and_mask(device, method, batch):
    """At 224 x 224 x 3 with prob 0.8: a pair's params rows and masks are equal, the first
    sample's draw is its elem-mode draw (the same seed), the pairs' draws differ, the middle of
    an odd batch is unmixed, and both samples of a pair get the same label weight."""
    rng = np.random.default_rng(batch)
    images = random_images(rng, batch, (224, 224, 3), np.uint8)
    labels = class_labels(batch)
    kw = dict(device=device, method=method, num_classes=batch, seed=31, prob=0.8)
    mixed, targets, masks, params = run_mix(images, labels, mode="pair", **kw)
    np.testing.assert_array_equal(params, params[::-1])
    np.testing.assert_array_equal(masks, masks[::-1])
    first = (batch + 1) // 2
    elem = run_mix(images, labels, mode="elem", **kw)[3]
    np.testing.assert_array_equal(params[:first], elem[:first])
    assert len({params[i, 1] for i in range(batch // 2)}) == batch // 2  # a draw per pair
    if batch % 2:
        mid = batch // 2
        np.testing.assert_array_equal(masks[mid], 1.0)
        np.testing.assert_array_equal(mixed[mid], images[mid])
    own = targets[np.arange(batch), np.arange(batch)]
    partner = targets[np.arange(batch), np.arange(batch)[::-1]]
    np.testing.assert_array_equal(own, own[::-1])
    mixed_rows = (params[:, 0] == 1) & (np.arange(batch) != batch - 1 - np.arange(batch))
    np.testing.assert_allclose(own[mixed_rows] + partner[mixed_rows], 1.0, atol=1e-6)


@pytest.mark.parametrize("ranges", [dict(cutmix_minmax=[0.2, 0.8]),
                                    dict(cutmix_area=[0.02, 0.4], cutmix_aspect=[0.3, 1 / 0.3])],
                         ids=["minmax", "area"])
def test_ranged_boxes_pair_up(device, ranges):
    """CutMix's box drawn from ranges (spec 4b) is part of the draw: one box per pair, the first
    sample's box that of elem mode."""
    batch = 9
    images = random_images(np.random.default_rng(2), batch, (64, 80, 3), np.uint8)
    kw = dict(device=device, method="cutmix", num_classes=batch, seed=17, **ranges)
    _, _, masks, params = run_mix(images, class_labels(batch), mode="pair", **kw)
    np.testing.assert_array_equal(params, params[::-1])
    np.testing.assert_array_equal(masks, masks[::-1])
    elem = run_mix(images, class_labels(batch), mode="elem", **kw)[3]
    np.testing.assert_array_equal(params[:5], elem[:5])
    assert len({tuple(p) for p in params[:4]}) == 4


@pytest.mark.parametrize("dtype", [np.uint8, np.float16, np.float32])
@pytest.mark.parametrize("method", ["mixup", "cutmix", "hmix", "gmix", "resizemix"])
def test_matches_reference(device, method, dtype):
    """Bit for bit with the reference from the reported draws, at 224 x 224 x 3 (several CPU
    tasks and GPU blocks a sample), an odd batch; the draws pair up."""
    params = check_against_reference(device, method, "pair", dtype, "HWC", batch=7,
                                     shape=(224, 224, 3), seed=5 + METHODS.index(method))
    np.testing.assert_array_equal(params, params[::-1])


@pytest.mark.parametrize("layout", ["HWC", "CHW"])
def test_fmix_matches_reference(device, layout):
    """FMix with the noise and lam given per pair: a pair's masks are one, bit for bit with the
    reference (the coin read off the masks, as its tests do)."""
    shape = (224, 224, 3) if layout == "HWC" else (3, 224, 224)
    masks = check_fmix(device, "pair", np.uint8, layout, shape, seed=12, out_dtype=np.float16)
    np.testing.assert_array_equal(masks, masks[::-1])


def test_classmix_pairs_pick_the_same_positions(device):
    """ClassMix: a pair's masks come from different maps, picked with one stream: partners with
    the same labels get the same subset; other pairs pick their own."""
    batch = 16
    subsets = check_run(device, striped_maps(batch), "pair")
    assert all(subsets[i] == subsets[batch - 1 - i] for i in range(batch))
    assert len(set(subsets)) > 1
    rng = np.random.default_rng(8)  # odd batch, mirrors, an ignore label
    check_run(device, region_maps(rng, 9, 7, ignore=255), "pair",
              mirror=rng.integers(0, 2, 9).astype(np.int32), ignore_index=255)


@pytest.mark.parametrize("method", ["mixup", "cutmix"])
def test_equals_timms_pair_mode(device, method):
    """timm 1.0.31's Mixup._mix_pair written out (lam and the box given, its rand_bbox:
    box="exact", correct_lam): x[i] and x[j] mixed with one lam or box each way, label weights
    concatenated with their reverse. Float32 images; ours to 1e-5 of 255 (timm's (1 - lam) is
    computed in double)."""
    batch, h, w = 8, 224, 224
    rng = np.random.default_rng(3)
    x = (rng.random((batch, h, w, 3)) * 255).astype(np.float32)
    lam = rng.uniform(0.05, 0.95, batch // 2).astype(np.float32)
    cy, cx = rng.integers(0, h, batch // 2), rng.integers(0, w, batch // 2)
    want, lam_batch = x.copy(), np.zeros(batch)
    for i in range(batch // 2):
        j = batch - 1 - i
        lam_i = float(lam[i])
        if method == "cutmix":
            y0, y1, x0, x1 = ref.cut_box(np.sqrt(1 - lam_i), int(cy[i]), int(cx[i]), h, w,
                                         "exact")
            want[i, y0:y1, x0:x1] = x[j, y0:y1, x0:x1]
            want[j, y0:y1, x0:x1] = x[i, y0:y1, x0:x1]
            lam_i = 1 - (y1 - y0) * (x1 - x0) / float(h * w)
        else:
            want[i] = x[i] * lam_i + x[j] * (1 - lam_i)
            want[j] = x[j] * lam_i + x[i] * (1 - lam_i)
        lam_batch[i] = lam_batch[j] = lam_i
    idx = ref.draw_sources("pair", batch)
    center = np.stack([(cy[idx] + 0.5) / h, (cx[idx] + 0.5) / w], 1).astype(np.float32)
    mixed, targets, _, params = run_mix(x, class_labels(batch), device=device, method=method,
                                        mode="pair", num_classes=batch, lam=lam[idx],
                                        center=center, box="exact")
    np.testing.assert_array_equal(params[:, 2], cy[idx])
    np.testing.assert_allclose(mixed, want, rtol=0, atol=255e-5)
    own = targets[np.arange(batch), np.arange(batch)]
    np.testing.assert_allclose(own, lam_batch, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", ["lam", "center", "method_id"])
def test_arguments_must_agree_within_a_pair(device, name):
    """A per-sample argument that differs between samples i and B - 1 - i is refused, naming
    it, both samples and both values; other pairs may differ."""
    batch = 6
    values = {"lam": np.array([0.2, 0.3, 0.4, 0.4, 0.3, 0.25], np.float32),
              "center": np.array([[0.1, 0.2], [0.3, 0.4], [0.5, 0.5], [0.5, 0.5], [0.3, 0.4],
                                  [0.1, 0.25]], np.float32),
              "method_id": np.array([0, 1, 2, 2, 1, 3], np.int32)}[name]
    shown = {"lam": r"0\.2 for sample 0 and 0\.25 for sample 5",
             "center": r"\(0\.1, 0\.2\) for sample 0 and \(0\.1, 0\.25\) for sample 5",
             "method_id": r"0 for sample 0 and 3 for sample 5"}[name]
    images = np.zeros((batch, 8, 8, 3), np.uint8)
    expect_error(r"With `mode=\"pair\"` samples i and n - 1 - i share one draw, so `" + name +
                 r"` must be the same for both; got " + shown + r"\. Use `mode=\"elem\"`",
                 images=images, labels=class_labels(batch), device=device, mode="pair",
                 num_classes=batch, **{name: values})
    good = values.copy()
    good[5] = good[0]
    run_mix(images, class_labels(batch), device=device, mode="pair", method="mixup",
            num_classes=batch, **{name: good})


@pytest.mark.parametrize("name", ["alpha", "prob", "hmix_ratio"])
def test_scalar_arguments_must_agree_within_a_pair(device, name):
    """alpha, prob and hmix_ratio as argument inputs: one value per pair."""
    batch = 6

    def run(values):
        @pipeline_def(batch_size=batch, num_threads=1, device_id=0 if device == "gpu" else None,
                      seed=1)
        def pipe():
            x = fn.external_source(source=lambda: [np.zeros((8, 8, 3), np.uint8)] * batch,
                                   batch=True, layout="HWC")
            x = x.gpu() if device == "gpu" else x
            y = fn.external_source(source=lambda: list(class_labels(batch)), batch=True)
            v = fn.external_source(source=lambda: [np.float32(a) for a in values], batch=True)
            return tuple(fn.msda.mix(x, y, method="hmix", mode="pair", num_classes=batch,
                                     **{name: v}))

        p = pipe()
        p.build()
        return p.run()

    with pytest.raises(RuntimeError, match=r"`mode=\"pair\"` .* `" + name + r"` must be the same "
                                           r"for both; got 0\.5 for sample 1 and 0\.25 for "
                                           r"sample 4"):
        run([1.0, 0.5, 0.75, 0.75, 0.25, 1.0])
    run([1.0, 0.5, 0.75, 0.75, 0.5, 1.0])


def test_fmix_noise_must_agree_within_a_pair(device):
    batch, h, w = 4, 8, 10
    noise = np.random.default_rng(0).standard_normal((batch, h, w // 2 + 1, 2))
    noise = noise.astype(np.float32)[ref.draw_sources("pair", batch)]
    noise[2, 1, 2, 0] += 1.0
    expect_error(r"`mode=\"pair\"` .* `fmix_noise` must be the same for both; got .* for sample "
                 r"1 and .* for sample 2\. .*\(first difference at index 16\)",
                 images=np.zeros((batch, h, w, 3), np.uint8), labels=class_labels(batch),
                 device=device, method="fmix", mode="pair", num_classes=batch,
                 fmix_noise=noise)


def test_switching_is_per_pair():
    """MixSchedule's branch per pair (timm's _params_per_elem(B // 2) in pair mode): method ids
    equal within every pair, the CutMix share of pairs Binomial(pairs, switch_prob) (a 10 %
    smaller switch_prob fails it with power > 0.99 at 3,000 batches of 8 pairs), batches of
    odd size included."""
    cfg = MixConfig.from_timm(mixup_alpha=0.8, cutmix_alpha=1.0, switch_prob=0.5, mode="pair")
    assert (cfg.mode, cfg.method, cfg.switch_method) == ("pair", "mixup", "cutmix")
    rng = np.random.default_rng(0)
    cut = 0
    for k in range(3000):
        n = 16 if k % 2 else 15
        ids, alphas = MixSchedule._switched(cfg, n, rng)
        ids, alphas = np.array(ids).ravel(), np.array(alphas).ravel()
        idx = ref.draw_sources("pair", n)
        np.testing.assert_array_equal(ids, ids[idx])
        np.testing.assert_array_equal(alphas, np.where(ids == 1, 1.0, 0.8).astype(np.float32))
        cut += int((ids[: (n + 1) // 2] == 1).sum())
    pairs = 1500 * 8 + 1500 * 8
    assert stats.binomtest(cut, pairs, 0.5).pvalue > 1e-3
    assert stats.binom.cdf(stats.binom.ppf(1e-3 / 2, pairs, 0.5) - 1, pairs, 0.45) > 0.99


def test_reference_draws_pair_up():
    rng = np.random.default_rng(1)
    d = ref.draw_params(rng, 9, 20, 30, prob=0.5, mode="pair")
    for k in ("apply", "lam", "cy", "cx"):
        np.testing.assert_array_equal(d[k], d[k][::-1])
    assert len(set(d["lam"][:5])) == 5
    with pytest.raises(ValueError, match="mode must be one of"):
        ref.draw_params(rng, 4, 8, 8, mode="pairs")
