"""Train a tiny segmentation net on mixed images and label maps from the DALI pipeline, and
report pixel accuracy and mIoU on the validation set after every epoch.

    python -m dali_msda.pipelines.train_seg                   # embedded set, CPU or GPU
    python -m dali_msda.pipelines.train_seg --method classmix --epochs 10
    python -m dali_msda.pipelines.train_seg --data /ade --num-classes 150 --crop 512
    torchrun --nproc_per_node=8 -m dali_msda.pipelines.train_seg --data /ade --num-classes 150

`--data` is a root with train/ and val/, each holding images/ and masks/ with matching names
(default: the embedded segmentation set, 8 classes, dali_msda.pipelines.segmentation_dataset).
Maps hold class indices, 255 = ignore (not trained on, not counted). The loss is the per-pixel
cross entropy against the mixed map (the op's hard rule: the label of the image with the larger
weight at each pixel). Under torchrun every rank reads its own shard and the model is wrapped
in DistributedDataParallel; the validation confusion matrix is summed over the ranks.
"""

import argparse
import json
import os
import sys
import time

import torch
import torch.distributed as dist
from torch import nn

from dali_msda import methods
from dali_msda._cli import (SEED, HelpFormatter, check_output_paths, int_at_least,
                            positive_float)
from dali_msda.pipelines import (MixConfig, segmentation_dataset, segmentation_train,
                                 segmentation_val)
from dali_msda.pipelines.common import dist_env, resolve_device
from dali_msda.pytorch import DataError, LastBatchPolicy, MixIterator

IGNORE = 255


class TinySegNet(nn.Module):
    """Three stride-2 conv stages (1/8 resolution), a dilated stage, a 1x1 classifier and a
    bilinear upsampling back to the input size."""

    def __init__(self, num_classes, width=16):
        super().__init__()

        def stage(cin, cout, stride=1, dilation=1):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, dilation, dilation, bias=False),
                                 nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

        self.body = nn.Sequential(stage(3, width, 2), stage(width, 2 * width, 2),
                                  stage(2 * width, 4 * width, 2),
                                  stage(4 * width, 4 * width, dilation=2))
        self.head = nn.Conv2d(4 * width, num_classes, 1)

    def forward(self, x):
        y = self.head(self.body(x))
        return nn.functional.interpolate(y, size=x.shape[-2:], mode="bilinear",
                                         align_corners=False)


def confusion(pred, target, num_classes, ignore=IGNORE):
    """num_classes x num_classes counts (row: true class, column: predicted), ignore left out."""
    keep = target != ignore
    t, p = target[keep].long(), pred[keep].long()
    return torch.bincount(t * num_classes + p, minlength=num_classes ** 2).reshape(
        num_classes, num_classes)


