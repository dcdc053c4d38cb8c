"""MixConfig: its checks, and the timm / official HMix-GMix recipes (MixConfig.from_timm and the
branch switching it drives).

timm's Mixup chooses, per batch (mode "batch") or per sample ("elem"), the CutMix branch with
probability switch_prob (lam ~ Beta(cutmix_alpha)) or Mixup (lam ~ Beta(mixup_alpha)), and
applies mixing with probability prob. The op's own outputs (masks, drawn parameters) are tested
against that definition here.
"""

import math

import numpy as np
import pytest
from nvidia.dali import fn, pipeline_def

from dali_msda.pipelines import MixConfig, MixSchedule
from dali_msda.pipelines.config import METHOD_IDS

scipy_stats = pytest.importorskip("scipy.stats")
LEVEL = 1e-3  # every statistical check below rejects a correct implementation this rarely


def test_mix_config_validation():
    with pytest.raises(ValueError, match=r"`method` must be one of"):
        MixConfig(method="saliencymix")
    with pytest.raises(ValueError, match=r"`scale_min` must be <= `scale_max`; got 0.9 > 0.5"):
        MixConfig(method="resizemix", scale_min=0.9, scale_max=0.5)
    with pytest.raises(ValueError, match=r"`decay_power` must be a finite number > 0; got -1"):
        MixConfig(method="fmix", decay_power=-1)
    with pytest.raises(ValueError, match=r"fixed when the pipeline is built"):
        MixSchedule().set(decay_power=2.0)
    with pytest.raises(ValueError, match=r"`alpha` must be a finite number > 0; got 0"):
        MixConfig(alpha=0)
    with pytest.raises(ValueError, match=r"`prob` must be in \[0, 1\]; got 2"):
        MixConfig(prob=2)
    with pytest.raises(ValueError, match=r"fixed when the pipeline is built"):
        MixSchedule().set(mode="elem")
    # each rule at its edge: the first value refused (and the last accepted)
    edges = [(dict(scale_min=0.0), r"`scale_min` must be in \(0, 1\]; got 0.0"),
             (dict(scale_max=1.01), r"`scale_max` must be in \(0, 1\]; got 1.01"),
             (dict(bce_target_thresh=1.0), r"`bce_target_thresh` must be in \[0, 1\) or None; "
                                           r"got 1.0"),
             (dict(cutmix_area=(0.1, float("inf"))), r"`cutmix_area` must be \(min, max\) or "
                                                      r"None; got \(0.1, inf\)"),
             (dict(cutmix_minmax=(0.2, float("nan"))), r"`cutmix_minmax` must be \(min, max\) "
                                                        r"or None"),
             (dict(cutmix_aspect=(0.5,)), r"`cutmix_aspect` must be \(min, max\) or None"),
             (dict(cutmix_minmax=(0.2, 0.5), cutmix_area=(0.1, 0.3)), r"`cutmix_minmax` and "
                                                                      r"`cutmix_area` are two "
                                                                      r"ways to draw"),
             # the op's range rules (spec 4b), refused when the recipe is made
             (dict(cutmix_minmax=(0.5, 0.5)), r"`cutmix_minmax` must satisfy 0 < min < max <= "
                                              r"1; got \(0.5, 0.5\)"),
             (dict(cutmix_minmax=(0.0, 0.5)), r"`cutmix_minmax` must satisfy 0 < min < max"),
             (dict(cutmix_minmax=(0.2, 1.001)), r"`cutmix_minmax` must satisfy 0 < min < max"),
             (dict(cutmix_area=(0.0, 0.4)), r"`cutmix_area` must satisfy 0 < min <= max <= 1; "
                                            r"got \(0.0, 0.4\)"),
             (dict(cutmix_area=(0.4, 0.39)), r"`cutmix_area` must satisfy 0 < min <= max"),
             (dict(cutmix_area=(0.4, 1.01)), r"`cutmix_area` must satisfy 0 < min <= max <= 1"),
             (dict(cutmix_area=(0.1, 0.4), cutmix_aspect=(0.0, 2.0)),
              r"`cutmix_aspect` must satisfy 0 < min <= max \(h / w\); got \(0.0, 2.0\)"),
             (dict(cutmix_area=(0.1, 0.4), cutmix_aspect=(2.0, 1.99)),
              r"`cutmix_aspect` must satisfy 0 < min <= max"),
             (dict(cutmix_aspect=(0.5, 2.0)), r"`cutmix_aspect` goes with `cutmix_area`"),
             (dict(cutmix_minmax=0.5), r"`cutmix_minmax` must be \(min, max\) or None; got "
                                       r"0.5"),
             # types: named, not a comparison's TypeError
             (dict(alpha="1"), r"`alpha` must be a number; got '1'"),
             (dict(label_smoothing=None), r"`label_smoothing` must be a number; got None"),
             (dict(prob=True), r"`prob` must be a number; got True"),
             (dict(num_classes=True), r"`num_classes` must be a positive int or None; got True"),
             (dict(bce_target_thresh="0.5"), r"`bce_target_thresh` must be in \[0, 1\) or "
                                             r"None; got 0.5")]
    for kw, message in edges:
        with pytest.raises(ValueError, match=message):
            MixConfig(method="cutmix", **kw)
    MixConfig(method="resizemix", scale_min=1.0, scale_max=1.0, bce_target_thresh=0.0,
              prob=0.0, label_smoothing=1.0, cutmix_area=(0.1, 1.0), cutmix_aspect=(1.0, 1.0))
    MixConfig(method="cutmix", cutmix_minmax=(1e-6, 1.0), alpha=np.float32(0.5), prob=1,
              num_classes=np.int64(3))
    MixConfig(method="cutmix", cutmix_area=(0.3, 0.3), cutmix_aspect=(1e-3, 1e-3))
    for kw, message in ((dict(cutmix_minmax=0.5), r"`cutmix_minmax` must be \(min, max\)"),
                        (dict(mixup_alpha=None), r"`mixup_alpha` must be a finite number >= 0"),
                        (dict(cutmix_alpha="1"), r"`cutmix_alpha` must be a finite number >= 0"),
                        (dict(cutmix_minmax=(0.6, 0.4)), r"`cutmix_minmax` must satisfy 0 < "
                                                         r"min < max <= 1; got \(0.6, 0.4\)")):
        with pytest.raises(ValueError, match=message):
            MixConfig.from_timm(**kw)


