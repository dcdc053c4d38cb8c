"""Train a small ResNet on mixed batches from the DALI pipeline (one process, or many under
torchrun), then validate top-1.

    python -m dali_msda.pipelines.train                        # embedded dataset, CPU or GPU
    python -m dali_msda.pipelines.train --data /imagenet --epochs 90 --batch-size 256
    torchrun --nproc_per_node=8 -m dali_msda.pipelines.train --data /imagenet

`--data` is an ImageFolder root with train/ and val/ (the embedded dataset by default). Under
torchrun every rank reads its own shard (RANK / WORLD_SIZE) on GPU LOCAL_RANK and the model is
wrapped in DistributedDataParallel (nccl on GPU, gloo on CPU). `--mix-off-epochs N` switches
mixing off for the last N epochs through the live schedule, without rebuilding the pipeline.

Checkpoints: `--checkpoint-dir DIR` saves DIR/checkpoint.pt at every epoch end and every
`--checkpoint-every N` steps (written to a temporary file, then renamed: a kill during the write
leaves the previous checkpoint). It holds the model, optimizer, LR schedule, epoch and step, the
class list, torch's RNG state and, per rank, the DALI pipeline's state (reader position and
shuffling, every random operator, fn.msda.mix and its mixing schedule) as of the last batch the
loop trained on. Run the same command with `--resume` to continue from it (or to start when DIR
has none yet): the batches and losses are those of an uninterrupted run. The file is plain data
(loaded with torch.load(weights_only=True)); a checkpoint of another configuration is refused.
"""

import argparse
import datetime
import fcntl
import hashlib
import json
import math
import os
import shlex
import socket
import sys
import time

import torch
import torch.distributed as dist
from torch import nn

from dali_msda import methods
from dali_msda._cli import (SEED, HelpFormatter, check_output_paths, int_at_least,
                            positive_float)
from dali_msda.pipelines import MixConfig, MixSchedule, embedded_dataset, imagenet_train
from dali_msda.pipelines import imagenet_val
from dali_msda.pipelines.common import (folder_classes, read_file_list, resolve_device,
                                        tree_items)
from dali_msda.pytorch import DataError, LastBatchPolicy, MixIterator

CHECKPOINT_NAME = "checkpoint.pt"
DATA_NAME = "data_fingerprint.pt"  # the full fingerprint, once a directory (checkpoints: digest)
CHECKPOINT_FORMAT = "dali_msda.train/1"
# the options a checkpoint must have been written with to be resumed (plus ranks and device)
RUN_OPTIONS = ("epochs", "steps", "batch_size", "lr", "width", "crop", "method", "alpha",
               "hmix_ratio", "prob", "mode", "label_smoothing", "mix_off_epochs", "seed",
               "decay_power", "scale_min", "scale_max", "resize_interp", "box",
               "mixup", "cutmix", "cutmix_minmax", "mixup_prob", "mixup_switch_prob",
               "mixup_mode", "cutmix_mode", "mixup_off_epoch")
TIMM_FLAGS = ("mixup", "cutmix", "cutmix_minmax", "mixup_prob", "mixup_switch_prob",
              "mixup_mode", "cutmix_mode")
OWN_FLAGS = ("method", "alpha", "prob", "mode")


# ---- a small ResNet in plain torch (no torchvision) ---------------------------------------------

class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.short = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                    nn.BatchNorm2d(cout))
                      if stride != 1 or cin != cout else nn.Identity())

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + self.short(x))


class ResNet(nn.Module):
    """ResNet-18-shaped network; `width` scales the channels (64 is ResNet-18)."""

    def __init__(self, num_classes, width=16, blocks=(2, 2, 2, 2)):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 7, 2, 3, bias=False), nn.BatchNorm2d(width),
                                  nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1))
        layers, cin = [], width
        for stage, n in enumerate(blocks):
            cout = width * 2 ** stage
            for k in range(n):
                layers.append(BasicBlock(cin, cout, 2 if k == 0 and stage > 0 else 1))
                cin = cout
        self.layers = nn.Sequential(*layers)
        self.head = nn.Linear(cin, num_classes)

    def forward(self, x):
        x = self.layers(self.stem(x))
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


# ---- helpers -------------------------------------------------------------------------------------

def progress(prefix, step, total, loss, ips, stream=None):
    stream = stream or sys.stderr  # looked up at each call (it may be replaced, e.g. by pytest)
    width = 24
    done = int(width * step / max(total, 1))
    stream.write(f"\r{prefix} [{'#' * done}{'.' * (width - done)}] {step}/{total} "
                 f"loss {loss:.4f} {ips:7.1f} img/s")
    stream.flush()


def one_cycle(total_steps, pct_start=0.25, div_factor=25.0, final_div_factor=1e4):
    """LR factor per step shaped like torch's OneCycleLR (cosine warm-up from max/25 to the
    maximum over `pct_start` of the steps, then cosine annealing to max/25/1e4), defined for
    any number of steps (OneCycleLR divides by zero below about 4 steps)."""
    warm = int(round(pct_start * total_steps))
    low, final = 1.0 / div_factor, 1.0 / (div_factor * final_div_factor)

    def factor(step):
        if step < warm:
            return low + (1.0 - low) * (1.0 - math.cos(math.pi * step / warm)) / 2.0
        t = min(1.0, (step - warm) / max(1, total_steps - warm - 1))
        return final + (1.0 - final) * (1.0 + math.cos(math.pi * t)) / 2.0

    return factor


