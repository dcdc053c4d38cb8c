"""The ImageNet pipeline factories (CPU): their outputs, readers (ImageFolder tree, file list,
WebDataset) and labels, sharding, the fused mix against crop_mirror_normalize then the mix, and
the training classes' indices in validation."""

import os

import numpy as np
import pytest
from nvidia.dali import fn, pipeline_def

from dali_msda.pipelines import MixConfig, imagenet_train, imagenet_val, write_webdataset
from dali_msda.pipelines import imagenet as imagenet_mod

from conftest import N_CLASSES, N_TRAIN, N_VAL, arrays


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_train_pipeline_outputs(data_root, dtype):
    pipe = imagenet_train(os.path.join(data_root, "train"), batch_size=8, num_threads=2,
                          device="cpu", crop=96, dtype=dtype, mix=MixConfig(method="cutmix"))
    pipe.build()
    assert pipe.num_classes == N_CLASSES
    out = pipe.run()
    assert out[0].layout() == "CHW"
    images, targets = arrays(out)
    assert images.shape == (8, 3, 96, 96) and images.dtype == np.dtype(dtype)
    # normalised with the ImageNet mean / std: (0 - 0.485) / 0.229 ... (1 - 0.406) / 0.225
    assert images.min() >= -2.2 and images.max() <= 2.7 and images.astype(np.float32).std() > 0.3
    assert targets.shape == (8, N_CLASSES) and targets.dtype == np.float32
    np.testing.assert_allclose(targets.sum(1), 1.0, atol=1e-6)


def test_val_pipeline_outputs(data_root):
    pipe = imagenet_val(os.path.join(data_root, "val"), batch_size=16, num_threads=2,
                        device="cpu", resize=146, crop=128, dtype="float32")
    pipe.build()
    images, targets = arrays(pipe.run())
    assert images.shape == (16, 3, 128, 128)
    assert set(np.unique(targets)) == {0.0, 1.0} and (targets.sum(1) == 1).all()
    # no shuffling: the first 16 validation images are classes 0 and 1 in order
    np.testing.assert_array_equal(targets.argmax(1), [0] * 8 + [1] * 8)
    pipe = imagenet_val(os.path.join(data_root, "val"), batch_size=16, num_threads=2,
                        device="cpu", targets="index")
    pipe.build()
    _, ids = arrays(pipe.run())
    np.testing.assert_array_equal(ids.ravel(), [0] * 8 + [1] * 8)


def test_val_pipeline_geometry(tmp_path):
    """imagenet_val's resize of the shorter side to `resize` and its centre crop, read off a
    lossless image whose channels are linear ramps (a linear ramp stays linear through the
    resize's filter): a 300 x 400 image, resize=150 (scale 1/2: 150 x 200), crop=100 takes
    output rows and columns 25 and 50 on; so output pixel (i, j) is the source's
    (2 (25 + i) + 0.5, 2 (50 + j) + 0.5). A crop moved by a pixel or a scale 1 % off moves the
    ramps by 1.3 levels or more at the edges; the match is within 0.6 of a level."""
    from PIL import Image

    h, w = 300, 400
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float64)
    image = np.stack([20 + 0.6 * cols, 30 + 0.7 * rows, np.full((h, w), 128.0)], axis=-1)
    os.makedirs(tmp_path / "val" / "a")
    Image.fromarray(np.round(image).astype(np.uint8)).save(tmp_path / "val" / "a" / "x.png")
    pipe = imagenet_val(str(tmp_path / "val"), batch_size=1, num_threads=1, device="cpu",
                        resize=150, crop=100, dtype="float32")
    pipe.build()
    out = arrays(pipe.run())[0][0]
    mean, std = np.array([0.485, 0.456, 0.406]) * 255, np.array([0.229, 0.224, 0.225]) * 255
    got = out * std[:, None, None] + mean[:, None, None]  # back to [0, 255]
    i = np.arange(100.0)
    src_r, src_c = 2 * (25 + i) + 0.5, 2 * (50 + i) + 0.5
    want_red, want_green = 20 + 0.6 * src_c, 30 + 0.7 * src_r
    inner = slice(2, 98)  # the filter's support stays inside the source here (no edge)
    np.testing.assert_allclose(got[0][inner, inner], np.broadcast_to(want_red, (100, 100))[
        inner, inner], atol=0.6)
    np.testing.assert_allclose(got[1][inner, inner], np.broadcast_to(want_green[:, None],
                                                                     (100, 100))[inner, inner],
                               atol=0.6)
    np.testing.assert_allclose(got[2], 128.0, atol=0.01)


