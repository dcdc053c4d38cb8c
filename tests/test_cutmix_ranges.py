"""CutMix boxes drawn from ranges (spec 4b): timm's `cutmix_minmax` and UniMatch's
`cutmix_area` / `cutmix_aspect`. The op's boxes (read off its masks) are tested against the
distributions the spec states, each test's power against a 10 % error in a range computed here
by simulating the reference samplers; label maps and detection boxes follow the drawn box."""

import os

import numpy as np
import pytest
from scipy import stats

from dali_msda import reference as ref

from conftest import class_labels, run_mix
from test_errors import expect_error

H = W = 224
BATCH, ITERS = 64, 20  # 1,280 boxes a test
LEVEL = 1e-3  # each test rejects a correct implementation this rarely


def boxes_of(masks):
    """(y0, y1, x0, x1) of the zero box of each mask (every mask a box: 0 inside, 1 outside)."""
    out = []
    for m in masks:
        rows, cols = np.nonzero(m.min(axis=1) == 0)[0], np.nonzero(m.min(axis=0) == 0)[0]
        box = (rows[0], rows[-1] + 1, cols[0], cols[-1] + 1)
        expect = np.ones_like(m)
        expect[box[0]:box[1], box[2]:box[3]] = 0
        np.testing.assert_array_equal(m, expect)  # exactly that box, nothing else
        out.append(box)
    return np.array(out)


def drawn_boxes(device, chunks=1, **kw):
    """The boxes, params and targets of `chunks` x ITERS batches of the op in elem mode (zero
    images: only the masks matter; an even batch, so that every sample is mixed)."""
    images = np.zeros((BATCH, H, W, 3), np.uint8)
    boxes, params, targets = [], [], []
    for chunk in range(chunks):  # a chunk's masks at a time (ITERS x 12.8 MB)
        runs = run_mix(images, class_labels(BATCH), iterations=ITERS, device=device,
                       method="cutmix", mode="elem", seed=17 + chunk, num_classes=BATCH, **kw)
        boxes.append(boxes_of(np.concatenate([r[2] for r in runs])))
        params += [r[3] for r in runs]
        targets += [r[1] for r in runs]
    return np.concatenate(boxes), np.concatenate(params), np.concatenate(targets)


def uniform_positions(rng, low, span):
    """Integer positions uniform over [0, span) made continuous: exactly U(0, 1)."""
    return (low + rng.random(len(low))) / span


def power(rejects, sims=200, seed=0):
    """The share of `sims` simulated experiments (`rejects(rng)` -> bool) that reject."""
    rng = np.random.default_rng(seed)
    return np.mean([rejects(rng) for _ in range(sims)])


def side_chi2(sides, lo, hi, bins=8):
    """p-value of the sides being uniform over the integers [lo, hi), in `bins` equal bins."""
    edges = np.linspace(lo, hi, bins + 1)
    counts, _ = np.histogram(sides, edges)
    expected = np.diff(np.floor(edges - 1e-9)) / (hi - lo) * len(sides)
    return stats.chisquare(counts, expected * counts.sum() / expected.sum()).pvalue