def init_distributed(device):
    world = int(os.environ.get("WORLD_SIZE", 1))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if device == "gpu" else "gloo"
        if device == "gpu":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group(backend)
    return world, int(os.environ.get("RANK", 0))


def all_reduce_sum(values, device):
    t = torch.tensor(values, dtype=torch.float64,
                     device=f"cuda:{torch.cuda.current_device()}" if device == "gpu" else "cpu")
    if dist.is_initialized():
        dist.all_reduce(t)
    return t.tolist()


def evaluate(model, loader, torch_device):
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for images, targets in loader:
            logits = model(images.to(torch_device).float())
            correct += (logits.argmax(1) == targets.argmax(1).to(logits.device)).sum().item()
            total += images.shape[0]
    model.train()
    return correct, total


# ---- checkpoints -------------------------------------------------------------------------------

LOCK_NAME = "checkpoint.lock"


class CheckpointDirLock:
    """One writer per checkpoint directory: an advisory lock (flock) on DIR/checkpoint.lock,
    held while the run lives. The kernel drops it when the holder exits, however it dies
    (SIGKILL included), so a dead run's lock never blocks; the file names the holder (host, PID,
    start time, command) for the error a second run gets."""

    def __init__(self, directory):
        os.makedirs(directory, exist_ok=True)
        self.path = os.path.join(directory, LOCK_NAME)
        self._f = open(self.path, "a+")
        try:
            fcntl.flock(self._f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._f.seek(0)
            holder = self._f.read().strip() or "(it has not written its name yet)"
            self._f.close()
            raise ValueError(f"--checkpoint-dir {directory!r} is in use by another run: "
                             f"{holder}. Wait for it to end, stop it, or use another "
                             "--checkpoint-dir (two runs writing one directory would overwrite "
                             "each other's checkpoints).") from None
        self._f.seek(0)
        self._f.truncate()
        self._f.write(f"host {socket.gethostname()}, PID {os.getpid()}, started "
                      f"{datetime.datetime.now().isoformat(timespec='seconds')}, command "
                      f"{' '.join(sys.argv)[:300]}\n")
        self._f.flush()

    def release(self):
        if not self._f.closed:
            self._f.close()  # closing drops the flock


def progress_of(state):
    """(epoch, step) of a checkpoint: how far the run it holds had trained."""
    return int(state["epoch"]), int(state["step"])


def bytes_tensor(data):
    """`data` (bytes) as a uint8 tensor, as checkpoints keep the pipelines' states: what
    torch.load(weights_only=True) reads in every torch this package runs with (torch 2.1
    refuses bytes there: "Unsupported class _codecs.encode")."""
    if not data:
        return torch.empty(0, dtype=torch.uint8)
    return torch.frombuffer(bytearray(data), dtype=torch.uint8)


def tensor_bytes(value):
    """bytes_tensor's inverse; bytes (a checkpoint written before states were tensors) as
    they are."""
    return value if isinstance(value, (bytes, str)) else value.numpy().tobytes()


def save_checkpoint(state, directory, name=CHECKPOINT_NAME):
    """torch.save `state` to directory/`name` atomically: a temporary file, fsync, then
    os.replace (a kill or an error during the write leaves the previous checkpoint). A
    checkpoint is never replaced by one of an earlier (epoch, step): checked before the
    rename (the file's tensors are memory-mapped, not read)."""
    os.makedirs(directory, exist_ok=True)
    final = os.path.join(directory, name)
    tmp = f"{final}.tmp.{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        if "epoch" in state and os.path.exists(final):
            old = torch.load(final, map_location="cpu", weights_only=True, mmap=True)
            if isinstance(old, dict) and "epoch" in old and progress_of(old) > progress_of(state):
                raise RuntimeError(
                    f"{final} holds a later point of the run (epoch {old['epoch'] + 1}, step "
                    f"{old['step']}) than this one (epoch {state['epoch'] + 1}, step "
                    f"{state['step']}); not replaced. Is another run writing this directory?")
        os.replace(tmp, final)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    try:  # make the rename itself durable
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass
    return final


def load_checkpoint(directory):
    """directory/checkpoint.pt as plain data (torch.load with weights_only=True: no code is
    unpickled), or None when there is none. Raises ValueError naming the file otherwise."""
    path = os.path.join(directory, CHECKPOINT_NAME)
    if not os.path.exists(path):
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # UnpicklingError for code, RuntimeError/EOFError for a bad file
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"--resume: {path} is not a readable dali_msda checkpoint of plain data "
                         f"(loaded with weights_only=True; nothing in it was executed): "
                         f"{first}") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"--resume: {path} is not a {CHECKPOINT_FORMAT} checkpoint (format "
                         f"{state.get('format') if isinstance(state, dict) else type(state)!r}).")
    return state