def test_ranks_take_their_shard_device_and_seed(monkeypatch, data_root):
    """torchrun's environment: RANK and WORLD_SIZE give the shard, LOCAL_RANK the device (RANK
    where it is not set), and each rank's pipeline its own seed (1234 + rank), so that ranks
    mix differently; an explicit seed is kept."""
    from dali_msda.pipelines.common import dist_env

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert dist_env() == (1, 2, 1)
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert dist_env() == (1, 2, 0)
    train = os.path.join(data_root, "train")
    kw = dict(batch_size=4, num_threads=1, device="cpu", mix=MixConfig(method="mixup"))
    assert imagenet_train(train, **kw).seed == 1235
    assert imagenet_train(train, shard_id=0, num_shards=2, **kw).seed == 1234
    assert imagenet_train(train, seed=5, **kw).seed == 5


def test_two_shards_cover_the_dataset_without_overlap(data_root):
    train_dir = os.path.join(data_root, "train")

    def files(shard, epochs=2, batch=50):
        @pipeline_def(batch_size=batch, num_threads=1, device_id=None, seed=shard)
        def pipe():  # the reader exactly as imagenet_train configures it
            jpegs, _, _, _ = imagenet_mod._reader(train_dir, None, None, None, shard, 2, True, 42,
                                                  "Reader")
            return fn.get_property(jpegs, key="source_info")
        p = pipe()
        p.build()
        per_epoch = int(np.ceil(N_TRAIN / 2 / batch))
        out = []
        for _ in range(epochs):
            names = []
            for _ in range(per_epoch):
                (batch_out,) = p.run()
                names += [np.array(batch_out[i]).tobytes().decode() for i in range(batch)]
            out.append(names)
        return out

    a, b = files(0), files(1)
    for epoch in range(2):
        sa, sb = set(a[epoch]), set(b[epoch])
        assert not sa & sb
        assert len(sa | sb) == N_TRAIN
    assert a[0] != a[1]  # a new global shuffle every epoch


def test_webdataset_reader(data_root, tmp_path):
    shards = write_webdataset(os.path.join(data_root, "val"), str(tmp_path / "wds"),
                              shard_size=40)
    wds = imagenet_val(wds_paths=shards, num_classes=N_CLASSES, batch_size=N_VAL, num_threads=2,
                       device="cpu", crop=32, resize=40, targets="index")
    folder = imagenet_val(os.path.join(data_root, "val"), batch_size=N_VAL, num_threads=2,
                          device="cpu", crop=32, resize=40, targets="index")
    wds.build()
    folder.build()
    wi, wl = arrays(wds.run())
    fi, fl = arrays(folder.run())
    np.testing.assert_array_equal(wl, fl)  # same order, same labels parsed from `.cls` text
    np.testing.assert_array_equal(wi, fi)
    train = imagenet_train(wds_paths=shards, num_classes=N_CLASSES, batch_size=16,
                           num_threads=2, device="cpu", crop=32, mix=MixConfig(method="gmix"))
    train.build()
    images, targets = arrays(train.run())
    assert images.shape == (16, 3, 32, 32)
    np.testing.assert_allclose(targets.sum(1), 1.0, atol=1e-6)


