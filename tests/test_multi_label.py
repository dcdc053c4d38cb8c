"""Multi-label targets: multi-hot label vectors (several classes a sample, for a binary
cross-entropy) mixed as vectors with `multi_label=True`, refused clearly without it; and timm's
`bce_target_thresh` (the mixed targets binarised) through MixConfig and the pipelines."""

import os

import numpy as np
import pytest

from dali_msda import reference as ref
from dali_msda.pipelines import MixConfig

from conftest import arrays, random_images, run_mix
from test_errors import expect_error

K = 12


def multi_hot(batch, seed=0):
    rng = np.random.default_rng(seed)
    v = (rng.random((batch, K)) < 0.3).astype(np.float32)
    v[0] = 0.0  # no class at all
    v[1] = 1.0  # every class
    return v


@pytest.mark.parametrize("method", ["mixup", "cutmix", "fmix"])
def test_multi_hot_labels_are_mixed_as_vectors(device, method):
    """Targets are w * s(v_own) + (1 - w) * s(v_partner), w the mask mean, s the binary label
    smoothing of every entry, (1 - eps) v + eps / 2, as reference.mix gives them for multi-hot
    vectors (odd batch, smoothing 0.1)."""
    batch = 7
    images = random_images(np.random.default_rng(1), batch, (224, 224, 3), np.uint8)
    labels = multi_hot(batch)
    mixed, targets, masks, params = run_mix(images, labels, device=device, method=method,
                                            mode="elem", multi_label=True,
                                            label_smoothing=0.1, seed=3)
    w = masks.reshape(batch, -1).mean(1).astype(np.float64)
    smooth = labels.astype(np.float64) * 0.9 + 0.1 / 2
    expect = w[:, None] * smooth + (1 - w[:, None]) * smooth[::-1]
    np.testing.assert_allclose(targets, expect, rtol=0, atol=1e-6)
    if method != "fmix":  # FMix's mask needs its noise to be rebuilt; the weight check is above
        expect_x, expect_t, _ = ref.mix(images, labels, method, lam=params[:, 1],
                                        center=params[:, 2:4].astype(np.int64),
                                        apply=params[:, 0] == 1.0, layout="HWC",
                                        label_smoothing=0.1, multi_label=True)
        np.testing.assert_array_equal(mixed, expect_x)
        np.testing.assert_allclose(targets, expect_t, rtol=0, atol=1e-6)


def timm_multi_label_target(target, lam, smoothing):
    """timm.data.mixup.mixup_target(target, num_classes, lam, smoothing, multi_label=True) of
    timm 1.0.31, in NumPy: `y1 = target.float() * (1. - smoothing) + 0.5 * smoothing`,
    `y2 = y1.flip(0)`, `y1 * lam + y2 * (1. - lam)` (one lam: batch mode)."""
    y1 = target.astype(np.float32) * np.float32(1.0 - smoothing) + np.float32(0.5 * smoothing)
    y2 = y1[::-1]
    return y1 * np.float32(lam) + y2 * np.float32(1.0 - lam)


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.3])
def test_multi_hot_targets_are_timms(device, smoothing):
    """Batch-mode Mixup with multi-hot labels: the targets timm's Mixup(multi_label=True) makes
    from the same lam (even batch: timm needs one), to float32 rounding."""
    batch = 8
    images = random_images(np.random.default_rng(2), batch, (32, 32, 3), np.uint8)
    labels = multi_hot(batch, seed=4)
    _, targets, _, params = run_mix(images, labels, device=device, method="mixup",
                                    mode="batch", multi_label=True, label_smoothing=smoothing,
                                    seed=5, alpha=0.4)
    lam = float(params[0, 1])
    assert 0.0 < lam < 1.0 and np.all(params[:, 1] == params[0, 1])
    np.testing.assert_allclose(targets, timm_multi_label_target(labels, lam, smoothing),
                               rtol=0, atol=1e-6)


def test_multi_hot_labels_are_refused_without_multi_label(device):
    images = np.zeros((4, 8, 8, 3), np.uint8)
    expect_error(r"Soft `labels` must sum to 1 \(within 0.001\); sample 0 sums to 2\. "
                 r"Multi-hot labels \(several classes a sample, for a binary cross-entropy\) "
                 r"take `multi_label=True`\.", images=images,
                 labels=np.tile(np.float32([1, 1, 0, 0]), (4, 1)), num_classes=None,
                 device=device)
    bad = np.tile(np.float32([1, 0, 0, 0]), (4, 1))
    bad[2, 3] = 1.5
    expect_error(r"Multi-label `labels` \(`multi_label=True`\) must be in \[0, 1\] \(multi-hot, "
                 r"or one probability per class\); got 1.5 at index 3 of sample 2\.",
                 images=images, labels=bad, num_classes=None, device=device, multi_label=True)
    bad[2, 3] = np.nan
    expect_error(r"must be in \[0, 1\] .*; got nan at index 3 of sample 2\.", images=images,
                 labels=bad, num_classes=None, device=device, multi_label=True)
    expect_error(r"`multi_label=True` takes multi-hot float32 label vectors \(K entries in "
                 r"\[0, 1\] a sample\); got class-index labels of type int32", images=images,
                 labels=np.arange(4, dtype=np.int32), num_classes=4, device=device,
                 multi_label=True)