def data_fingerprint(source):
    """What a reader reads, for a resume to check: an ImageFolder tree's files (relative paths
    as the reader lists them, sizes), a file list's lines and their files' sizes, or shards'
    names and sizes. Paths are kept as 64-bit hashes (16 bytes a file: 20 MB for ImageNet,
    written once a checkpoint directory; each checkpoint holds its digest)."""
    import numpy as np

    if "data_dir" in source:
        root = source["data_dir"]
        entries = [(os.path.relpath(p, root), os.path.getsize(p))
                   for p, _ in tree_items(root)[0]]
        kind = "tree"
    elif "file_list" in source:
        entries = [(f"{path}\t{label}", os.path.getsize(path) if os.path.exists(path) else -1)
                   for _, path, label, _ in read_file_list(source["file_list"], None)]
        kind = "file list"
    else:
        entries = [(os.path.basename(p), os.path.getsize(p)) for p in source["wds_paths"]]
        kind = "shards"
    hashes = np.array([int.from_bytes(hashlib.blake2b(name.encode("utf-8", "surrogateescape"),
                                                      digest_size=8).digest(), "little")
                       for name, _ in entries], dtype=np.uint64).view(np.int64)
    order = np.argsort(hashes, kind="stable")
    return {"kind": kind, "count": len(entries),
            "names": torch.from_numpy(hashes[order].copy()),
            "sizes": torch.tensor([entries[k][1] for k in order], dtype=torch.int64)}


def fingerprint_digest(fp):
    """A data_fingerprint() in 64 hex digits: what every checkpoint holds of it (the full one,
    16 bytes a file, is written once a directory: DATA_NAME)."""
    h = hashlib.sha256(fp["kind"].encode())
    h.update(fp["names"].numpy().tobytes())
    h.update(fp["sizes"].numpy().tobytes())
    return h.hexdigest()


def fingerprint_summary(fp):
    return {"kind": fp["kind"], "count": fp["count"], "digest": fingerprint_digest(fp)}


def saved_fingerprint(directory, summary):
    """The full fingerprint a checkpoint's summary was made from (DATA_NAME beside it), or
    None when that file is gone or holds another one."""
    path = os.path.join(directory, DATA_NAME)
    if not os.path.exists(path):
        return None
    try:
        full = torch.load(path, map_location="cpu", weights_only=True)["data"]
    except Exception:  # an unreadable file says nothing about the data
        return None
    return full if fingerprint_digest(full) == summary.get("digest") else None


def compare_fingerprints(saved, now):
    """(added, removed, changed) entries between two data_fingerprint()s."""
    a = dict(zip(saved["names"].tolist(), saved["sizes"].tolist()))
    b = dict(zip(now["names"].tolist(), now["sizes"].tolist()))
    changed = sum(1 for k in a.keys() & b.keys() if a[k] != b[k])
    return len(b.keys() - a.keys()), len(a.keys() - b.keys()), changed


def trim_batch_log(path, epoch, step):
    """Drops the lines of a --log-batches file past (epoch, step) (0-based epoch, as in a
    checkpoint): steps a killed run logged after its last checkpoint, which the resumed run
    logs again. Rewritten atomically."""
    if not os.path.exists(path):
        return
    keep = []
    with open(path) as f:
        for line in f:
            try:
                row = json.loads(line)
            except ValueError:
                continue  # a line cut by the kill
            if (row["epoch"] - 1, row["step"]) <= (epoch, step):
                keep.append(line if line.endswith("\n") else line + "\n")
    with open(path + ".tmp", "w") as f:
        f.writelines(keep)
    os.replace(path + ".tmp", path)


def check_data(ckpt, data, digest, path, accept, say):
    """Refuse to resume on other training data than the checkpoint's (the batches would differ
    from an uninterrupted run's), unless `accept`; says what changed either way. The checkpoint
    holds the digest of its data's fingerprint (fingerprint_summary); what changed is counted
    from the full one written beside it (DATA_NAME). `digest`: fingerprint_digest(data)."""
    saved = ckpt.get("data")
    if saved is None:
        say(f"--resume: {path} records no fingerprint of its data (an older checkpoint); the "
            "data is not checked.")
        return
    unit = "files" if data["kind"] != "shards" else "shards"
    if "names" not in saved:  # a summary: equal digests, equal data
        if saved["kind"] == data["kind"] and saved["digest"] == digest:
            return
        full = saved_fingerprint(os.path.dirname(path), saved)
    else:  # a checkpoint that holds its full fingerprint (written before 2026-12-05)
        full = saved
    if saved["kind"] != data["kind"]:
        what = f"the checkpoint's data is a {saved['kind']}, this run's a {data['kind']}"
    elif full is None:
        what = (f"{saved['count']} {unit} then, {data['count']} now, and not the same ones (the "
                f"full fingerprint {DATA_NAME}, which says which, is not beside it)")
    else:
        added, removed, changed = compare_fingerprints(full, data)
        if not (added or removed or changed):
            return
        what = f"{added} added, {removed} removed, {changed} changed of {saved['count']} ({unit})"
    if not accept:
        raise ValueError(f"--resume: the training data differs from {path}'s: {what}. The "
                         "batches after the resume would not be those of an uninterrupted run. "
                         "Resume on the data it was written with, or add --accept-data-change "
                         "to continue anyway.")
    say(f"--resume: the training data differs from the checkpoint's ({what}); continuing "
        "(--accept-data-change): the batches differ from an uninterrupted run.")