def test_webdataset_shards_hold_what_the_folder_reader_reads(tmp_path):
    """write_webdataset packs what fn.readers.file(file_root=tree) reads, in its order, with its
    labels: files of the reader's extensions in any case (.JPEG, .png), not other files (.txt,
    .DS_Store) nor nested folders (the writer crashed on one, and packed the others as images),
    and labels counting class folders without images (the reader counts them); the pipelines'
    own listing of a tree with given classes (folder_files) reads the same."""
    from nvidia.dali import fn, pipeline_def

    from dali_msda.pipelines.common import folder_files
    from PIL import Image

    tree = tmp_path / "tree"
    files = {"a/x1.jpg": 10, "a/x0.jpeg": 20, "a/sub/nested.jpg": 30, "b/z.JPEG": 40,
             "b/w.png": 50, "e/q.jpg": 60}
    for rel, value in files.items():
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), (value, 0, 0)).save(tree / rel, format="PNG" if rel.endswith(
            "png") else "JPEG")
    (tree / "a" / "notes.txt").write_text("not an image")
    (tree / "a" / ".DS_Store").write_bytes(b"\0\1")
    (tree / "a" / "album.jpg").mkdir()  # a folder named like an image: the reader skips it
    (tree / "c").mkdir()
    (tree / "c" / "readme.txt").write_text("no images here")
    (tree / "d").mkdir()
    shards = write_webdataset(str(tree), str(tmp_path / "wds"), shard_size=2)
    assert len(shards) == 3  # 5 samples, 2 a shard

    @pipeline_def(batch_size=1, num_threads=1, device_id=None)
    def folder():
        return tuple(fn.readers.file(file_root=str(tree), name="R"))

    @pipeline_def(batch_size=1, num_threads=1, device_id=None)
    def packed():
        return tuple(fn.readers.webdataset(paths=shards, ext=["jpg", "cls"], name="R"))

    def samples(pipe):
        pipe.build()
        out = []
        for _ in range(pipe.epoch_size("R")):
            data, label = pipe.run()
            label = np.array(label[0])
            out.append((np.array(data[0]).tobytes(),
                        int(label.tobytes()) if label.dtype == np.uint8 else int(label[0])))
        return out

    @pipeline_def(batch_size=1, num_threads=1, device_id=None)
    def listed(classes):  # the files imagenet_train / _val list when given the classes
        files, labels = folder_files(str(tree), classes)
        return tuple(fn.readers.file(files=files, labels=labels, name="R"))

    expected = samples(folder())
    assert [label for _, label in expected] == [0, 0, 1, 1, 4]
    assert samples(packed()) == expected
    assert samples(listed(["a", "b", "c", "d", "e"])) == expected
    with pytest.raises(ValueError, match="`shard_size` must be at least 1; got 0"):
        write_webdataset(str(tree), str(tmp_path / "none"), shard_size=0)


