"""Boxes through the op (spec 13): both backends equal reference.mix_boxes bit for bit, for
Mixup, CutMix and ResizeMix in both modes, with and without mirror, at 224 x 224 and a
non-square size; the reference itself is held to cases written out by hand (clipping at every
edge, the visibility threshold, empty box sets, boxes touching the paste); bad boxes get clear
errors."""

import numpy as np
import pytest

from dali_msda import reference as ref
from nvidia.dali import fn, pipeline_def

from conftest import class_labels, random_images, run_mix
from test_errors import expect_error

BOX_METHODS = list(ref.BOX_METHODS)


def random_boxes(rng, counts):
    """Per-sample relative ltrb boxes: random ones, boxes on the image's edges, the whole image,
    zero-area boxes, and empty sets (a count of 0)."""
    boxes = []
    for n in counts:
        a, b = rng.random((n, 2)), rng.random((n, 2))
        bx = np.concatenate([np.minimum(a, b), np.maximum(a, b)], axis=1).astype(np.float32)
        for k in range(n):
            kind = rng.integers(0, 8)
            if kind == 0:
                bx[k] = (0.0, 0.0, 1.0, 1.0)
            elif kind == 1:  # on an edge of the image
                bx[k, rng.integers(0, 2)] = 0.0
                bx[k, 2 + rng.integers(0, 2)] = 1.0
            elif kind == 2:  # no area
                bx[k, 2] = bx[k, 0]
        boxes.append(np.ascontiguousarray(bx))
    return boxes


def box_labels_for(boxes):
    return [np.arange(len(b), dtype=np.int32) + 100 * i for i, b in enumerate(boxes)]


def run_boxes(device, method, boxes, labels=None, batch=None, h=128, w=128, **kw):
    batch = len(boxes) if batch is None else batch
    labels = box_labels_for(boxes) if labels is None else labels
    images = random_images(np.random.default_rng(0), batch, (h, w, 3), np.uint8)
    outs = run_mix(images, class_labels(batch), device=device, method=method,
                   num_classes=batch, boxes=boxes, box_labels=labels, **kw)
    mixed, targets, out_boxes, out_labels, out_weights, masks, params = outs
    return out_boxes, out_labels, out_weights, masks, params


def check_against_reference(device, method, mode, h, w, seed, mirror=None,
                            counts=(5, 0, 7, 3, 1, 6, 0), **kw):
    """`counts`: boxes a sample (the default is odd: the middle sample is its own partner)."""
    rng = np.random.default_rng(seed)
    boxes = random_boxes(rng, counts)
    labels = box_labels_for(boxes)
    out_boxes, out_labels, out_weights, masks, params = run_boxes(
        device, method, boxes, labels, h=h, w=w, mode=mode, mirror=mirror, seed=seed, **kw)
    expect = ref.mix_boxes(boxes, labels, method, lam=params[:, 1],
                           center=params[:, 2:4].astype(np.int64), apply=params[:, 0] == 1.0,
                           mirror=mirror, height=h, width=w,
                           min_visible=kw.get("min_visible", ref.MIN_VISIBLE),
                           box=kw.get("box", "even"))
    for i, (eb, el, ew) in enumerate(expect):
        assert out_boxes[i].dtype == np.float32 and out_boxes[i].shape == eb.shape, i
        np.testing.assert_array_equal(out_boxes[i], eb, err_msg=f"sample {i}")
        np.testing.assert_array_equal(out_labels[i], el, err_msg=f"sample {i}")
        np.testing.assert_array_equal(out_weights[i], ew, err_msg=f"sample {i}")
        assert np.all((eb >= 0) & (eb <= 1)) and np.all(eb[:, :2] <= eb[:, 2:])
    return out_boxes, params


