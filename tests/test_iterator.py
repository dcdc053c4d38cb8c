"""The PyTorch adapter (dali_msda.pytorch.MixIterator, CPU): tensors, length and epochs, the
partial last batch, the live schedule switching mixing off, and its errors."""

import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from nvidia.dali.plugin.pytorch import DALIGenericIterator  # noqa: E402

from dali_msda.pipelines import MixConfig, MixSchedule, imagenet_train, imagenet_val  # noqa: E402
from dali_msda.pytorch import LastBatchPolicy, MixIterator  # noqa: E402
from conftest import N_CLASSES, N_TRAIN, N_VAL  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_adapter_tensors_len_and_epochs(data_root):
    pipe = imagenet_train(os.path.join(data_root, "train"), batch_size=32, num_threads=2,
                          device="cpu", crop=64, dtype="float32", mix=MixConfig())
    loader = MixIterator(pipe)
    assert len(loader) == N_TRAIN // 32
    for epoch in range(2):
        count = 0
        for images, targets in loader:
            assert isinstance(images, torch.Tensor) and images.device.type == "cpu"
            assert images.shape == (32, 3, 64, 64) and images.dtype == torch.float32
            assert targets.dtype == torch.float32
            torch.testing.assert_close(targets.sum(1), torch.ones(32))
            loss = torch.nn.CrossEntropyLoss()(torch.randn(32, N_CLASSES), targets)
            assert torch.isfinite(loss)
            count += 1
        assert count == len(loader)
        assert loader.epoch == epoch + 1


def test_partial_policy_covers_the_val_set(data_root):
    pipe = imagenet_val(os.path.join(data_root, "val"), batch_size=48, num_threads=2,
                        device="cpu", crop=64, resize=73, targets="index")
    loader = MixIterator(pipe, last_batch_policy=LastBatchPolicy.PARTIAL)
    sizes = [images.shape[0] for images, _ in loader]
    assert sum(sizes) == N_VAL and sizes[-1] == N_VAL % 48


def test_schedule_switches_mixing_off_for_a_whole_epoch(data_root):
    def build():
        return imagenet_train(os.path.join(data_root, "train"), batch_size=32, num_threads=2,
                              device="cpu", crop=48, dtype="float32", output_params=True,
                              mix=MixSchedule(MixConfig(method="mixup")),
                              prefetch_queue_depth=2)

    loader = MixIterator(build())
    applied = []
    for epoch in range(3):
        if epoch == 1:
            loader.set_mix(enabled=False)
        if epoch == 2:
            loader.set_mix(enabled=True, method="cutmix", prob=1.0)
        rows = []
        for images, targets, params in loader:
            rows.append(params[:, 0].mean().item())
            if epoch == 1:  # unmixed: identity masks and exact one-hot targets
                assert (params[:, 0] == 0).all()
                assert set(targets.unique().tolist()) <= {0.0, 1.0}
                torch.testing.assert_close(targets.sum(1), torch.ones(32))
        applied.append(rows)
    assert all(r == 1.0 for r in applied[0]) and all(r == 0.0 for r in applied[1])
    assert all(r == 1.0 for r in applied[2])

    # The stock iterator prefetches the next epoch with the old setting: the same change made
    # between epochs leaves mixed batches at the start of the "off" epoch. (This is the trap
    # MixIterator avoids, and shows that the check above can fail.)
    pipe = build()
    stock = DALIGenericIterator([pipe], ["images", "targets", "params"], reader_name="Reader",
                                last_batch_policy=LastBatchPolicy.DROP, auto_reset=True)
    for _ in stock:
        pass
    pipe.mix_schedule.off()
    first = next(iter(stock))[0]["params"]
    assert (first[:, 0] == 1).all()


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_a_change_inside_an_epoch_applies_after_the_batches_in_flight(data_root, depth):
    """set_mix after batch k of an epoch: batches k + 1 .. k + depth were scheduled already
    (prefetch_queue_depth `depth`) and stay mixed, batch k + depth + 1 is the first unmixed, as
    MixSchedule's docstring says; a reset() inside the epoch is ignored (DALI's iterator
    ignores it too) and does not count an epoch."""
    pipe = imagenet_train(os.path.join(data_root, "train"), batch_size=8, num_threads=1,
                          device="cpu", crop=32, dtype="float32", output_params=True,
                          mix=MixConfig(method="mixup"), prefetch_queue_depth=depth)
    loader = MixIterator(pipe)
    applied = []
    for k, (_, _, params) in enumerate(loader, 1):
        applied.append(bool((params[:, 0] == 1).all()))
        if k == 2:
            loader.set_mix(enabled=False)
            loader.reset()
            assert loader.epoch == 0
        if k == 3 + depth:
            break
    assert applied == [True] * (2 + depth) + [False]
    assert loader.epoch == 0


@pytest.mark.parametrize("depth", [1, 2])
def test_a_reset_with_the_last_batches_in_flight_is_ignored(data_root, depth):
    """reset() when every iteration of the epoch is scheduled but the last batches are still in
    flight (a loop left just before its end): ignored like any reset inside an epoch, so the
    rest of the epoch still arrives, the epoch is counted once, and the next is whole."""
    pipe = imagenet_train(os.path.join(data_root, "train"), batch_size=32, num_threads=2,
                          device="cpu", crop=32, dtype="float32", mix=MixConfig(),
                          prefetch_queue_depth=depth)
    loader = MixIterator(pipe)
    n = len(loader)
    for _ in range(n - 1):
        next(loader)
    loader.reset()
    assert loader.epoch == 0
    assert len(list(loader)) == 1 and loader.epoch == 1
    assert len(list(loader)) == n and loader.epoch == 2


def test_iterator_errors_say_each_line_once():
    """An op's error through MixIterator: DALI's "Critical error in pipeline:" and "no longer
    valid" lines, which its iterator doubles, appear once; the op's own message is intact."""
    from nvidia.dali import fn, pipeline_def

    from dali_msda.pytorch import MixIterator

    @pipeline_def(batch_size=2, num_threads=1, device_id=None)
    def pipe():
        jpegs, _ = fn.readers.file(files=[os.path.join(ROOT, "docs", "demo.png")] * 2,
                                   labels=[0, 0], name="Reader", pad_last_batch=True)
        labels = fn.external_source(source=lambda: [np.array([5], np.int32)] * 2, batch=True)
        images = fn.resize(fn.decoders.image(jpegs), size=(4, 4))
        return tuple(fn.msda.mix(images, labels, method="mixup", num_classes=3))

    with pytest.raises(RuntimeError) as err:
        for _ in MixIterator(pipe(), output_map=("images", "targets")):
            pass
    message = str(err.value)
    assert message.count("Critical error in pipeline") == 1, message
    assert message.count("no longer valid") <= 1, message
    assert "`labels` must be class indices in [0, 3) (`num_classes`); got 5 for sample 0" in message
