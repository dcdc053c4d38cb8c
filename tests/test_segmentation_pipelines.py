"""The segmentation pipelines: image and map stay aligned through the readers, the crop, the
resize, the flip and the mix (maps and images that encode their pixels' cell and file); pairs
are found or refused with clear errors; the training example learns and reports its scores."""

import os
import re
import shutil

import numpy as np
import pytest
import torch

from dali_msda import DataError
from dali_msda.pipelines import (IMAGENET_MEAN, IMAGENET_STD, MixConfig, segmentation_pairs,
                                 segmentation_train, segmentation_val)
from dali_msda.pytorch import LastBatchPolicy, MixIterator

from conftest import DEVICES

CELLS = 4  # a CELLS x CELLS grid per image
FILES = 12
# distinct colours, at least 51 apart in some channel: label k -> PALETTE[k]
PALETTE = np.array([(r, g, b) for r in range(0, 256, 51) for g in range(0, 256, 51)
                    for b in range(0, 256, 51)], np.float32)[:FILES * CELLS * CELLS]


def grid_tree(root, names=None):
    """FILES image / map pairs of different sizes: cell (r, c) of file f has label
    f * 16 + r * 4 + c in the map and colour PALETTE[label] in the (lossless PNG) image."""
    from PIL import Image

    os.makedirs(os.path.join(root, "images"), exist_ok=True)
    os.makedirs(os.path.join(root, "masks"), exist_ok=True)
    rng = np.random.default_rng(0)
    for f in range(FILES):
        h, w = int(rng.integers(60, 100)), int(rng.integers(60, 100))
        rows = np.minimum(np.arange(h) * CELLS // h, CELLS - 1)
        cols = np.minimum(np.arange(w) * CELLS // w, CELLS - 1)
        labels = (f * CELLS * CELLS + rows[:, None] * CELLS + cols[None, :]).astype(np.uint8)
        name = names[f] if names else f"pair_{f:02d}"
        Image.fromarray(PALETTE[labels].astype(np.uint8)).save(
            os.path.join(root, "images", name + ".png"))
        Image.fromarray(labels).save(os.path.join(root, "masks", name + ".png"))
    return root


def check_aligned(images, maps, min_checked=2000):
    """At every pixel whose map is one label in a 7 x 7 neighbourhood (away from the edges,
    where the image's bilinear resize blends cells), the image's colour is that label's."""
    x = images.float().cpu().numpy().transpose(0, 2, 3, 1)
    x = x * np.float32(IMAGENET_STD) + np.float32(IMAGENET_MEAN)
    m = maps.cpu().numpy().astype(np.int64)
    checked = 0
    for i in range(len(m)):
        lab = m[i]
        h, w = lab.shape
        pad = np.pad(lab, 3, mode="edge")
        same = np.ones_like(lab, bool)
        for dy in range(7):
            for dx in range(7):
                same &= pad[dy:dy + h, dx:dx + w] == lab
        ys, xs = np.nonzero(same)
        colours = x[i, ys, xs]
        nearest = np.argmin(((colours[:, None, :] - PALETTE[None]) ** 2).sum(-1), axis=1)
        bad = nearest != lab[ys, xs]
        assert not bad.any(), (f"sample {i}: {bad.sum()} of {len(ys)} pixels show another "
                               f"cell's colour than their map's label")
        checked += len(ys)
    assert checked >= min_checked
    return checked


def check_cells(maps):
    """The labels of a resized (nearest) and maybe mirrored grid map: neighbours in a row are
    the same cell or the cells beside each other (labels 1 apart, within one grid row), in a
    column the same cell or the cells above each other (4 apart). A label between two cells'
    (an interpolated map) breaks it where the image-colour check looks away: at the cells'
    edges."""
    m = maps.cpu().numpy().astype(np.int64)
    across, down = np.abs(np.diff(m, axis=2)), np.abs(np.diff(m, axis=1))
    same_row = (m[:, :, 1:] // CELLS) == (m[:, :, :-1] // CELLS)
    assert np.all((across == 0) | ((across == 1) & same_row)), "a row jumps between cells"
    assert np.all((down == 0) | (down == CELLS)), "a column jumps between cells"


# segmentation_train's arguments for the grid trees
GRID_TRAIN = dict(num_classes=FILES * CELLS * CELLS, batch_size=6, num_threads=2, crop=64,
                  scale=(0.3, 1.0), dtype="float32", seed=3)


def twin_pipelines(root, device, mix):
    """Iterators of segmentation_train with `mix` and of its unmixed twin (mix=None, the same
    seed and arguments): the twin reads, crops and flips the same files alike (its random ops
    are the same, made in the same order), so its maps are the mixed pipeline's own maps."""
    kw = dict(GRID_TRAIN, device=device)
    return (MixIterator(segmentation_train(root, mix=mix, **kw)),
            MixIterator(segmentation_train(root, mix=None, **kw)))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("method", [None, "cutmix", "resizemix", "classmix", "fmix"])
def test_image_and_map_stay_aligned(tmp_path, device, method):
    """Images and maps aligned in every epoch, the maps resized as label maps (nearest); with
    mixing, each sample's targets are (w, 1 - w) with w its own map's share of the mixed map
    (every file's labels are its own, so a pixel holding its unmixed twin's label is the own
    sample's), each pixel the own or the partner's label (ResizeMix: the partner resized into
    the box)."""
    root = grid_tree(str(tmp_path / "grid"))
    mix = None if method is None else MixConfig(method=method, mode="elem")
    iterator, twin = twin_pipelines(root, device, mix)
    orders = []
    for epoch in range(3):  # later epochs reshuffle: the two readers must stay in step
        seen, batches = set(), 0
        for (images, targets, maps), (_, _, own_maps) in zip(iterator, twin):
            check_aligned(images, maps)
            check_cells(own_maps)
            m, own = maps.cpu().numpy(), own_maps.cpu().numpy()
            seen |= set(np.unique(m // (CELLS * CELLS)).tolist())
            t = targets.cpu().numpy()
            np.testing.assert_allclose(t.sum(1), 1.0, atol=1e-6)
            shares = (m == own).mean(axis=(1, 2))
            np.testing.assert_allclose(t[:, 0], shares, rtol=0, atol=1e-6)
            if method in ("cutmix", "classmix", "fmix"):
                assert ((m == own) | (m == own[::-1])).all()  # the partner is B - 1 - i
            if method in ("cutmix", "resizemix", "fmix"):
                assert (t[:, 0] < 1).any()  # mixing happened
            batches += 1
        assert batches == 2 and seen == set(range(FILES))
        orders.append(iterator.epoch)
    assert orders == [1, 2, 3]


@pytest.mark.parametrize("device", DEVICES)
def test_classmix_pipeline_pastes_half_the_partners_classes_never_ignore(tmp_path, device):
    """ClassMix in segmentation_train: every map's top-left cell is `ignore_index` (255); each
    sample shows its partner's pixels exactly where the partner holds one of the selected
    classes, ceil(n / 2) of the partner's n classes, 255 never among them (the pipeline passes
    its ignore_index to the op, whose own default counts every label)."""
    from PIL import Image

    root = grid_tree(str(tmp_path / "grid"))
    for name in os.listdir(os.path.join(root, "masks")):
        path = os.path.join(root, "masks", name)
        labels = np.array(Image.open(path))
        h, w = labels.shape
        labels[:h // CELLS, :w // CELLS] = 255
        Image.fromarray(labels).save(path)
    iterator, twin = twin_pipelines(root, device, MixConfig(method="classmix", mode="elem"))
    ignored = 0
    for _ in range(2):
        for (_, _, maps), (_, _, own_maps) in zip(iterator, twin):
            m, own = maps.cpu().numpy(), own_maps.cpu().numpy()
            for i in range(len(m)):
                partner = own[len(m) - 1 - i]
                present = set(np.unique(partner).tolist()) - {255}
                pasted = partner != own[i]
                pasted &= m[i] == partner
                selected = set(np.unique(partner[pasted]).tolist())
                assert 255 not in selected and len(selected) == (len(present) + 1) // 2
                want = np.where(np.isin(partner, list(selected)), partner, own[i])
                np.testing.assert_array_equal(m[i], want)
                ignored += (partner == 255).sum()
    assert ignored > 1000  # the ignored cells were in view


@pytest.mark.parametrize("device", DEVICES)
def test_val_aligned_and_complete(tmp_path, device):
    root = grid_tree(str(tmp_path / "grid"))
    pipe = segmentation_val(root, num_classes=192, batch_size=5, num_threads=2, device=device,
                            crop=48, dtype="float32")
    files = []
    for images, maps in MixIterator(pipe, last_batch_policy=LastBatchPolicy.PARTIAL):
        check_aligned(images, maps, min_checked=500)
        files += [int(np.bincount(m.cpu().numpy().ravel() // 16).argmax()) for m in maps]
    assert sorted(files) == list(range(FILES))  # each pair once, in order, none mismatched


def test_pair_lists_and_errors(tmp_path):
    root = grid_tree(str(tmp_path / "g"), names=[f"with space {k}" for k in range(FILES)])
    images, masks = segmentation_pairs(root)
    assert [os.path.basename(p) for p in images] == [os.path.basename(p) for p in masks]
    lst = tmp_path / "pairs.txt"
    lst.write_text("".join(f"{os.path.relpath(a, tmp_path)}\t{os.path.relpath(b, tmp_path)}\n"
                           for a, b in zip(images, masks)))
    assert segmentation_pairs(file_list=str(lst)) == (images, masks)
    pipe = segmentation_val(file_list=str(lst), num_classes=192, batch_size=4, num_threads=2,
                            device="cpu", crop=32, dtype="float32")
    for images_, maps in MixIterator(pipe, last_batch_policy=LastBatchPolicy.PARTIAL):
        check_aligned(images_, maps, min_checked=100)
    lst.write_text("a.jpg\n")
    with pytest.raises(DataError, match=r"pairs.txt:1: a line must be 'image mask'"):
        segmentation_pairs(file_list=str(lst))
    lst.write_text("a.jpg b.png\n")
    with pytest.raises(DataError, match=r"pairs.txt:1: .*a.jpg does not exist"):
        segmentation_pairs(file_list=str(lst))
    os.remove(masks[3])
    with pytest.raises(DataError, match=r"1 image\(s\) without a mask in .*masks \(first: "
                                        r".*images/" + os.path.basename(images[3]) + r"\)"):
        segmentation_pairs(root)
    os.rename(images[3], images[3] + ".bak")
    open(os.path.join(root, "masks", "stray.png"), "wb").close()
    with pytest.raises(DataError, match=r"1 mask\(s\) without an image .*stray.png"):
        segmentation_pairs(root)
    os.remove(os.path.join(root, "masks", "stray.png"))
    assert len(segmentation_pairs(root)[0]) == FILES - 1
    # a folder named like an image is not one; two files of one name would lose one of them
    os.mkdir(os.path.join(root, "masks", "folder.png"))
    assert len(segmentation_pairs(root)[0]) == FILES - 1
    for sub, name in (("images", os.path.basename(images[5])), ("masks", "with space 6.png")):
        twin = os.path.join(root, sub, name.rsplit(".", 1)[0] + ".JPEG")
        shutil.copy(os.path.join(root, sub, name), twin)
        first, second = sorted([name, os.path.basename(twin)])
        with pytest.raises(DataError, match=re.escape(
                f"{os.path.join(root, sub)}: {first} and {second} have one name "
                f"({name.rsplit('.', 1)[0]!r}); {sub} are paired by name")):
            segmentation_pairs(root)
        os.remove(twin)
    with pytest.raises(ValueError, match=r"`num_classes` must be an int in \[1, 256\]"):
        segmentation_train(root, num_classes=300)


def test_scores_from_a_known_confusion():
    from dali_msda.pipelines.train_seg import confusion, scores

    target = torch.tensor([0, 0, 1, 1, 2, 255])
    pred = torch.tensor([0, 1, 1, 1, 0, 2])
    conf = confusion(pred, target, 4)
    assert conf.tolist() == [[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]]
    acc, miou, iou = scores(conf)
    assert acc == pytest.approx(3 / 5)
    # IoU 0: 1 / (2 + 2 - 1) ; 1: 2 / (3 + 2 - 2) ; 2: 0 / 1 ; class 3 absent: left out
    assert iou[:3] == pytest.approx([1 / 3, 2 / 3, 0.0]) and np.isnan(iou[3])
    assert miou == pytest.approx((1 / 3 + 2 / 3) / 3)


def test_training_example_learns(tmp_path, monkeypatch):
    from dali_msda.pipelines import train_seg

    monkeypatch.setenv("DALI_MSDA_CACHE", str(tmp_path / "cache"))
    history = train_seg.main(["--epochs", "6", "--threads", "2", "--device", "cpu",
                              "--json", str(tmp_path / "s.json")])
    assert len(history) == 6 and all(0 <= h["pixel_acc"] <= 1 for h in history)
    assert history[-1]["loss"] < history[0]["loss"]
    assert history[-1]["miou"] > 0.3  # 8 classes: chance is about 0.06


def test_shards_split_the_pairs(tmp_path):
    """Two shards (as two torchrun ranks read them) see disjoint halves, together every pair:
    the two readers of each shard stay paired (checked by check_aligned)."""
    root = grid_tree(str(tmp_path / "grid"))
    files = []
    for shard in range(2):
        pipe = segmentation_train(root, num_classes=192, batch_size=3, num_threads=2,
                                  device="cpu", crop=48, dtype="float32", shard_id=shard,
                                  num_shards=2, mix=None)
        mine = set()
        for images, _, maps in MixIterator(pipe):
            check_aligned(images, maps, min_checked=100)
            mine |= {int(np.bincount(m.numpy().ravel() // 16, minlength=FILES).argmax())
                     for m in maps}
        files.append(mine)
    assert not files[0] & files[1] and files[0] | files[1] == set(range(FILES))


@pytest.mark.parametrize("device", DEVICES)
def test_a_map_of_another_size_stops_the_pipeline_naming_it(tmp_path, device):
    """The crop and resize would stretch it onto its image silently; fn.msda.pair_check stops
    the pipeline with the map's file, both sizes and the rule."""
    from PIL import Image

    root = grid_tree(str(tmp_path / "grid"))
    bad = os.path.join(root, "masks", "pair_05.png")
    labels = np.asarray(Image.open(bad))
    Image.fromarray(labels[:, :-1]).save(bad)  # one column short
    h, w = labels.shape
    pipe = segmentation_train(root, num_classes=192, batch_size=6, num_threads=2,
                              device=device, crop=32, dtype="float32",
                              mix=MixConfig(method="cutmix"))
    with pytest.raises(Exception, match=rf"msda.pair_check: the map .*pair_05.png is {w - 1} x "
                                        rf"{h} \(W x H\) but its image is {w} x {h}: a map must "
                                        r"have its image's size"):
        for _ in MixIterator(pipe):
            pass


@pytest.mark.parametrize("shape_type", ["int64", "int32"])
def test_pair_check_compares_height_and_width(shape_type):
    """fn.msda.pair_check itself, with the image shapes in either type fn.peek_image_shape
    gives (int64 by default, int32 on request): a map one row or one column off its image is
    refused naming both sizes (W x H); maps of their image's size pass through unchanged."""
    from nvidia.dali import fn, pipeline_def

    def run(image_hw, map_shape):
        rng = np.random.default_rng(0)
        maps = [rng.integers(0, 256, map_shape, dtype=np.uint8) for _ in range(2)]
        shapes = [np.array([*image_hw, 3], dtype=shape_type)] * 2

        @pipeline_def(batch_size=2, num_threads=1, device_id=None)
        def pipe():
            return fn.msda.pair_check(fn.external_source(lambda: shapes),
                                      fn.external_source(lambda: maps))

        p = pipe()
        p.build()
        return maps, [np.array(t) for t in p.run()[0]]

    for map_shape in [(37, 53), (37, 53, 1)]:
        given, out = run((37, 53), map_shape)
        for a, b in zip(given, out):
            np.testing.assert_array_equal(a, b)
    for map_shape in [(36, 53), (37, 52), (38, 53, 1), (37, 54, 1)]:
        with pytest.raises(RuntimeError, match=rf"msda.pair_check: the map of sample 0 is "
                                               rf"{map_shape[1]} x {map_shape[0]} \(W x H\) but "
                                               r"its image is 53 x 37: a map must have its"):
            run((37, 53), map_shape)


def test_training_example_under_torchrun(tmp_path):
    """Two ranks: each reads its shard, the model is DDP-wrapped and the validation confusion
    is summed over both (every val image counted once)."""
    import json
    import subprocess
    import sys

    from conftest import free_port

    summary = tmp_path / "seg.json"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
           f"--master_port={free_port()}", "-m", "dali_msda.pipelines.train_seg", "--epochs", "1",
           "--batch-size", "8", "--threads", "1", "--device", "cpu", "--json", str(summary)]
    env = dict(os.environ, OMP_NUM_THREADS="1", DALI_MSDA_CACHE=str(tmp_path / "cache"))
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(summary.read_text())
    assert result["world_size"] == 2
    assert result["history"][0]["val_images"] == 40  # the embedded set's val split, once
    assert 0 <= result["history"][0]["miou"] <= 1


def test_embedded_set_boxes_are_its_objects(tmp_path):
    """instances.json of the embedded segmentation set (the README's detection example runs on
    it): every box is the tight box of an object class's pixels in the map (void left out),
    and the boxes of a class cover all its pixels (an ellipse covered but for fewer than
    MIN_OBJECT_PIXELS by later ones is left out)."""
    import json

    from PIL import Image

    from dali_msda.pipelines import SEG_CLASSES, data, segmentation_dataset

    root = segmentation_dataset(str(tmp_path / "seg"))
    for split, count in (("train", data.SEG_TRAIN), ("val", data.SEG_VAL)):
        coco = json.load(open(os.path.join(root, split, "instances.json")))
        assert [c["id"] for c in coco["categories"]] == list(range(data.SEG_BACKGROUNDS, 8))
        assert [c["name"] for c in coco["categories"]] == [n for _, n in SEG_CLASSES[3:]]
        assert len(coco["images"]) == count
        by_image = {}
        for a in coco["annotations"]:
            by_image.setdefault(a["image_id"], []).append(a)
        assert len(by_image) > 0.9 * count and len(coco["annotations"]) > 1.5 * count
        for im in coco["images"]:
            path = os.path.join(root, split, "images", im["file_name"])
            assert Image.open(path).size == (im["width"], im["height"])
            labels = np.asarray(Image.open(path.replace("images", "masks")[:-4] + ".png"))
            covered = np.zeros(labels.shape + (8,), bool)
            for a in by_image.get(im["id"], []):
                x, y, w, h = a["bbox"]
                k = a["category_id"]
                assert 0 <= x and 0 <= y and x + w <= im["width"] and y + h <= im["height"]
                assert w * h >= a["area"] >= data.MIN_OBJECT_PIXELS and a["iscrowd"] == 0
                ys, xs = np.nonzero(labels[y:y + h, x:x + w] == k)
                assert len(ys) >= a["area"], (im, a)
                assert ys.min() == 0 and xs.min() == 0, (im, a)  # tight
                assert ys.max() == h - 1 and xs.max() == w - 1, (im, a)
                covered[y:y + h, x:x + w, k] = True
            for k in range(data.SEG_BACKGROUNDS, 8):
                outside = (labels == k) & ~covered[..., k]
                assert outside.sum() < data.MIN_OBJECT_PIXELS, (im, k)


def test_crop_ratio_is_width_over_height(tmp_path):
    """`ratio` is the crop's width over its height (relative to the image, as torchvision's
    RandomResizedCrop on a square image): area 1/4 at ratio 4 takes the whole width and a
    quarter of the height, so every crop shows all 4 cell columns of its file and at most 2 of
    its cell rows (the other way round, a crop 4 times taller, would show the opposite)."""
    root = grid_tree(str(tmp_path / "grid"))
    pipe = segmentation_train(root, **dict(GRID_TRAIN, scale=(0.25, 0.25)), ratio=(4.0, 4.0),
                              device="cpu", mix=None)
    for _, _, maps in MixIterator(pipe):
        for m in maps.numpy().astype(np.int64) % (CELLS * CELLS):
            rows, cols = np.unique(m // CELLS), np.unique(m % CELLS)
            assert len(cols) == CELLS and len(rows) <= 2, (rows, cols)