def check_run_config(saved, current, path):
    """Refuse a checkpoint written with other options (lists every difference)."""
    diffs = [f"{k}: checkpoint {saved.get(k)!r}, this run {current[k]!r}"
             for k in current if saved.get(k) != current[k]]
    if diffs:
        raise ValueError(f"--resume: {path} was written by a run with other options; resume "
                         "with the options it was written with, or use another "
                         "--checkpoint-dir.\n  " + "\n  ".join(diffs))


def gather(obj, world):
    """Every rank's `obj`, in rank order (all_gather_object; the objects are our own data)."""
    if world == 1:
        return [obj]
    out = [None] * world
    dist.all_gather_object(out, obj)
    return out


def tensor_sha(t):
    return hashlib.sha256(t.detach().cpu().contiguous().numpy().tobytes()).hexdigest()


def mix_config_from_args(args):
    """The MixConfig the flags ask for (None: --method none). timm's flags go through
    MixConfig.from_timm with timm's defaults; mixing them with --method & co is refused."""
    timm = [f for f in TIMM_FLAGS if getattr(args, f) is not None]
    own = [f for f in OWN_FLAGS if getattr(args, f) is not None]
    if timm and own:
        raise ValueError("give either --method/--alpha/--prob/--mode or timm's flags "
                         f"(--mixup, --cutmix, ...), not both; got {', '.join(own)} and "
                         f"{', '.join(timm)}")
    smoothing = args.label_smoothing
    if timm:
        return MixConfig.from_timm(
            mixup_alpha=_or(args.mixup, 0.0), cutmix_alpha=_or(args.cutmix, 0.0),
            cutmix_minmax=args.cutmix_minmax, prob=_or(args.mixup_prob, 1.0),
            switch_prob=_or(args.mixup_switch_prob, 0.5), mode=_or(args.mixup_mode, "batch"),
            label_smoothing=_or(smoothing, 0.1), num_classes=None,
            cutmix_mode=_or(args.cutmix_mode, "bbox"),
            hmix_ratio=_or(args.hmix_ratio, 1.0), box=args.box)
    if args.method == "none":
        return None
    return MixConfig(method=_or(args.method, "hmix"), alpha=_or(args.alpha, 1.0),
                     hmix_ratio=_or(args.hmix_ratio, 0.5), prob=_or(args.prob, 1.0),
                     mode=_or(args.mode, "elem"), label_smoothing=_or(smoothing, 0.0),
                     decay_power=args.decay_power, scale_min=args.scale_min,
                     scale_max=args.scale_max, resize_interp=args.resize_interp,
                     box=_or(args.box, "even"))


def _or(value, default):
    return default if value is None else value