@pytest.mark.parametrize("mode", ["batch", "elem", "pair"])
@pytest.mark.parametrize("method", BOX_METHODS)
def test_boxes_match_reference(device, method, mode):
    for seed in range(4):
        check_against_reference(device, method, mode, 224, 224, seed)
    mirror = np.array([1, 0, 1, 1, 0, 1, 0], np.int32)
    check_against_reference(device, method, mode, 37, 52, 5, mirror=mirror,
                            mean=[1.0, 2.0, 3.0], std=[2.0, 2.0, 2.0], output_layout="CHW")
    check_against_reference(device, method, mode, 52, 37, 6, min_visible=0.5, box="exact")


@pytest.mark.parametrize("method", BOX_METHODS)
def test_outputs_whose_first_samples_have_no_boxes(device, method):
    """Samples 0 and 1 and their partners have no boxes, so the outputs' first boxes belong to
    sample 2: each sample's boxes still land in its own output."""
    out_boxes, _ = check_against_reference(device, method, "elem", 64, 48, 7,
                                           counts=(0, 0, 4, 3, 0, 0))
    assert [len(b) for b in out_boxes][:2] == [0, 0] and len(out_boxes[2]) > 0


def test_boxes_are_clipped_and_dropped_somewhere(device):
    """The draws above must exercise every branch: some own boxes shrink, some vanish, some
    partner boxes are clipped (else the comparison could pass with a rule never run)."""
    rng = np.random.default_rng(11)
    boxes = random_boxes(rng, [30] * 8)
    out_boxes, _, _, _, params = run_boxes(device, "cutmix", boxes, h=224, w=224, mode="elem",
                                           alpha=1.0)
    own_in = {tuple(b) for i in range(8) for b in boxes[i]}
    shrunk = sum(tuple(b) not in own_in for i in range(8) for b in out_boxes[i])
    assert shrunk > 20
    assert sum(len(b) for b in out_boxes) < 2 * sum(len(b) for b in boxes)


# ---- the reference held to cases written out by hand ------------------------------------------
# 128 x 128 images, lam = 0.75 and centre (0.5, 0.5): CutMix cuts 64 x 64 at rows and columns
# [32, 96), so the paste is P = [0.25, 0.75] x [0.25, 0.75] exactly (binary fractions throughout).

OWN = np.array([
    (0.125, 0.375, 0.5, 0.625),      # P covers its right part: x shrinks to [0.125, 0.25]
    (0.5, 0.3125, 0.875, 0.6875),    # P covers its left part: x from 0.75
    (0.375, 0.0625, 0.625, 0.5),     # P covers its bottom: y up to 0.25
    (0.3125, 0.5, 0.6875, 0.9375),   # P covers its top: y from 0.75
    (0.125, 0.375, 0.875, 0.625),    # P across its middle: both sides show, unchanged
    (0.625, 0.625, 0.875, 0.875),    # a corner under P: unchanged
    (0.375, 0.375, 0.625, 0.625),    # inside P: dropped
    (0.75, 0.25, 1.0, 0.5),          # touching P's right edge: untouched
    (0.1, 0.1, 0.1, 0.2),            # no area: dropped where something is pasted
    (0.0, 0.0, 1.0, 1.0),            # the whole image (its edges): 3/4 shows, unchanged
], np.float32)
OWN_CUT = [
    ((0.125, 0.375, 0.25, 0.625), 0), ((0.75, 0.3125, 0.875, 0.6875), 1),
    ((0.375, 0.0625, 0.625, 0.25), 2), ((0.3125, 0.75, 0.6875, 0.9375), 3),
    ((0.125, 0.375, 0.875, 0.625), 4), ((0.625, 0.625, 0.875, 0.875), 5),
    ((0.75, 0.25, 1.0, 0.5), 7), ((0.0, 0.0, 1.0, 1.0), 9),
]
PARTNER = np.array([
    (0.125, 0.125, 0.5, 0.5),        # 0.0625 / 0.140625 = 0.44 of it inside P: clipped
    (0.0, 0.0, 0.3125, 0.3125),      # 0.04 inside: dropped (< 0.2)
    (0.75, 0.25, 1.0, 0.5),          # touching P: nothing inside, dropped
    (0.0, 0.0, 1.0, 1.0),            # a quarter inside: clipped to P
    (0.5, 0.5, 1.0, 0.75),           # half inside
], np.float32)
PARTNER_CUT = [((0.25, 0.25, 0.5, 0.5), 0), ((0.25, 0.25, 0.75, 0.75), 3),
               ((0.5, 0.5, 0.75, 0.75), 4)]
