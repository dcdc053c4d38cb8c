"""The op in DALI's dynamic mode (`nvidia.dali.experimental.dynamic`, "ndd"): `ndd.msda.mix`,
called eagerly on torch tensors. Its schema has the random-state argument, so ndd wraps it as a
function taking an `ndd.random.RNG`: the same seed gives the same bytes, a cloned RNG (its saved
state) continues the stream alike, explicit `lam` / `center` give the reference's bytes and the
pipeline op's, label maps and fused normalisation included. `dali_msda.pytorch.Mixer` wraps it
for training loops (timm's `mixup_fn(x, y)` as one call): its generator's state is saved and
restored with the model, NCHW float batches and index targets go through it. CUDA tensors: the
GPU cases (device fixture) run where DALI sees a GPU."""

import numpy as np
import pytest
import torch

import dali_msda  # noqa: F401  (loads the plugin before ndd is imported: ndd builds its ops then)
from dali_msda import reference as ref

from conftest import class_labels, run_mix
from nvidia.dali import types

ndd = pytest.importorskip("nvidia.dali.experimental.dynamic")


def batch(a, layout=None, device="cpu"):
    """A NumPy array as an ndd batch of a torch tensor (a CUDA one for device "gpu")."""
    t = torch.from_numpy(np.ascontiguousarray(a))
    return ndd.as_batch(t.cuda() if device == "gpu" else t, layout=layout)


def mix(images, labels, rng, device="cpu", maps=None, **kw):
    """ndd.msda.mix on `device` (images and maps there, labels and argument inputs on the
    host); its outputs as NumPy arrays."""
    kw = {k: batch(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()}
    inputs = [batch(images, "HWC", device), batch(labels)]
    if maps is not None:
        inputs.append(batch(maps, "HW", device))
    outs = ndd.msda.mix(*inputs, rng=rng, device=device, **kw)
    outs = outs if isinstance(outs, tuple) else (outs,)
    return tuple(o.torch().cpu().numpy() for o in outs)


IMAGES = np.random.default_rng(0).integers(0, 256, (6, 224, 224, 3), dtype=np.uint8)
LABELS = class_labels(6)


def test_mix_is_a_function_of_ndd_msda():
    assert callable(getattr(ndd.msda, "mix", None))


@pytest.mark.parametrize("method", ["mixup", "cutmix", "gmix", "resizemix"])
def test_the_same_seed_gives_the_same_bytes(method, device):
    kw = dict(device=device, method=method, num_classes=6, mode="elem")
    a = mix(IMAGES, LABELS, ndd.random.RNG(seed=5), **kw)
    b = mix(IMAGES, LABELS, ndd.random.RNG(seed=5), **kw)
    c = mix(IMAGES, LABELS, ndd.random.RNG(seed=6), **kw)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], c[0])


def test_a_saved_rng_state_continues_the_stream(device):
    """Two calls on one RNG draw differently; a clone taken before them (its state saved)
    gives the same two results, call for call."""
    kw = dict(device=device, method="cutmix", num_classes=6, mode="elem")
    rng = ndd.random.RNG(seed=11)
    saved = rng.clone()
    first = mix(IMAGES, LABELS, rng, **kw)[0]
    second = mix(IMAGES, LABELS, rng, **kw)[0]
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(mix(IMAGES, LABELS, saved, **kw)[0], first)
    np.testing.assert_array_equal(mix(IMAGES, LABELS, saved, **kw)[0], second)


@pytest.mark.parametrize("method", ["mixup", "cutmix", "hmix", "gmix", "resizemix"])
def test_explicit_draws_give_the_reference_and_the_pipeline_ops_bytes(method, device):
    """lam and center given: the eager op equals reference.mix bit for bit, with the fused
    normalisation, mirror and layout change, and equals the pipeline op on the same call."""
    lam = np.float32([0.3, 0.7, 0.5, 0.2, 0.9, 0.6])
    center = np.float32([[0.5, 0.5], [0.2, 0.8], [0.9, 0.1], [0.5, 0.3], [0.1, 0.1],
                         [0.7, 0.4]])
    mirror = np.int32([1, 0, 0, 1, 1, 0])
    kw = dict(method=method, num_classes=6, mode="elem", lam=lam, center=center,
              mean=[120.0, 110.0, 100.0], std=[60.0, 55.0, 50.0], output_layout="CHW",
              dtype=types.FLOAT16, output_params=True)
    mixed, targets, params = mix(IMAGES, LABELS, ndd.random.RNG(seed=1), device=device,
                                 mirror=mirror, **kw)
    expect, expect_t, _ = ref.mix(IMAGES, LABELS, method, lam=params[:, 1],
                                  center=params[:, 2:4].astype(np.int64),
                                  apply=params[:, 0] == 1.0, layout="HWC", num_classes=6,
                                  dtype=np.float16, mean=kw["mean"], std=kw["std"],
                                  mirror=mirror, output_layout="CHW")
    np.testing.assert_array_equal(mixed.view(np.uint8), expect.view(np.uint8))
    np.testing.assert_allclose(targets, expect_t, rtol=0, atol=1e-6)
    pipeline = run_mix(IMAGES, LABELS, device=device, method=method, num_classes=6, mode="elem",
                       lam=lam, center=center, mirror=mirror, mean=kw["mean"], std=kw["std"],
                       output_layout="CHW", dtype=types.FLOAT16)
    np.testing.assert_array_equal(mixed.view(np.uint8), pipeline[0].view(np.uint8))