def build_parser():
    ap = argparse.ArgumentParser(prog="python -m dali_msda.pipelines.train", description=__doc__,
                                 formatter_class=HelpFormatter)
    ap.add_argument("--data", default=None, help="root with train/ and val/ (default: embedded)")
    ap.add_argument("--file-list", default=None,
                    help="train on this 'path label' list (e.g. from dali_msda.pipelines.scan) "
                         "instead of --data's train/; labels index --data's train/ classes")
    ap.add_argument("--val-file-list", default=None, help="the same for val/")
    ap.add_argument("--epochs", type=int_at_least(1), default=2, help="epochs to train")
    ap.add_argument("--steps", type=int_at_least(0), default=0,
                    help="stop each epoch after N steps (0: all)")
    ap.add_argument("--batch-size", type=int_at_least(1), default=32, help="per process")
    ap.add_argument("--lr", type=positive_float, default=0.1,
                    help="peak learning rate (one-cycle)")
    ap.add_argument("--width", type=int_at_least(1), default=16,
                    help="ResNet width (64 = ResNet-18)")
    ap.add_argument("--crop", type=int_at_least(1), default=224, help="training crop side, px")
    mixing = ap.add_argument_group(
        "mixing", "either this project's flags (--method, --alpha, --prob, --mode; default HMix, "
        "alpha 1, per element) or timm's (--mixup, --cutmix, ...: MixConfig.from_timm, the same "
        "semantics as timm's and the official HMix/GMix train scripts)")
    mixing.add_argument("--method", choices=[*methods.METHODS, "none"],
                        default=None, help="(default hmix)")
    mixing.add_argument("--decay-power", type=float, default=3.0,
                        help="FMix: decay power of the noise spectrum (default 3.0)")
    mixing.add_argument("--scale-min", type=float, default=0.1,
                        help="ResizeMix: smallest scale of the pasted partner (default 0.1)")
    mixing.add_argument("--scale-max", type=float, default=0.8,
                        help="ResizeMix: largest scale of the pasted partner (default 0.8)")
    mixing.add_argument("--resize-interp", choices=["nearest", "bilinear"], default="nearest",
                        help="ResizeMix: how the partner is resized")
    mixing.add_argument("--box", choices=["even", "exact"], default=None,
                        help="CutMix / HMix: the box's side, even (the CutMix authors') or "
                             "exactly floor(H sqrt(1 - lam)) (timm's since 1.0.29) (default: "
                             "even; with timm's flags, timm's: exact for --cutmix-mode bbox)")
    mixing.add_argument("--alpha", type=float, default=None, help="(default 1.0)")
    mixing.add_argument("--hmix-ratio", type=float, default=None,
                        help="(default 0.5; 1.0 with timm's flags, the official default)")
    mixing.add_argument("--prob", type=float, default=None, help="(default 1.0)")
    mixing.add_argument("--mode", choices=list(methods.MODES), default=None,
                        help="(default elem)")
    mixing.add_argument("--label-smoothing", "--smoothing", dest="label_smoothing", type=float,
                        default=None, help="(default 0.0; 0.1 with timm's flags, as in timm)")
    mixing.add_argument("--mix-off-epochs", type=int_at_least(0), default=0,
                        help="switch mixing off for the last N epochs (all of them when N >= "
                             "--epochs)")
    mixing.add_argument("--mixup", type=float, default=None, help="timm: mixup alpha (0: off)")
    mixing.add_argument("--cutmix", type=float, default=None,
                        help="timm: cutmix alpha (0: off)")
    mixing.add_argument("--cutmix-minmax", type=float, nargs=2, default=None,
                        help="timm: CutMix box sides drawn from (min, max) of the image side")
    mixing.add_argument("--mixup-prob", type=float, default=None,
                        help="timm: probability of mixing per batch / sample (default 1.0)")
    mixing.add_argument("--mixup-switch-prob", type=float, default=None,
                        help="timm: probability of the CutMix branch when both are on "
                             "(default 0.5)")
    mixing.add_argument("--mixup-mode", choices=["batch", "pair", "elem"], default=None,
                        help="timm: one draw per batch, per pair of samples or per element "
                             "(default batch)")
    mixing.add_argument("--cutmix-mode", choices=["bbox", "hmix", "gmix"], default=None,
                        help="official HMix/GMix code: what the CutMix branch does "
                             "(default bbox)")
    mixing.add_argument("--mixup-off-epoch", type=int_at_least(0), default=0,
                        help="timm: switch mixing off from this epoch on (0: never)")
    ap.add_argument("--device", choices=["auto", "cpu", "gpu"], default="auto",
                    help="auto: the GPU when DALI sees one")
    ap.add_argument("--threads", type=int_at_least(1), default=4, help="DALI CPU threads")
    ap.add_argument("--seed", type=SEED, default=0, help="model and augmentation seed")
    ap.add_argument("--json", default=None, help="write a summary here (rank 0)")
    ap.add_argument("--checkpoint-dir", default=None,
                    help="save DIR/checkpoint.pt at each epoch end (and see --checkpoint-every)")
    ap.add_argument("--checkpoint-every", type=int_at_least(0), default=0,
                    help="also save every N training steps (0: epoch ends only)")
    ap.add_argument("--resume", action="store_true",
                    help="continue from --checkpoint-dir's checkpoint (start if it has none)")
    ap.add_argument("--accept-data-change", action="store_true",
                    help="resume although the training data differs from the checkpoint's "
                         "(the batches then differ from an uninterrupted run)")
    ap.add_argument("--log-batches", default=None,
                    help="append a JSON line per step: epoch, step, SHA-256 of the images and "
                         "targets, loss (FILE.rank<R> per rank under torchrun)")
    return ap


# what the message of a run stopped by its data needs to give the user's own commands
_RUN = {}


def recovery_commands(message):
    """The scan and the training command that get this run past the bad files of `message`:
    the user's own command with the good files' list (and --data, so that the list's labels
    index the same classes), for the split (train or val) whose file the message names."""
    if not _RUN:
        return ""
    root, argv, args = _RUN["root"], _RUN["argv"], _RUN["args"]
    val = ((args.val_file_list and args.val_file_list in message) or
           os.path.join(root, "val") + os.sep in message)
    listed = args.val_file_list if val else args.file_list
    target = listed or os.path.join(root, "val" if val else "train")
    out = "good_val.txt" if val else "good.txt"
    scan = ["python", "-m", "dali_msda.pipelines.scan", target, "--out", out]
    if listed:  # a file list's labels are checked against the classes
        scan += ["--num-classes", str(_RUN["num_classes"])]
    drop = {"--data", "--val-file-list" if val else "--file-list"}
    kept, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a in drop:
            skip = True
            continue
        if a.split("=", 1)[0] in drop:
            continue
        kept.append(a)
    train = (["python", "-m", "dali_msda.pipelines.train", "--data", root,
              "--val-file-list" if val else "--file-list", out] + kept)
    return (f"For this run: `{shlex.join(scan)}` lists every bad file and writes the good ones "
            f"to {out}; then `{shlex.join(train)}` trains on them.")