def cls_shard(path, texts):
    """A WebDataset shard of 8 x 8 JPEGs whose `.cls` payloads are `texts` (bytes)."""
    import io
    import tarfile

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 20, 30)).save(buf, format="JPEG")
    with tarfile.open(path, "w") as tar:
        for k, text in enumerate(texts):
            for ext, data in (("jpg", buf.getvalue()), ("cls", text)):
                info = tarfile.TarInfo(f"{k:04d}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return str(path)


def test_cls_labels_are_parsed_strictly(tmp_path):
    """`.cls` payloads: ASCII digits with optional whitespace around them, in [0, num_classes),
    and nothing else; anything else stops the pipeline with a DataError naming the shard and
    the key, the rule and the bytes (a lenient parse had read '-1' as 1, '1a' as 1 and
    '123456789' as 12345678, silently)."""
    from dali_msda.pytorch import DataError, MixIterator

    good = [b"0", b"7", b"42", b"999\n", b" 123 ", b"\t1000000\r\n", b"0012"]
    path = cls_shard(tmp_path / "good.tar", good)
    pipe = imagenet_val(wds_paths=[path], num_classes=1000001, batch_size=len(good),
                        num_threads=1, device="cpu", crop=8, resize=8, targets="index")
    pipe.build()
    _, ids = arrays(pipe.run())
    np.testing.assert_array_equal(ids.ravel(), [0, 7, 42, 999, 123, 1000000, 12])
    # (text, num_classes): 2 ** 64 + 2 wraps to 2 in 64 bits; ':' and '/' are the neighbours of
    # the digits in ASCII ('1:' read as 20, within 1000 classes)
    bad = [(text, 3) for text in (b"-1", b"1a", b"+3", b"123456789", b"3", b"", b"  ", b"1 2",
                                  b"\x80", b"\xef\xbc\x91", b"18446744073709551618")]
    bad += [(b"1:", 1000), (b"2/", 1000)]
    for k, (text, classes) in enumerate(bad):
        path = cls_shard(tmp_path / f"bad{k}.tar", [b"0", b"2", text, b"1"])
        for factory in (imagenet_val, imagenet_train):
            kw = dict(targets="index") if factory is imagenet_val else dict(mix=None)
            pipe = factory(wds_paths=[path], num_classes=classes, batch_size=4, num_threads=1,
                           device="cpu", crop=8, **kw)
            with pytest.raises(DataError) as err:
                for _ in MixIterator(pipe):
                    pass
            message = str(err.value)
            assert f"bad{k}.tar:" in message and ":0002.cls must be a class index" in message, \
                message
            assert f"in [0, {classes})" in message and "pipelines.scan" in message
    with pytest.raises(ValueError, match=r"`num_classes` \(or `classes`\) is required"):
        imagenet_val(wds_paths=[path], device="cpu", targets="index")


def test_file_list_labels_are_checked_strictly(data_root, tmp_path):
    """Every line of a file list, before DALI reads it: a DataError names the file, the line
    and what it holds, for mixing on and off, train and val; paths with spaces are read."""
    from dali_msda import DataError

    val = os.path.join(data_root, "val")
    first = sorted(os.listdir(os.path.join(val, sorted(os.listdir(val))[0])))[0]
    image = os.path.join(val, sorted(os.listdir(val))[0], first)
    for label in ("-1", "x", "7", "1.0", "+1", "\u0661"):
        lst = tmp_path / "list.txt"
        lst.write_text(f"{image} 0\n{image} {label}\n", encoding="utf-8")
        for build in (lambda: imagenet_train(file_list=str(lst), num_classes=3, device="cpu",
                                             mix=MixConfig()),
                      lambda: imagenet_train(file_list=str(lst), num_classes=3, device="cpu",
                                             mix=None),
                      lambda: imagenet_val(file_list=str(lst), num_classes=3, device="cpu",
                                           targets="index")):
            with pytest.raises(DataError, match=r"list\.txt' line 2: expected 'path label' "
                                                r"with the label a class index, ASCII digits in "
                                                r"\[0, 3\)"):
                build()
    (tmp_path / "list.txt").write_text(f"{image}\n")
    with pytest.raises(DataError, match=r"line 1: expected 'path label'"):
        imagenet_val(file_list=str(tmp_path / "list.txt"), num_classes=3, device="cpu")
    # a path with spaces: DALI takes the last field as the label, the rest as the path
    spaced = tmp_path / "with space"
    spaced.mkdir()
    import shutil

    shutil.copy(image, spaced / "an image.jpg")
    (tmp_path / "list.txt").write_text(f"{spaced / 'an image.jpg'} 2\n{image} 1\n")
    pipe = imagenet_val(file_list=str(tmp_path / "list.txt"), num_classes=3, batch_size=2,
                        num_threads=1, device="cpu", crop=32, resize=40, targets="index")
    pipe.build()
    images, ids = arrays(pipe.run())
    np.testing.assert_array_equal(ids.ravel(), [2, 1])
    np.testing.assert_array_equal(images[0], images[1])  # the same photo, read through both


def test_missing_or_empty_dataset(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"`data_dir` .*nope.* does not exist"):
        imagenet_train(str(tmp_path / "nope"), device="cpu", mix=MixConfig())
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"has no class sub-folders"):
        imagenet_train(str(tmp_path / "empty"), device="cpu")
    (tmp_path / "noimg" / "cls0").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"has 1 class folders but no images"):
        imagenet_val(str(tmp_path / "noimg"), device="cpu")