def test_label_maps_are_mixed_eagerly_too(device):
    maps = np.random.default_rng(1).integers(0, 6, (6, 224, 224), dtype=np.uint8)
    lam = np.float32([0.25] * 6)
    center = np.float32([[0.5, 0.5]] * 6)
    outs = mix(IMAGES, LABELS, ndd.random.RNG(2), device=device, maps=maps, method="cutmix",
               num_classes=6, mode="elem", lam=lam, center=center, output_params=True)
    mixed_maps, params = outs[2], outs[-1]
    _, _, masks = ref.mix(IMAGES, LABELS, "cutmix", lam=params[:, 1],
                          center=params[:, 2:4].astype(np.int64), apply=params[:, 0] == 1.0,
                          layout="HWC", num_classes=6)
    expect = ref.mix_seg(maps, masks, "cutmix", lam=params[:, 1],
                         center=params[:, 2:4].astype(np.int64), apply=params[:, 0] == 1.0)
    np.testing.assert_array_equal(mixed_maps, expect)


# ---- dali_msda.pytorch.Mixer: the op in a training loop


def nchw_batch(device, batch=6, seed=0):
    """A normalised float32 [B, 3, 224, 224] batch and int64 class ids, on `device`."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 3, 224, 224, generator=g)
    y = torch.randint(0, 10, (batch,), generator=g)
    to = "cuda" if device == "gpu" else "cpu"
    return x.to(to), y.to(to)


def test_mixer_is_the_op_on_nchw_tensors(device):
    """A float NCHW batch mixed as the reference mixes it (the draw read back from params),
    on the images' device, targets rows of the label-smoothed mix."""
    from dali_msda.pytorch import Mixer

    x, y = nchw_batch(device)
    mixer = Mixer(method="cutmix", num_classes=10, mode="elem", label_smoothing=0.1, seed=3,
                  output_params=True)
    mixed, targets, params = mixer(x, y)
    assert mixed.device == x.device and mixed.shape == x.shape and mixed.dtype == torch.float32
    assert targets.shape == (6, 10)
    params = params.cpu().numpy()
    expect, expect_t, _ = ref.mix(x.cpu().numpy(), y.cpu().numpy()[:, None], "cutmix",
                                  lam=params[:, 1], center=params[:, 2:4].astype(np.int64),
                                  apply=params[:, 0] == 1.0, layout="CHW", num_classes=10,
                                  label_smoothing=0.1)
    np.testing.assert_array_equal(mixed.cpu().numpy(), expect)
    np.testing.assert_allclose(targets.cpu().numpy(), expect_t, rtol=0, atol=1e-6)


def test_mixer_state_is_saved_and_restored_with_torch_save(tmp_path, device):
    """state_dict through torch.save / torch.load: a new Mixer (another seed) loaded with it
    draws what the saved one drew next, call for call; the same seed repeats, another differs."""
    from dali_msda.pytorch import Mixer

    x, y = nchw_batch(device)
    kw = dict(method="hmix", num_classes=10, mode="elem")
    a = Mixer(seed=21, **kw)
    torch.save({"mixer": a.state_dict()}, tmp_path / "ck.pt")
    first, second = a(x, y)[0], a(x, y)[0]
    assert not torch.equal(first, second)
    b = Mixer(seed=99, **kw)
    b.load_state_dict(torch.load(tmp_path / "ck.pt", weights_only=False)["mixer"])
    assert torch.equal(b(x, y)[0], first) and torch.equal(b(x, y)[0], second)
    assert torch.equal(Mixer(seed=21, **kw)(x, y)[0], first)
    assert not torch.equal(Mixer(seed=22, **kw)(x, y)[0], first)


def test_a_state_that_cannot_be_loaded_leaves_the_mixer_as_it_was():
    """Mixer.load_state_dict refuses a damaged state (a valid generator state with a broken
    schedule, not a dict, a bad generator state) and the mixer then draws what it would have
    drawn: nothing half-loaded. A seed that is not an int is refused by name."""
    from dali_msda.pipelines import MixConfig
    from dali_msda.pytorch import Mixer

    x, y = nchw_batch("cpu")
    config = MixConfig.from_timm(mixup_alpha=1.0, cutmix_alpha=1.0, mode="elem", num_classes=10)
    a, twin = Mixer(config, seed=3), Mixer(config, seed=3)
    a(x, y), twin(x, y)
    other = Mixer(config, seed=4)
    damaged = dict(other.state_dict(), schedule={"config": {"alpha": -1.0}})
    for state in (damaged, "state", {"schedule": {}}, dict(other.state_dict(), rng="xyz")):
        with pytest.raises((ValueError, TypeError)):
            a.load_state_dict(state)
    for _ in range(3):  # the generator and the schedule's switching both as they were
        got, want = a(x, y), twin(x, y)
        assert all(torch.equal(g, w) for g, w in zip(got, want))
    with pytest.raises(ValueError, match="`seed` must be an int or None .*; got 'a'"):
        Mixer(method="mixup", num_classes=10, seed="a")