def check_file_list_data(args, root, ap):
    """A file list's labels index --data's classes: without --data they would be paired with
    the embedded set's classes, which is right only for files of the embedded set."""
    if args.data:
        return
    for option, listed, split in (("--file-list", args.file_list, "train"),
                                  ("--val-file-list", args.val_file_list, "val")):
        if not listed:
            continue
        home = os.path.join(os.path.abspath(root), split) + os.sep
        outside = [path for _, path, _, _ in read_file_list(listed, None)
                   if not os.path.abspath(path).startswith(home)]
        if outside:
            ap.error(f"{option} {listed}: its labels index the classes of --data's {split}/, and "
                     f"no --data was given, so they would be read as the embedded dataset's "
                     f"classes; but {outside[0]} (and {len(outside) - 1} more) is not a file "
                     f"of the embedded dataset. Add --data ROOT (the tree whose {split}/ folders "
                     "the labels number).")


def parse_args(ap, argv):
    """The command line, checked: (args, the MixConfig it states or None)."""
    args = ap.parse_args(argv)
    if (args.resume or args.checkpoint_every) and not args.checkpoint_dir:
        ap.error("--resume and --checkpoint-every need --checkpoint-dir")
    check_output_paths(ap, files=[("--json", args.json), ("--log-batches", args.log_batches)],
                       folders=[("--checkpoint-dir", args.checkpoint_dir)])
    try:
        return args, mix_config_from_args(args)
    except ValueError as e:
        ap.error(str(e))


def locate_data(args, ap, say):
    """The data root: --data, or the embedded dataset (built now or cached), with its train/
    and val/ trees; a --file-list checked against it."""
    # whichever rank builds the embedded dataset says so (the others wait for it)
    built = []
    root = args.data or embedded_dataset(log=lambda msg: (built.append(msg),
                                                          print(msg, flush=True)))
    say(f"data: {root}" + ("" if args.data else
                           f" (the embedded dataset, {'built now' if built else 'cached'}; "
                           "--data for your own)"))
    for split in ("train", "val"):
        if not os.path.isdir(os.path.join(root, split)):
            sys.exit(f"--data {root!r} must contain {split}/ (an ImageFolder tree)")
    check_file_list_data(args, root, ap)
    return root


class Resume:
    """What --checkpoint-dir holds for this run: the checkpoint to resume from (`state`, None
    for a fresh run), its `path`, the directory's `lock` (rank 0), the data's fingerprint
    summary that checkpoints hold (`data`), and whether the run it holds has `finished`."""

    def __init__(self, state=None, path=None, lock=None, data=None, finished=False):
        self.state, self.path, self.lock, self.data = state, path, lock, data
        self.finished = finished


def open_checkpoint_dir(args, source, run_config, world, rank, say):
    """The Resume of --checkpoint-dir (an empty one without it): one writer per directory, a
    checkpoint only with --resume, the same run configuration and data as the checkpoint's."""
    if not args.checkpoint_dir:
        return Resume()
    ckpt_path = os.path.join(args.checkpoint_dir, CHECKPOINT_NAME)
    # one writer per directory: rank 0 holds the lock (it writes), every rank learns why not
    try:
        lock = CheckpointDirLock(args.checkpoint_dir) if rank == 0 else None
        refused = None
    except ValueError as e:
        refused = str(e)
    refused = gather(refused, world)[0]
    if refused:
        sys.exit(refused)
    data = data_fingerprint(source)
    summary = fingerprint_summary(data)  # what checkpoints hold of it
    try:
        ckpt = load_checkpoint(args.checkpoint_dir)
        if ckpt is not None and not args.resume:
            raise ValueError(f"--checkpoint-dir: {ckpt_path} exists; add --resume to "
                             "continue that run, or choose another directory.")
        if ckpt is not None:
            check_run_config(ckpt["config"], run_config, ckpt_path)
            check_data(ckpt, data, summary["digest"], ckpt_path, args.accept_data_change,
                       say)
    except ValueError as e:
        sys.exit(str(e))
    if ckpt is not None and ckpt["epoch"] >= args.epochs:
        say(f"--resume: the run in {ckpt_path} has finished (all {args.epochs} epochs); "
            "nothing left to do.")
        return Resume(ckpt, ckpt_path, lock, summary, finished=True)
    if args.resume:
        say(f"resuming from {ckpt_path}: epoch {ckpt['epoch'] + 1}, step {ckpt['step']}"
            if ckpt else f"--resume: no checkpoint in {args.checkpoint_dir} yet; starting")
    if rank == 0 and saved_fingerprint(args.checkpoint_dir, summary) is None:
        # the full fingerprint, once: checkpoints hold its digest (fingerprint_summary)
        save_checkpoint({"format": CHECKPOINT_FORMAT, "data": data}, args.checkpoint_dir,
                        DATA_NAME)
    return Resume(ckpt, ckpt_path, lock, summary)


def report_finished(resume, args, world, rank, device):
    """The summary of a run that --resume finds finished (written to --json too)."""
    result = {"world_size": world, "device": device, "epochs": list(resume.state["summary"]),
              "finished": True}
    if rank == 0 and args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    if dist.is_initialized():
        dist.destroy_process_group()
    return result