def test_file_list_reader(data_root, tmp_path):
    val = os.path.join(data_root, "val")
    classes = sorted(os.listdir(val))
    lines = [f"{c}/{f} {k}" for k, c in enumerate(classes) for f in sorted(os.listdir(
        os.path.join(val, c)))]
    (tmp_path / "list_abs.txt").write_text(  # "path label" lines, absolute paths
        "\n".join(f"{val}/{line}" for line in lines) + "\n")
    pipe = imagenet_val(file_list=str(tmp_path / "list_abs.txt"), num_classes=N_CLASSES,
                        batch_size=N_VAL, num_threads=2, device="cpu", crop=32, resize=40,
                        targets="index")
    folder = imagenet_val(val, batch_size=N_VAL, num_threads=2, device="cpu", crop=32,
                          resize=40, targets="index")
    pipe.build()
    folder.build()
    np.testing.assert_array_equal(arrays(pipe.run())[1], arrays(folder.run())[1])
    train = imagenet_train(file_list=str(tmp_path / "list_abs.txt"), num_classes=N_CLASSES,
                           batch_size=8, num_threads=2, device="cpu", crop=32, mix=MixConfig())
    train.build()
    images, targets = arrays(train.run())
    assert images.shape == (8, 3, 32, 32) and targets.shape == (8, N_CLASSES)
    with pytest.raises(ValueError,
                       match=r"`num_classes` \(or `classes`\) is required with `file_list`"):
        imagenet_train(file_list=str(tmp_path / "list_abs.txt"), device="cpu", mix=MixConfig())


@pytest.mark.parametrize("method", ["hmix", "fmix", "resizemix"])
def test_fused_train_pipeline_equals_cmn_then_mix(data_root, method):
    """The fused pipeline gives the augmentation of crop_mirror_normalize followed by the mix:
    unmixed batches equal CMN's output exactly; mixed ones equal the reference mix of CMN's
    inputs flipped by the same coins, to float16 rounding of CMN's intermediate."""
    def build(fused, prob):
        return imagenet_train(os.path.join(data_root, "train"), batch_size=8, num_threads=2,
                              device="cpu", crop=64, dtype="float32", seed=5, fused=fused,
                              mix=MixConfig(method=method, mode="elem", prob=prob),
                              output_params=True)
    for prob in (0.0, 1.0):
        a, b = build(True, prob), build(False, prob)
        a.build()
        b.build()
        for _ in range(2):
            (ia, ta, pa), (ib, tb, pb) = arrays(a.run()), arrays(b.run())
            np.testing.assert_array_equal(pa, pb)  # the same draws
            np.testing.assert_array_equal(ta, tb)
            if prob == 0.0:
                np.testing.assert_array_equal(ia, ib)  # CMN's normalisation, bit for bit
            else:  # mix of normalised images vs normalised mix: equal up to rounding
                np.testing.assert_allclose(ia, ib, rtol=0, atol=1e-5)