def test_from_timm_maps_every_branch_combination():
    both = MixConfig.from_timm(mixup_alpha=0.8, cutmix_alpha=1.0, switch_prob=0.3, prob=0.9,
                               mode="elem", label_smoothing=0.1, num_classes=1000)
    assert (both.method, both.alpha, both.switch_method, both.switch_alpha,
            both.switch_prob, both.prob, both.mode) == ("mixup", 0.8, "cutmix", 1.0, 0.3, 0.9,
                                                        "elem")
    assert both.label_smoothing == 0.1 and both.num_classes == 1000
    default = MixConfig.from_timm()  # timm's defaults: Mixup(1.0) only, smoothing 0.1, batch
    assert (default.method, default.alpha, default.switch_method, default.label_smoothing,
            default.mode, default.prob) == ("mixup", 1.0, None, 0.1, "batch", 1.0)
    only_cut = MixConfig.from_timm(mixup_alpha=0.0, cutmix_alpha=2.0)
    assert (only_cut.method, only_cut.alpha, only_cut.switch_method) == ("cutmix", 2.0, None)
    official = MixConfig.from_timm(mixup_alpha=1.0, cutmix_alpha=1.0, cutmix_mode="hmix")
    assert (official.switch_method, official.hmix_ratio) == ("hmix", 1.0)  # official default r
    assert MixConfig.from_timm(0.0, 1.0, cutmix_mode="gmix").method == "gmix"
    assert MixConfig.from_timm(correct_lam=False).correct_lam is False


