"""Bad files: `python -m dali_msda.pipelines.scan` and the error training gives (CPU).

ImageNet holds truncated JPEGs, PNG and CMYK data under .JPEG names and grayscale JPEGs; a
tree can also hold zero-byte files, non-images and empty class folders. Which of these decode,
which the reader skips and which stop training is fixed here.
"""

import io
import os
import re
import subprocess
import sys
import tarfile

import numpy as np
import pytest

from dali_msda.pipelines import MixConfig, folder_classes, imagenet_train, imagenet_val
from dali_msda.pipelines import scan as scan_mod

Image = pytest.importorskip("PIL.Image")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def photo(seed, size=(96, 80)):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (size[1] // 8, size[0] // 8, 3), dtype=np.uint8)
    return Image.fromarray(base).resize(size, Image.BILINEAR)


def encode(img, fmt="JPEG", **kw):
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


GOOD_KINDS = {  # decode fine: ImageNet has all of these under .JPEG names
    "png_named.JPEG": lambda im: encode(im, "PNG"),
    "cmyk.JPEG": lambda im: encode(im.convert("CMYK")),
    "gray.JPEG": lambda im: encode(im.convert("L")),
}
BAD_KINDS = {  # stop training
    "cut200.JPEG": lambda im: encode(im)[:200],
    "cut_half.JPEG": lambda im: encode(im)[:len(encode(im)) // 2],
    "zero.JPEG": lambda im: b"",
    "text.JPEG": lambda im: b"this is not an image\n",
}


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """train/ with 3 classes x 40 good JPEGs, the kinds above in class 'b', a .txt in class
    'a' (the reader skips it) and an empty class folder 'c_empty'; val/ clean."""
    root = tmp_path_factory.mktemp("tree")
    for split, n in (("train", 40), ("val", 4)):
        for k, c in enumerate(["a", "b", "d"]):
            os.makedirs(root / split / c)
            for i in range(n):
                (root / split / c / f"{i:03d}.JPEG").write_bytes(encode(photo(k * 100 + i)))
    im = photo(999)
    for name, make in {**GOOD_KINDS, **BAD_KINDS}.items():
        (root / "train" / "b" / name).write_bytes(make(im))
    (root / "train" / "a" / "notes.txt").write_text("labels from the web\n")
    os.makedirs(root / "train" / "c_empty")
    return root


def test_scan_names_every_bad_file_and_writes_a_list_of_the_good(tree, tmp_path):
    out = tmp_path / "good.txt"
    proc = subprocess.run([sys.executable, "-m", "dali_msda.pipelines.scan",
                           str(tree / "train"), "--out", str(out), "--workers", "2",
                           "--batch-size", "16", "--device", "cpu"],  # CPU's judgement (the
                          # GPU decoder accepts cut_half.JPEG: seen on an H200)
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stderr[-3000:]  # 1: bad files listed
    bad = {line.split(":")[0][4:]: line for line in proc.stdout.splitlines()
           if line.startswith("BAD ")}
    assert {os.path.basename(p) for p in bad} == set(BAD_KINDS)
    by_name = {os.path.basename(p): line for p, line in bad.items()}
    assert "empty file (0 bytes)" in by_name["zero.JPEG"]
    assert "not an image format" in by_name["text.JPEG"]
    assert "truncated" in by_name["cut200.JPEG"] and "does not decode" in by_name["cut200.JPEG"]
    assert f"SKIPPED {tree / 'train' / 'a' / 'notes.txt'}" in proc.stdout
    assert "EMPTY class folder 'c_empty'" in proc.stdout
    assert "CMYK JPEG" in proc.stdout and "grayscale JPEG" in proc.stdout
    assert "127 files: 123 good, 4 bad, 1 skipped by the reader, 1 empty class" in proc.stdout
    # the command it prints trains on the user's tree (its --data), not the embedded set
    assert (f"train with `python -m dali_msda.pipelines.train --data {tree} --file-list {out}` "
            "(and your other options)") in proc.stdout
    lines = out.read_text().splitlines()
    assert len(lines) == 120 + len(GOOD_KINDS)
    classes = folder_classes(str(tree / "train"))
    assert classes == ["a", "b", "c_empty", "d"]  # the empty folder keeps its index
    for line in lines:
        path, label = line.rsplit(" ", 1)
        assert os.path.isabs(path) and classes[int(label)] == os.path.basename(
            os.path.dirname(path))
    # the list trains: a whole epoch of it decodes, with the tree's class numbering
    pipe = imagenet_train(file_list=str(out), classes=classes, batch_size=17, num_threads=2,
                          device="cpu", crop=32, mix=MixConfig())
    pipe.build()
    assert pipe.num_classes == 4 and pipe.classes == classes
    for _ in range(-(-123 // 17)):
        pipe.run()


def test_sniff_notes_a_cut_jpeg_whatever_byte_it_ends_on():
    """A JPEG is whole when it ends with the end-of-image marker ff d9: cut anywhere in its
    scan, it is noted (and judged alone), also where the cut leaves a d9 byte last or an ff;
    the components of its frame header are read (grey, CMYK)."""
    jpeg = encode(photo(5))
    assert scan_mod.sniff(jpeg) == ("jpeg", "")
    scan = jpeg.index(b"\xff\xda")
    d9 = [k for k in range(scan + 20, len(jpeg) - 2) if jpeg[k] == 0xd9 and jpeg[k - 1] != 0xff]
    ff = [k for k in range(scan + 20, len(jpeg) - 2) if jpeg[k] == 0xff]
    assert d9 and ff, "no such byte in this JPEG's scan: choose another photo seed"
    for end in (len(jpeg) - 1, d9[0] + 1, ff[0] + 1, scan + 100):
        fmt, note = scan_mod.sniff(jpeg[:end])
        assert fmt == "jpeg" and note == "no end-of-image marker (truncated?)", (end, note)
        assert scan_mod.suspicious(fmt, note)
    assert scan_mod.sniff(encode(photo(5).convert("L"))) == ("jpeg", "grayscale JPEG")
    assert scan_mod.sniff(encode(photo(5).convert("CMYK"))) == ("jpeg", "CMYK JPEG")
    assert scan_mod.sniff(jpeg[:scan])[1] == "no end-of-image marker (truncated?)"
    assert scan_mod.sniff(b"\xff\xd8" + jpeg[scan:]) == ("jpeg", "no frame header")


def test_bisection_finds_one_bad_file_in_a_batch():
    good = [np.frombuffer(encode(photo(i)), np.uint8) for i in range(63)]
    blobs = good[:13] + [np.frombuffer(b"\xff\xd8\xff\xe0 garbage", np.uint8)] + good[13:]
    with scan_mod.Decoder("cpu", threads=1, batch_size=32, workers=2) as decoder:
        errors = decoder.judge(blobs)
        assert [k for k, e in enumerate(errors) if e] == [13]
        assert "nvImageCodec" in errors[13]
        # one failed batch of 32 -> halves 16, 8, 4, 2, 1: a new worker after each failure
        assert decoder.spawned <= 2 + 6


def test_bisection_finds_bad_files_at_every_position_of_odd_batches():
    """Odd failed batches split into unequal halves (7 -> 3 + 4 -> 1 + 2 ...): a bad file
    first, last and in the middle of them, two in one batch, and a batch of one, are all
    found, and no good file is reported (a split that drops or repeats a file shows here)."""
    good = [np.frombuffer(encode(photo(i)), np.uint8) for i in range(19)]
    bad = np.frombuffer(b"\xff\xd8\xff\xe0 garbage", np.uint8)
    # batches of 7: [0..6] bad last; [7..13] bad first and last; [14..20] bad in the middle;
    # [21] alone and bad
    blobs = list(good)
    for k in (6, 7, 13, 17, 21):
        blobs.insert(k, bad)
    assert len(blobs) == 24
    with scan_mod.Decoder("cpu", threads=1, batch_size=7, workers=2) as decoder:
        errors = decoder.judge(blobs)
    assert [k for k, e in enumerate(errors) if e] == [6, 7, 13, 17, 21]


def test_a_pipeline_that_cannot_be_built_is_an_error_not_bad_files():
    # e.g. the GPU decoder where there is none: every batch would "fail"; the files are fine
    if scan_mod.resolve_device("auto") == "gpu":
        pytest.skip("needs a machine without a GPU")
    good = [np.frombuffer(encode(photo(i)), np.uint8) for i in range(5)]
    with scan_mod.Decoder("gpu", threads=1, batch_size=4, workers=1) as decoder:
        with pytest.raises(RuntimeError, match=r"pipeline on gpu cannot be built"):
            decoder.judge(good)
        assert decoder.spawned == 1  # no bisection


def test_a_worker_crash_costs_the_worker_not_the_scan(monkeypatch):
    # DALI 2.4's CPU decoder can kill the process after a failed batch; a worker that dies
    # without answering counts as a failed batch, and the file that kills it is named
    monkeypatch.setenv(scan_mod.FAULT_ENV, "CRASH!")
    good = [np.frombuffer(encode(photo(i)), np.uint8) for i in range(20)]
    blobs = good[:5] + [np.frombuffer(b"CRASH! here", np.uint8)] + good[5:]
    with scan_mod.Decoder("cpu", threads=1, batch_size=8, workers=2) as decoder:
        errors = decoder.judge(blobs)
    assert [k for k, e in enumerate(errors) if e] == [5]
    assert "crashed the process" in errors[5] and str(-11) in errors[5]


FIRST_BATCH = """
import os, sys
from dali_msda.pipelines import MixConfig, imagenet_train
from dali_msda.pytorch import DataError, MixIterator
try:
    next(iter(MixIterator(imagenet_train(sys.argv[1], batch_size=8, num_threads=1,
                                         device="cpu", crop=32, mix=MixConfig()))))
    print("NO ERROR")
except DataError as e:
    print(e)
sys.stdout.flush()
os._exit(0)  # a failed DALI 2.4 pipeline can crash the process at teardown: do not tear down
"""


def first_batch_error(root):
    """The DataError message of the first batch of a tree, from a fresh process (DALI's CPU
    decoder can crash the process after a failure; a crash is retried twice and reported)."""
    from dali_msda import child_env

    for _ in range(3):
        proc = subprocess.run([sys.executable, "-c", FIRST_BATCH, str(root)], env=child_env(),
                              capture_output=True, text=True, timeout=300)
        if proc.returncode >= 0:
            break
    assert proc.returncode == 0, f"crashed 3 times (exit {proc.returncode}): {proc.stderr[-2000:]}"
    return proc.stdout


@pytest.mark.parametrize("name", ["cut200.JPEG", "zero.JPEG", "text.JPEG"])
def test_training_on_a_bad_file_points_to_scan(tree, tmp_path, name):
    pytest.importorskip("torch")
    root = tmp_path / "t"
    os.makedirs(root / "x")
    for i in range(7):
        (root / "x" / f"{i}.JPEG").write_bytes(encode(photo(i)))
    (root / "x" / name).write_bytes(BAD_KINDS[name](photo(0)))
    message = first_batch_error(root)
    assert f"python -m dali_msda.pipelines.scan {root} --out good.txt" in message
    if name == "zero.JPEG":  # DALI names the file for some failures: so do we
        assert f"{root / 'x' / name} cannot be read or decoded" in message


def write_shard(path, samples):
    with tarfile.open(path, "w") as tar:
        for key, parts in samples:
            for ext, data in parts.items():
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))


def test_scan_lists_incomplete_and_undecodable_webdataset_samples(tmp_path):
    jpg = encode(photo(1))
    good = [(f"s{k:03d}", {"jpg": jpg, "cls": b"1"}) for k in range(10)]
    bad = [("nocls", {"jpg": jpg}), ("noimg", {"cls": b"2"}), ("badcls", {"jpg": jpg,
                                                                          "cls": b"cat"}),
           ("trunc", {"jpg": jpg[:200], "cls": b"0"})]
    write_shard(tmp_path / "a.tar", good[:5] + bad[:2])
    write_shard(tmp_path / "b.tar", good[5:] + bad[2:])
    report = scan_mod.main([str(tmp_path / "a.tar"), str(tmp_path / "b.tar"), "--quiet",
                            "--workers", "2"])
    found = {where.rsplit(":", 1)[1]: reason for where, reason in report["bad"]}
    assert set(found) == {"nocls", "noimg", "badcls", "trunc"}
    assert "no .cls" in found["nocls"] and "no image" in found["noimg"]
    assert "not a class index" in found["badcls"] and "does not decode" in found["trunc"]
    assert report["good"] == 10 and report["files"] == 14
    # the reader stops at an incomplete sample (a stated choice: scan, then repack); the error
    # says so and how to find it
    from dali_msda.pytorch import DataError, MixIterator

    pytest.importorskip("torch")
    write_shard(tmp_path / "c.tar", good[:5] + bad[:1] + good[5:])
    with pytest.raises(DataError, match=r"lacks its image or its \.cls.*\n.*pipelines\.scan "
                                        + r".*c\.tar"):  # at build: the reader indexes the shard
        for _ in MixIterator(imagenet_val(wds_paths=[str(tmp_path / "c.tar")], num_classes=3,
                                          batch_size=4, num_threads=1, device="cpu", crop=32,
                                          resize=32)):
            pass


def test_file_list_labels_are_checked_against_the_classes(tree, tmp_path):
    bad = tmp_path / "list.txt"
    bad.write_text(f"{tree}/train/a/000.JPEG 0\n{tree}/train/a/001.JPEG 4\n")
    from dali_msda import DataError

    with pytest.raises(DataError, match=r"line 2: expected 'path label' with the label a class "
                                        r"index, ASCII digits in \[0, 4\)"):
        imagenet_train(file_list=str(bad), classes=["a", "b", "c", "d"], device="cpu",
                       mix=MixConfig())
    with pytest.raises(ValueError, match=r"`num_classes` \(5\) differs from the number of "
                                         r"`classes` \(4\)"):
        bad.write_text(f"{tree}/train/a/000.JPEG 0\n")
        imagenet_train(file_list=str(bad), classes=["a", "b", "c", "d"], num_classes=5,
                       device="cpu", mix=MixConfig())


def run_scan(*args):
    return subprocess.run([sys.executable, "-m", "dali_msda.pipelines.scan", *map(str, args),
                           "--workers", "2", "--device", "cpu", "--quiet"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


def test_scan_of_a_file_list_and_exit_statuses(tree, tmp_path):
    """A file list is scanned as the reader reads it (last field the label, the rest the path,
    spaces included, relative to the list's folder): bad labels by line, missing and
    undecodable files; --out writes the good lines, which train. Exit status 0 when nothing
    is bad, 1 when something is, 2 for a usage error."""
    import shutil

    spaced = tmp_path / "with space"
    spaced.mkdir()
    shutil.copy(tree / "train" / "a" / "000.JPEG", spaced / "a photo.JPEG")
    good_abs = tree / "train" / "a" / "001.JPEG"
    (tmp_path / "rel.JPEG").write_bytes(good_abs.read_bytes())
    lines = [f"{spaced / 'a photo.JPEG'} 1", f"{good_abs} 0", "rel.JPEG 3",  # good
             f"{good_abs} -1", f"{good_abs} x", f"{good_abs} 4",  # labels: bad with 4 classes
             f"{tmp_path / 'nope.JPEG'} 0", f"{tree / 'train' / 'b' / 'cut200.JPEG'} 1", ""]
    lst = tmp_path / "list.txt"
    lst.write_text("\n".join(lines) + "\n")
    out = tmp_path / "good.txt"
    proc = run_scan(lst, "--num-classes", 4, "--out", out)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    bad = sorted(line.split(":", 2)[1] for line in proc.stdout.splitlines()
                 if line.startswith("BAD "))
    assert bad == ["4", "5", "6", "7", "8"], proc.stdout
    assert "no such file" in proc.stdout and "does not decode" in proc.stdout
    assert "8 lines: 3 good, 5 bad" in proc.stdout
    written = out.read_text().splitlines()
    assert written == [f"{spaced / 'a photo.JPEG'} 1", f"{good_abs} 0",
                       f"{tmp_path / 'rel.JPEG'} 3"]
    pipe = imagenet_val(file_list=str(out), num_classes=4, batch_size=3, num_threads=1,
                        device="cpu", crop=16, resize=20, targets="index")
    pipe.build()
    assert [int(np.array(t)[0]) for t in pipe.run()[1]] == [1, 0, 3]
    # nothing bad: 0; a usage error: 2
    assert run_scan(out, "--num-classes", 4).returncode == 0
    assert run_scan(tmp_path / "missing").returncode == 2
    assert run_scan(out, "--num-classes", 0).returncode == 2
    before = out.read_text()  # the list scanned is not overwritten by its own good lines
    proc = run_scan(out, "--num-classes", 4, "--out", out)
    assert proc.returncode == 2 and "is the file being scanned" in proc.stderr
    assert out.read_text() == before


def test_scan_checks_cls_against_the_class_count(tmp_path):
    jpg = encode(photo(1))
    # the rest of fn.msda.class_label's refusals (test_cls_labels_are_parsed_strictly): the
    # scan's rule must be the op's
    more = [b"1a", b"+3", b"", b"  ", b"1 2", b"\x80", b"\xef\xbc\x91", b"18446744073709551618"]
    write_shard(tmp_path / "s.tar", [("k0", {"jpg": jpg, "cls": b"2"}),
                                     ("k1", {"jpg": jpg, "cls": b" 7\n"}),
                                     ("k2", {"jpg": jpg, "cls": b"-1"})] +
                [(f"k{3 + k}", {"jpg": jpg, "cls": text}) for k, text in enumerate(more)])
    proc = run_scan(tmp_path / "s.tar", "--num-classes", 3)
    assert proc.returncode == 1
    assert "s.tar:k1: .cls is not a class index" in proc.stdout and "below 3" in proc.stdout
    for k in range(2, 3 + len(more)):
        assert f"s.tar:k{k}: .cls is not a class index" in proc.stdout, (k, proc.stdout)
    assert f"{3 + len(more)} samples: 1 good, {2 + len(more)} bad" in proc.stdout
    proc = run_scan(tmp_path / "s.tar")  # without a class count, 7 is a class index
    assert "s.tar:k1:" not in proc.stdout and "s.tar:k2:" in proc.stdout


def test_scan_of_segmentation_pairs(tmp_path):
    """--segmentation: each bad pair named with its rule and value; the good pairs' list trains;
    exit 1 with bad pairs, 0 without."""
    from PIL import Image

    root = tmp_path / "seg"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)

    def pair(name, mask, size=(40, 30)):
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(
            root / "images" / f"{name}.png")
        mask.save(root / "masks" / f"{name}.png")

    good = np.full((30, 40), 2, np.uint8)
    good[:3] = 255
    pair("good", Image.fromarray(good))
    pair("good2", Image.fromarray(good))
    pair("small", Image.fromarray(good[:, :39]))
    pair("rgb", Image.fromarray(np.zeros((30, 40, 3), np.uint8)))
    pair("palette", Image.fromarray(good).convert("P"))
    pair("label9", Image.fromarray(np.full((30, 40), 9, np.uint8)))
    pair("label5", Image.fromarray(np.full((30, 40), 5, np.uint8)))  # the first not a class
    pair("label4", Image.fromarray(np.full((30, 40), 4, np.uint8)))  # the last class: good
    (root / "masks" / "cut.png").write_bytes((root / "masks" / "good.png").read_bytes()[:60])
    Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(root / "images" / "cut.png")
    out = tmp_path / "pairs.txt"
    proc = run_scan("--segmentation", str(root), "--num-classes", "5", "--out", str(out))
    assert proc.returncode == 1, proc.stderr
    text = proc.stdout
    assert re.search(r"BAD .*small.png: mask of .*small.png: its size 39 x 30 \(W x H\) differs "
                     r"from its image's 40 x 30", text)
    assert re.search(r"BAD .*rgb.png: .*an RGB PNG: its values are colours, not class indices",
                     text)
    assert re.search(r"BAD .*label9.png: .*neither classes \(below 5\) nor `--ignore-index` 255: "
                     r"\[9\]", text)
    assert re.search(r"BAD .*label5.png: .*neither classes \(below 5\) nor `--ignore-index` 255: "
                     r"\[5\]", text)
    assert re.search(r"BAD .*masks/cut.png: .*does not decode", text)
    # a palette PNG's indices are its labels (as Pillow reads it): good
    assert "palette.png" not in "".join(ln for ln in text.splitlines() if ln.startswith("BAD"))
    assert "9 pairs: 4 good, 5 bad" in text
    from dali_msda.pipelines import segmentation_pairs

    images, masks = segmentation_pairs(file_list=str(out))
    assert [os.path.basename(p) for p in images] == ["good.png", "good2.png", "label4.png",
                                                        "palette.png"]
    os.remove(root / "masks" / "label9.png")
    proc = run_scan("--segmentation", str(root))
    assert proc.returncode == 1 and "1 image(s) without a mask" in proc.stdout
    for name in ("small", "rgb", "palette", "cut", "label9", "label5", "label4"):
        for sub in ("images", "masks"):
            p = root / sub / f"{name}.png"
            if p.exists():
                os.remove(p)
    proc = run_scan("--segmentation", str(root), "--num-classes", "5")
    assert proc.returncode == 0 and "2 pairs: 2 good, 0 bad" in proc.stdout, proc.stdout


def test_a_label_no_int32_holds_is_bad_without_num_classes(tree, tmp_path):
    """Without --num-classes a label may be any class index the reader can hold: an int32;
    99999999999 is not one (the reader would wrap it), and is listed with the rule."""
    lst = tmp_path / "list.txt"
    lst.write_text(f"{tree}/train/a/000.JPEG 0\n{tree}/train/a/001.JPEG 99999999999\n"
                   f"{tree}/train/a/002.JPEG 2147483647\n")
    report = scan_mod.main([str(lst), "--quiet", "--workers", "1", "--device", "cpu"])
    line = f"{tree}/train/a/001.JPEG 99999999999"
    assert [(w.rsplit(":", 1)[1], r) for w, r in report["bad"]] == [
        ("2", "the label is not a class index (ASCII digits, below 2^31, what an int32 label "
              f"holds (no --num-classes)): {line!r}")]


def test_a_class_of_files_the_reader_reads_but_no_image_is_empty(tmp_path):
    """What the reader reads from a class folder (images, and the audio files it also takes)
    and what makes a class empty: no image, whatever else it holds (an audio file the reader
    reads, a text file it skips, nothing at all); the empty classes keep their index."""
    from dali_msda.pipelines.common import tree_items

    for name, files in {"a": ["x.JPEG", "notes.txt"], "b": ["clip.wav"], "c": [],
                        "d": ["readme.txt"], "e": ["y.png", "z.wav"]}.items():
        os.makedirs(tmp_path / name)
        for f in files:
            (tmp_path / name / f).write_bytes(b"data")
    items, skipped, empty, classes = tree_items(str(tmp_path))
    assert classes == ["a", "b", "c", "d", "e"]
    assert empty == ["b", "c", "d"]
    assert sorted((os.path.relpath(p, tmp_path), label) for p, label in items) == [
        ("a/x.JPEG", 0), ("b/clip.wav", 1), ("e/y.png", 4), ("e/z.wav", 4)]
    assert sorted(os.path.relpath(p, tmp_path) for p in skipped) == ["a/notes.txt",
                                                                     "d/readme.txt"]


@pytest.mark.parametrize("flags,message", [
    (["--ignore-index", "256"], "--ignore-index must be in [0, 255] (a label of the uint8 masks), "
                                "or -1 for none, as the segmentation pipelines take it; got 256"),
    (["--ignore-index", "-2"], "--ignore-index must be in [0, 255]"),
    (["--num-classes", "257"], "--num-classes must be <= 256 with --segmentation (uint8 masks, "
                               "as the segmentation pipelines take them); got 257")])
def test_segmentation_flags_the_pipelines_refuse_are_usage_errors(tmp_path, flags, message):
    """A mask scan with an ignore label or a class count that no uint8 mask and no segmentation
    pipeline takes is a usage error (exit status 2), not a report calling every mask bad (or
    good)."""
    proc = run_scan(tmp_path, "--segmentation", *flags)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