# ResizeMix with tau = 0.5 at the same centre pastes the whole partner into the same P
PARTNER_RESIZED = [((0.3125, 0.3125, 0.5, 0.5), 0), ((0.25, 0.25, 0.40625, 0.40625), 1),
                   ((0.625, 0.375, 0.75, 0.5), 2), ((0.25, 0.25, 0.75, 0.75), 3),
                   ((0.5, 0.5, 0.75, 0.625), 4)]


def written_out(pairs, label_base):
    boxes = np.array([b for b, _ in pairs], np.float32).reshape(-1, 4)
    return boxes, np.array([label_base + k for _, k in pairs], np.int32)


def hand_case(device, method, lam, **kw):
    boxes = [OWN, PARTNER]
    return run_boxes(device, method, boxes, lam=np.float32([lam, lam]),
                     center=np.float32([[0.5, 0.5], [0.5, 0.5]]), **kw)


@pytest.mark.parametrize("method", ["cutmix", "resizemix"])
def test_written_out_cut_and_paste(device, method):
    lam = 0.75 if method == "cutmix" else 0.5
    out_boxes, out_labels, out_weights, masks, _ = hand_case(device, method, lam)
    assert (masks[0] == 0).sum() == 64 * 64 and masks[0][32:96, 32:96].max() == 0
    partner = PARTNER_CUT if method == "cutmix" else PARTNER_RESIZED
    eb, el = written_out(OWN_CUT, 0)
    pb, pl = written_out(partner, 100)
    np.testing.assert_array_equal(out_boxes[0], np.concatenate([eb, pb]))
    np.testing.assert_array_equal(out_labels[0], np.concatenate([el, pl]))
    np.testing.assert_array_equal(out_weights[0], np.ones(len(el) + len(pl), np.float32))
    for i, (eb_, el_, _) in enumerate(ref.mix_boxes(
            [OWN, PARTNER], box_labels_for([OWN, PARTNER]), method, lam=[lam, lam],
            center=[[64, 64], [64, 64]], height=128, width=128)):
        np.testing.assert_array_equal(out_boxes[i], eb_)
        np.testing.assert_array_equal(out_labels[i], el_)


def test_visibility_threshold(device):
    """The first own box keeps 1/3 of its area: kept at min_visible 1/3 - 1e-6, dropped above."""
    for threshold, kept in ((1 / 3 - 1e-6, True), (1 / 3 + 1e-6, False)):
        out_boxes, out_labels, *_ = hand_case(device, "cutmix", 0.75, min_visible=threshold)
        assert (0 in out_labels[0]) == kept
        assert (4 in out_labels[0]) == kept     # across the middle: 1/3 shows too
        assert 5 in out_labels[0]               # 3/4 shows
    # partner boxes: 0.44 inside
    out_boxes, out_labels, *_ = hand_case(device, "cutmix", 0.75, min_visible=0.45)
    assert 100 not in out_labels[0] and 104 in out_labels[0]
    out_boxes, out_labels, *_ = hand_case(device, "cutmix", 0.75, min_visible=0.0)
    assert 100 in out_labels[0] and 101 in out_labels[0] and 102 not in out_labels[0]
    assert 6 not in out_labels[0]  # covered whole: nothing shows, whatever the threshold