@pytest.mark.parametrize("kwargs,message", [
    (dict(mixup_alpha=0.0, cutmix_alpha=0.0), r"one of mixup_alpha > 0 or cutmix_alpha > 0"),
    (dict(cutmix_minmax=(0.2, 0.5, 0.8)), r"`cutmix_minmax` must be \(min, max\)"),
    (dict(mode="pairs"), r"`mode` must be one of \('batch', 'elem', 'pair'\); got 'pairs'"),
    (dict(cutmix_mode="box"), r"`cutmix_mode` must be one of \('bbox', 'hmix', 'gmix'\)"),
    (dict(mixup_alpha=-1.0), r"`mixup_alpha` must be a finite number >= 0"),
    (dict(switch_prob=1.5, cutmix_alpha=1.0), r"`switch_prob` must be in \[0, 1\]"),
    (dict(prob=-0.1), r"`prob` must be in \[0, 1\]"),
])
def test_from_timm_refuses_what_timm_refuses_or_we_do_not_do(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MixConfig.from_timm(**kwargs)


def run_schedule(config, batch, iterations, size=24, seed=3):
    """(params, masks, fed method ids) of `iterations` batches of the op fed by a MixSchedule."""
    schedule = MixSchedule(config)
    schedule.batch_size, schedule.seed = batch, seed
    images = [np.full((size, size, 3), (10 * i) % 256, np.uint8) for i in range(batch)]
    labels = [np.array([i % 5], np.int32) for i in range(batch)]
    fed = []

    def source(info=None):
        arrays = schedule(info)
        fed.append(np.array([int(m) for m in arrays[0]]))
        return arrays

    @pipeline_def(batch_size=batch, num_threads=2, device_id=None, seed=seed,
                  prefetch_queue_depth=1)
    def pipe():
        x = fn.external_source(source=lambda: images, batch=True, layout="HWC")
        y = fn.external_source(source=lambda: labels, batch=True)
        method_id, alpha, ratio, prob = fn.external_source(source=source, num_outputs=4,
                                                           batch=True)
        return tuple(fn.msda.mix(x, y, method_id=method_id, alpha=alpha, hmix_ratio=ratio,
                                 prob=prob, mode=config.mode, num_classes=5, output_mask=True,
                                 output_params=True))

    p = pipe()
    p.build()
    params, masks = [], []
    for _ in range(iterations):
        out = p.run()
        params.append(np.stack([np.array(t) for t in out[3]]))
        masks.append(np.stack([np.array(t) for t in out[2]]))
    return np.concatenate(params), np.concatenate(masks), np.concatenate(fed[:iterations])


def families(params, masks):
    """Per applied sample: True for the CutMix branch (a box: not a constant mask equal to lam)."""
    applied = params[:, 0] == 1
    flat = masks.reshape(len(masks), -1)
    mixup = (flat.min(1) == flat.max(1)) & (flat[:, 0] == params[:, 1])
    return applied, ~mixup


# decisions: 6400 (elem) and 6000 (batch). Against switch_prob off by 10 % (0.33 for 0.3) the
# binomial test at level 1e-3 has power about 0.97 (z = 0.03 n / sqrt(0.21 n) = 5.2 vs 3.3)
@pytest.mark.parametrize("mode,batch,iterations", [("elem", 64, 100), ("batch", 4, 6000)])
def test_branch_frequencies_and_lam_distributions_match_timm(mode, batch, iterations):
    config = MixConfig.from_timm(mixup_alpha=0.4, cutmix_alpha=1.5, switch_prob=0.3, prob=0.8,
                                 mode=mode, num_classes=5)
    params, masks, fed = run_schedule(config, batch, iterations)
    n = len(params) if mode == "elem" else iterations
    step = 1 if mode == "elem" else batch  # batch mode: one decision per batch
    applied, cut = families(params, masks)
    odd = np.arange(len(params)) % batch == (batch - 1) // 2 if batch % 2 else np.zeros(
        len(params), bool)
    # the branch the op applied is the one the schedule chose
    np.testing.assert_array_equal(cut[applied & ~odd],
                                  (fed == METHOD_IDS["cutmix"])[applied & ~odd])
    if mode == "batch":
        assert (fed.reshape(-1, batch) == fed.reshape(-1, batch)[:, :1]).all()
        assert (params[:, :2].reshape(-1, batch, 2) ==
                params[:, :2].reshape(-1, batch, 2)[:, :1]).all()
    # frequencies (binomial tests): apply ~ prob, CutMix branch ~ switch_prob
    k_apply = int(applied[::step].sum())
    assert scipy_stats.binomtest(k_apply, n, 0.8).pvalue > LEVEL
    k_cut = int((fed[::step] == METHOD_IDS["cutmix"]).sum())
    assert scipy_stats.binomtest(k_cut, n, 0.3).pvalue > LEVEL
    lam = params[::step, 1]
    chosen_cut = fed[::step] == METHOD_IDS["cutmix"]
    on = applied[::step]
    for mask, alpha in ((chosen_cut & on, 1.5), (~chosen_cut & on, 0.4)):
        assert scipy_stats.kstest(lam[mask], scipy_stats.beta(alpha, alpha).cdf).pvalue > LEVEL
    # ... and each branch's lam is not the other branch's Beta (the test can tell them apart)
    assert scipy_stats.kstest(lam[chosen_cut & on], scipy_stats.beta(0.4, 0.4).cdf).pvalue < LEVEL


