"""ClassMix (spec 12): masks from the partner's label map, on both backends. The op's masks equal
reference.classmix_mask for the subset read off them; the subset has ceil(n / 2) of the n labels
present (the ignore label not counted), drawn uniformly (statistical tests with stated power),
once per batch in batch mode; images, targets and maps follow the mask."""

import math

import numpy as np
import pytest
from scipy import stats

from dali_msda import reference as ref

from conftest import NP_TO_DALI, class_labels, random_images, run_mix
from test_properties import LEVEL, binomial_power

H, W = 24, 40


def region_maps(rng, batch, n_classes, dtype=np.uint8, ignore=None):
    """Maps of a few rectangular regions of random labels (0 .. n_classes - 1), each map
    holding a random subset of them; `ignore`: a label painted on a border too."""
    maps = np.zeros((batch, H, W), dtype)
    for b in range(batch):
        labels = rng.choice(n_classes, size=rng.integers(1, n_classes + 1), replace=False)
        for k, lab in enumerate(labels):
            y0, x0 = rng.integers(0, H), rng.integers(0, W)
            maps[b, y0:y0 + rng.integers(3, H), x0:x0 + rng.integers(3, W)] = lab
        if ignore is not None:
            maps[b, :2, :] = ignore
    return maps


def shown(maps, mirror):
    return np.stack([m[:, ::-1] if f else m for m, f in zip(maps, mirror)])


def check_run(device, maps, mode, mirror=None, ignore_index=-1, seed=3, in_dtype=np.uint8,
              out_dtype=None, **kw):
    """The op's ClassMix on `maps` (B x H x W) and images of `in_dtype` (out: `out_dtype`, default
    the same) against the reference; returns each sample's subset (None: unmixed)."""
    batch, h, w = maps.shape
    rng = np.random.default_rng(seed)
    images = random_images(rng, batch, (h, w, 3), in_dtype)
    mirror = np.zeros(batch, np.int32) if mirror is None else mirror
    if out_dtype is not None:
        kw["dtype"] = NP_TO_DALI[out_dtype]
    mixed, targets, mixed_maps, masks, params = run_mix(
        images, class_labels(batch), device=device, method="classmix", mode=mode,
        num_classes=batch, seg=maps, seg_layout="HW", mirror=mirror, seed=seed,
        ignore_index=ignore_index, **kw)
    partners = shown(maps, mirror)[::-1]  # sample i's partner is B - 1 - i
    subsets = []
    for i in range(batch):
        present = ref.present_classes(partners[i], ignore_index)
        if params[i, 0] == 0 or i == batch - 1 - i:
            np.testing.assert_array_equal(masks[i], 1.0)
            subsets.append(None)
            continue
        subset = np.unique(partners[i][masks[i] == 0])
        assert len(subset) == ref.classmix_subset_size(len(present)), (i, subset, present)
        assert np.isin(subset, present).all() and ignore_index not in subset
        mask, weight = ref.classmix_mask(partners[i], subset)
        np.testing.assert_array_equal(masks[i], mask)
        assert params[i, 1] == np.float32(weight) and params[i, 2] == params[i, 3] == 0
        subsets.append(tuple(subset))
    # images, targets and maps follow the masks (the reference given them)
    exp_mixed, exp_targets, _ = ref.mix(images, class_labels(batch), "classmix", lam=params[:, 1],
                                        center=np.zeros((batch, 2), np.int64),
                                        apply=params[:, 0] == 1, num_classes=batch,
                                        mirror=mirror, given_masks=masks, dtype=out_dtype)
    np.testing.assert_array_equal(mixed, exp_mixed)
    np.testing.assert_allclose(targets, exp_targets, atol=1e-6)
    np.testing.assert_array_equal(mixed_maps, ref.mix_seg(maps, masks, "classmix", lam=0,
                                                          center=np.zeros((batch, 2)),
                                                          mirror=mirror))
    return subsets


@pytest.mark.parametrize("dtype", [np.uint8, np.int32])
@pytest.mark.parametrize("mode", ["batch", "elem"])
def test_masks_are_the_partners_selected_classes(device, mode, dtype):
    rng = np.random.default_rng(5)
    maps = region_maps(rng, 9, 7, dtype, ignore=255)  # odd batch: the middle is alone
    check_run(device, maps, mode, mirror=rng.integers(0, 2, 9).astype(np.int32),
              ignore_index=255)
    check_run(device, maps, mode)  # 255 counted as a class when it is not the ignore label


def fine_maps(rng, batch, h, w, dtype, labels):
    """Maps whose labels change every pixel in some rows and on the right of others, in runs of
    1 to 40 pixels elsewhere, from `labels` (B x H x W of `dtype`)."""
    maps = rng.choice(labels, (batch, h, w)).astype(dtype)
    for b in range(batch):
        for r in range(0, h, 3):  # every third row: runs, then single pixels from a column on
            c, stop = 0, int(rng.integers(0, w))
            while c < stop:
                n = int(rng.integers(1, 41))
                maps[b, r, c:c + n] = rng.choice(labels)
                c += n
    return maps