def test_visibility_threshold_exact(device):
    """A box whose visible share equals min_visible exactly is kept (the rule is >=, for own and
    partner boxes alike): partner box 4 is exactly half inside P, partner box 3 a quarter, own
    boxes 5 and 9 show exactly 3/4 (binary fractions: every share is exact in float32)."""
    out_boxes, out_labels, *_ = hand_case(device, "cutmix", 0.75, min_visible=0.5)
    assert 104 in out_labels[0] and 103 not in out_labels[0]
    out_boxes, out_labels, *_ = hand_case(device, "cutmix", 0.75, min_visible=0.25)
    assert 103 in out_labels[0] and 104 in out_labels[0]
    out_boxes, out_labels, *_ = hand_case(device, "cutmix", 0.75, min_visible=0.75)
    assert 5 in out_labels[0] and 9 in out_labels[0] and 0 not in out_labels[0]
    assert 100 not in out_labels[0] and 104 not in out_labels[0]
    for threshold, labels in ((0.5, [104]), (0.25, [103, 104]), (0.75, [5, 9])):
        for i, (_, el, _) in enumerate(ref.mix_boxes(
                [OWN, PARTNER], box_labels_for([OWN, PARTNER]), "cutmix", lam=[0.75, 0.75],
                center=[[64, 64], [64, 64]], height=128, width=128, min_visible=threshold)):
            if i == 0:
                assert set(labels) <= set(el.tolist()), threshold


def test_written_out_mirror(device):
    """Sample 0 mirrored: its boxes flip before the paste; (0.125, 0.375, 0.5, 0.625) becomes
    (0.5, 0.375, 0.875, 0.625), whose left part P covers."""
    out_boxes, out_labels, *_ = hand_case(device, "cutmix", 0.75,
                                          mirror=np.int32([1, 0]))
    k = list(out_labels[0]).index(0)
    np.testing.assert_array_equal(out_boxes[0][k], np.float32([0.75, 0.375, 0.875, 0.625]))
    # the partner (sample 1, not mirrored) shows its own boxes, unflipped
    assert 100 in out_labels[0]
    np.testing.assert_array_equal(out_boxes[0][list(out_labels[0]).index(100)],
                                  np.float32([0.25, 0.25, 0.5, 0.5]))


def test_written_out_mixup(device):
    out_boxes, out_labels, out_weights, *_ = hand_case(device, "mixup", 0.25)
    np.testing.assert_array_equal(out_boxes[0], np.concatenate([OWN, PARTNER]))
    np.testing.assert_array_equal(out_labels[0], np.concatenate([np.arange(10),
                                                                 100 + np.arange(5)]))
    np.testing.assert_array_equal(out_weights[0], np.float32([0.25] * 10 + [0.75] * 5))
    np.testing.assert_array_equal(out_weights[1], np.float32([0.25] * 5 + [0.75] * 10))


@pytest.mark.parametrize("method", BOX_METHODS)
def test_unmixed_and_empty(device, method):
    """prob 0: every sample keeps its boxes (the zero-area one too), weight 1; empty box sets
    everywhere give empty outputs; a sample without boxes takes its partner's."""
    out_boxes, out_labels, out_weights, *_ = hand_case(device, method, 0.75, prob=0.0)
    np.testing.assert_array_equal(out_boxes[0], OWN)
    np.testing.assert_array_equal(out_weights[0], np.ones(10, np.float32))
    empty = [np.zeros((0, 4), np.float32)] * 4
    out_boxes, out_labels, out_weights, *_ = run_boxes(device, method, empty)
    assert all(b.shape == (0, 4) and len(l) == 0 and len(w) == 0
               for b, l, w in zip(out_boxes, out_labels, out_weights))
    out_boxes, out_labels, *_ = run_boxes(device, method, [np.zeros((0, 4), np.float32), PARTNER],
                                          lam=np.float32([0.5, 0.5]),
                                          center=np.float32([[0.5, 0.5]] * 2))
    assert len(out_labels[0]) > 0 and set(out_labels[0]) <= set(100 + np.arange(5))


def test_box_labels_as_columns(device):
    labels = [np.arange(10, dtype=np.int32)[:, None], 100 + np.arange(5, dtype=np.int32)[:, None]]
    out = hand_case(device, "mixup", 0.25, labels=labels)
    np.testing.assert_array_equal(out[1][0], np.concatenate([np.arange(10), 100 + np.arange(5)]))


# ---- bad boxes -----------------------------------------------------------------------------------

