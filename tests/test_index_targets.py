"""Index-form targets (`targets="index"`): per sample (own class, partner class) and the own
class's weight instead of a dense K-vector, and `dali_msda.pytorch.mixed_cross_entropy`, which
with them equals the cross-entropy with the dense targets. The same seed gives the same draw
either way, so the two forms of one run are compared output by output."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from dali_msda import methods  # noqa: E402
from dali_msda.pipelines import MixConfig, imagenet_train  # noqa: E402
from dali_msda.pytorch import MixIterator, mixed_cross_entropy  # noqa: E402

from conftest import class_labels, random_images, run_mix  # noqa: E402
from test_errors import expect_error  # noqa: E402

K = 10


def smooth_one_hot(y, eps, k=K):
    out = np.full((len(y), k), eps / k)
    out[np.arange(len(y)), y] += 1.0 - eps
    return out


def both_forms(device, method, batch, eps, **kw):
    """The op's outputs with dense targets (smoothing `eps`) and with index targets, one seed."""
    rng = np.random.default_rng(batch)
    images = random_images(rng, batch, (224, 224, 3), np.uint8)
    labels = rng.integers(0, K, (batch, 1)).astype(np.int32)
    labels[1] = labels[batch - 2]  # a pair of one class (real batches have them; K is small)
    if method == "classmix":
        kw["seg"] = rng.integers(0, 5, (batch, 224, 224)).astype(np.uint8)
    common = dict(device=device, method=method, num_classes=K, seed=7, output_mask=True,
                  output_params=True, **kw)
    dense = run_mix(images, labels, label_smoothing=eps, **common)
    index = run_mix(images, labels, targets="index", **common)
    return labels[:, 0], dense, index