def test_mixer_index_targets_give_the_dense_loss(device):
    from dali_msda.pytorch import Mixer, mixed_cross_entropy

    x, y = nchw_batch(device, batch=7)
    dense_x, dense_t = Mixer(method="mixup", num_classes=10, label_smoothing=0.1, seed=5)(x, y)
    index_x, pair, w = Mixer(method="mixup", num_classes=10, targets="index", seed=5)(x, y)
    assert torch.equal(index_x, dense_x)
    logits = torch.randn(7, 10, dtype=torch.float64, device=x.device)
    want = torch.nn.functional.cross_entropy(logits, dense_t.double())
    got = mixed_cross_entropy(logits, pair[:, 0], pair[:, 1], w, label_smoothing=0.1)
    assert abs(got.item() - want.item()) <= 1e-6 * max(1.0, abs(want.item()))


def test_mixer_refuses_what_is_not_a_batch():
    from dali_msda.pytorch import Mixer

    mixer = Mixer(method="mixup", num_classes=10)
    with pytest.raises(ValueError, match=r"`images` must be a batch \[B, C, H, W\]"):
        mixer(torch.zeros(3, 8, 8), torch.zeros(3, dtype=torch.int64))
    with pytest.raises(ValueError, match="`labels` must have one entry per image: got 2 for 3"):
        mixer(torch.zeros(3, 3, 8, 8), torch.zeros(2, dtype=torch.int64))
    with pytest.raises(ValueError, match="`labels` must have one entry per image: got a 0-d "
                                         "tensor for 1 images"):
        mixer(torch.zeros(1, 3, 8, 8), torch.tensor(0))
    with pytest.raises(ValueError, match="`layout` must be 'CHW' or 'HWC'"):
        Mixer(layout="NCHW")
    with pytest.raises(TypeError, match=r"`images` must be a torch.Tensor; got ndarray"):
        mixer(np.zeros((3, 3, 8, 8), np.float32), torch.zeros(3, dtype=torch.int64))
    with pytest.raises(TypeError, match=r"`labels` must be a torch.Tensor; got list"):
        mixer(torch.zeros(3, 3, 8, 8), [0, 1, 2])
    with pytest.raises(TypeError, match=r"`maps` must be a torch.Tensor; got ndarray"):
        mixer(torch.zeros(3, 3, 8, 8), torch.zeros(3, dtype=torch.int64), np.zeros((3, 8, 8)))
    with pytest.raises(ValueError, match=r"`images` require grad, and the op is not "
                       r"differentiable: mix `images.detach\(\)`"):
        mixer(torch.zeros(3, 3, 8, 8, requires_grad=True), torch.zeros(3, dtype=torch.int64))
    with pytest.raises(ValueError, match="`images` must be uint8, float16 or float32 .* got "
                       "bfloat16"):
        mixer(torch.zeros(3, 3, 8, 8, dtype=torch.bfloat16), torch.zeros(3, dtype=torch.int64))
    with pytest.raises(RuntimeError, match="`images` must be uint8, float16 or float32; got "
                       "float64"):  # the op's own message
        mixer(torch.zeros(3, 3, 8, 8, dtype=torch.float64), torch.zeros(3, dtype=torch.int64))


@pytest.mark.parametrize("form", ["BHW uint8", "BHW int32", "BHW int64", "B1HW int64",
                                  "BHW1 uint8"])
