"""Bad input gives a DALI error naming the argument, the rule and the received value."""

import numpy as np
import pytest
from nvidia.dali import fn, pipeline_def, types

from conftest import class_labels, run_mix

IMG = np.zeros((4, 8, 8, 3), dtype=np.uint8)
LBL = class_labels(4)


def expect_error(fragment, images=IMG, labels=LBL, **kwargs):
    kwargs.setdefault("method", "mixup")
    kwargs.setdefault("num_classes", 4)
    with pytest.raises(RuntimeError, match=fragment):
        run_mix(images, labels, **kwargs)


def test_shapes_differ_within_batch(device):
    images = [np.zeros((8, 8, 3), np.uint8), np.zeros((8, 9, 3), np.uint8)]
    expect_error(r"`images` must all have the same shape; sample 0 has shape \(8, 8, 3\) but "
                 r"sample 1 has \(8, 9, 3\)", images=images, labels=class_labels(2),
                 device=device)


def test_unsupported_dtype(device):
    expect_error(r"`images` must be uint8, float16 or float32; got int32",
                 images=IMG.astype(np.int32), device=device)


def test_unsupported_layout(device):
    expect_error(r"`images` layout must be one of HWC, CHW, FHWC, FCHW; got \"WHC\"",
                 layout="WHC", device=device)


def test_layout_dims_mismatch(device):
    expect_error(r"without a layout must have 3 dimensions .* got 2 dimensions",
                 images=np.zeros((4, 8, 8), np.uint8), layout=None, device=device)


def test_label_out_of_range(device):
    labels = np.array([[0], [1], [4], [2]], dtype=np.int32)
    expect_error(r"`labels` must be class indices in \[0, 4\) \(`num_classes`\); got 4 for "
                 r"sample 2", labels=labels, device=device)
    expect_error(r"got -1 for sample 0", labels=np.array([[-1], [1], [2], [3]], np.int64),
                 device=device)


def test_missing_num_classes(device):
    expect_error(r"`num_classes` is required when `labels` are class indices",
                 num_classes=None, device=device)


def test_label_vectors_of_wrong_length(device):
    soft = [np.full(5, 0.2, np.float32)] * 3 + [np.full(4, 0.25, np.float32)]
    expect_error(r"sample 0 has 5 entries but sample 3 has 4", labels=soft, num_classes=None,
                 device=device)
    soft = [np.full(5, 0.2, np.float32)] * 4
    expect_error(r"Soft `labels` must have length `num_classes` = 4; got length 5",
                 labels=soft, device=device)


@pytest.mark.parametrize("value,fragment", [
    (np.nan, r"must be finite and >= 0 \(probabilities\); got nan at index 2 of sample 3"),
    (np.inf, r"must be finite and >= 0 \(probabilities\); got inf at index 2 of sample 3"),
    (-0.5, r"must be finite and >= 0 \(probabilities\); got -0.5 at index 2 of sample 3"),
    (0.75, r"must sum to 1 \(within 0.001\); sample 3 sums to 1.5"),
    (0.2515, r"must sum to 1 \(within 0.001\); sample 3 sums to 1.0015"),  # just past the
    (0.2485, r"must sum to 1 \(within 0.001\); sample 3 sums to 0.9985")])  # tolerance
def test_soft_labels_must_be_distributions(device, value, fragment):
    soft = [np.full(4, 0.25, np.float32) for _ in range(4)]
    soft[3][2] = value
    expect_error(r"Soft `labels` " + fragment, labels=soft, num_classes=None, device=device)
    ok = [np.array([1.0, 0, 0, 0], np.float32), np.array([0.1, 0.2, 0.3, 0.4], np.float32),
          np.array([0.25] * 4, np.float32) + np.float32(2e-4), np.eye(4, dtype=np.float32)[3]]
    run_mix(IMG, ok, method="mixup", num_classes=None, device=device)  # within the tolerance


def test_labels_of_wrong_type_or_shape(device):
    expect_error(r"`labels` must be integer class indices or float32 soft-label vectors; got "
                 r"type float64", labels=LBL.astype(np.float64), device=device)
    expect_error(r"must hold one value per sample; sample 0 has shape \(2,\)",
                 labels=np.zeros((4, 2), np.int32), device=device)
    # class ids given as floats: scalars of the soft labels' type, the integer form named
    expect_error(r"Soft `labels` must be vectors \(1-D, float32\); got 0-D labels \(class "
                 r"indices are integers: int32 or int64, say\)",
                 labels=[np.float32(k) for k in range(4)], device=device)