@pytest.mark.parametrize("mode", ["batch", "elem"])
@pytest.mark.parametrize("method", methods.ALL)
def test_index_targets_are_the_dense_targets_in_other_form(device, method, mode):
    """Odd batch (its middle sample unmixed), smoothing 0.1, a pair of one class and pairs of
    two: the images, masks and params are the same bytes; labels are (own, partner = B - 1 - i);
    the weight is the mask mean; the dense row is w * smooth(own) + (1 - w) * smooth(partner)
    (a pair of one class: its whole weight on that class), and the losses agree."""
    eps, batch = 0.1, 7
    y, dense, index = both_forms(device, method, batch, eps, mode=mode)
    assert y[1] == y[batch - 2] and y[0] != y[batch - 1] and y[2] != y[batch - 3]
    mixed, targets, *rest = dense
    mixed_i, pair, weight, *rest_i = index
    np.testing.assert_array_equal(mixed_i, mixed)
    for a, b in zip(rest_i, rest):  # (maps,) mask, params
        np.testing.assert_array_equal(a, b)
    assert pair.dtype == np.int32 and pair.shape == (batch, 2)
    assert weight.dtype == np.float32 and weight.shape == (batch,)
    np.testing.assert_array_equal(pair[:, 0], y)
    np.testing.assert_array_equal(pair[:, 1], y[::-1])
    mask = rest[-2]
    np.testing.assert_allclose(weight, mask.reshape(batch, -1).mean(1), rtol=0, atol=1e-6)
    assert weight[batch // 2] == 1.0  # the middle sample is its own partner
    expect = (weight[:, None] * smooth_one_hot(pair[:, 0], eps) +
              (1 - weight[:, None]) * smooth_one_hot(pair[:, 1], eps))
    np.testing.assert_allclose(targets, expect, rtol=0, atol=1e-6)
    logits = torch.from_numpy(np.random.default_rng(1).normal(0, 3, (batch, K)))
    want = torch.nn.functional.cross_entropy(logits, torch.from_numpy(targets).double())
    got = mixed_cross_entropy(logits, torch.from_numpy(pair[:, 0]),
                              torch.from_numpy(pair[:, 1]), torch.from_numpy(weight),
                              label_smoothing=eps)
    assert abs(got.item() - want.item()) <= 1e-6 * max(1.0, abs(want.item()))


@pytest.mark.parametrize("k", [2, 1000, 21843])
@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3])
def test_mixed_cross_entropy_equals_dense_cross_entropy(k, eps):
    """For any weights in [0, 1] (0 and 1 included), own == partner included, odd batches:
    the mixed loss and its gradient equal those of cross_entropy with dense targets."""
    rng = np.random.default_rng(k)
    batch = 33
    own = rng.integers(0, k, batch)
    partner = np.where(rng.random(batch) < 0.2, own, rng.integers(0, k, batch))
    weight = rng.random(batch)
    weight[:3] = [0.0, 1.0, 0.5]
    dense = (weight[:, None] * smooth_one_hot(own, eps, k) +
             (1 - weight[:, None]) * smooth_one_hot(partner, eps, k))
    logits = torch.tensor(rng.normal(0, 4, (batch, k)), requires_grad=True)
    want = torch.nn.functional.cross_entropy(logits, torch.from_numpy(dense))
    (g_want,) = torch.autograd.grad(want, logits)
    got = mixed_cross_entropy(logits, torch.from_numpy(own), torch.from_numpy(partner),
                              torch.from_numpy(weight), label_smoothing=eps)
    (g_got,) = torch.autograd.grad(got, logits)
    assert abs(got.item() - want.item()) <= 1e-6 * max(1.0, abs(want.item()))
    torch.testing.assert_close(g_got, g_want, rtol=0, atol=1e-9)
    per_sample = mixed_cross_entropy(logits, torch.from_numpy(own), torch.from_numpy(partner),
                                     torch.from_numpy(weight), label_smoothing=eps,
                                     reduction="none")
    assert per_sample.shape == (batch,)
    assert abs(per_sample.sum().item() - mixed_cross_entropy(
        logits, torch.from_numpy(own), torch.from_numpy(partner), torch.from_numpy(weight),
        label_smoothing=eps, reduction="sum").item()) < 1e-9


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16])
def test_mixed_cross_entropy_gradient_with_any_upstream_gradient(dtype):
    """reduction="none" under a per-sample upstream gradient (a weighted loss, as a sampler's
    importance weights give one): value and gradient those of the dense cross-entropy, in the
    dtypes logits come in (float16 and bfloat16 computed in float32, their gradient returned in
    their type)."""
    rng = np.random.default_rng(5)
    batch, k, eps = 37, 1000, 0.1
    own, partner = rng.integers(0, k, batch), rng.integers(0, k, batch)
    weight = rng.random(batch)
    dense = (weight[:, None] * smooth_one_hot(own, eps, k) +
             (1 - weight[:, None]) * smooth_one_hot(partner, eps, k))
    upstream = torch.from_numpy(rng.normal(0, 1, batch))
    logits = torch.tensor(rng.normal(0, 4, (batch, k)), dtype=dtype, requires_grad=True)
    want = torch.nn.functional.cross_entropy(logits.double(), torch.from_numpy(dense),
                                             reduction="none")
    (g_want,) = torch.autograd.grad((want * upstream).sum(), logits)
    got = mixed_cross_entropy(logits, torch.from_numpy(own), torch.from_numpy(partner),
                              torch.from_numpy(weight), label_smoothing=eps, reduction="none")
    (g_got,) = torch.autograd.grad((got.double() * upstream).sum(), logits)
    assert g_got.dtype == dtype
    # half-precision logits: the loss computed (and returned) in float32, as precise as float32's
    half = dtype in (torch.float16, torch.bfloat16)
    assert got.dtype == (torch.float32 if half else dtype)
    tol = {torch.float64: 1e-9, torch.float32: 1e-5}.get(dtype, 1e-3)
    value_tol = min(tol, 1e-5)
    torch.testing.assert_close(got.double(), want, rtol=value_tol, atol=value_tol * 10)
    torch.testing.assert_close(g_got.double(), g_want.double(), rtol=0, atol=tol)


def test_mixed_cross_entropy_gradcheck():
    """torch's numerical gradient check of the custom backward (float64, smoothing, a sample
    that is its own partner)."""
    rng = np.random.default_rng(6)
    own = torch.tensor([0, 3, 4, 1, 2])
    partner = torch.tensor([4, 3, 0, 2, 2])
    weight = torch.from_numpy(rng.random(5))
    logits = torch.tensor(rng.normal(0, 2, (5, 5)), requires_grad=True)
    for eps in (0.0, 0.2):
        assert torch.autograd.gradcheck(
            lambda x: mixed_cross_entropy(x, own, partner, weight, label_smoothing=eps,
                                          reduction="none"), (logits,))