def test_val_classes_take_the_training_indices(data_root, tmp_path):
    """A val tree that lacks a training class: with the training classes each folder keeps its
    training index; numbered on its own (the old behaviour, shown for contrast) every later
    class shifts down by one. A folder training does not know is refused by name."""
    import shutil

    train_classes = sorted(os.listdir(os.path.join(data_root, "train")))
    val = tmp_path / "val"
    for c in train_classes[:3]:
        if c == train_classes[1]:
            continue  # the second class has no val folder
        (val / c).mkdir(parents=True)
        for f in sorted(os.listdir(os.path.join(data_root, "val", c)))[:2]:
            shutil.copy(os.path.join(data_root, "val", c, f), val / c / f)
    train = imagenet_train(os.path.join(data_root, "train"), device="cpu", mix=MixConfig())
    assert train.classes == train_classes
    kw = dict(batch_size=4, num_threads=1, device="cpu", crop=32, resize=40, targets="index")
    fixed = imagenet_val(str(val), classes=train.classes, **kw)
    fixed.build()
    np.testing.assert_array_equal(arrays(fixed.run())[1].ravel(), [0, 0, 2, 2])
    own = imagenet_val(str(val), **kw)
    own.build()
    np.testing.assert_array_equal(arrays(own.run())[1].ravel(), [0, 0, 1, 1])
    (val / "zebra").mkdir()
    shutil.copy(os.path.join(data_root, "val", train_classes[0],
                             sorted(os.listdir(os.path.join(data_root, "val",
                                                            train_classes[0])))[0]),
                val / "zebra" / "z.jpg")
    with pytest.raises(ValueError, match=r"class folders the training classes do not know: "
                                         r"\['zebra'\]"):
        imagenet_val(str(val), classes=train.classes, **kw)


def test_crop_ranges_are_checked(data_root):
    """The random resized crop's `scale` (area share) and `ratio` (aspect) ranges, refused
    with the rule and the value by both training pipelines; their edges accepted."""
    from dali_msda.pipelines import segmentation_train

    train = os.path.join(data_root, "train")
    bad = [(dict(scale=(0.0, 1.0)), r"`scale` must satisfy 0 < min <= max <= 1; got \(0.0, 1.0\)"),
           (dict(scale=(0.5, 0.4)), r"`scale` must satisfy 0 < min <= max <= 1; got \(0.5, 0.4\)"),
           (dict(scale=(0.1, 1.2)), r"`scale` must satisfy 0 < min <= max <= 1; got \(0.1, 1.2\)"),
           (dict(ratio=(0.0, 1.0)), r"`ratio` must satisfy 0 < min <= max; got \(0.0, 1.0\)"),
           (dict(ratio=(2.0, 1.0)), r"`ratio` must satisfy 0 < min <= max; got \(2.0, 1.0\)"),
           (dict(scale=0.5), r"`scale` must be two finite numbers \(min, max\); got 0.5"),
           (dict(scale=(0.5,)), r"`scale` must be two finite numbers \(min, max\); got \(0.5,\)"),
           (dict(ratio=(1.0, float("inf"))), r"`ratio` must be two finite numbers \(min, max\); "
                                             r"got \(1.0, inf\)"),
           (dict(ratio="wide"), r"`ratio` must be two finite numbers \(min, max\); got 'wide'")]
    for kw, message in bad:
        with pytest.raises(ValueError, match=message):
            imagenet_train(train, batch_size=4, device="cpu", **kw)
        with pytest.raises(ValueError, match=message):
            segmentation_train(train, num_classes=2, batch_size=4, device="cpu", **kw)
    imagenet_train(train, batch_size=4, device="cpu", scale=(1.0, 1.0), ratio=(1.0, 1.0))