@pytest.mark.parametrize("alpha", [0.0, -1.0])
def test_alpha_must_be_positive(device, alpha):
    expect_error(rf"`alpha` must be a finite number > 0; got {alpha:g} for sample 0", alpha=alpha,
                 device=device)


@pytest.mark.parametrize("name,value", [("prob", 1.5), ("prob", -0.1), ("hmix_ratio", 1.2),
                                        ("hmix_ratio", -0.5)])
def test_unit_interval_arguments(device, name, value):
    expect_error(rf"`{name}` must be in \[0, 1\]; got {value:g} for sample 0",
                 **{name: value, "device": device})


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("name", ["alpha", "prob", "hmix_ratio", "label_smoothing"])
def test_non_finite_scalars_are_refused(device, name, bad):
    # NaN passes `!(v < lo) && !(v > hi)`: every range check must also refuse it
    expect_error(rf"`{name}` must be .*; got {bad:g}".replace("inf", "-?inf"),
                 **{name: bad, "device": device})


def test_label_smoothing_range(device):
    expect_error(r"`label_smoothing` must be in \[0, 1\]; got 2", label_smoothing=2.0,
                 device=device)


def test_unknown_method_and_mode(device):
    expect_error(r"`method` must be one of \"mixup\", \"cutmix\", \"hmix\", \"gmix\", \"fmix\", "
                 r"\"resizemix\", \"classmix\"; got \"saliencymix\"", method="saliencymix",
                 device=device)
    expect_error(r"`mode` must be \"batch\", \"elem\" or \"pair\"; got \"pairs\"", mode="pairs",
                 device=device)


def test_lam_out_of_range(device):
    expect_error(r"`lam` must be in \[0, 1\]; got 1.5 for sample 2", lam=[0.1, 0.2, 1.5, 0.3],
                 device=device)


def test_batch_mode_needs_one_lam_and_center(device):
    expect_error(r"`mode=\"batch\"` .* `lam` must be the same for every sample; got 0.5 for "
                 r"sample 0 and 0.25 for sample 3", lam=[0.5, 0.5, 0.5, 0.25], mode="batch",
                 device=device)
    expect_error(r"`mode=\"batch\"` .* `center` must be the same for every sample; got "
                 r"\(0.5, 0.5\) for sample 0 and \(0.5, 0.75\) for sample 2",
                 center=[[0.5, 0.5]] * 2 + [[0.5, 0.75], [0.5, 0.5]], mode="batch",
                 device=device)


@pytest.mark.parametrize("bad", [[1.0, 0.5], [0.5, -0.1]])
def test_center_out_of_range(device, bad):
    center = [[0.5, 0.5]] * 3 + [bad]
    expect_error(r"`center` \(relative y, x\) must lie in \[0, 1\); got .* for sample 3",
                 center=center, device=device)


def test_batch_mode_needs_one_alpha(device):
    @pipeline_def(batch_size=4, num_threads=1, device_id=0 if device == "gpu" else None, seed=1)
    def pipe():
        x = fn.external_source(source=lambda: list(IMG), batch=True, layout="HWC")
        x = x.gpu() if device == "gpu" else x  # the same error from either backend
        y = fn.external_source(source=lambda: list(LBL), batch=True)
        a = fn.random.uniform(range=[0.5, 1.0])
        return tuple(fn.msda.mix(x, y, method="mixup", num_classes=4, alpha=a))

    p = pipe()
    p.build()
    with pytest.raises(RuntimeError, match=r"`mode=\"batch\"` .* `alpha` must be the same for "
                                           r"every sample"):
        p.run()


def test_bad_output_dtype(device):
    expect_error(r"`dtype` must be one of uint8, float16, float32; got int16",
                 dtype=types.INT16, device=device)