def test_mixer_mixes_label_maps_in_the_form_given(device, form):
    """Label maps as torch code holds them: [B, H, W], [B, 1, H, W] or [B, H, W, 1], uint8,
    int32 or int64 (cross-entropy's class ids, through the op's int32: values past uint8 kept).
    The mixed maps come back in the shape and type given, the reference's mix of the draw."""
    from dali_msda.pytorch import Mixer

    x, y = nchw_batch(device)
    layout, kind = form.split()
    dtype = {"uint8": torch.uint8, "int32": torch.int32, "int64": torch.int64}[kind]
    shape = {"BHW": (6, 224, 224), "B1HW": (6, 1, 224, 224), "BHW1": (6, 224, 224, 1)}[layout]
    maps = np.random.default_rng(1).integers(0, 6, (6, 224, 224)).astype(np.int64)
    if dtype != torch.uint8:
        maps[:, ::7] += 70_000  # beyond uint8 and int16
    given = torch.from_numpy(maps).to(dtype).reshape(shape).to(x.device)
    mixer = Mixer(method="cutmix", num_classes=10, mode="elem", seed=3, output_params=True)
    _, _, mixed_maps, params = mixer(x, y, given)
    assert mixed_maps.shape == shape and mixed_maps.dtype == dtype
    assert mixed_maps.device == x.device
    params = params.cpu().numpy()
    draw = dict(lam=params[:, 1], center=params[:, 2:4].astype(np.int64),
                apply=params[:, 0] == 1.0)
    _, _, masks = ref.mix(x.cpu().numpy(), y.cpu().numpy()[:, None], "cutmix", layout="CHW",
                          num_classes=10, **draw)
    expect = ref.mix_seg(maps, masks, "cutmix", **draw)
    assert 0 < np.mean(expect != maps) < 1  # mixed, not copied
    np.testing.assert_array_equal(mixed_maps.cpu().numpy().reshape(6, 224, 224), expect)


