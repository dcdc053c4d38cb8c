"""Same seed, same outputs (two builds of one pipeline; CPU and GPU); checkpoint and restore."""

import numpy as np
import pytest

import dali_msda

from conftest import HAS_GPU, build_mix_pipeline, class_labels, random_images, to_numpy

BATCH = 6
IMAGES = random_images(np.random.default_rng(0), BATCH, (16, 20, 3), np.uint8)
LABELS = class_labels(BATCH)


def outputs(pipe, iterations):
    return [tuple(to_numpy(o) for o in pipe.run()) for _ in range(iterations)]


def assert_same(runs_a, runs_b):
    for a, b in zip(runs_a, runs_b):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("mode", ["batch", "elem", "pair"])
@pytest.mark.parametrize("method", ["cutmix", "gmix"])
def test_same_seed_same_outputs(device, method, mode):
    kw = dict(device=device, method=method, mode=mode, num_classes=BATCH, seed=42)
    a = outputs(build_mix_pipeline(IMAGES, LABELS, **kw), 4)
    b = outputs(build_mix_pipeline(IMAGES, LABELS, **kw), 4)
    assert_same(a, b)
    # iterations differ from each other, and another seed gives other draws
    assert not np.array_equal(a[0][3], a[1][3])
    c = outputs(build_mix_pipeline(IMAGES, LABELS, **{**kw, "seed": 43}), 1)
    assert not np.array_equal(a[0][3], c[0][3])


@pytest.mark.skipif(not HAS_GPU, reason="no GPU")
@pytest.mark.parametrize("dtype", [np.uint8, np.float16, np.float32])
@pytest.mark.parametrize("method", ["mixup", "cutmix", "hmix", "gmix"])
def test_cpu_and_gpu_agree(method, dtype):
    images = random_images(np.random.default_rng(1), BATCH, (3, 24, 31), dtype)
    kw = dict(method=method, mode="elem", num_classes=BATCH, seed=5, layout="CHW")
    cpu = outputs(build_mix_pipeline(images, LABELS, device="cpu", **kw), 3)
    gpu = outputs(build_mix_pipeline(images, LABELS, device="gpu", **kw), 3)
    assert_same(cpu, gpu)


@pytest.mark.filterwarnings("ignore:Checkpointing enabled in a pipeline with external source")
def test_checkpoint_restore(device):
    kw = dict(device=device, method="hmix", mode="elem", num_classes=BATCH, seed=9,
              enable_checkpointing=True)
    pipe = build_mix_pipeline(IMAGES, LABELS, **kw)
    outputs(pipe, 3)
    cpt = pipe.checkpoint()
    expected = outputs(pipe, 3)
    restored = build_mix_pipeline(IMAGES, LABELS, checkpoint=cpt, **kw)
    assert_same(outputs(restored, 3), expected)
    fresh = build_mix_pipeline(IMAGES, LABELS, **kw)
    assert not np.array_equal(outputs(fresh, 1)[0][3], expected[0][3])


def test_import_checks_the_dali_version(monkeypatch):
    import nvidia.dali

    monkeypatch.setattr(nvidia.dali, "__version__", "1.99.0")
    with pytest.raises(ImportError, match=r"built against NVIDIA DALI 2.4.0 but DALI 1.99.0 is "
                                          r"installed.*pip install --force-reinstall \."):
        dali_msda._check_build()


def test_plugin_loads_once():
    dali_msda.load_plugin()
    dali_msda.load_plugin()
    from nvidia.dali import fn

    assert callable(fn.msda.mix)