def build_pipelines(args, root, source, ckpt, device, rank, schedule):
    """(train, val) pipelines: training on `source` with the mixing `schedule` (its state from
    the checkpoint when resuming), validation with the training classes' indices."""
    dtype = "float16" if device == "gpu" else "float32"
    classes = ckpt["classes"] if ckpt else None
    if args.file_list and classes is None:
        classes = folder_classes(os.path.join(root, "train"))
    train_pipe = imagenet_train(**source, classes=classes, batch_size=args.batch_size,
                                num_threads=args.threads, device=device, crop=args.crop,
                                dtype=dtype, mix=schedule, seed=args.seed * 1000 + rank,
                                checkpointing=bool(args.checkpoint_dir),
                                checkpoint=(tensor_bytes(ckpt["ranks"][rank]["pipeline"])
                                            if ckpt else None))
    val_source = (dict(file_list=args.val_file_list) if args.val_file_list else
                  dict(data_dir=os.path.join(root, "val")))
    val_pipe = imagenet_val(**val_source, batch_size=args.batch_size,
                            num_threads=args.threads, device=device, crop=args.crop,
                            resize=int(args.crop * 256 / 224), dtype=dtype,
                            classes=train_pipe.classes)  # the training classes' indices
    return train_pipe, val_pipe


class Training:
    """One process's training state: the model (`bare`: without the DDP wrapper, what a
    checkpoint holds), optimiser, LR schedule and loss, the iterators, and the counters that a
    checkpoint saves (epoch and step to start from, images seen and their loss this epoch)."""

    def __init__(self, args, train_pipe, val_pipe, device, world, rank):
        self.args, self.device, self.world, self.rank = args, device, world, rank
        self.train_pipe = train_pipe
        self.train = MixIterator(train_pipe)
        self.val = MixIterator(val_pipe, last_batch_policy=LastBatchPolicy.PARTIAL)
        self.torch_device = torch.device(f"cuda:{torch.cuda.current_device()}"
                                         if device == "gpu" else "cpu")
        self.bare = ResNet(train_pipe.num_classes, width=args.width).to(self.torch_device)
        self.model = self.bare
        if world > 1:
            self.model = nn.parallel.DistributedDataParallel(self.bare)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=args.lr, momentum=0.9,
                                   weight_decay=5e-5, nesterov=True)
        self.steps_per_epoch = (min(len(self.train), args.steps) if args.steps
                                else len(self.train))
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.opt, one_cycle(args.epochs * self.steps_per_epoch))
        self.loss_fn = nn.CrossEntropyLoss()  # probability targets straight from the pipeline
        self.summary = {"world_size": world, "device": device, "epochs": []}
        self.start_epoch, self.start_step, self.seen, self.loss_sum = 0, 0, 0, 0.0

    def restore(self, ckpt, ckpt_path):
        """The state of a checkpoint: model, optimiser, schedule, RNGs and counters."""
        self.bare.load_state_dict(ckpt["model"])
        self.opt.load_state_dict(ckpt["optimizer"])
        self.sched.load_state_dict(ckpt["scheduler"])
        mine = ckpt["ranks"][self.rank]
        torch.set_rng_state(mine["torch_rng"])
        if self.device == "gpu" and mine.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(mine["cuda_rng"])
        self.start_epoch, self.start_step = ckpt["epoch"], ckpt["step"]
        self.seen, self.loss_sum = mine["seen"], mine["loss_sum"]
        self.summary["epochs"] = list(ckpt["summary"])
        self.summary["resumed_from"] = {"epoch": self.start_epoch + 1, "step": self.start_step}
        if self.train.epoch != self.start_epoch:
            sys.exit(f"--resume: the pipeline state in {ckpt_path} is at epoch "
                     f"{self.train.epoch + 1}, the checkpoint at epoch {self.start_epoch + 1}; "
                     "the file is inconsistent.")

    def checkpoint(self, epoch, step, run_config, data):
        """Every rank's state gathered; rank 0 writes the checkpoint."""
        mine = {"pipeline": bytes_tensor(self.train.checkpoint()),
                "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state() if self.device == "gpu" else None,
                "seen": self.seen, "loss_sum": self.loss_sum}
        ranks = gather(mine, self.world)
        if self.rank == 0:
            save_checkpoint({"format": CHECKPOINT_FORMAT, "config": run_config,
                             "data": data,
                             "classes": self.train_pipe.classes, "epoch": epoch, "step": step,
                             "model": self.bare.state_dict(),
                             "optimizer": self.opt.state_dict(),
                             "scheduler": self.sched.state_dict(),
                             "summary": self.summary["epochs"], "ranks": ranks},
                            self.args.checkpoint_dir)

    def step(self, images, targets):
        """One optimisation step; the loss (one device sync)."""
        logits = self.model(images.float())
        loss = self.loss_fn(logits.float(), targets)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.sched.step()
        return loss.item()

    def epoch_row(self, epoch, seen0, elapsed, schedule):
        """Validation after an epoch, and its summary row (summed over the processes)."""
        correct, total = evaluate(self.model, self.val, self.torch_device)
        seen_all, correct, total, loss_all, seen_new = all_reduce_sum(  # seen_new: this process
            [self.seen, correct, total, self.loss_sum, self.seen - seen0], self.device)
        return {"epoch": epoch + 1, "train_loss": loss_all / max(seen_all, 1),
                "images_per_s": seen_new / elapsed, "val_top1": correct / max(total, 1),
                "val_images": int(total),
                "mixing": bool(schedule and schedule.config.enabled)}