def test_method_id_checks(device):
    expect_error(r"`method_id` must be 0 \(mixup\), 1 \(cutmix\), 2 \(hmix\), 3 \(gmix\), "
                 r"4 \(fmix\), 5 \(resizemix\) or 6 \(classmix\); got 7 for sample 1",
                 method="", method_id=[0, 7, 0, 0], mode="elem", device=device)
    expect_error(r"`method_id` must be the same for every sample; got 0 for sample 0 and 1 for "
                 r"sample 2", method="", method_id=[0, 0, 1, 0], mode="batch", device=device)


# ---- fused normalisation, mirror, output layout

def test_mean_std_lengths(device):
    expect_error(r"`mean` must have 1 value or one per channel \(C = 3\); got 2 values",
                 mean=[1.0, 2.0], device=device)
    expect_error(r"`std` must have 1 value or one per channel \(C = 3\); got 4 values",
                 std=[1.0, 2.0, 3.0, 4.0], device=device)


@pytest.mark.parametrize("bad", [0.0, -2.0, float("inf"), float("nan")])
def test_std_must_be_finite_and_positive(device, bad):
    expect_error(r"`std` must be finite and > 0; got .* for channel 1", std=[1.0, bad, 1.0],
                 device=device)


def test_mean_must_be_finite(device):
    expect_error(r"`mean` must be finite; got inf for channel 0", mean=[float("inf")],
                 device=device)


def test_unknown_output_layout(device):
    expect_error(r"`output_layout` must be \"HWC\" or \"CHW\" for images \(input layout "
                 r"\"HWC\"\); got \"WHC\"", output_layout="WHC", device=device)
    expect_error(r"`output_layout` must be \"FHWC\" or \"FCHW\" for sequences \(input layout "
                 r"\"FHWC\"\); got \"CHW\"", images=np.zeros((4, 2, 8, 8, 3), np.uint8),
                 layout="FHWC", output_layout="CHW", device=device)


def test_mirror_values(device):
    expect_error(r"`mirror` must be 0 or 1; got 2 for sample 3", mirror=[0, 1, 0, 2],
                 device=device)


def test_mirror_with_sequences(device):
    expect_error(r"`mirror` is not supported for sequences \(layout \"FHWC\"\)",
                 images=np.zeros((4, 2, 8, 8, 3), np.uint8), layout="FHWC", mirror=[0, 1, 0, 1],
                 device=device)


def test_method_required(device):
    expect_error(r'`method` is required \("mixup", "cutmix", "hmix", "gmix", "fmix", "resizemix" '
                 r'or, with label maps, "classmix"\), unless `method_id` is given', method="",
                 device=device)


def test_values_are_printed_so_that_they_show_why(device):
    """Floats in errors in their shortest float32 form: 1.0000001 is not "1", 1e-39 not "0"."""
    expect_error(r"`lam` must be in \[0, 1\]; got 1\.0000001 for sample 2", device=device,
                 lam=np.float32([0.5, 0.5, np.float32(1.0000001), 0.5]), mode="elem")
    expect_error(r"`std` must be finite and > 0; got -1e-39 for channel 1", device=device,
                 std=[1.0, -1e-39, 1.0])


# ---- the ends of every range: those its rule allows run, the nearest float32 past them fails

UP, DOWN = np.nextafter(np.float32(1), np.float32(2)), np.float32(-1e-7)  # 1.0000001, -1e-07


P = pytest.param


@pytest.mark.parametrize("kw", [
    P(dict(lam=np.float32([0, 1, 0, 1]), mode="elem"), id="lam-0-1"),
    P(dict(center=np.float32([[0, 0], [0, 0.99999994], [0.99999994, 0], [0.5, 0.5]]),
           method="cutmix", mode="elem"), id="center-0-below-1"),
    P(dict(prob=0.0), id="prob-0"), P(dict(prob=1.0), id="prob-1"),
    P(dict(method="hmix", hmix_ratio=0.0), id="hmix_ratio-0"),
    P(dict(method="hmix", hmix_ratio=1.0), id="hmix_ratio-1"),
    P(dict(label_smoothing=0.0), id="label_smoothing-0"),
    P(dict(label_smoothing=1.0), id="label_smoothing-1"),
    P(dict(min_visible=0.0), id="min_visible-0"), P(dict(min_visible=1.0), id="min_visible-1"),
    P(dict(method="resizemix", scale_min=1.0, scale_max=1.0), id="scale-1-1"),
    P(dict(method="resizemix", scale_min=0.25, scale_max=0.25), id="scale-min-is-max"),
    P(dict(mirror=np.int32([0, 1, 1, 0])), id="mirror-0-1"),
    P(dict(method="", method_id=np.int32([0, 5, 0, 5]), mode="elem"), id="method_id-0-5")])
