"""The training example (dali_msda.pipelines.train, CPU): runs with few steps, under torchrun
with two processes, its LR schedule, and the embedded dataset it builds once for concurrent
processes."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest import N_TRAIN, N_VAL, free_port  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_ddp_two_processes_from_an_empty_cache(tmp_path):
    # the README's multi-process command, run where a newcomer types it (the repository root,
    # where the checkout's dali_msda/ shadows the installed one), with no dataset cached yet:
    # both ranks want the embedded dataset at once and one must build it while the other waits
    summary = tmp_path / "ddp.json"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
           f"--master_port={free_port()}", "-m", "dali_msda.pipelines.train", "--epochs", "1",
           "--steps", "2", "--batch-size", "8", "--crop", "64", "--threads", "1", "--device",
           "cpu", "--json", str(summary)]
    env = dict(os.environ, OMP_NUM_THREADS="1", DALI_MSDA_CACHE=str(tmp_path / "cache"))
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("building the embedded dataset (once)") == 1
    assert "device: cpu, 2 process(es)" in proc.stdout
    result = json.loads(summary.read_text())
    assert result["world_size"] == 2
    assert result["epochs"][0]["val_images"] == N_VAL  # both shards evaluated, all images
    assert np.isfinite(result["epochs"][0]["train_loss"])


def test_embedded_dataset_built_once_by_concurrent_processes(tmp_path):
    root = str(tmp_path / "data")
    code = ("import sys; from dali_msda.pipelines.data import embedded_dataset; "
            "embedded_dataset(sys.argv[1], log=lambda m: print('BUILT', flush=True))")
    procs = [subprocess.Popen([sys.executable, "-c", code, root], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e[-2000:] for _, e in outs]
    assert sum(o.count("BUILT") for o, _ in outs) == 1
    for split, per_class in (("train", N_TRAIN), ("val", N_VAL)):
        files = [f for _, _, fs in os.walk(os.path.join(root, split)) for f in fs]
        assert len(files) == per_class
    assert not [d for d in os.listdir(tmp_path) if ".tmp" in d]


@pytest.mark.parametrize("total", [1, 2, 3, 4, 5, 8, 26, 1000])
def test_lr_schedule_defined_for_any_step_count(total):
    from dali_msda.pipelines.train import one_cycle

    factor = one_cycle(total)
    values = [factor(step) for step in range(total)]
    assert all(np.isfinite(v) and 0 < v <= 1 for v in values)
    peak = int(np.argmax(values))
    assert values[peak] == pytest.approx(1.0, abs=0.02 if total > 1 else 0)
    assert all(a <= b for a, b in zip(values[:peak], values[1:peak + 1]))  # warm-up rises
    assert all(a >= b for a, b in zip(values[peak:], values[peak + 1:]))  # then it anneals
    if total >= 8:
        assert values[0] == pytest.approx(1 / 25) and values[-1] < 1e-3


@pytest.mark.parametrize("epochs,steps,method", [(1, 4, None), (2, 2, None), (1, 1, None),
                                                 (1, 2, "fmix"), (1, 2, "resizemix")])
def test_train_smoke_runs_with_few_steps(data_root, epochs, steps, method, capsys):
    from dali_msda.pipelines.train import main

    extra = (["--method", method, "--decay-power", "2.5", "--scale-min", "0.3",
              "--resize-interp", "bilinear"] if method else [])
    summary = main(["--data", data_root, "--epochs", str(epochs), "--steps", str(steps),
                    "--batch-size", "8", "--crop", "48", "--threads", "1", "--device", "cpu",
                    *extra])
    assert len(summary["epochs"]) == epochs
    assert all(np.isfinite(e["train_loss"]) for e in summary["epochs"])
    assert f"data: {data_root}" in capsys.readouterr().out


@pytest.mark.parametrize("flags,mixing", [
    (["--mixup-off-epoch", "2"], [True, True, False, False]),  # timm's: off from epoch 2 (0-based)
    (["--mix-off-epochs", "1"], [True, True, True, False]),  # the last epoch unmixed
    (["--mix-off-epochs", "3"], [True, False, False, False]),
    (["--mix-off-epochs", "6"], [False, False, False, False])])  # more than there are: all
def test_mixing_switches_off_at_the_epoch_asked(data_root, flags, mixing):
    """--mixup-off-epoch N (timm's: mixing off from the 0-based epoch N on) and
    --mix-off-epochs N (the last N epochs unmixed), read off each epoch's summary row."""
    from dali_msda.pipelines.train import main

    summary = main(["--data", data_root, "--epochs", "4", "--steps", "1", "--batch-size", "4",
                    "--crop", "32", "--threads", "1", "--device", "cpu", *flags])
    assert [e["mixing"] for e in summary["epochs"]] == mixing


def test_steps_cut_the_training_not_the_readers_epoch(data_root, tmp_path):
    """--steps N trains on N batches an epoch and drains the rest, so every epoch starts at the
    reader's epoch start: runs with --steps 1 and --steps 2 (same seed) see the same batch first
    in epoch 2 (stopping the iteration at N instead would start epoch 2 inside epoch 1)."""
    import json

    from dali_msda.pipelines.train import main

    first = []
    for steps in (1, 2):
        log = tmp_path / f"steps{steps}.log"
        main(["--data", data_root, "--epochs", "2", "--steps", str(steps), "--batch-size", "16",
              "--crop", "32", "--threads", "1", "--device", "cpu", "--seed", "3",
              "--log-batches", str(log)])
        rows = [json.loads(line) for line in log.read_text().splitlines()]
        assert [(r["epoch"], r["step"]) for r in rows] == [(e, s) for e in (1, 2)
                                                           for s in range(1, steps + 1)]
        first.append({r["epoch"]: r["images"] for r in rows if r["step"] == 1})
    assert first[0] == first[1] and first[0][1] != first[0][2]