def test_index_targets_refusals(device):
    rng = np.random.default_rng(0)
    images = random_images(rng, 4, (16, 16, 3), np.uint8)
    soft = np.full((4, K), 1.0 / K, np.float32)
    expect_error(r'`targets="index"` gives each sample\'s own and partner class index: it needs '
                 r"class-index `labels` \(integers\), not soft-label vectors\.",
                 images, soft, device=device, method="mixup", targets="index")
    expect_error(r'`label_smoothing` smooths dense targets; with `targets="index"` give it to the '
                 r"loss .*; got 0\.1\.", images, class_labels(4), device=device, method="mixup",
                 num_classes=4, targets="index", label_smoothing=0.1)
    expect_error(r'`targets` must be "dense" or "index"; got "onehot"\.', images,
                 class_labels(4), device=device, method="mixup", num_classes=4,
                 targets="onehot")
    logits, ids, w = torch.zeros(2, 3), torch.zeros(2, dtype=torch.int64), torch.ones(2)
    with pytest.raises(ValueError, match="`reduction` must be"):
        mixed_cross_entropy(logits, ids, ids, w, reduction="avg")
    # the loss's arguments (torch's cross_entropy refuses these too, or some of them)
    for bad in (1.5, -0.1, float("nan")):
        with pytest.raises(ValueError, match=rf"`label_smoothing` must be in \[0, 1\]; got "
                                             rf"{bad}"):
            mixed_cross_entropy(logits, ids, ids, w, label_smoothing=bad)
    with pytest.raises(ValueError, match=r"`partner` must be integer class indices; got "
                       r"torch.float32"):  # not truncated to an index
        mixed_cross_entropy(logits, ids, ids.float() + 0.5, w)
    with pytest.raises(ValueError, match=r"`own` must hold one class index per row of `logits` "
                       r"\(2\); got 3"):
        mixed_cross_entropy(logits, torch.zeros(3, dtype=torch.int64), ids, w)
    with pytest.raises(ValueError, match=r"`weight` must hold one weight per row of `logits` "
                       r"\(2\) or be one number; got 3"):
        mixed_cross_entropy(logits, ids, ids, torch.ones(3))
    with pytest.raises(ValueError, match=r"`logits` must be \[B, K\]; got shape \(3,\)"):
        mixed_cross_entropy(logits[0], ids[:1], ids[:1], w[:1])
    # a scalar weight and [B, 1] forms are taken
    assert torch.allclose(mixed_cross_entropy(logits, ids[:, None], ids, 0.25),
                          mixed_cross_entropy(logits, ids, ids, torch.full((2, 1), 0.25)))


@pytest.mark.parametrize("mix", [MixConfig(method="cutmix", label_smoothing=0.1), None])
def test_training_pipeline_gives_index_targets(data_root, mix):
    """imagenet_train(targets="index") through MixIterator: (images, labels, weights), the
    images of the dense pipeline of the same seed, and the same loss."""
    import os

    kw = dict(batch_size=8, num_threads=2, device="cpu", crop=64, dtype="float32", mix=mix,
              seed=3)
    dense = imagenet_train(os.path.join(data_root, "train"), **kw)
    index = imagenet_train(os.path.join(data_root, "train"), targets="index", **kw)
    assert index.label_smoothing == (0.1 if mix else 0.0)
    for (x, t), (xi, pair, w) in zip(MixIterator(dense), MixIterator(index)):
        torch.testing.assert_close(xi, x, rtol=0, atol=0)
        assert pair.shape == (8, 2) and w.shape == (8,)
        if not mix:  # unmixed: the own class twice, all its weight
            assert torch.equal(pair[:, 0], pair[:, 1]) and torch.equal(w, torch.ones(8))
        logits = torch.randn(8, dense.num_classes, dtype=torch.float64)
        want = torch.nn.functional.cross_entropy(logits, t.double())
        got = mixed_cross_entropy(logits, pair[:, 0], pair[:, 1], w,
                                  label_smoothing=index.label_smoothing)
        assert abs(got.item() - want.item()) <= 1e-6 * max(1.0, abs(want.item()))
        break
