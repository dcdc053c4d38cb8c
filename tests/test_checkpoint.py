"""Checkpoint and resume: MixIterator.checkpoint(), train --checkpoint-dir / --resume (CPU).

The bar: a run killed (SIGKILL) after a checkpoint and resumed gives, from the checkpoint on,
the same batches (SHA-256 of images and targets) and the same losses as an uninterrupted run.
"""

import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

torch = pytest.importorskip("torch")

from dali_msda.pipelines import MixConfig, MixSchedule, embedded_dataset, imagenet_train  # noqa
from dali_msda.pytorch import MixIterator  # noqa: E402
from conftest import HAS_GPU, free_port  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return embedded_dataset(str(tmp_path_factory.mktemp("embedded") / "data"))


def digest(batch):
    return hashlib.sha256(b"".join(t.numpy().tobytes() for t in batch)).hexdigest()[:16]


def loader(data_root, mode, checkpoint=None, **kw):
    # timm: switching per sample; timm_pair: per pair (mode "pair")
    config = (MixConfig.from_timm(mixup_alpha=0.8, cutmix_alpha=1.0, cutmix_mode="gmix",
                                  mode="pair" if mode == "timm_pair" else "elem",
                                  num_classes=None)
              if mode.startswith("timm") else MixConfig(method="hmix", mode=mode))
    pipe = imagenet_train(os.path.join(data_root, "train"), batch_size=16, num_threads=2,
                          device="cpu", crop=40, dtype="float32", seed=5,
                          mix=MixSchedule(config),
                          checkpointing=True, checkpoint=checkpoint, **kw)
    return MixIterator(pipe)


def consume(it, log, saved, epochs=3, save_every=4):
    """Iterate to the end of `epochs`, changing the schedule between epochs 1 and 2 and inside
    epoch 1 (after batch 8), saving a checkpoint every `save_every` batches of epochs 0-1 (the
    one after batch 8 right after the change: the two batches in flight then were scheduled
    with the old alpha, and a resume must recompute them with it)."""
    while it.epoch < epochs:
        if it.epoch == 1 and it._scheduled == 0:
            it.set_mix(method="cutmix" if it.mix_schedule.config.switch_method is None else
                       "hmix")
        for batch in it:
            log.append((it.epoch, digest(batch)))
            if len(log) == 8:
                it.set_mix(alpha=0.3)  # inside an epoch: prefetched batches keep alpha=1
            if saved is not None and len(log) % save_every == 0 and it.epoch < 2:
                saved.append((len(log), it.checkpoint()))


@pytest.mark.parametrize("mode", ["batch", "elem", "timm", "timm_pair"])
def test_iterator_resumes_bit_for_bit(data_root, mode):
    it = loader(data_root, mode)
    log, saved = [], []
    consume(it, log, saved)
    assert len(log) == 3 * len(it) and len(set(h for _, h in log)) == len(log)
    assert len(saved) >= 10  # inside epochs, at their ends, across the schedule change
    for n, state in saved:
        assert isinstance(state, bytes)
        resumed = loader(data_root, mode, checkpoint=state)
        assert resumed.epoch == log[n - 1][0] or n % len(it) == 0
        rest = list(log[:n])
        consume(resumed, rest, None)
        assert rest == log, f"resumed after batch {n}: batches differ"


def test_iterator_checkpoint_refuses_what_does_not_fit(data_root):
    it = loader(data_root, "elem")
    next(iter(it))
    state = it.checkpoint()
    with pytest.raises(ValueError, match=r"saved with mode='elem'.*built with mode='batch'"):
        loader(data_root, "batch", checkpoint=state)
    plain = MixIterator(imagenet_train(os.path.join(data_root, "train"), batch_size=16,
                                       device="cpu", crop=40, mix=MixConfig()))
    with pytest.raises(ValueError, match=r"built without checkpointing; build it with "
                                         r"checkpointing=True"):
        plain.checkpoint()


# ---- the training script, killed and resumed -----------------------------------------------

TRAIN = [sys.executable, "-m", "dali_msda.pipelines.train"]
ARGS = ["--epochs", "2", "--batch-size", "16", "--crop", "48", "--width", "4", "--threads",
        "1", "--mix-off-epochs", "1", "--checkpoint-every", "3"]


def env():
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT)


def read_log(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.endswith("\n")]