def test_mixer_label_map_refusals():
    from dali_msda.pytorch import Mixer

    mixer = Mixer(method="cutmix", num_classes=10, seed=0)
    x, y = torch.zeros(3, 3, 8, 8), torch.zeros(3, dtype=torch.int64)
    with pytest.raises(ValueError, match=r"`maps` must be uint8, int32 or int64 class ids; got "
                       r"torch.float32"):
        mixer(x, y, torch.zeros(3, 8, 8))
    with pytest.raises(ValueError, match=r"`maps` must be label maps \[B, H, W\] \(or "
                       r"\[B, 1, H, W\], \[B, H, W, 1\]\); got shape \(3, 2, 8, 8\)"):
        mixer(x, y, torch.zeros(3, 2, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"`maps` must be label maps .* got shape \(3, 8\)"):
        mixer(x, y, torch.zeros(3, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match="`maps` must hold one map per image: got 2 for 3"):
        mixer(x, y, torch.zeros(2, 8, 8, dtype=torch.uint8))
    for bad in (2**31, -2**31 - 1):
        maps = torch.zeros(3, 8, 8, dtype=torch.int64)
        maps[1, 2, 3] = bad
        with pytest.raises(ValueError, match=rf"`maps` of int64 must hold values that fit in "
                           rf"int32 \(the op's type\); got {bad}"):
            mixer(x, y, maps)
    maps = torch.zeros(3, 8, 8, dtype=torch.int64)
    maps[0, 0, 0], maps[2, 7, 7] = 2**31 - 1, -2**31  # the ends of int32 pass, kept
    out64 = Mixer(method="cutmix", num_classes=10, seed=0)(x, y, maps)[2]
    out32 = Mixer(method="cutmix", num_classes=10, seed=0)(x, y, maps.int())[2]
    assert out64.dtype == torch.int64 and torch.equal(out64, out32.long())
    assert {2**31 - 1, -2**31} <= set(out64.unique().tolist())


def test_mixer_takes_torch_dtypes_for_the_output_type(device):
    """`dtype=torch.float16` (what torch code writes) is the op's float16, as DALI's and ndd's
    names are: the same bytes, fused normalisation included; a type the op has not is
    refused naming the argument (it failed in int() before)."""
    from dali_msda.pytorch import Mixer

    x, y = nchw_batch(device)
    x = (x * 40 + 128).clamp(0, 255).to(torch.uint8)
    fused = dict(method="mixup", num_classes=10, seed=1, mean=[120.0, 110.0, 100.0],
                 std=[60.0, 50.0, 40.0])
    outs = [Mixer(dtype=d, **fused)(x, y)[0] for d in (torch.float16, ndd.float16,
                                                       types.FLOAT16)]
    assert outs[0].dtype == torch.float16 and outs[0].device == x.device
    assert all(torch.equal(outs[0], o) for o in outs[1:])
    assert Mixer(dtype=torch.uint8, method="mixup", num_classes=10, seed=1)(
        x.float(), y)[0].dtype == torch.uint8
    with pytest.raises(ValueError, match=r"`dtype` must be torch.uint8, torch.float16 or "
                       r"torch.float32 \(the op's output types\); got torch.bfloat16"):
        Mixer(method="mixup", num_classes=10, dtype=torch.bfloat16)


def test_an_empty_batch_is_refused(device):
    """A batch of 0 samples is refused with the rule named, by ndd.msda.mix (whose random state
    DALI reads from the batch's first sample: an assertion that ended the process before) and
    by Mixer, with a config too (whose schedule would draw for it)."""
    from dali_msda.pytorch import Mixer

    empty = np.zeros((0, 8, 8, 3), np.uint8)
    with pytest.raises(RuntimeError, match=r"`images` is an empty batch \(0 samples\)"):
        mix(empty, np.zeros((0, 1), np.int32), ndd.random.RNG(seed=0), device=device,
            method="mixup", num_classes=4)
    x, y = nchw_batch(device, batch=0)
    for mixer in (Mixer(method="mixup", num_classes=10, seed=0), Mixer(timm_recipe(), seed=0)):
        with pytest.raises(ValueError, match=r"`images` is an empty batch \(0 samples\): a "
                           "batch to mix has at least one sample"):
            mixer(x, y)


@pytest.mark.parametrize("with_config", [False, True])
def test_a_refused_call_leaves_the_draws_as_they_were(device, with_config):
    """A call the op refuses (a label out of range) leaves the mixer's generator and schedule
    as they were: the calls after it draw what they would have drawn without it, call for call
    (timm's recipe switched per sample: the schedule's draw index counts too)."""
    from dali_msda.pytorch import Mixer

    def make():
        if with_config:
            return Mixer(timm_recipe(), seed=4)
        return Mixer(method="cutmix", num_classes=10, mode="elem", seed=4)

    x, y = nchw_batch(device)
    bad = y.clone()
    bad[3] = 10
    plain, refused = make(), make()
    for k in range(3):
        if k == 1:
            with pytest.raises(RuntimeError, match=r"`labels` must be class indices in \[0, 10\)"
                               r" \(`num_classes`\); got 10 for sample 3"):
                refused(x, bad)
        for a, b in zip(plain(x, y), refused(x, y)):
            assert torch.equal(a, b)
    assert plain.state_dict() == refused.state_dict()


@pytest.mark.parametrize("method,targets", [("mixup", "dense"), ("cutmix", "index"),
                                            ("resizemix", "dense")])
def test_mixer_mixes_boxes_as_the_reference(device, method, targets):
    """Boxes through Mixer (lists of per-sample tensors in, lists out): the reference's boxes,
    labels and weights for the call's own draws, empty sets and an odd batch included; with
    index targets the box outputs come after (mixed, labels, weights)."""
    from dali_msda.pytorch import Mixer
    from test_boxes import box_labels_for, random_boxes

    x, y = nchw_batch(device, batch=7)
    boxes = random_boxes(np.random.default_rng(3), [5, 0, 7, 3, 1, 6, 0])
    labels = box_labels_for(boxes)
    mixer = Mixer(method=method, num_classes=10, mode="elem", seed=4, output_params=True,
                  targets=targets)
    outs = mixer(x, y, boxes=[torch.from_numpy(b) for b in boxes],
                 box_labels=[torch.from_numpy(lab) for lab in labels])
    assert len(outs) == (7 if targets == "index" else 6)
    out_boxes, out_labels, out_weights = outs[-4:-1]
    params = outs[-1].cpu().numpy()
    expect = ref.mix_boxes(boxes, labels, method, lam=params[:, 1],
                           center=params[:, 2:4].astype(np.int64), apply=params[:, 0] == 1.0,
                           height=224, width=224)
    assert len(out_boxes) == len(out_labels) == len(out_weights) == 7
    for i, (eb, el, ew) in enumerate(expect):
        np.testing.assert_array_equal(out_boxes[i].cpu().numpy(), eb, err_msg=f"sample {i}")
        np.testing.assert_array_equal(out_labels[i].cpu().numpy(), el, err_msg=f"sample {i}")
        np.testing.assert_array_equal(out_weights[i].cpu().numpy(), ew, err_msg=f"sample {i}")
    assert sum(len(b) for b in out_boxes) > 0


def test_mixer_box_refusals():
    from dali_msda.pytorch import Mixer

    x, y = nchw_batch("cpu", batch=4)
    boxes = [torch.zeros(1, 4)] * 4
    mixer = Mixer(method="cutmix", num_classes=10)
    with pytest.raises(ValueError, match="`boxes` and `box_labels` go together"):
        mixer(x, y, boxes=boxes)
    with pytest.raises(ValueError, match=r"`box_labels` must hold one tensor per image: got 3 "
                                         r"for 4 images"):
        mixer(x, y, boxes=boxes, box_labels=[torch.zeros(1, dtype=torch.int32)] * 3)
    # DALI's dynamic mode would saturate this label to 2147483647 without a word
    wide = [torch.zeros(1, dtype=torch.int64)] * 3 + [torch.tensor([1, 2**40 + 7])]
    with pytest.raises(ValueError, match=r"`box_labels` must fit in int32 \(the op's type\); got "
                                         r"1099511627783 at index 1 of sample 3\."):
        mixer(x, y, boxes=[torch.zeros(1, 4)] * 3 + [torch.zeros(2, 4)], box_labels=wide)
    for edge in (2**31, -2**31 - 1):  # the first values outside int32 either side
        with pytest.raises(ValueError, match=rf"`box_labels` must fit in int32 \(the op's "
                                             rf"type\); got {edge} at index 0 of sample 0\."):
            mixer(x, y, boxes=boxes, box_labels=[torch.tensor([edge])] + [
                torch.tensor([2**31 - 1])] * 3)
    with pytest.raises(ValueError, match=r"`box_labels` must be integers; sample 0 is "
                                         r"torch.float32\."):
        mixer(x, y, boxes=boxes, box_labels=[torch.zeros(1)] * 4)
    with pytest.raises(ValueError, match=r"`boxes` must be floating point \(relative ltrb\); "
                                         r"sample 0 is torch.int64\."):
        mixer(x, y, boxes=[torch.zeros(1, 4, dtype=torch.int64)] * 4,
              box_labels=[torch.zeros(1, dtype=torch.int32)] * 4)
    # int64 labels that fit, float64 boxes: the same as int32 / float32 ones
    a = Mixer(method="cutmix", num_classes=10, seed=1)(
        x, y, boxes=[torch.tensor([[0.1, 0.2, 0.6, 0.9]], dtype=torch.float64)] * 4,
        box_labels=[torch.tensor([7])] * 4)
    b = Mixer(method="cutmix", num_classes=10, seed=1)(
        x, y, boxes=[torch.tensor([[0.1, 0.2, 0.6, 0.9]])] * 4,
        box_labels=[torch.tensor([7], dtype=torch.int32)] * 4)
    for u, v in zip(a[2:], b[2:]):
        assert all(torch.equal(s, t) for s, t in zip(u, v))


def test_mixer_hands_tensors_over_without_copies(device, monkeypatch):
    """The batch DALI receives is the caller's tensor's memory (DLPack), the op runs on the
    images' device, and the tensors returned are views of the op's outputs, not copies."""
    from dali_msda.pytorch import Mixer

    x, y = nchw_batch(device)
    seen = {}
    mix_op = ndd.msda.mix

    def spy(*inputs, **kw):
        seen["inputs"], seen["outputs"] = inputs, mix_op(*inputs, **kw)
        seen["device"] = kw["device"]
        return seen["outputs"]

    monkeypatch.setattr(ndd.msda, "mix", spy)
    mixed, targets = Mixer(method="mixup", num_classes=10, seed=0)(x, y)
    # the op runs where the images are: their GPU by its index (a torchrun rank's cuda:<rank>,
    # whatever the current device), or the CPU
    assert seen["device"] == (f"gpu:{x.device.index}" if x.is_cuda else "cpu")
    assert mixed.device == x.device
    assert seen["inputs"][0].torch().data_ptr() == x.data_ptr()
    assert mixed.data_ptr() == seen["outputs"][0].torch().data_ptr()
    assert targets.data_ptr() == seen["outputs"][1].torch().data_ptr()


@pytest.mark.parametrize("fused", [False, True])
def test_mixer_mixes_a_channels_last_batch_in_place_of_memory(device, monkeypatch, fused):
    """A channels_last [B, C, H, W] batch (NHWC memory, as channels_last training holds it)
    reaches the op as HWC without a copy and comes back channels_last, with the values of the
    same batch given contiguous (fused normalisation and flips too: the channel axis moves);
    an output layout asked for is given as asked."""
    from dali_msda.pytorch import Mixer

    x, y = nchw_batch(device)
    if fused:
        x = (x * 40 + 128).clamp(0, 255).to(torch.uint8)
    x_last = x.contiguous(memory_format=torch.channels_last)
    assert not x_last.is_contiguous()
    kw = dict(method="cutmix", num_classes=10, mode="elem", seed=7)
    if fused:
        kw.update(mean=[120.0, 110.0, 100.0], std=[60.0, 50.0, 40.0], dtype=torch.float16,
                  mirror=1)
    want, want_t = Mixer(**kw)(x, y)
    seen = {}
    mix_op = ndd.msda.mix

    def spy(*inputs, **args):
        seen["images"] = inputs[0]
        return mix_op(*inputs, **args)

    monkeypatch.setattr(ndd.msda, "mix", spy)
    got, got_t = Mixer(**kw)(x_last, y)
    assert seen["images"].layout == "HWC"
    assert seen["images"].torch().data_ptr() == x_last.data_ptr()  # no copy
    assert got.shape == want.shape and got.dtype == want.dtype and got.device == x.device
    assert got.is_contiguous(memory_format=torch.channels_last) and not got.is_contiguous()
    assert torch.equal(got, want) and torch.equal(got_t, want_t)
    chw, _ = Mixer(output_layout="CHW", **kw)(x_last, y)  # asked for: contiguous CHW
    assert chw.is_contiguous() and torch.equal(chw, want)
    hwc, _ = Mixer(output_layout="HWC", **kw)(x_last, y)
    assert torch.equal(hwc, want.permute(0, 2, 3, 1))


@pytest.mark.parametrize("given", ["contiguous", "channels_last"])
@pytest.mark.parametrize("memory_format", [torch.channels_last, torch.contiguous_format])
def test_mixer_memory_format_sets_the_output_memory(device, given, memory_format):
    """`memory_format`: the output's memory whatever the input's, the conversion fused into the
    mix (what timm's train.py does after mixup_fn for a channels_last model): the values of the
    contiguous batch's mix, in that memory; refused where it has no meaning."""
    from dali_msda.pytorch import Mixer

    x, y = nchw_batch(device)
    kw = dict(method="mixup", num_classes=10, mode="elem", seed=2)
    want, want_t = Mixer(**kw)(x, y)
    given_x = x.contiguous(memory_format=torch.channels_last) if given == "channels_last" else x
    got, got_t = Mixer(memory_format=memory_format, **kw)(given_x, y)
    assert got.shape == want.shape and got.device == x.device
    assert got.is_contiguous(memory_format=memory_format) and (
        memory_format == torch.contiguous_format or not got.is_contiguous())
    assert torch.equal(got, want) and torch.equal(got_t, want_t)


def test_mixer_memory_format_refusals():
    from dali_msda.pytorch import Mixer

    with pytest.raises(ValueError, match=r"`memory_format` must be torch.channels_last, "
                       r"torch.contiguous_format or None; got torch.preserve_format"):
        Mixer(method="mixup", num_classes=10, memory_format=torch.preserve_format)
    for bad in (dict(layout="HWC"), dict(output_layout="HWC")):
        with pytest.raises(ValueError, match=r"`memory_format` is the memory of a \[B, C, H, W\] "
                           r"output: it takes layout='CHW' and no `output_layout`"):
            Mixer(method="mixup", num_classes=10, memory_format=torch.channels_last, **bad)


def test_mixer_runs_the_op_on_the_images_own_gpu():
    """A CUDA batch is mixed on its own GPU, named by index, not on the current device (under
    torchrun each rank's batch is on cuda:<rank>): a stand-in for a tensor on cuda:3, as this
    test's machine (CPU, or the lease's one GPU) cannot make one."""
    from types import SimpleNamespace

    from dali_msda.pytorch import _op_device

    on = lambda kind, index: SimpleNamespace(is_cuda=kind == "cuda",  # noqa: E731
                                             device=SimpleNamespace(type=kind, index=index))
    assert _op_device(on("cuda", 3)) == "gpu:3"
    assert _op_device(on("cuda", 0)) == "gpu:0"
    assert _op_device(on("cpu", None)) == "cpu"
    assert _op_device(torch.zeros(1)) == "cpu"


# ---- Mixer with a MixConfig: timm's recipes in the loop


def timm_recipe(**kw):
    from dali_msda.pipelines import MixConfig

    args = dict(mixup_alpha=0.8, cutmix_alpha=1.0, switch_prob=0.5, label_smoothing=0.1,
                num_classes=10, mode="elem")
    return MixConfig.from_timm(**{**args, **kw})


@pytest.mark.parametrize("mode", ["elem", "batch", "pair"])
def test_mixer_with_a_timm_recipe_is_the_reference(device, mode):
    """timm's default recipe (Mixup 0.8 / CutMix 1.0, switched with p 0.5) through
    Mixer(config): each call's branch per sample (elem), pair or batch is the pipelines' draw
    (MixSchedule's generator seeded by the seed and the call's index), and every sample is the
    reference's mix by its branch, from the call's reported lam and centre."""
    from dali_msda.methods import METHOD_IDS
    from dali_msda.pipelines import MixSchedule
    from dali_msda.pytorch import Mixer

    cfg = timm_recipe(mode=mode)
    x, y = nchw_batch(device, batch=9)
    mixer = Mixer(cfg, seed=7, output_params=True)
    seen = set()
    for call in range(6):
        mixed, targets, params = (t.cpu().numpy() for t in mixer(x, y))
        ids, _ = MixSchedule._switched(cfg, 9, np.random.default_rng([7, call]))
        ids = np.array([int(i) for i in ids])
        assert mode != "batch" or len(set(ids)) == 1
        if mode == "pair":  # one branch and one draw per pair (an odd batch: the middle alone)
            np.testing.assert_array_equal(ids, ids[::-1])
            np.testing.assert_array_equal(params, params[::-1])
        for method in ("mixup", "cutmix"):
            rows = ids == METHOD_IDS[method]
            if not rows.any():
                continue
            seen.add(method)
            want, want_t, _ = ref.mix(x.cpu().numpy(), y.cpu().numpy()[:, None], method,
                                      lam=params[:, 1], center=params[:, 2:4].astype(np.int64),
                                      apply=params[:, 0] == 1.0, layout="CHW", num_classes=10,
                                      label_smoothing=0.1, box=cfg.box)  # timm's: "exact"
            np.testing.assert_array_equal(mixed[rows], want[rows], err_msg=f"{method} {call}")
            np.testing.assert_allclose(targets[rows], want_t[rows], rtol=0, atol=1e-6)
    assert seen == {"mixup", "cutmix"}


def test_mixer_schedule_off_bce_thresh_and_state(tmp_path, device):
    """mixer.schedule.off() passes the batch through (targets the smoothed one-hot rows);
    bce_target_thresh binarises the mixed targets as timm's BinaryCrossEntropy does; a saved
    state (generator, schedule, switching draws) continues both streams in a new Mixer."""
    from dali_msda.pytorch import Mixer

    x, y = nchw_batch(device, batch=8)
    mixer = Mixer(timm_recipe(), seed=3)
    mixer.schedule.off()
    mixed, targets = mixer(x, y)
    assert torch.equal(mixed, x)
    want = torch.full((8, 10), 0.01)
    want[torch.arange(8), y.cpu()] = 0.91
    assert torch.allclose(targets.cpu(), want, atol=1e-6)

    plain = Mixer(timm_recipe(), seed=4)
    binary = Mixer(timm_recipe(bce_target_thresh=0.2), seed=4)
    for _ in range(3):
        (xp, tp), (xb, tb) = plain(x, y), binary(x, y)
        assert torch.equal(xp, xb) and torch.equal(tb, (tp > 0.2).float())
    # a target equal to the threshold is not above it (timm's gt): unmixed and unsmoothed, the
    # targets are 0 and 1, and a threshold of 0 keeps the zeros
    tie = Mixer(timm_recipe(label_smoothing=0.0, bce_target_thresh=0.0), seed=5)
    tie.schedule.off()
    assert torch.equal(tie(x, y)[1].cpu(), torch.eye(10)[y.cpu()])

    a = Mixer(timm_recipe(), seed=21)
    a(x, y)
    torch.save({"mixer": a.state_dict()}, tmp_path / "ck.pt")
    nxt = [a(x, y)[0] for _ in range(4)]
    b = Mixer(timm_recipe(), seed=99)
    b.load_state_dict(torch.load(tmp_path / "ck.pt", weights_only=False)["mixer"])
    assert all(torch.equal(b(x, y)[0], want) for want in nxt)
    with pytest.raises(ValueError, match="the state is of a Mixer with a config; this one has "
                                         "none"):
        Mixer(method="mixup", num_classes=10).load_state_dict(a.state_dict())
    with pytest.raises(ValueError, match=r"MixSchedule: the checkpoint was saved with "
                                         r"mode='elem', this pipeline was built with "
                                         r"mode='batch'"):
        Mixer(timm_recipe(mode="batch")).load_state_dict(a.state_dict())


def test_mixer_config_alpha_reaches_the_draw(device):
    """The config's alpha is the draw's: with Beta(1000, 1000) every lam lies within 0.06 of 0.5
    (5.4 standard deviations: a miss has probability about 1e-7 a sample), while a lam from
    Beta(1, 1) would do so with probability 0.12 (all 27: never)."""
    from dali_msda.pipelines import MixConfig
    from dali_msda.pytorch import Mixer

    x, y = nchw_batch(device, batch=9)
    mixer = Mixer(MixConfig(method="mixup", alpha=1000.0, mode="elem", num_classes=10), seed=2,
                  output_params=True)
    lam = np.concatenate([mixer(x, y)[2][:, 1].cpu().numpy() for _ in range(3)])
    assert np.all(np.abs(lam - 0.5) < 0.06), lam


def test_mixer_config_with_index_targets_leaves_smoothing_to_the_loss(device):
    """A config's label smoothing with index targets is the loss's (the op refuses it with
    them): mixer.label_smoothing carries it, and mixed_cross_entropy with it equals the dense
    targets' cross-entropy of the same config and seed."""
    from dali_msda.pytorch import Mixer, mixed_cross_entropy

    x, y = nchw_batch(device, batch=7)
    dense = Mixer(timm_recipe(), seed=6)
    index = Mixer(timm_recipe(), seed=6, targets="index")
    assert index.label_smoothing == dense.label_smoothing == 0.1
    logits = torch.randn(7, 10, dtype=torch.float64, device=x.device)
    for _ in range(3):
        (xd, t), (xi, pair, w) = dense(x, y), index(x, y)
        assert torch.equal(xd, xi)
        want = torch.nn.functional.cross_entropy(logits, t.double())
        got = mixed_cross_entropy(logits, pair[:, 0], pair[:, 1], w,
                                  label_smoothing=index.label_smoothing)
        assert abs(got.item() - want.item()) <= 1e-6 * max(1.0, abs(want.item()))


def test_mixer_config_refusals():
    from dali_msda.pipelines import MixConfig
    from dali_msda.pytorch import Mixer

    with pytest.raises(ValueError, match=r"Mixer: alpha, method set beside `config`; a "
                                         r"MixConfig sets them"):
        Mixer(MixConfig(method="cutmix"), method="mixup", alpha=0.2, num_classes=10)
    with pytest.raises(ValueError, match=r"Mixer: num_classes=5 differs from the config's "
                                         r"\(10\)"):
        Mixer(timm_recipe(), num_classes=5)
    with pytest.raises(TypeError, match="`config` must be a dali_msda.pipelines.MixConfig; got "
                                        "dict"):
        Mixer({"method": "cutmix"})