def test_sizes_seeds_and_shards_are_checked(data_root):
    """Every pipeline factory refuses a size, seed, probability or shard out of its range with
    the argument's name, the rule and the value, before DALI sees it: DALI would fail deep inside
    on a crop of 0, give |crop| pixels for a negative one, take a flip probability outside
    [0, 1] as it comes, take a negative seed for "random" (no run repeats it; a negative shuffle
    seed would give every rank its own order, the shards overlapping) and fail while building
    for a shard past the last. The edges are accepted."""
    from dali_msda.pipelines import segmentation_dataset, segmentation_train, segmentation_val

    train, val = os.path.join(data_root, "train"), os.path.join(data_root, "val")
    seg_root = segmentation_dataset()
    seg_train, seg_val = os.path.join(seg_root, "train"), os.path.join(seg_root, "val")
    factories = {
        "imagenet_train": lambda **kw: imagenet_train(train, **kw),
        "imagenet_val": lambda **kw: imagenet_val(val, **kw),
        "segmentation_train": lambda **kw: segmentation_train(seg_train, num_classes=8, **kw),
        "segmentation_val": lambda **kw: segmentation_val(seg_val, num_classes=8, **kw)}
    common = [(dict(batch_size=0), r"`batch_size` must be an int >= 1; got 0"),
              (dict(batch_size=2.0), r"`batch_size` must be an int >= 1; got 2.0"),
              (dict(num_threads=0), r"`num_threads` must be an int >= 1; got 0"),
              (dict(crop=0), r"`crop` must be an int >= 1; got 0"),
              (dict(crop=-5), r"`crop` must be an int >= 1; got -5"),
              (dict(crop=(8, 8)), r"`crop` must be an int >= 1; got \(8, 8\)"),
              (dict(crop=True), r"`crop` must be an int >= 1; got True"),
              (dict(seed=-1), r"`seed` must be an int in \[0, 2\*\*63\) or None \(DALI takes a "
                              r"negative seed for a random one, which no run repeats\); got -1"),
              (dict(shard_id=2, num_shards=2), r"`shard_id` must be an int in \[0, num_shards\) "
                                               r"= \[0, 2\); got 2"),
              (dict(shard_id=-1, num_shards=2), r"`shard_id` must be an int in \[0, num_shards\)"),
              (dict(shard_id=0, num_shards=0), r"`num_shards` must be an int >= 1; got 0")]
    train_only = [(dict(flip_prob=1.01), r"`flip_prob` must be in \[0, 1\]; got 1.01"),
                  (dict(flip_prob=-0.01), r"`flip_prob` must be in \[0, 1\]; got -0.01"),
                  (dict(prefetch_queue_depth=0), r"`prefetch_queue_depth` must be an int >= 1"),
                  (dict(shuffle_seed=-2), r"`shuffle_seed` must be an int in \[0, 2\*\*63\)")]
    for name, make in factories.items():
        cases = common + (train_only if name.endswith("train") else [])
        if name == "imagenet_val":
            cases += [(dict(resize=0), r"`resize` must be an int >= 1; got 0"),
                      (dict(resize=15, crop=16), r"`resize` \(the shorter side before the "
                                                 r"centre crop\) must be >= `crop`; got "
                                                 r"resize=15 < crop=16")]
        for kw, message in cases:
            with pytest.raises(ValueError, match=message):
                make(device="cpu", **{"batch_size": 2, **kw})
        # the edges: built and run
        kw = dict(batch_size=1, num_threads=1, crop=1, seed=0, shard_id=1, num_shards=2)
        if name.endswith("train"):
            kw.update(flip_prob=1, prefetch_queue_depth=1, shuffle_seed=0)
        if name == "imagenet_val":
            kw.update(resize=1)
        out = make(device="cpu", **kw).run()
        assert np.array(out[0][0]).shape[-2:] == (1, 1), name
    for kw, message in ((dict(num_classes=0), r"`num_classes` must be an int >= 1 or None; "
                                              r"got 0"),
                        (dict(num_classes=True), r"`num_classes` must be an int >= 1 or None")):
        with pytest.raises(ValueError, match=message):
            imagenet_train(train, device="cpu", **kw)
        with pytest.raises(ValueError, match=message):
            imagenet_val(val, device="cpu", **kw)
    with pytest.raises(ValueError, match=r"`num_classes` must be an int in \[1, 256\]"):
        segmentation_train(seg_train, num_classes=True, device="cpu")