def test_minmax_boxes_follow_timm(device):
    lo, hi = 0.2, 0.7
    boxes, params, targets = drawn_boxes(device, cutmix_minmax=[lo, hi])
    h, w = boxes[:, 1] - boxes[:, 0], boxes[:, 3] - boxes[:, 2]
    h_lo, h_hi = int(H * lo), int(H * hi)
    assert h.min() >= h_lo and h.max() < h_hi and w.min() >= h_lo and w.max() < h_hi
    # inside, never clipped, the edge reached: timm's corner is over [0, H - cut_h] (timm 1.0.29
    # and later; before, one short of the edge): about 11 of 1,280 boxes expected at each edge,
    # none with probability e^-11
    assert (boxes[:, 0] <= H - h).all() and (boxes[:, 2] <= W - w).all()
    assert (boxes[:, 0] == H - h).any() and (boxes[:, 2] == W - w).any()
    weight = np.array([ref.ranged_cutmix_mask(b, H, W)[1] for b in boxes])  # spec 4b's weight
    np.testing.assert_allclose(weight, 1.0 - h * w / (H * W), rtol=0, atol=1e-12)
    np.testing.assert_allclose(params[:, 1], weight, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(params[:, 2:4], boxes[:, [0, 2]])  # top-left reported
    own = targets[np.arange(len(targets)), np.tile(np.arange(BATCH), ITERS)]
    np.testing.assert_allclose(own, weight, rtol=0, atol=1e-6)
    rng = np.random.default_rng(5)
    p_values = [side_chi2(h, h_lo, h_hi), side_chi2(w, h_lo, h_hi),
                stats.kstest(uniform_positions(rng, boxes[:, 0], H - h + 1), "uniform").pvalue,
                stats.kstest(uniform_positions(rng, boxes[:, 2], W - w + 1), "uniform").pvalue]
    assert min(p_values) > LEVEL / 4, p_values  # Bonferroni over the four
    n = len(boxes)

    def wrong_max(r):  # sides from a range 10 % shorter at the top
        s = np.array([ref.minmax_box(r, H, W, (lo, hi * 0.9)) for _ in range(n)])
        return side_chi2(s[:, 1] - s[:, 0], h_lo, h_hi) <= LEVEL / 4

    def wrong_place(r):  # the corner over 90 % of where the box fits
        sides = r.integers(h_lo, h_hi, n)
        y0 = np.floor(r.random(n) * 0.9 * (H - sides + 1)).astype(int)
        return stats.kstest(uniform_positions(r, y0, H - sides + 1), "uniform").pvalue <= LEVEL / 4

    assert power(wrong_max, sims=50) >= 0.9 and power(wrong_place, sims=100) >= 0.9


def test_area_boxes_follow_unimatch(device):
    area, aspect = (0.02, 0.4), (0.3, 1 / 0.3)
    # 5,120 boxes: a 10 % error in the largest aspect moves few boxes (most are rejected there)
    boxes, params, _ = drawn_boxes(device, chunks=4, cutmix_area=list(area))  # default aspect
    h, w = boxes[:, 1] - boxes[:, 0], boxes[:, 3] - boxes[:, 2]
    rng = np.random.default_rng(8)
    ref_boxes = np.array([ref.area_box(rng, H, W, area, aspect) for _ in range(20000)])
    rh, rw = ref_boxes[:, 1] - ref_boxes[:, 0], ref_boxes[:, 3] - ref_boxes[:, 2]
    p_values = [stats.ks_2samp(h * w, rh * rw).pvalue, stats.ks_2samp(h / w, rh / rw).pvalue,
                stats.kstest(uniform_positions(rng, boxes[:, 0], H - h + 1), "uniform").pvalue,
                stats.kstest(uniform_positions(rng, boxes[:, 2], W - w + 1), "uniform").pvalue]
    assert min(p_values) > LEVEL / 4, p_values
    # the box fits with its far edge on the image's: given a fit, the corner is uniform over
    # [0, H - h], so about sum 1 / (H - h + 1) boxes touch the bottom edge (the same for the
    # right); none of them would with a fit test one pixel short ("<" for "<=")
    for far, side, size in ((boxes[:, 1], h, H), (boxes[:, 3], w, W)):
        expected = np.sum(1.0 / (size - side + 1))
        assert expected > 20 and (far == size).any(), expected  # P(none) about e^-expected
    np.testing.assert_allclose(params[:, 1], 1.0 - h * w / (H * W), rtol=0, atol=1e-6)
    n = len(boxes)

    def rejects(area_=area, aspect_=aspect):
        def run(r):
            s = np.array([ref.area_box(r, H, W, area_, aspect_) for _ in range(n)])
            sh, sw = s[:, 1] - s[:, 0], s[:, 3] - s[:, 2]
            return min(stats.ks_2samp(sh * sw, rh * rw).pvalue,
                       stats.ks_2samp(sh / sw, rh / rw).pvalue) <= LEVEL / 4
        return run

    assert power(rejects(area_=(0.02, 0.36)), sims=50) >= 0.9  # area_max 10 % off
    assert power(rejects(aspect_=(0.3, 0.9 / 0.3)), sims=50) >= 0.9  # aspect_max 10 % off


def test_reference_samplers_follow_the_spec():
    """reference.minmax_box and area_box themselves (the tests above simulate power with them):
    every side and corner in the range spec 4b states, both ends of each range reached (20,000
    boxes: each end expected tens to hundreds of times), UniMatch's boxes inside the image, the
    image's far edges reached, area and aspect inside their ranges (up to the sides' floor)."""
    def inside_reaching_every_edge(sampler, *args):  # (boxes, heights, widths)
        b = np.array([sampler(rng, H, W, *args) for _ in range(n)])
        assert (b[:, 0] >= 0).all() and (b[:, 1] <= H).all() and (b[:, 2] >= 0).all()
        assert (b[:, 3] <= W).all() and (b[:, 0] == 0).any() and (b[:, 1] == H).any()
        assert (b[:, 2] == 0).any() and (b[:, 3] == W).any()
        return b, b[:, 1] - b[:, 0], b[:, 3] - b[:, 2]

    rng = np.random.default_rng(12)
    n, lo, hi = 20000, 0.2, 0.7
    _, h, w = inside_reaching_every_edge(ref.minmax_box, (lo, hi))
    for side in (h, w):  # timm: randint(int(size lo), int(size hi)), the top excluded
        assert side.min() == int(H * lo) and side.max() == int(H * hi) - 1
    area, aspect = (0.02, 0.4), (0.3, 1 / 0.3)
    _, h, w = inside_reaching_every_edge(ref.area_box, area, aspect)
    assert (h * w <= area[1] * H * W).all() and ((h + 1) * (w + 1) >= area[0] * H * W).all()
    assert (h / (w + 1) <= aspect[1]).all() and ((h + 1) / w >= aspect[0]).all()
    assert (h * w < 0.05 * H * W).any() and (h * w > 0.35 * H * W).any()


@pytest.mark.parametrize("kw", [dict(cutmix_minmax=[0.3, 0.6]), dict(cutmix_area=[0.1, 0.3])])
def test_one_box_per_batch_in_batch_mode(device, kw):
    images = np.zeros((8, H, W, 3), np.uint8)
    for masks in (r[2] for r in run_mix(images, class_labels(8), iterations=4, device=device,
                                       method="cutmix", mode="batch", seed=2, num_classes=8,
                                       **kw)):
        assert all(np.array_equal(m, masks[0]) for m in masks)
        boxes_of(masks[:1])


def test_label_maps_and_detection_boxes_follow_the_drawn_box(device):
    rng = np.random.default_rng(3)
    batch = 6
    images = rng.integers(0, 256, (batch, H, W, 3), dtype=np.uint8)
    maps = rng.integers(0, 7, (batch, H, W), dtype=np.uint8)
    det = [np.float32([[0.1, 0.1, 0.6, 0.5], [0.5, 0.4, 0.9, 0.95]])[: 1 + i % 2]
           for i in range(batch)]
    det_labels = [np.arange(len(b), dtype=np.int32) + 10 * i for i, b in enumerate(det)]
    outs = run_mix(images, class_labels(batch), device=device, method="cutmix", mode="elem",
                   num_classes=batch,
                   seed=4, seg=maps, boxes=det, box_labels=det_labels,
                   cutmix_area=[0.1, 0.4], min_visible=0.2)
    mixed, _, mixed_maps, out_boxes, out_labels, out_weights, masks, params = outs
    boxes = boxes_of(masks)
    expect_x = np.where(masks[..., None] == 0, images[::-1], images)
    np.testing.assert_array_equal(mixed, expect_x)
    np.testing.assert_array_equal(mixed_maps, ref.mix_seg(
        maps, masks, "cutmix", lam=params[:, 1], center=params[:, 2:4].astype(np.int64)))
    want = ref.mix_boxes(det, det_labels, "cutmix", lam=params[:, 1],
                         center=params[:, 2:4].astype(np.int64), height=H, width=W,
                         pasted_boxes=boxes)
    for i in range(batch):
        np.testing.assert_allclose(out_boxes[i], want[i][0], rtol=0, atol=1e-6)
        np.testing.assert_array_equal(out_labels[i], want[i][1])
        np.testing.assert_array_equal(out_weights[i], want[i][2])


def test_ranged_box_refusals(device):
    img = np.zeros((4, 32, 32, 3), np.uint8)
    cases = [
        (dict(cutmix_minmax=[0.5, 0.4]), r"`cutmix_minmax` must satisfy 0 < min < max <= 1; got "
                                         r"\(0.5, 0.4\)"),
        (dict(cutmix_minmax=[0.1, 0.11]), r"`cutmix_minmax` \(0.1, 0.11\) holds no whole side for "
                                          r"H = 32: floor\(H min\) = 3 must be below floor\(H "
                                          r"max\) = 3"),
        (dict(cutmix_minmax=[0.2, 0.5], cutmix_area=[0.1, 0.2]), r"two ways to draw CutMix's "
                                                                 r"box: give one"),
        (dict(cutmix_aspect=[0.5, 2.0]), r"`cutmix_aspect` goes with `cutmix_area`"),
        (dict(cutmix_area=[0.1, 1.5]), r"`cutmix_area` must satisfy 0 < min <= max <= 1"),
        (dict(cutmix_area=[0.0, 0.4]), r"`cutmix_area` must satisfy 0 < min <= max <= 1; got "
                                       r"\(0, 0.4\)"),
        (dict(cutmix_area=[0.1, 0.4], cutmix_aspect=[0.0, 2.0]),
         r"`cutmix_aspect` \(h / w\) must satisfy 0 < min <= max; got \(0, 2\)"),
        (dict(cutmix_area=[0.1, 0.4], cutmix_aspect=[2.0, 1.0]),
         r"`cutmix_aspect` \(h / w\) must satisfy 0 < min <= max; got \(2, 1\)"),
        (dict(cutmix_area=[0.5, 0.9], cutmix_aspect=[3.0, 4.0]), r"`cutmix_area` up to 0.9 with "
                                                                 r"`cutmix_aspect` \(3, 4\) holds "
                                                                 r"boxes that never fit a 32 x 32 "
                                                                 r"image"),
        (dict(cutmix_area=[0.5, 1.0]), r"`cutmix_area` up to 1 with `cutmix_aspect` \(0.3, "
                                       r"3.3333333\) holds boxes that never fit a 32 x 32 image "
                                       r"\(the largest area fits for aspects in \[1, 1\] only\)"),
        (dict(cutmix_minmax=[0.2, 0.5], center=np.float32([[0.5, 0.5]] * 4)),
         r"`center` places a box cut from lam"),
    ]
    for kw, message in cases:
        expect_error(message, images=img, labels=class_labels(4), method="cutmix", mode="elem",
                     device=device, **kw)
    # the rules' edges that hold are accepted: one whole side (3 of 32: floor(3.2) < floor(4.2)),
    # max 1, min == max, and the whole image where its aspect alone is allowed
    accepted = [(dict(cutmix_minmax=[0.1, 0.13]), (3, 3)), (dict(cutmix_minmax=[0.5, 1.0]), None),
                (dict(cutmix_area=[0.25, 0.25], cutmix_aspect=[1.0, 1.0]), (16, 16)),
                (dict(cutmix_area=[1.0, 1.0], cutmix_aspect=[1.0, 1.0]), (32, 32))]
    for kw, side in accepted:
        _, targets, masks, params = run_mix(img, class_labels(4), device=device, method="cutmix",
                                            mode="elem", num_classes=4, seed=1, **kw)
        boxes = boxes_of(masks)  # each mask exactly one box
        if side is not None:
            assert ((boxes[:, 1] - boxes[:, 0] == side[0]) &
                    (boxes[:, 3] - boxes[:, 2] == side[1])).all(), (kw, boxes)
        np.testing.assert_allclose(params[:, 1], [ref.ranged_cutmix_mask(b, 32, 32)[1]
                                                  for b in boxes], rtol=0, atol=1e-6)


def test_pipelines_pass_the_ranges(data_root):
    from dali_msda.pipelines import MixConfig, imagenet_train

    cfg = MixConfig.from_timm(mixup_alpha=0.0, cutmix_minmax=(0.3, 0.6), num_classes=None,
                              label_smoothing=0.0, mode="elem")
    assert (cfg.method, cfg.alpha, cfg.cutmix_minmax) == ("cutmix", 1.0, (0.3, 0.6))
    pipe = imagenet_train(os.path.join(data_root, "train"), batch_size=8, num_threads=2,
                          device="cpu", crop=64, dtype="float32", mix=cfg, output_params=True)
    pipe.build()
    _, targets, params = (np.stack([np.array(o[i]) for i in range(len(o))])
                          for o in pipe.run())
    share = 1.0 - params[:, 1]  # the box's area share, reported as 1 - lam
    assert (share >= (19 / 64) ** 2 - 1e-6).all() and (share <= (37 / 64) ** 2 + 1e-6).all()
    np.testing.assert_allclose(targets.sum(1), 1.0, atol=1e-6)