def run_until(cmd, log, lines, environ, ck_dir):
    """Start `cmd`, SIGKILL its whole process group once `log` has `lines` lines (and a
    checkpoint exists); returns the number of lines logged when it died."""
    proc = subprocess.Popen(cmd, cwd=ROOT, env=environ, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if os.path.exists(log) and len(read_log(log)) >= lines and \
                os.path.exists(os.path.join(ck_dir, "checkpoint.pt")):
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be killed:\n" + \
        proc.stdout.read().decode()[-3000:]
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    return len(read_log(log))


def compare(full, resumed, summary_full, summary_resumed, losses=True):
    """The resumed run's steps continue the full run's, with the same batches (and, on the
    CPU, where torch's kernels are deterministic, the same losses and summary)."""
    by_step = {(r["epoch"], r["step"]): r for r in full}
    assert resumed, "the resumed run logged nothing"
    assert [(r["epoch"], r["step"]) for r in resumed] == \
        [(r["epoch"], r["step"]) for r in full][-len(resumed):], "steps skipped or repeated"
    keys = ("epoch", "step", "images", "targets") + (("loss",) if losses else ())
    for r in resumed:  # images, targets and loss, bit for bit
        expected = by_step[(r["epoch"], r["step"])]
        assert [r[k] for k in keys] == [expected[k] for k in keys], \
            f"differs at {r['epoch']}:{r['step']}"
    if losses:
        drop = lambda rows: [{k: v for k, v in row.items() if k != "images_per_s"}
                             for row in rows]
        assert drop(summary_resumed["epochs"]) == drop(summary_full["epochs"])


def plain_types(obj):
    """The types of the leaves of a checkpoint's dicts, lists and tuples."""
    if isinstance(obj, dict):
        return set().union(set(), *(plain_types(k) | plain_types(v) for k, v in obj.items()))
    if isinstance(obj, (list, tuple)):
        return set().union(set(), *(plain_types(v) for v in obj))
    return {type(obj).__name__}


@pytest.mark.parametrize("mode,kill_at,device", [
    ("batch", 8, "cpu"), ("elem", 26 + 5, "cpu"),
    pytest.param("elem", 26 + 5, "gpu", marks=pytest.mark.skipif(not HAS_GPU, reason="no GPU"))])
def test_train_killed_and_resumed_matches_an_uninterrupted_run(data_root, tmp_path, mode,
                                                              kill_at, device):
    # elem is killed in epoch 2, after the schedule switched mixing off between the epochs. On
    # the GPU the batches must match bit for bit; losses need not (cuDNN's kernels are not
    # deterministic), so they are not compared there.
    args = ARGS + ["--data", data_root, "--mode", mode, "--device", device]
    e = env()
    full = subprocess.run(TRAIN + args + ["--checkpoint-dir", str(tmp_path / "a"),
                                          "--log-batches", str(tmp_path / "a.log"),
                                          "--json", str(tmp_path / "a.json")],
                          cwd=ROOT, env=e, capture_output=True, text=True, timeout=600)
    assert full.returncode == 0, full.stderr[-3000:]
    ck = str(tmp_path / "b")
    killed_at = run_until(TRAIN + args + ["--checkpoint-dir", ck, "--log-batches",
                                          str(tmp_path / "b.log")],
                          str(tmp_path / "b.log"), kill_at, e, ck)
    # The checkpoint the kill left: train.py logs step k, then writes checkpoint k, so it is of
    # a step the killed run logged (k <= killed_at), and a kill right after the write leaves
    # killed_at == k (the resumed run then starts at k + 1, which the killed run never logged).
    from dali_msda.pipelines.train import load_checkpoint

    saved = load_checkpoint(ck)
    # plain data that torch.load(weights_only=True) of every torch the package takes reads
    # (torch 2.1 refuses bytes: the pipelines' states are uint8 tensors)
    assert plain_types(saved) <= {"Tensor", "str", "int", "float", "bool", "NoneType"}
    saved_at = saved["epoch"] * 26 + saved["step"]  # global steps trained, epoch 0-based
    assert saved["step"] % 3 == 0 and 0 < saved_at <= killed_at, (saved_at, killed_at)
    # the resumed run appends to the killed run's log: what that one logged past its
    # checkpoint is dropped, so the log ends up as an uninterrupted run's, each step once
    resumed = subprocess.run(TRAIN + args + ["--checkpoint-dir", ck, "--resume",
                                             "--log-batches", str(tmp_path / "b.log"),
                                             "--json", str(tmp_path / "c.json")],
                             cwd=ROOT, env=e, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from" in resumed.stdout
    full_log, whole = read_log(tmp_path / "a.log"), read_log(tmp_path / "b.log")
    assert len(full_log) == 52
    assert [(r["epoch"], r["step"]) for r in whole] == [(r["epoch"], r["step"]) for r in full_log]
    resumed_log = whole[saved_at:]
    first = (resumed_log[0]["epoch"] - 1) * 26 + resumed_log[0]["step"]
    # it continues right after the checkpoint it found: nothing skipped, nothing repeated
    assert first == saved_at + 1, (first, saved_at, killed_at)
    compare(full_log, resumed_log, json.loads((tmp_path / "a.json").read_text()),
            json.loads((tmp_path / "c.json").read_text()), losses=device == "cpu")
    compare(full_log, whole, json.loads((tmp_path / "a.json").read_text()),
            json.loads((tmp_path / "c.json").read_text()), losses=device == "cpu")
    assert json.loads((tmp_path / "c.json").read_text())["epochs"][1]["mixing"] is False
    # resuming the finished run: it says so, exits 0, logs nothing more
    again = subprocess.run(TRAIN + args + ["--checkpoint-dir", ck, "--resume",
                                           "--log-batches", str(tmp_path / "b.log")],
                           cwd=ROOT, env=e, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "has finished (all 2 epochs); nothing left to do" in again.stdout
    assert read_log(tmp_path / "b.log") == whole


def test_checkpointing_does_not_change_the_run(data_root, tmp_path):
    """The same --seed gives the same batches with and without --checkpoint-dir, epoch after
    epoch (DALI's file reader shuffles differently with its checkpointing on: the pipelines keep
    it on always). Batch by batch, images and targets bit for bit, and the same losses."""
    args = ARGS[:ARGS.index("--checkpoint-every")] + [
        "--data", data_root, "--mode", "elem", "--device", "cpu", "--epochs", "3",
        "--mix-off-epochs", "0"]
    logs = {}
    for name, extra in (("plain", []), ("checkpointed", ["--checkpoint-dir", str(tmp_path / "ck"),
                                                         "--checkpoint-every", "3"])):
        log = str(tmp_path / f"{name}.log")
        proc = subprocess.run(TRAIN + args + extra + ["--log-batches", log], cwd=ROOT, env=env(),
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        logs[name] = read_log(log)
    assert len(logs["plain"]) == 3 * 26
    for a, b in zip(logs["plain"], logs["checkpointed"]):
        assert a == b, f"differs at epoch {a['epoch']} step {a['step']}"


def test_two_ranks_killed_and_resumed_under_torchrun(data_root, tmp_path):
    def cmd(tag, *extra):
        return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                f"--master_port={free_port()}", "-m", "dali_msda.pipelines.train",
                *ARGS, "--data", data_root, "--mode", "elem", "--batch-size", "8",
                "--device", "cpu",
                "--log-batches", str(tmp_path / f"{tag}.log"), *extra]

    e = env()
    full = subprocess.run(cmd("a", "--checkpoint-dir", str(tmp_path / "a"), "--json",
                              str(tmp_path / "a.json")),
                          cwd=ROOT, env=e, capture_output=True, text=True, timeout=600)
    assert full.returncode == 0, full.stderr[-3000:]
    ck = str(tmp_path / "b")
    run_until(cmd("b", "--checkpoint-dir", ck), str(tmp_path / "b.log.rank0"), 8, e, ck)
    resumed = subprocess.run(cmd("c", "--checkpoint-dir", ck, "--resume", "--json",
                                 str(tmp_path / "c.json")),
                             cwd=ROOT, env=e, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    logs = {r: (read_log(tmp_path / f"a.log.rank{r}"), read_log(tmp_path / f"c.log.rank{r}"))
            for r in (0, 1)}
    assert logs[0][0][0]["images"] != logs[1][0][0]["images"]  # each rank its own shard
    for r in (0, 1):
        compare(*logs[r], json.loads((tmp_path / "a.json").read_text()),
                json.loads((tmp_path / "c.json").read_text()))


# ---- what a checkpoint refuses -----------------------------------------------------------------

def test_resume_refuses_another_configuration(data_root, tmp_path):
    from dali_msda.pipelines.train import main

    ck = str(tmp_path / "ck")
    base = ["--data", data_root, "--epochs", "1", "--steps", "2", "--batch-size", "8",
            "--crop", "32", "--width", "4", "--threads", "1", "--device", "cpu",
            "--checkpoint-dir", ck]
    main(base)
    with pytest.raises(SystemExit, match=r"exists; add --resume"):
        main(base)  # would overwrite another run's checkpoint
    with pytest.raises(SystemExit) as refused:
        main(base[:-2] + ["--width", "8", "--batch-size", "16", "--checkpoint-dir", ck,
                          "--resume"])
    message = str(refused.value)
    assert "was written by a run with other options" in message
    assert "width: checkpoint 4, this run 8" in message
    assert "batch_size: checkpoint 8, this run 16" in message
    from dali_msda.pipelines.train import check_run_config

    with pytest.raises(ValueError, match=r"world_size: checkpoint 1, this run 2"):
        check_run_config({"world_size": 1, "width": 4}, {"world_size": 2, "width": 4}, "f")


def test_checkpoint_is_loaded_as_data_never_code(tmp_path):
    import pickle

    from dali_msda.pipelines.train import load_checkpoint

    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    (tmp_path / "checkpoint.pt").write_bytes(pickle.dumps({"format": "x", "p": Payload()}))
    with pytest.raises(ValueError, match=r"not a readable dali_msda checkpoint of plain data"):
        load_checkpoint(str(tmp_path))
    assert not marker.exists()
    torch.save({"format": "something/else"}, tmp_path / "checkpoint.pt")
    with pytest.raises(ValueError, match=r"is not a dali_msda.train/1 checkpoint"):
        load_checkpoint(str(tmp_path))
    assert load_checkpoint(str(tmp_path / "empty")) is None


def test_a_failed_write_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    from dali_msda.pipelines import train as train_mod

    train_mod.save_checkpoint({"format": train_mod.CHECKPOINT_FORMAT, "n": 1}, str(tmp_path))

    def dies_halfway(obj, f):
        f.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt  # as a kill in the middle of the write would stop it

    monkeypatch.setattr(train_mod.torch, "save", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        train_mod.save_checkpoint({"format": train_mod.CHECKPOINT_FORMAT, "n": 2}, str(tmp_path))
    monkeypatch.undo()
    assert train_mod.load_checkpoint(str(tmp_path))["n"] == 1
    assert os.listdir(tmp_path) == ["checkpoint.pt"]  # no temporary file left behind


# ---- one writer per directory, the data a resume expects ----------------------------------------

def test_a_second_run_on_one_checkpoint_dir_is_refused_until_the_first_is_gone(data_root,
                                                                               tmp_path):
    args = ARGS + ["--data", data_root, "--mode", "elem", "--device", "cpu", "--epochs", "3"]
    e = env()
    ck = str(tmp_path / "ck")
    first = subprocess.Popen(TRAIN + args + ["--checkpoint-dir", ck, "--log-batches",
                                             str(tmp_path / "a.log")], cwd=ROOT, env=e,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             start_new_session=True)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and not (os.path.exists(tmp_path / "a.log") and
                                              len(read_log(tmp_path / "a.log")) >= 4):
            time.sleep(0.05)
        assert first.poll() is None, first.stdout.read().decode()[-2000:]
        # stopped, the first run holds its lock and cannot finish while the second starts (it
        # could, running, and the second would then rightly resume a finished run)
        os.killpg(first.pid, signal.SIGSTOP)
        second = subprocess.run(TRAIN + args + ["--checkpoint-dir", ck, "--resume"], cwd=ROOT,
                                env=e, capture_output=True, text=True, timeout=300)
        assert second.returncode != 0
        assert f"is in use by another run: host {socket.gethostname()}, PID {first.pid}" in \
            second.stderr, second.stderr[-2000:]
        from dali_msda.pipelines.train import load_checkpoint

        before = load_checkpoint(ck)
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # a dead holder's lock must not block (a stopped
        # process dies of SIGKILL too)
        first.wait()
        first.stdout.close()
    third = subprocess.run(TRAIN + args + ["--checkpoint-dir", ck, "--resume", "--steps", "0"],
                           cwd=ROOT, env=e, capture_output=True, text=True, timeout=600)
    assert third.returncode == 0, third.stderr[-3000:]
    after = load_checkpoint(ck)
    assert (after["epoch"], after["step"]) >= (before["epoch"], before["step"])


def test_an_older_checkpoint_never_replaces_a_newer_one(tmp_path):
    from dali_msda.pipelines import train as train_mod

    state = {"format": train_mod.CHECKPOINT_FORMAT, "epoch": 1, "step": 6, "n": 1}
    train_mod.save_checkpoint(state, str(tmp_path))
    with pytest.raises(RuntimeError, match=r"holds a later point of the run \(epoch 2, step 6\) "
                                           r"than this one \(epoch 2, step 3\); not replaced"):
        train_mod.save_checkpoint(dict(state, step=3, n=2), str(tmp_path))
    assert train_mod.load_checkpoint(str(tmp_path))["n"] == 1
    assert sorted(os.listdir(tmp_path)) == ["checkpoint.pt"]  # no temporary file left
    train_mod.save_checkpoint(dict(state, epoch=2, step=0, n=3), str(tmp_path))
    assert train_mod.load_checkpoint(str(tmp_path))["n"] == 3


def data_copy_run(data_root, tmp_path):
    """(copied data root, checkpoint dir, arguments) of a short checkpointed run on a copy of
    the data that a test may change."""
    import shutil

    root = tmp_path / "data"
    shutil.copytree(data_root, root)
    ck = str(tmp_path / "ck")
    base = ["--data", str(root), "--epochs", "2", "--steps", "1", "--batch-size", "8",
            "--crop", "32", "--width", "4", "--threads", "1", "--device", "cpu",
            "--checkpoint-dir", ck, "--checkpoint-every", "1"]
    return root, ck, base


def test_resume_refuses_changed_data(data_root, tmp_path):
    import shutil

    from dali_msda.pipelines.train import main

    root, ck, base = data_copy_run(data_root, tmp_path)
    main(base[:2] + ["--epochs", "2"] + base[4:])  # finished: 2 epochs of 1 step
    train = root / "train"
    classes = sorted(os.listdir(train))
    files = sorted(os.listdir(train / classes[0]))
    with open(train / classes[0] / files[2], "ab") as f:  # a file's size alone: refused too
        f.write(b"\0")
    with pytest.raises(SystemExit, match=r"0 added, 0 removed, 1 changed of 420 \(files\)"):
        main(base + ["--resume"])
    with open(train / classes[0] / files[2], "r+b") as f:
        f.truncate(os.path.getsize(train / classes[0] / files[2]) - 1)
    (train / classes[0] / files[0]).unlink()                              # removed
    (train / classes[0] / files[1]).unlink()                              # removed
    shutil.copy(train / classes[1] / sorted(os.listdir(train / classes[1]))[0],
                train / classes[0] / "new.jpg")                           # added
    with open(train / classes[2] / sorted(os.listdir(train / classes[2]))[0], "ab") as f:
        f.write(b"\0")                                                    # changed
    with pytest.raises(SystemExit, match=r"the training data differs from .*checkpoint\.pt's: 1 "
                                         r"added, 2 removed, 1 changed of 420 \(files\)\. The "
                                         r"batches after the resume would not be"):
        main(base + ["--resume"])
    summary = main(base + ["--resume", "--accept-data-change"])  # accepted: says so, goes on
    assert summary["finished"] is True
    lst = tmp_path / "list.txt"
    lst.write_text("".join(f"{p} 0\n" for p in sorted((train / classes[3]).iterdir())))
    with pytest.raises(SystemExit,
                       match=r"the checkpoint's data is a tree, this run's a file list"):
        main(base + ["--resume", "--file-list", str(lst)])


def test_checkpoints_hold_a_digest_of_the_data(data_root, tmp_path):
    """Each checkpoint holds the digest of its data's fingerprint (not 16 bytes a file); the
    full fingerprint is written once beside it and says what changed; without it the resume is
    still refused, with the counts it can give."""
    import shutil

    from dali_msda.pipelines.train import DATA_NAME, load_checkpoint, main

    root, ck, base = data_copy_run(data_root, tmp_path)
    main(base)
    saved = load_checkpoint(ck)["data"]
    assert set(saved) == {"kind", "count", "digest"} and saved["count"] == 420
    assert re.fullmatch(r"[0-9a-f]{64}", saved["digest"])
    assert os.path.exists(os.path.join(ck, DATA_NAME))
    train = root / "train"
    first = train / sorted(os.listdir(train))[0]
    shutil.copy(first / sorted(os.listdir(first))[0], first / "extra.jpg")
    with pytest.raises(SystemExit, match=r"1 added, 0 removed, 0 changed of 420 \(files\)"):
        main(base + ["--resume"])
    os.remove(os.path.join(ck, DATA_NAME))
    with pytest.raises(SystemExit, match=r"420 files then, 421 now, and not the same ones \(the "
                                         r"full fingerprint data_fingerprint\.pt, which says "
                                         r"which, is not beside it\)"):
        main(base + ["--resume"])


def test_pipeline_states_round_trip_as_tensors():
    """Checkpoints keep the pipelines' states (bytes) as uint8 tensors; a checkpoint of an
    earlier version holds bytes, which resume as they are."""
    from dali_msda.pipelines.train import bytes_tensor, tensor_bytes

    for data in (b"", b"\x00", bytes(range(256)) * 3):
        t = bytes_tensor(data)
        assert t.dtype == torch.uint8 and t.shape == (len(data),)
        assert tensor_bytes(t) == data and tensor_bytes(data) == data