@pytest.mark.parametrize("map_dtype,labels", [
    (np.uint8, np.arange(0, 256, 12)),
    (np.int32, np.arange(-40, 1000, 50)),             # a small range: looked up in a table
    (np.int32, np.array([-2**31, -7, 3, 90000, 2**31 - 1]))])  # a wide one: searched
@pytest.mark.parametrize("in_dtype,out_dtype", [(np.uint8, None), (np.uint8, np.float32),
                                                (np.float16, None), (np.float32, np.float16)])
@pytest.mark.parametrize("width", [224, 221])
@pytest.mark.parametrize("mirrored", [False, True])
def test_fine_maps_at_full_size(device, map_dtype, labels, in_dtype, out_dtype, width, mirrored):
    """224 x 224 (and an odd width: rows do not start at a byte of the bit mask) maps whose labels
    change every pixel in places: images, targets, masks and maps equal the reference. Without
    mirror the CPU mixes a bit mask's row as stored, by both of its ways (a copy per run of
    equal bits, a select per element from the first short run); with it, on the fused path."""
    rng = np.random.default_rng(width + len(labels))
    maps = fine_maps(rng, 6, 224, width, map_dtype, labels)
    mirror = np.array([0, 1, 1, 0, 1, 0] if mirrored else [0] * 6, np.int32)
    check_run(device, maps, "elem", mirror=mirror, ignore_index=int(labels[1]),
              in_dtype=in_dtype, out_dtype=out_dtype)


def striped_maps(batch):
    """Maps of the same 6 labels (0, 10, .., 50) each, in stripes laid out differently."""
    maps = np.zeros((batch, H, W), np.uint8)
    for b in range(batch):
        order = np.random.default_rng(b).permutation(6)
        for k, lab in enumerate(order):
            maps[b, :, k * W // 6:(k + 1) * W // 6] = lab * 10
    return maps


def test_batch_mode_picks_the_same_positions_for_every_sample(device):
    """One draw per batch: partners with the same labels get the same subset (elem mode: not)."""
    maps = striped_maps(16)
    batch_subsets = {s for s in check_run(device, maps, "batch") if s is not None}
    assert len(batch_subsets) == 1
    elem_subsets = {s for s in check_run(device, maps, "elem") if s is not None}
    assert len(elem_subsets) > 1


def test_unmixed_samples_and_a_partner_of_ignore_labels_only(device):
    maps = np.full((4, H, W), 255, np.uint8)
    check_run(device, maps, "elem", ignore_index=255)  # n = 0: nothing pasted
    check_run(device, region_maps(np.random.default_rng(0), 4, 5), "elem", prob=0.0)


@pytest.mark.parametrize("n", [4, 5])
def test_subsets_are_uniform(n):
    """With a fixed partner map of n labels, each subset of ceil(n / 2) is equally likely
    (chi-square over the C(n, k) subsets) and each label is selected with probability k / n
    (binomial, power > 0.9 against k / n off by 10 %), from 4,000 draws."""
    k = ref.classmix_subset_size(n)
    batch, iterations = 200, 20
    draws = batch * iterations  # every sample mixes (even batch)
    p = k / n
    for alt in (p * 0.9, min(1.0, p * 1.1)):
        assert binomial_power(draws, p, alt) > 0.9, (n, alt)
    maps = np.zeros((batch, H, W), np.uint8)
    for lab in range(n):
        maps[:, :, lab * W // n:(lab + 1) * W // n] = lab
    images = np.zeros((batch, H, W, 1), np.uint8)
    runs = run_mix(images, class_labels(batch), iterations=iterations, method="classmix",
                   mode="elem", num_classes=batch, seg=maps, seg_layout="HW", seed=11)
    subsets = [tuple(np.unique(maps[0][r[3][i] == 0])) for r in runs for i in range(batch)]
    assert all(len(s) == k for s in subsets)
    counts = {}
    for s in subsets:
        counts[s] = counts.get(s, 0) + 1
    assert len(counts) == math.comb(n, k)
    assert stats.chisquare(list(counts.values())).pvalue > LEVEL
    for lab in range(n):
        hits = sum(lab in s for s in subsets)
        assert stats.binomtest(hits, draws, p).pvalue > LEVEL, (lab, hits)


def test_classmix_needs_label_maps(device):
    from test_errors import expect_error

    expect_error(r"`method` \"classmix\" makes its masks from label maps: give them as the "
                 r"third input \(`seg`\); sample 0 has none", method="classmix", device=device)
    expect_error(r"`method_id` must be 0 \(mixup\), .*6 \(classmix\); got 7",
                 method="", method_id=np.full(4, 7, np.int32), mode="elem", device=device)