IMG4 = np.zeros((4, 16, 16, 3), np.uint8)
GOOD = [np.float32([[0.1, 0.1, 0.5, 0.5]])] * 4
GOOD_LABELS = [np.int32([1])] * 4


def box_error(fragment, device, boxes=GOOD, box_labels=GOOD_LABELS, **kw):
    kw.setdefault("method", "cutmix")
    expect_error(fragment, images=IMG4, labels=class_labels(4), device=device, boxes=boxes,
                 box_labels=box_labels, **kw)


def test_box_errors(device):
    bad = [GOOD[0], np.float32([[0.1, 0.1, 1.5, 0.5]]), GOOD[0], GOOD[0]]
    box_error(r"`boxes` coordinates must be relative, in \[0, 1\]; got 1.5 as r of box 0 of "
              r"sample 1", device, boxes=bad)
    bad = [GOOD[0], GOOD[0], np.float32([[0.1, 0.1, 0.5, 0.5], [0.6, 0.1, 0.5, 0.5]]), GOOD[0]]
    box_error(r"`boxes` must have l <= r and t <= b \(ltrb\); got \(0.6, 0.1, 0.5, 0.5\) as box "
              r"1 of sample 2", device, boxes=bad,
              box_labels=[GOOD_LABELS[0], GOOD_LABELS[0], np.int32([1, 2]), GOOD_LABELS[0]])
    upside_down = [GOOD[0], np.float32([[0.1, 0.6, 0.5, 0.5]])] + GOOD[2:]  # t > b
    box_error(r"got \(0.1, 0.6, 0.5, 0.5\) as box 0 of sample 1", device, boxes=upside_down)
    nan = [np.float32([[0.1, np.nan, 0.5, 0.5]])] + GOOD[1:]
    box_error(r"got nan as t of box 0 of sample 0", device, boxes=nan)
    # a value just past 1 is printed so that it shows why (the shortest float32 form, not "1")
    over = [np.float32([[0.1, 0.1, np.float32(1.0000001), 0.5]])] + GOOD[1:]
    box_error(r"got 1\.0000001 as r of box 0 of sample 0", device, boxes=over)
    under = [np.float32([[0.1, 0.1, 0.5, 0.5]]), np.float32([[0.5, 0.1, 0.49999997, 0.2]])] + \
        GOOD[2:]
    box_error(r"got \(0\.5, 0\.1, 0\.49999997, 0\.2\) as box 0 of sample 1", device,
              boxes=under)
    box_error(r"`box_labels` must have one label per box, shape \(1,\) or \(1, 1\) for the 1 "
              r"boxes of sample 3; got \(2,\)", device,
              box_labels=GOOD_LABELS[:3] + [np.int32([1, 2])])
    box_error(r"`box_labels` must have one label per box, shape \(1,\) or \(1, 1\) for the 1 "
              r"boxes of sample 0; got \(1, 2\)", device,
              box_labels=[np.int32([[1, 2]])] * 4)
    box_error(r"`boxes` must have shape \(N, 4\) \(relative l, t, r, b\) per sample; got "
              r"\(1, 5\) for sample 0", device,
              boxes=[np.float32([[0.1, 0.1, 0.5, 0.5, 1.0]])] + GOOD[1:])
    box_error(r"`boxes` must be float32; got float64", device,
              boxes=[b.astype(np.float64) for b in GOOD])
    box_error(r"`box_labels` must be int32; got int64", device,
              box_labels=[b.astype(np.int64) for b in GOOD_LABELS])
    box_error(r"`boxes` are mixed by \"mixup\", \"cutmix\" and \"resizemix\" only \(spec 13\); "
              r"sample 0 has method \"hmix\"", device, method="hmix")
    box_error(r"`boxes` and `box_labels` go together \(spec 13\): got `boxes` without "
              r"`box_labels`", device, box_labels=None)
    box_error(r"`boxes` and `box_labels` go together \(spec 13\): got `box_labels` without "
              r"`boxes`", device, boxes=None)
    box_error(r"`min_visible` must be in \[0, 1\]; got 1.5", device, min_visible=1.5)
    for name, const in (("boxes", [0.1, 0.1, 0.5, 0.5]), ("box_labels", [1])):
        @pipeline_def(batch_size=4, num_threads=1, device_id=None)
        def pipe():
            x = fn.external_source(source=lambda: list(IMG4), batch=True, layout="HWC")
            y = fn.external_source(source=lambda: list(class_labels(4)), batch=True)
            b = fn.external_source(source=lambda: GOOD, batch=True)
            lab = fn.external_source(source=lambda: GOOD_LABELS, batch=True)
            args = {"boxes": b, "box_labels": lab, name: const}
            return tuple(fn.msda.mix(x, y, method="cutmix", num_classes=4, **args))

        with pytest.raises(RuntimeError, match=rf"`{name}` must be an argument input .* not a "
                                               r"constant"):
            p = pipe()
            p.build()
            p.run()