def test_switching_draws_are_repeatable_per_iteration():
    config = MixConfig.from_timm(mixup_alpha=1.0, cutmix_alpha=1.0, mode="elem", num_classes=5)
    a = MixSchedule(config)
    b = MixSchedule(config)
    for s in (a, b):
        s.batch_size, s.seed = 16, 9
    first = [np.array([int(m) for m in a()[0]]) for _ in range(5)]
    b._draws = 3  # as after restoring a checkpoint taken after three iterations
    np.testing.assert_array_equal(np.array([int(m) for m in b()[0]]), first[3])
    assert len({tuple(f) for f in first}) == 5  # a new draw every iteration


def test_train_takes_timm_flags(capsys):
    from dali_msda.pipelines.train import build_parser, main, mix_config_from_args

    def config(*flags):
        return mix_config_from_args(build_parser().parse_args(list(flags)))

    timm = config("--mixup", "0.8", "--cutmix", "1.0", "--mixup-switch-prob", "0.4",
                  "--mixup-mode", "elem", "--cutmix-mode", "hmix")
    assert timm == MixConfig.from_timm(mixup_alpha=0.8, cutmix_alpha=1.0, switch_prob=0.4,
                                       mode="elem", cutmix_mode="hmix", num_classes=None)
    assert timm.label_smoothing == 0.1 and timm.hmix_ratio == 1.0  # timm's / official defaults
    own = config("--method", "gmix", "--alpha", "2")
    assert (own.method, own.alpha, own.mode, own.label_smoothing) == ("gmix", 2.0, "elem", 0.0)
    assert config("--method", "none") is None
    minmax = config("--mixup", "0.8", "--cutmix", "0", "--cutmix-minmax", "0.2", "0.8")
    assert minmax == MixConfig.from_timm(mixup_alpha=0.8, cutmix_alpha=0.0,
                                         cutmix_minmax=(0.2, 0.8), num_classes=None)
    assert (minmax.switch_method, minmax.switch_alpha, minmax.cutmix_minmax) == (
        "cutmix", 1.0, (0.2, 0.8))  # timm forces cutmix_alpha 1.0 with minmax
    assert config("--mixup", "1", "--mixup-mode", "pair").mode == "pair"  # timm's pair mode
    for flags, message in ((("--mixup", "1", "--method", "cutmix"), "not both"),
                           (("--mode", "pairs"), "invalid choice: 'pairs'")):
        with pytest.raises(SystemExit):
            main(list(flags))
        assert message in capsys.readouterr().err


# ---- CutMix boxes against timm's rand_bbox, written out ----------------------------------------