def scores(conf):
    """(pixel accuracy, mIoU, per-class IoU): IoU = TP / (TP + FP + FN) of every class that
    occurs in the truth or the predictions (a class absent from both is left out of the mean)."""
    conf = conf.double()
    tp = conf.diag()
    union = conf.sum(0) + conf.sum(1) - tp
    present = union > 0
    iou = torch.where(present, tp / union.clamp(min=1), torch.full_like(tp, float("nan")))
    acc = float(tp.sum() / conf.sum().clamp(min=1))
    return acc, float(iou[present].mean()) if present.any() else 0.0, iou.tolist()


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m dali_msda.pipelines.train_seg",
                                 description=__doc__.split("\n\n")[0],
                                 formatter_class=HelpFormatter)
    ap.add_argument("--data", default=None,
                    help="root with train/ and val/ (images/, masks/); none: the embedded set")
    ap.add_argument("--num-classes", type=int_at_least(1), default=None,
                    help="classes of the maps (required with --data; the embedded set has 8)")
    ap.add_argument("--epochs", type=int_at_least(1), default=3, help="epochs to train")
    ap.add_argument("--batch-size", type=int_at_least(1), default=16, help="per process")
    ap.add_argument("--crop", type=int_at_least(1), default=128,
                    help="training and validation side, px")
    ap.add_argument("--lr", type=positive_float, default=0.05,
                    help="peak learning rate (one-cycle)")
    ap.add_argument("--width", type=int_at_least(1), default=16,
                    help="channels of the first stage (4x in the last)")
    ap.add_argument("--method", default="cutmix", choices=["none", *methods.ALL],
                    help="mixing method (none: no mixing)")
    ap.add_argument("--alpha", type=float, default=1.0,
                    help="the weight's Beta(alpha, alpha) (not used by resizemix, classmix)")
    ap.add_argument("--prob", type=float, default=1.0,
                    help="chance that a batch, sample or pair is mixed")
    ap.add_argument("--mode", choices=list(methods.MODES), default="elem",
                    help="one draw a batch, a sample, or a pair of samples")
    ap.add_argument("--device", choices=["auto", "cpu", "gpu"], default="auto",
                    help="auto: the GPU when DALI sees one")
    ap.add_argument("--threads", type=int_at_least(1), default=4, help="DALI CPU threads")
    ap.add_argument("--seed", type=SEED, default=0, help="model and augmentation seed")
    ap.add_argument("--json", default=None, help="write a summary here (rank 0)")
    args = ap.parse_args(argv)
    check_output_paths(ap, files=[("--json", args.json)])
    try:  # the recipe checked before anything starts: a usage error naming the flag's field
        mix = None if args.method == "none" else MixConfig(
            method=args.method, alpha=args.alpha, prob=args.prob, mode=args.mode)
    except ValueError as e:
        ap.error(str(e))

    from dali_msda.pipelines.data import SEG_CLASSES
    rank, world, local = dist_env()
    device = resolve_device(args.device)
    if world > 1:
        dist.init_process_group("nccl" if device == "gpu" else "gloo")
    if args.data is None:
        root = segmentation_dataset(log=print if rank == 0 else None)
        num_classes = len(SEG_CLASSES) if args.num_classes is None else args.num_classes
    else:
        root = args.data
        if args.num_classes is None:
            ap.error("--num-classes is required with --data")
        num_classes = args.num_classes
    torch.manual_seed(args.seed)
    dev = torch.device(f"cuda:{local}" if device == "gpu" else "cpu")
    if device == "gpu":
        torch.cuda.set_device(dev)
    train_pipe = segmentation_train(os.path.join(root, "train"), num_classes=num_classes,
                                    batch_size=args.batch_size, num_threads=args.threads,
                                    device=device, crop=args.crop, mix=mix,
                                    dtype="float32", seed=args.seed * 1000 + 1234 + rank,
                                    ignore_index=IGNORE)
    val_pipe = segmentation_val(os.path.join(root, "val"), num_classes=num_classes,
                                batch_size=args.batch_size, num_threads=args.threads,
                                device=device, crop=args.crop, dtype="float32",
                                ignore_index=IGNORE)
    train_iter = MixIterator(train_pipe)
    val_iter = MixIterator(val_pipe, last_batch_policy=LastBatchPolicy.PARTIAL)

    model = TinySegNet(num_classes, args.width).to(dev)
    if world > 1:
        model = nn.parallel.DistributedDataParallel(model, device_ids=[local] if
                                                    device == "gpu" else None)
    steps = args.epochs * train_iter._epoch_iters
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=max(steps, 1))
    history = []
    start = time.time()
    for epoch in range(args.epochs):
        model.train()
        total, count = 0.0, 0
        for images, _weights, maps in train_iter:
            logits = model(images.to(dev).float())
            loss = nn.functional.cross_entropy(logits, maps.to(dev).long(),
                                               ignore_index=IGNORE)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(images)
            count += len(images)
        model.eval()
        conf = torch.zeros(num_classes, num_classes, dtype=torch.long, device=dev)
        seen = torch.zeros(1, dtype=torch.long, device=dev)  # val images, over the ranks
        with torch.no_grad():
            for images, maps in val_iter:
                pred = model(images.to(dev).float()).argmax(1)
                conf += confusion(pred, maps.to(dev), num_classes)
                seen += len(images)
        if world > 1:
            dist.all_reduce(conf)
            dist.all_reduce(seen)
        acc, miou, _ = scores(conf.cpu())
        row = {"epoch": epoch + 1, "loss": total / max(count, 1), "pixel_acc": acc,
               "miou": miou, "val_images": int(seen)}
        history.append(row)
        if rank == 0:
            print(f"epoch {epoch + 1}/{args.epochs}: train loss {row['loss']:.3f}, "
                  f"val pixel acc {100 * acc:.1f} %, mIoU {100 * miou:.1f} %", flush=True)
    if rank == 0:
        print(f"{args.method}: {args.epochs} epochs in {time.time() - start:.0f} s on {device}")
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"method": args.method, "device": device, "world_size": world,
                           "history": history}, f)
    if world > 1:
        dist.destroy_process_group()
    return history


if __name__ == "__main__":
    try:
        main()
    except DataError as e:  # a label map or an image the pipelines refuse, named
        sys.exit(f"train_seg: stopped on the data: {e}")