def test_range_ends_are_accepted(device, kw):
    kw = {"method": "mixup", "num_classes": 4, **kw}
    images, targets = run_mix(IMG, LBL, device=device, **kw)[:2]
    assert images.shape == IMG.shape and targets.shape == (4, 4)


@pytest.mark.parametrize("kw,message", [
    P(dict(lam=np.float32([0.5, DOWN, 0.5, 0.5]), mode="elem"),
      r"`lam` must be in \[0, 1\]; got -1e-07 for sample 1", id="lam-below-0"),
    P(dict(lam=np.float32([0.5, 0.5, 0.5, UP]), mode="elem"),
      r"`lam` must be in \[0, 1\]; got 1\.0000001 for sample 3", id="lam-above-1"),
    P(dict(prob=UP), r"`prob` must be in \[0, 1\]; got 1\.0000001 for sample 0",
      id="prob-above-1"),
    P(dict(prob=DOWN), r"`prob` must be in \[0, 1\]; got -1e-07 for sample 0",
      id="prob-below-0"),
    P(dict(label_smoothing=UP), r"`label_smoothing` must be in \[0, 1\]; got 1\.0000001",
      id="label_smoothing-above-1"),
    P(dict(min_visible=UP), r"`min_visible` must be in \[0, 1\]; got 1\.0000001",
      id="min_visible-above-1"),
    P(dict(min_visible=DOWN), r"`min_visible` must be in \[0, 1\]; got -1e-07",
      id="min_visible-below-0"),
    P(dict(method="resizemix", scale_max=UP), r"`scale_max` must be in \(0, 1\]; got 1\.0000001",
      id="scale_max-above-1"),
    P(dict(method="resizemix", scale_min=np.float32(0.50000006), scale_max=0.5),
      r"`scale_min` must be <= `scale_max`; got 0\.50000006 > 0\.5", id="scale_min-above-max"),
    P(dict(mirror=np.int32([0, 1, 0, -1])), r"`mirror` must be 0 or 1; got -1 for sample 3",
      id="mirror-negative"),
    P(dict(method="", method_id=np.int32([0, -1, 0, 0]), mode="elem"),
      r"`method_id` must be 0 \(mixup\), .* or 6 \(classmix\); got -1 for sample 1",
      id="method_id-negative"),
    P(dict(method="cutmix", cutmix_minmax=[0.4, 0.4]),
      r"`cutmix_minmax` must satisfy 0 < min < max <= 1; got \(0\.4, 0\.4\)",
      id="cutmix_minmax-min-is-max")])
def test_just_past_the_ends_is_refused(device, kw, message):
    expect_error(message, device=device, **kw)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint32, np.uint64, np.int8, np.int16,
                                   np.int32, np.int64])
def test_class_indices_of_every_integer_type(device, dtype):
    """Class ids of any integer type give the int32 ids' targets; ids outside [0, K) are refused
    with their value as the user wrote it (an int8 -1 as -1, not a character; a uint64 beyond
    2^63 as itself, not wrapped below 0)."""
    images = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), np.uint8)
    labels = np.array([[3], [0], [2], [1]])
    want = run_mix(images, labels.astype(np.int32), device=device, method="cutmix",
                   num_classes=4, mode="elem", seed=5)
    got = run_mix(images, labels.astype(dtype), device=device, method="cutmix", num_classes=4,
                  mode="elem", seed=5)
    for a, b in zip(want, got):
        np.testing.assert_array_equal(a, b)
    bad = np.iinfo(dtype).max if np.iinfo(dtype).min == 0 else -1
    labels = labels.astype(dtype)
    labels[2, 0] = bad
    expect_error(rf"`labels` must be class indices in \[0, 4\) \(`num_classes`\); got {bad} for "
                 r"sample 2", images=images, labels=labels, device=device)