def test_bce_target_thresh_binarises_the_mixed_targets(data_root):
    """A pipeline with MixConfig(bce_target_thresh=0.2) gives the images of the same pipeline
    without it and its targets binarised as timm's BinaryCrossEntropy binarises them
    (`target.gt(target_threshold).to(dtype=target.dtype)`, timm/loss/binary_cross_entropy.py)."""
    from dali_msda.pipelines import imagenet_train

    kw = dict(batch_size=16, num_threads=2, device="cpu", crop=64, dtype="float32", seed=9)
    cfg = MixConfig.from_timm(mixup_alpha=0.8, cutmix_alpha=1.0, label_smoothing=0.1,
                              num_classes=None, mode="elem")
    plain = imagenet_train(os.path.join(data_root, "train"), mix=cfg, **kw)
    binary = imagenet_train(os.path.join(data_root, "train"),
                            mix=cfg.replace(bce_target_thresh=0.2), **kw)
    for p in (plain, binary):
        p.build()
    for _ in range(2):
        (x, t), (xb, tb) = plain.run(), binary.run()
        t = np.stack([np.array(t[i]) for i in range(len(t))])
        tb = np.stack([np.array(tb[i]) for i in range(len(tb))])
        assert all(np.array_equal(np.array(x[i]), np.array(xb[i])) for i in range(len(x)))
        np.testing.assert_array_equal(tb, (t > np.float32(0.2)).astype(np.float32))
        assert tb.dtype == np.float32 and set(np.unique(tb)) <= {0.0, 1.0}
        assert (tb.sum(1) >= 1).all()  # the larger of the two mixed classes is above 0.2
    # a target equal to the threshold is not above it: with mixing off and no smoothing the
    # targets are 0 and 1, and a threshold of 0 keeps the zeros
    tie = imagenet_train(os.path.join(data_root, "train"),
                         mix=cfg.replace(bce_target_thresh=0.0, label_smoothing=0.0, prob=0.0),
                         **kw)
    tie.build()
    t = arrays(tie.run())[1]
    assert (t.sum(1) == 1).all() and set(np.unique(t)) == {0.0, 1.0}


def test_pipelines_refuse_multi_label(data_root):
    """The pipelines read one class id a sample: a multi-label config is refused when the
    pipeline is built, not by the op on its first batch."""
    from dali_msda.pipelines import imagenet_train

    with pytest.raises(ValueError, match="`mix`: multi_label=True mixes multi-hot label vectors, "
                                         "and the pipelines read one class id a sample"):
        imagenet_train(os.path.join(data_root, "train"), batch_size=4, device="cpu",
                       mix=MixConfig(method="mixup", multi_label=True))


def test_bce_target_thresh_checks():
    assert MixConfig.from_timm(bce_target_thresh=0.2).bce_target_thresh == 0.2
    with pytest.raises(ValueError, match=r"`bce_target_thresh` must be in \[0, 1\) or None; "
                                         r"got 1.5"):
        MixConfig(bce_target_thresh=1.5)


def test_mixer_with_timms_multi_label_recipe(device):
    """Mixer(MixConfig.from_timm(..., multi_label=True)) on multi-hot torch labels: timm's
    Mixup(multi_label=True) targets from the call's reported lam (batch mode, Mixup only), the
    config's smoothing applied by the op; class-index labels with it refused."""
    import torch

    from dali_msda.pytorch import Mixer

    to = "cuda" if device == "gpu" else "cpu"
    cfg = MixConfig.from_timm(mixup_alpha=0.8, cutmix_alpha=0.0, label_smoothing=0.1,
                              num_classes=None, multi_label=True)
    assert cfg.multi_label and cfg.op_args()["multi_label"] is True
    mixer = Mixer(cfg, seed=2, output_params=True)
    x = torch.randn(8, 3, 64, 64, generator=torch.Generator().manual_seed(0)).to(to)
    labels = multi_hot(8, seed=5)
    for _ in range(3):
        _, targets, params = mixer(x, torch.from_numpy(labels).to(to))
        lam = float(params[0, 1])
        np.testing.assert_allclose(targets.cpu().numpy(),
                                   timm_multi_label_target(labels, lam, 0.1), rtol=0, atol=1e-6)
    with pytest.raises(RuntimeError, match="`multi_label=True` takes multi-hot float32 label "
                                           "vectors"):
        mixer(x, torch.arange(8).to(to))
    with pytest.raises(ValueError, match="`multi_label` must be True or False; got 1"):
        MixConfig(multi_label=1)