def test_box_errors_per_sample_method_and_sequences(device):
    box_error(r"sample 2 has method \"gmix\"", device, method="",
              method_id=np.int32([0, 1, 3, 5]), mode="elem")
    seq = np.zeros((4, 2, 16, 16, 3), np.uint8)
    expect_error(r"`boxes` are not supported for sequences \(layout \"FHWC\"\)", images=seq,
                 labels=class_labels(4), device=device, layout="FHWC", boxes=GOOD,
                 box_labels=GOOD_LABELS, method="cutmix")


# ---- property-based: random batches, sizes, boxes and parameters against the reference --------

def test_random_cases_match_reference():
    hypothesis = pytest.importorskip("hypothesis")
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from conftest import FUZZ_SEED

    coord = st.one_of(st.sampled_from([0.0, 0.25, 0.5, 1.0]), st.floats(0.0, 1.0, width=32))

    @st.composite
    def case(draw):
        batch = draw(st.integers(1, 6))
        h, w = draw(st.integers(1, 40)), draw(st.integers(1, 40))
        boxes = []
        for _ in range(batch):
            n = draw(st.integers(0, 5))
            rows = []
            for _ in range(n):
                x = sorted([draw(coord), draw(coord)])
                y = sorted([draw(coord), draw(coord)])
                rows.append((x[0], y[0], x[1], y[1]))
            boxes.append(np.array(rows, np.float32).reshape(-1, 4))
        kw = dict(method=draw(st.sampled_from(BOX_METHODS)),
                  mode=draw(st.sampled_from(["batch", "elem"])),
                  min_visible=draw(st.sampled_from([0.0, 0.2, 0.5, 1.0])),
                  box=draw(st.sampled_from(["even", "exact"])),
                  prob=draw(st.sampled_from([1.0, 0.5])), seed=draw(st.integers(0, 2**20)))
        if draw(st.booleans()):
            kw["mirror"] = np.array(draw(st.lists(st.integers(0, 1), min_size=batch,
                                                  max_size=batch)), np.int32)
        return boxes, h, w, kw

    @settings(max_examples=60, deadline=None, database=None,
              suppress_health_check=list(HealthCheck), print_blob=True)
    @hypothesis.seed(FUZZ_SEED)
    @given(case())
    def check(c):
        boxes, h, w, kw = c
        method = kw.pop("method")
        labels = box_labels_for(boxes)
        out_boxes, out_labels, out_weights, masks, params = run_boxes(
            "cpu", method, boxes, labels, h=h, w=w, **kw)
        expect = ref.mix_boxes(boxes, labels, method, lam=params[:, 1],
                               center=params[:, 2:4].astype(np.int64),
                               apply=params[:, 0] == 1.0, mirror=kw.get("mirror"), height=h,
                               width=w, min_visible=kw["min_visible"], box=kw["box"])
        for i, (eb, el, ew) in enumerate(expect):
            np.testing.assert_array_equal(np.asarray(out_boxes[i]).reshape(-1, 4), eb)
            np.testing.assert_array_equal(np.asarray(out_labels[i]).reshape(-1), el)
            np.testing.assert_array_equal(np.asarray(out_weights[i]).reshape(-1), ew)

    check()