def even_bbox(h, w, lam, cy, cx):
    """timm.data.mixup.rand_bbox up to timm 1.0.28 (huggingface/pytorch-image-models, commit
    aa4b585, 2026-08-08; margin 0), as the CutMix authors' code cuts it, with its centre given
    instead of drawn: rows [yl, yh), columns [xl, xh) (box="even")."""
    ratio = np.sqrt(1 - lam)
    cut_h, cut_w = int(h * ratio), int(w * ratio)
    yl = np.clip(cy - cut_h // 2, 0, h)
    yh = np.clip(cy + cut_h // 2, 0, h)
    xl = np.clip(cx - cut_w // 2, 0, w)
    xh = np.clip(cx + cut_w // 2, 0, w)
    return yl, yh, xl, xh


def timm_rand_bbox(h, w, lam, cy, cx):
    """timm.data.mixup.rand_bbox of the released timm 1.0.29 to 1.0.31 (margin 0; `yh =
    np.clip(cy + (cut_h + 1) // 2, 0, img_h)`), its centre given: a box of exactly cut_h x cut_w
    before clipping (box="exact")."""
    ratio = np.sqrt(1 - lam)
    cut_h, cut_w = int(h * ratio), int(w * ratio)
    return (np.clip(cy - cut_h // 2, 0, h), np.clip(cy + (cut_h + 1) // 2, 0, h),
            np.clip(cx - cut_w // 2, 0, w), np.clip(cx + (cut_w + 1) // 2, 0, w))


@pytest.mark.parametrize("box", ["even", "exact"])
@pytest.mark.parametrize("h,w", [(32, 32), (31, 33), (224, 224), (17, 40)])
def test_cutmix_boxes_are_timms(h, w, box):
    """The op's CutMix box (its mask) and label weight against the CutMix authors' and old timm's
    rand_bbox (box="even", the default) and against today's timm's, a box of exactly cut_h x
    cut_w (box="exact", what MixConfig.from_timm uses): odd and even sides, centres in the
    middle (unclipped) and at every edge (clipped); the label weight is 1 - the box's area
    (correct_lam)."""
    from conftest import class_labels, run_mix

    lams = np.float32([0.3, 0.51, 0.75, 0.9, 0.97, 0.6, 0.45, 0.2])
    rows = [h // 2, 0, h - 1, h // 3, 1, h - 2, h // 2, h // 2]
    cols = [w // 2, w - 1, 0, w // 3, w // 2, w - 2, 1, 0]
    n = len(lams)
    center = np.stack([(np.array(rows) + 0.5) / h, (np.array(cols) + 0.5) / w], 1)
    _, targets, masks, params = run_mix(
        np.zeros((n, h, w, 1), np.uint8), class_labels(n), method="cutmix", mode="elem",
        num_classes=n, lam=lams, center=center.astype(np.float32), box=box)
    np.testing.assert_array_equal(params[:, 2], rows)
    np.testing.assert_array_equal(params[:, 3], cols)
    want = even_bbox if box == "even" else timm_rand_bbox
    sides = set()
    for i in range(n):
        if i == n - 1 - i:
            continue
        yl, yh, xl, xh = want(h, w, float(lams[i]), rows[i], cols[i])
        expected = np.ones((h, w), np.float32)
        expected[yl:yh, xl:xh] = 0.0
        np.testing.assert_array_equal(masks[i], expected, err_msg=f"sample {i}")
        np.testing.assert_allclose(targets[i, i], 1 - (yh - yl) * (xh - xl) / (h * w),
                                   atol=1e-6)
        cut_h = int(h * np.sqrt(1 - float(lams[i])))
        if 0 < yl and yh < h:  # unclipped rows: the side is what the rule says
            assert yh - yl == (cut_h if box == "exact" else cut_h - cut_h % 2)
            sides.add(cut_h % 2)
    assert sides == {0, 1}, "both odd and even sides were exercised unclipped"


def torchvision_box(h, w, lam, cy, cx):
    """torchvision.transforms.v2.CutMix's box (pytorch/vision, transforms/v2/_augment.py), its
    centre given: `r = 0.5 * sqrt(1 - lam)`, `r_h_half = int(r * H)`, rows [cy - r_h_half,
    cy + r_h_half) clamped to the image, likewise columns."""
    r = 0.5 * math.sqrt(1.0 - lam)
    hh, hw = int(r * h), int(r * w)
    return max(cy - hh, 0), min(cy + hh, h), max(cx - hw, 0), min(cx + hw, w)


def test_torchvisions_cutmix_box_is_the_even_box():
    """torchvision v2's CutMix cuts box="even" (the README's torchvision recipe relies on it):
    int(0.5 * sqrt(1 - lam) * W) is int(W * sqrt(1 - lam)) // 2 in floating point too (halving
    is exact), checked for 60,000 lams (float32, as the op draws them: random ones and the
    sides' rounding edges, each with its two neighbours) at every side from 1 to 512, through
    both formulas with centres at the middle and the edges for a share of them."""
    rng = np.random.default_rng(0)
    sides = np.arange(1, 513)
    edges = 1 - (sides[:, None] / sides[None, :]) ** 2  # side ratio k / size: the floors' edges
    edges = rng.choice(edges[(edges >= 0) & (edges <= 1)], 10000, replace=False)
    lams = np.concatenate([rng.random(10000), edges]).astype(np.float32)
    lams = lams[(lams >= 0) & (lams <= 1)]
    lams = np.unique(np.concatenate([lams, np.nextafter(lams, 0), np.nextafter(lams, 1)]))
    lams = lams[(lams >= 0) & (lams <= 1)]
    rng.shuffle(lams)
    for size in range(1, 513):
        for lam in lams[size * 37 % 1000::512][:40]:
            for c in (0, size // 2, size - 1):
                tv = torchvision_box(size, size, float(lam), c, c)
                even = tuple(int(v) for v in even_bbox(size, size, float(lam), c, c))
                assert tv == even, (size, float(lam), c, tv, even)
    ratio = np.sqrt(1 - lams.astype(np.float64))
    for size in range(1, 513):  # the identity itself, for every lam at every side
        np.testing.assert_array_equal(np.floor(0.5 * ratio * size), np.floor(ratio * size) // 2)


def test_from_timm_cuts_timms_box():
    """Today's timm (1.0.29 and later) cuts exact boxes; the HMix/GMix fork's modes even ones
    (its rand_bbox, timm's of its day); `box` chooses for an older timm."""
    assert MixConfig.from_timm(mixup_alpha=0.0, cutmix_alpha=1.0).box == "exact"
    assert MixConfig.from_timm(cutmix_alpha=1.0).box == "exact"
    assert MixConfig.from_timm(cutmix_alpha=1.0, cutmix_mode="hmix").box == "even"
    assert MixConfig.from_timm(cutmix_alpha=1.0, cutmix_mode="gmix").box == "even"
    assert MixConfig.from_timm(cutmix_alpha=1.0, box="even").box == "even"
    with pytest.raises(ValueError, match=r"`box` must be 'even' or 'exact'; got 'odd'"):
        MixConfig.from_timm(box="odd")
    with pytest.raises(ValueError, match=r"`box` must be 'even' or 'exact'; got 'odd'"):
        MixConfig(box="odd")


def test_box_range_rules_are_the_ops():
    """MixConfig refuses a box range (spec 4b) exactly where fn.msda.mix's own rules do, so that
    a recipe it accepts never fails when its pipeline first runs for a rule it could have
    checked: over a grid of (min, max) pairs with every edge (0, equal ends, 1, past 1, NaN),
    for each argument. (The op also refuses ranges whose boxes cannot fit the image: a rule
    of the image's size, which a recipe does not know; those are left out.)"""
    from conftest import class_labels, run_mix

    images = np.zeros((2, 64, 64, 3), np.uint8)
    ends = [-0.1, 0.0, 0.05, 0.5, 1.0, 1.2, float("nan")]
    aspects = [-1.0, 0.0, 0.5, 1.0, 2.0, float("inf")]
    cases = ([dict(cutmix_minmax=(a, b)) for a in ends for b in ends] +
             [dict(cutmix_area=(a, b)) for a in ends for b in ends] +
             [dict(cutmix_area=(0.1, 0.2), cutmix_aspect=(a, b)) for a in aspects
              for b in aspects])
    compared = 0
    for kw in cases:
        try:
            MixConfig(method="cutmix", **kw)
            recipe_ok = True
        except ValueError:
            recipe_ok = False
        try:
            run_mix(images, class_labels(2), method="cutmix", mode="elem", num_classes=2,
                    device="cpu", **{k: list(v) for k, v in kw.items()})
            op_ok = True
        except RuntimeError as e:
            if "must satisfy" not in str(e) and "must be two finite" not in str(e):
                assert recipe_ok and "fit" in str(e), (kw, str(e))  # the image's size: not a
                continue                                             # recipe's rule
            op_ok = False
        assert recipe_ok == op_ok, kw
        compared += 1
    assert compared >= 0.9 * len(cases)