def open_batch_log(args, ckpt, rank, world):
    """--log-batches' file of this rank (None without it), trimmed to the checkpoint when
    resuming: what a killed run logged past its checkpoint is logged again."""
    if not args.log_batches:
        return None
    log_path = args.log_batches + (f".rank{rank}" if world > 1 else "")
    if ckpt:
        trim_batch_log(log_path, ckpt["epoch"], ckpt["step"])
    return open(log_path, "a")


def run_epochs(t, schedule, batch_log, run_config, data):
    """The training loop from the Training's start: each epoch's steps (a checkpoint every
    --checkpoint-every steps and after the epoch), validation, a summary row."""
    args, rank, world = t.args, t.rank, t.world
    for epoch in range(t.start_epoch, args.epochs):
        step = t.start_step if epoch == t.start_epoch else 0
        if step == 0:
            t.seen, t.loss_sum = 0, 0.0
            if schedule is not None and (
                    (args.mix_off_epochs and epoch == max(0, args.epochs - args.mix_off_epochs)) or
                    (args.mixup_off_epoch and epoch == args.mixup_off_epoch)):
                t.train.set_mix(enabled=False)
        t0, seen0 = time.perf_counter(), t.seen
        for images, targets in t.train:
            if step == t.steps_per_epoch:
                continue  # drain the epoch (keeps the reader aligned with epochs)
            loss_value = t.step(images, targets)
            step += 1
            t.seen += images.shape[0]
            t.loss_sum += loss_value * images.shape[0]
            if batch_log:
                batch_log.write(json.dumps({"epoch": epoch + 1, "step": step,
                                            "images": tensor_sha(images),
                                            "targets": tensor_sha(targets),
                                            "loss": loss_value}) + "\n")
                batch_log.flush()
            if args.checkpoint_every and step % args.checkpoint_every == 0:
                t.checkpoint(epoch, step, run_config, data)
            if rank == 0:
                progress(f"epoch {epoch + 1}/{args.epochs}", step, t.steps_per_epoch,
                         t.loss_sum / t.seen,
                         (t.seen - seen0) * world / (time.perf_counter() - t0))
        row = t.epoch_row(epoch, seen0, time.perf_counter() - t0, schedule)
        t.summary["epochs"].append(row)
        if rank == 0:
            sys.stderr.write("\n")
            print(f"epoch {epoch + 1}: train loss {row['train_loss']:.4f}, "
                  f"{row['images_per_s']:.1f} img/s, val top-1 {100 * row['val_top1']:.1f}% "
                  f"({row['val_images']} images), mixing {'on' if row['mixing'] else 'off'}",
                  flush=True)
        if args.checkpoint_dir:
            t.checkpoint(epoch + 1, 0, run_config, data)


def main(argv=None):
    ap = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args, mix_config = parse_args(ap, argv)
    device = resolve_device(args.device)
    world, rank = init_distributed(device)
    torch.manual_seed(args.seed)

    def say(msg):
        if rank == 0:
            print(msg, flush=True)

    say(f"device: {device}" + ("" if args.device != "auto" else
                               " (auto: DALI sees a GPU)" if device == "gpu" else
                               " (auto: DALI sees no GPU)") + f", {world} process(es)")
    root = locate_data(args, ap, say)
    run_config = {k: getattr(args, k) for k in RUN_OPTIONS}
    run_config.update(world_size=world, device=device)
    source = (dict(file_list=args.file_list) if args.file_list else
              dict(data_dir=os.path.join(root, "train")))
    resume = open_checkpoint_dir(args, source, run_config, world, rank, say)
    if resume.finished:
        return report_finished(resume, args, world, rank, device)
    schedule = None if mix_config is None else MixSchedule(mix_config)
    train_pipe, val_pipe = build_pipelines(args, root, source, resume.state, device, rank,
                                           schedule)
    _RUN.update(root=root, argv=argv, args=args, num_classes=train_pipe.num_classes)
    t = Training(args, train_pipe, val_pipe, device, world, rank)
    if resume.state:
        t.restore(resume.state, resume.path)
    batch_log = open_batch_log(args, resume.state, rank, world)
    run_epochs(t, schedule, batch_log, run_config, resume.data)
    if batch_log:
        batch_log.close()
    if resume.lock:
        resume.lock.release()
    if rank == 0 and args.json:
        with open(args.json, "w") as f:
            json.dump(t.summary, f, indent=2)
    if dist.is_initialized():
        dist.destroy_process_group()
    return t.summary


if __name__ == "__main__":
    try:
        main()
    except DataError as e:
        sys.exit(f"train: stopped on the data: {e}\n{recovery_commands(str(e))}")
