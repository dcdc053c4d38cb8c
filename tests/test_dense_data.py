"""Dense targets never silently wrong: label maps are read as class indices whatever their PNG
form (fn.msda.label_map: palette PNGs as they come, as Pillow reads them) or refused naming the
file, the rule and the value; labels beyond the classes are refused; a file no decoder can read
is named by the pipeline itself (fn.msda.image_check), and the training script prints the
commands that get the user's own run past it."""

import os
import re
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from PIL import Image

from dali_msda import DataError
from dali_msda.pipelines import segmentation_train, segmentation_val
from dali_msda.pytorch import LastBatchPolicy, MixIterator
from nvidia.dali import fn, pipeline_def, types

from conftest import DEVICES

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def voc_colors():
    """Pascal VOC's colour map (the devkit's bitget): 1 = (128, 0, 0), 2 = (0, 128, 0), ..."""
    from dali_msda.pipelines.scan import voc_palette

    return np.array(voc_palette(), np.uint8)


def indices(h=30, w=40, seed=0):
    """A map of classes 0, 1, 2 in blocks and the ignore label 255 on its border."""
    rng = np.random.default_rng(seed)
    m = np.zeros((h, w), np.uint8)
    m[5:20, 4:25] = 1
    m[12:, 22:] = 2
    m[rng.integers(0, h), rng.integers(0, w)] = 2
    m[0, :] = 255
    return m


def palette_png(path, m, palette, bits=8, transparency=None):
    im = Image.frombytes("P", (m.shape[1], m.shape[0]), m.tobytes())
    im.putpalette(np.asarray(palette, np.uint8).ravel().tolist())
    kw = {"bits": bits} if bits != 8 else {}
    if transparency is not None:
        kw["transparency"] = transparency
    im.save(path, **kw)


def png_chunk(kind, data):
    """One PNG chunk: length, type, data, CRC."""
    return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")


def read_maps(files, num_classes=21, ignore_index=255, output_type=types.RGB):
    """fn.msda.label_map of each file (encoded + its decode), one batch."""
    @pipeline_def(batch_size=len(files), num_threads=2, device_id=None)
    def pipe():
        enc, _ = fn.readers.file(files=[str(f) for f in files])
        decoded = fn.decoders.image(enc, device="cpu", output_type=output_type)
        return fn.msda.label_map(enc, decoded, num_classes=num_classes,
                                 ignore_index=ignore_index)

    p = pipe()
    p.build()
    (out,) = p.run()
    return [np.array(t)[..., 0] for t in out]


def map_error(path, **kw):
    with pytest.raises(RuntimeError) as info:
        read_maps([path], **kw)
    text = str(info.value)
    found = re.search(r"msda\.label_map: (.*)", text)
    assert found, text[-2000:]
    return found.group(1)


# ---- every PNG form a label map takes ------------------------------------------------------------

@pytest.mark.parametrize("output_type", [types.RGB, types.ANY_DATA], ids=["rgb", "any"])
def test_label_maps_of_every_png_form_are_pillows_indices(tmp_path, output_type):
    """Greyscale 8-bit, 1-bit, palette PNGs (VOC's colours; 2-bit; with a transparent entry;
    a palette of greys in another order than their levels): the op gives what
    np.asarray(Image.open(p)) gives, at 224 x 224 too, from an RGB or an ANY_DATA decode."""
    m = indices()
    files = {}
    files["grey"] = tmp_path / "grey.png"
    Image.fromarray(m).save(files["grey"])
    files["voc"] = tmp_path / "voc.png"
    palette_png(files["voc"], m, voc_colors())
    files["voc_trns"] = tmp_path / "voc_trns.png"
    palette_png(files["voc_trns"], m, voc_colors(), transparency=255)
    small = np.minimum(m, 3)
    files["two_bit"] = tmp_path / "two_bit.png"
    palette_png(files["two_bit"], small, voc_colors()[:4], bits=2)
    files["one_bit"] = tmp_path / "one_bit.png"
    Image.fromarray(m == 1).save(files["one_bit"])
    big = np.tile(m, (8, 6))[:224, :224].copy()
    files["voc224"] = tmp_path / "voc224.png"
    palette_png(files["voc224"], big, voc_colors())
    greys = np.repeat((255 - np.arange(256, dtype=np.uint8))[:, None], 3, axis=1)
    files["grey_palette"] = tmp_path / "grey_palette.png"
    palette_png(files["grey_palette"], m, greys)  # index i shown as grey level 255 - i
    got = read_maps(list(files.values()), output_type=output_type)
    for (name, path), g in zip(files.items(), got):
        expect = np.asarray(Image.open(path)).astype(np.uint8)
        np.testing.assert_array_equal(g, expect, err_msg=name)
    np.testing.assert_array_equal(got[1], m)  # VOC's palette PNG: its indices, not grey levels
    assert set(np.unique(got[1])) == {0, 1, 2, 255}


def test_palette_maps_decoded_to_grey_levels(tmp_path):
    """Decoded to one channel (types.GRAY): a palette of greys (index i shown as 255 - i) still
    gives its indices; one of colours is refused, saying how to decode it."""
    m = indices()
    greys = np.repeat((255 - np.arange(256, dtype=np.uint8))[:, None], 3, axis=1)
    palette_png(tmp_path / "greys.png", m, greys)
    palette_png(tmp_path / "voc.png", m, voc_colors())
    np.testing.assert_array_equal(read_maps([tmp_path / "greys.png"], output_type=types.GRAY)[0],
                                  m)
    assert map_error(tmp_path / "voc.png", output_type=types.GRAY).startswith(
        f"the label map {tmp_path / 'voc.png'} is a palette PNG but pixel (0, 0) decodes to "
        "(220, 220, 220), no colour of its palette of 256 (decoded to grey levels: decode "
        "palette maps with output_type=types.ANY_DATA or RGB)")


def test_a_palette_that_shows_one_colour_for_two_indices_is_refused(tmp_path):
    """Indices 1 and 3 share (128, 0, 0): where a pixel shows it, its index is unknown; a
    palette whose shared colour no pixel shows is fine."""
    colors = voc_colors().copy()
    colors[3] = colors[1]
    m = indices()
    path = tmp_path / "shared.png"
    palette_png(path, m, colors)
    msg = map_error(path)
    assert msg.startswith(f"the label map {path} is a palette PNG whose palette gives indices 1 "
                          "and 3 the same colour (128, 0, 0), which pixel (")
    assert "--convert-masks" in msg
    unused = tmp_path / "unused.png"
    colors = voc_colors().copy()
    colors[7] = colors[6]  # no pixel shows 6 or 7
    palette_png(unused, m, colors)
    np.testing.assert_array_equal(read_maps([unused])[0], m)


def test_a_palette_index_beyond_the_palette_is_refused(tmp_path):
    """Pixel (1, 2) holds index 5 of a 3-colour palette (Pillow reads 5; decoders show black,
    no colour of the palette): refused naming the pixel, not read as a neighbouring colour's
    index."""
    m = np.zeros((4, 6), np.uint8)
    m[1, 2], m[2, :] = 5, 1
    rows = b"".join(b"\0" + row.tobytes() for row in m)
    png = (b"\x89PNG\r\n\x1a\n" +
           png_chunk(b"IHDR", struct.pack(">IIBBBBB", 6, 4, 8, 3, 0, 0, 0)) +
           png_chunk(b"PLTE", bytes([10, 20, 30, 40, 50, 60, 70, 80, 90])) +
           png_chunk(b"IDAT", zlib.compress(rows)) + png_chunk(b"IEND", b""))
    path = tmp_path / "beyond.png"
    path.write_bytes(png)
    np.testing.assert_array_equal(np.asarray(Image.open(path)), m)
    assert map_error(path).startswith(f"the label map {path} is a palette PNG but pixel (1, 2) "
                                      "decodes to (0, 0, 0), no colour of its palette of 3")


@pytest.mark.parametrize("kind", ["rgb", "rgba", "grey_alpha", "grey16", "jpeg"])
def test_maps_that_cannot_be_indices_are_refused_naming_the_file(tmp_path, kind):
    m = indices()
    path = tmp_path / f"{kind}.{'jpg' if kind == 'jpeg' else 'png'}"
    if kind == "rgb":
        Image.fromarray(voc_colors()[m]).save(path)
    elif kind == "rgba":
        Image.fromarray(np.dstack([voc_colors()[m], np.full(m.shape, 255, np.uint8)])).save(path)
    elif kind == "grey_alpha":
        Image.merge("LA", [Image.fromarray(m), Image.fromarray(np.full(m.shape, 255,
                                                                       np.uint8))]).save(path)
    elif kind == "grey16":
        Image.fromarray(m.astype(np.uint16) * 3).save(path)
    else:
        Image.fromarray(m).save(path, quality=95)
    msg = map_error(path)
    expect = {
        "rgb": "is an RGB PNG (colour type 2): its values are colours, not class indices",
        "rgba": "is an RGBA PNG (colour type 6): its values are colours, not class indices",
        "grey_alpha": "is a grey-and-alpha PNG (colour type 4)",
        "grey16": "is a 16-bit greyscale PNG: decoders scale it to 8 bits (value / 257)",
        "jpeg": "is a JPEG: lossy compression puts values between the classes at their edges",
    }[kind]
    assert msg.startswith(f"the label map {path} {expect}"), msg
    assert "python -m dali_msda.pipelines.scan --segmentation" in msg


def test_labels_beyond_the_classes_are_refused(tmp_path):
    """A grey map holding 30 with 21 classes: refused with the value and where; accepted when
    30 is the ignore label, or with 31 classes."""
    m = indices()
    m[7, 9] = 30
    path = tmp_path / "thirty.png"
    Image.fromarray(m).save(path)
    assert map_error(path) == (f"the label map {path} holds label 30 at pixel (7, 9): labels "
                               "must be classes (below `num_classes` 21) or the ignore label "
                               "(255).")
    assert read_maps([path], num_classes=31)[0][7, 9] == 30
    assert "holds label 30 at pixel (7, 9)" in map_error(path, num_classes=30)  # the edge
    assert read_maps([path], num_classes=256)[0][7, 9] == 30  # every uint8 label a class
    for classes in (0, 257):
        assert map_error(path, num_classes=classes) == (
            f"`num_classes` must be in [1, 256] (uint8 maps); got {classes}.")
    m[m == 255] = 0  # with 30 the ignore label, 255 is none
    # a new file: rewriting one that the pipelines above mapped (DALI's reader mmaps its files,
    # and a pipeline kept alive by the caught error's traceback may still prefetch it) can
    # truncate the mapping under a reader thread: SIGBUS (seen once in CI)
    path = tmp_path / "thirty_no_255.png"
    Image.fromarray(m).save(path)
    assert read_maps([path], ignore_index=30)[0][7, 9] == 30
    assert "holds label 30" in map_error(path, ignore_index=-1)
    # the palette path checks too: index 22 of VOC's palette
    palette_png(tmp_path / "p22.png", np.where(m == 30, 22, m).astype(np.uint8), voc_colors())
    assert "holds label 22 at pixel (7, 9)" in map_error(tmp_path / "p22.png")


def test_other_formats_are_read_when_grey(tmp_path):
    m = indices()
    Image.fromarray(m).save(tmp_path / "grey.bmp")
    np.testing.assert_array_equal(read_maps([tmp_path / "grey.bmp"])[0], m)
    Image.fromarray(voc_colors()[m]).save(tmp_path / "colour.bmp")
    assert "is not a PNG and has colour (pixel (0, 0) is (224, 224, 192))" in map_error(
        tmp_path / "colour.bmp")


# ---- the pipelines on a Pascal VOC-style tree ---------------------------------------------------

def voc_tree(root, n=6, bad=None):
    """images/*.jpg and masks/*.png as VOC's SegmentationClass ships them (palette PNGs);
    `bad`: (name, writer(path, m)) replacing one mask."""
    os.makedirs(os.path.join(root, "images"))
    os.makedirs(os.path.join(root, "masks"))
    rng = np.random.default_rng(1)
    for k in range(n):
        m = indices(48, 64, seed=k)
        img = voc_colors()[np.where(m == 255, 0, m)].astype(np.float32)
        img += rng.normal(0, 3, img.shape)
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(
            os.path.join(root, "images", f"{k:04d}.png"))
        mask = os.path.join(root, "masks", f"{k:04d}.png")
        if bad and k == n - 1:
            bad(mask, m)
        else:
            palette_png(mask, m, voc_colors())
    return root


@pytest.mark.parametrize("device", DEVICES)
def test_voc_palette_masks_train_as_they_come(tmp_path, device):
    """segmentation_val and segmentation_train over VOC-style palette masks give the indices
    (0, 1, 2, 255), never the grey levels of their colours (38, 75, 220)."""
    root = voc_tree(str(tmp_path / "voc"))
    val = MixIterator(segmentation_val(root, num_classes=21, batch_size=3, num_threads=2,
                                       device=device, crop=64, dtype="float32"),
                      last_batch_policy=LastBatchPolicy.PARTIAL)
    seen = set()
    for _, maps in val:
        seen |= set(np.unique(maps.cpu().numpy()).tolist())
    assert seen == {0, 1, 2, 255}
    train = MixIterator(segmentation_train(root, num_classes=21, batch_size=3, num_threads=2,
                                           device=device, crop=48, dtype="float32"))
    seen = set()
    for _, _, maps in train:
        seen |= set(np.unique(maps.cpu().numpy()).tolist())
    assert seen <= {0, 1, 2, 255} and {1, 2} <= seen


def rgb_mask(path, m):
    Image.fromarray(voc_colors()[m]).save(path)


def grey_alpha_mask(path, m):
    Image.merge("LA", [Image.fromarray(m), Image.fromarray(np.full(m.shape, 255, np.uint8))]
                ).save(path)


def label_30(path, m):
    m = m.copy()
    m[10, 10] = 30
    Image.fromarray(m).save(path)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("bad", [rgb_mask, grey_alpha_mask, label_30],
                         ids=["rgb", "grey_alpha", "label30"])
def test_the_pipelines_stop_on_a_bad_map_naming_it(tmp_path, device, bad):
    """Refused before decoding where the header says it (fn.msda.image_check: DALI's ANY_DATA
    decode fails on a grey-and-alpha PNG without saying why), by fn.msda.label_map else."""
    root = voc_tree(str(tmp_path / "voc"), bad=bad)
    path = os.path.join(root, "masks", "0005.png")
    expect = {rgb_mask: f"msda.image_check: the label map {path} is an RGB PNG",
              grey_alpha_mask: f"msda.image_check: the label map {path} is a grey-and-alpha PNG",
              label_30: f"msda.label_map: the label map {path} holds label 30 at pixel (10, 10)",
              }[bad]
    for make in (lambda: segmentation_val(root, num_classes=21, batch_size=6, num_threads=2,
                                          device=device, crop=32, dtype="float32"),
                 lambda: segmentation_train(root, num_classes=21, batch_size=6, num_threads=2,
                                            device=device, crop=32, dtype="float32")):
        with pytest.raises(DataError) as info:
            for _ in MixIterator(make()):
                pass
        text = str(info.value)
        assert expect in text, text
        assert f"python -m dali_msda.pipelines.scan --segmentation {root}" in text


def test_train_seg_stops_on_a_bad_map_naming_it(tmp_path):
    """The training example on a tree whose masks hold a label beyond --num-classes: it stops
    with the file named, not inside torch (IndexError: Target 30 is out of bounds)."""
    pytest.importorskip("torch")
    root = tmp_path / "data"
    for split in ("train", "val"):
        voc_tree(str(root / split), bad=label_30)
    proc = subprocess.run([sys.executable, "-m", "dali_msda.pipelines.train_seg", "--data",
                           str(root), "--num-classes", "21", "--epochs", "1", "--batch-size",
                           "3", "--crop", "32", "--device", "cpu", "--threads", "1"],
                          capture_output=True, text=True, timeout=600, cwd=ROOT,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode != 0
    assert "IndexError" not in proc.stderr
    assert (f"train_seg: stopped on the data: msda.label_map: the label map "
            f"{root / 'train' / 'masks' / '0005.png'} holds label 30") in proc.stderr, \
        proc.stderr[-3000:]


# ---- scan: the same rules, and the conversion ---------------------------------------------------

def test_scan_converts_what_it_can(tmp_path):
    """--convert-masks writes index PNGs for RGB masks in VOC's colours (--palette voc), a
    grey-and-alpha mask's grey, a palette whose two indices share a colour, and a 16-bit grey
    mask whose values fit 8 bits (255, the ignore label, included); the pairs list trains; a
    JPEG mask cannot be converted and stays listed."""
    root = str(tmp_path / "voc")
    voc_tree(root, n=6)
    Image.fromarray(indices(48, 64, seed=1).astype(np.uint16)).save(
        os.path.join(root, "masks", "0001.png"))  # 16-bit, values up to 255
    m = indices(48, 64, seed=2)
    rgb_mask(os.path.join(root, "masks", "0002.png"), m)
    Image.merge("LA", [Image.fromarray(indices(48, 64, seed=3)),
                       Image.fromarray(np.full((48, 64), 255, np.uint8))]).save(
        os.path.join(root, "masks", "0003.png"))
    shared = voc_colors().copy()
    shared[5] = shared[1]
    palette_png(os.path.join(root, "masks", "0004.png"), indices(48, 64, seed=4), shared)
    os.remove(os.path.join(root, "masks", "0005.png"))
    Image.fromarray(indices(48, 64, seed=5)).save(os.path.join(root, "masks", "0005.jpg"))
    out = tmp_path / "fixed"
    proc = subprocess.run([sys.executable, "-m", "dali_msda.pipelines.scan", "--segmentation",
                           root, "--num-classes", "21", "--convert-masks", str(out),
                           "--palette", "voc", "--workers", "1", "--device", "cpu", "--quiet"],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    bad = [ln for ln in proc.stdout.splitlines() if ln.startswith("BAD")]
    assert len(bad) == 1 and "0005.jpg" in bad[0] and "a JPEG" in bad[0], proc.stdout
    assert "converted 4 mask(s)" in proc.stdout
    for k, seed in ((1, 1), (2, 2), (3, 3), (4, 4)):
        np.testing.assert_array_equal(np.asarray(Image.open(out / f"{k:04d}.png")),
                                      indices(48, 64, seed=seed))
    val = MixIterator(segmentation_val(file_list=str(out / "pairs.txt"), num_classes=21,
                                       batch_size=5, num_threads=2, device="cpu", crop=32,
                                       dtype="float32"),
                      last_batch_policy=LastBatchPolicy.PARTIAL)
    n = sum(len(maps) for _, maps in val)
    assert n == 5


# ---- a file no decoder can read, named by the pipeline itself -----------------------------------

def encode_jpeg(seed, size=(48, 64)):
    import io

    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(buf, "JPEG",
                                                                           quality=90)
    return buf.getvalue()


def headers_only(data):
    return data[:data.index(b"\xff\xda")]  # up to the start of the scan


def image_tree(root, bad_name=None, bad=b"", split="train"):
    """root/{train,val}/{a,b}/*.JPEG, 8 images a class; `bad_name` written with `bad` into
    split/a."""
    for s in ("train", "val"):
        for c in ("a", "b"):
            os.makedirs(os.path.join(root, s, c), exist_ok=True)
            for k in range(8):
                with open(os.path.join(root, s, c, f"{k}.JPEG"), "wb") as f:
                    f.write(encode_jpeg(k + 10 * (c == "b")))
    if bad_name:
        with open(os.path.join(root, split, "a", bad_name), "wb") as f:
            f.write(bad)
    return root


def check_images(files):
    @pipeline_def(batch_size=len(files), num_threads=1, device_id=None)
    def pipe():
        enc, _ = fn.readers.file(files=[str(f) for f in files])
        return fn.decoders.image(fn.msda.image_check(enc), device="cpu")

    p = pipe()
    p.build()
    return p.run()[0]


def jpeg_segment(jpeg, marker):
    """(start, end) of the first segment with `marker` (its 0xff byte to its last byte + 1)."""
    at = 2
    while jpeg[at + 1] != marker:
        at += 2 + int.from_bytes(jpeg[at + 2:at + 4], "big")
    return at, at + 2 + int.from_bytes(jpeg[at + 2:at + 4], "big")


@pytest.mark.parametrize("kind", ["headers_only", "headers_then_eoi", "no_frame",
                                  "tables_but_no_frame", "scan_without_data", "segment_past_end",
                                  "segment_one_byte_short", "png_no_idat", "png_header_not_first",
                                  "png_empty_idat", "png_header_cut", "text"])
def test_image_check_names_streams_no_decoder_can_read(tmp_path, kind):
    """Each rule at its edge: a segment or chunk one byte short of its end, a scan header with
    nothing after it, a JPEG whose headers hold tables (DHT, DQT) but no frame header."""
    jpeg = encode_jpeg(0)
    sos = jpeg.index(b"\xff\xda")
    sof = jpeg_segment(jpeg, 0xc0)
    dqt = jpeg_segment(jpeg, 0xdb)
    import io

    png = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(png, "PNG")
    png = png.getvalue()
    ihdr = png[8:8 + 25]
    data, expect = {
        "headers_only": (headers_only(jpeg), f"is a JPEG with no image data: its {sos} bytes "
                                             "hold headers only, no start-of-scan (SOS) marker"),
        "headers_then_eoi": (headers_only(jpeg) + b"\xff\xd9", "is a JPEG that ends (EOI) "
                                                               "before any image data"),
        "no_frame": (b"\xff\xd8" + jpeg[sos:], "is a JPEG with a scan (SOS) but no frame header "
                                               "(SOFn) before it"),
        "tables_but_no_frame": (jpeg[:sof[0]] + jpeg[sof[1]:],
                                "is a JPEG with a scan (SOS) but no frame header (SOFn)"),
        "scan_without_data": (jpeg[:jpeg_segment(jpeg, 0xda)[1]],
                              "is a JPEG whose first scan holds no data"),
        "segment_past_end": (jpeg[:30], "is a JPEG whose segment at byte 20 (marker 0xdb, 67 "
                                        "bytes) runs past the end of the file (30 bytes)"),
        "segment_one_byte_short": (jpeg[:dqt[1] - 1],
                                   f"is a JPEG whose segment at byte {dqt[0]} (marker 0xdb, "
                                   f"{dqt[1] - dqt[0] - 2} bytes) runs past the end of the "
                                   f"file ({dqt[1] - 1} bytes)"),
        "png_no_idat": (png[:png.index(b"IDAT") - 4], "is a PNG with no image data (IDAT)"),
        "png_header_not_first": (png[:8] + png_chunk(b"tEXt", b"a\0b") + png[8:],
                                 "is a PNG whose first chunk is not its header (IHDR)"),
        "png_empty_idat": (png[:8] + ihdr + png_chunk(b"IDAT", b"") + png_chunk(b"IEND", b""),
                           "is a PNG with empty data"),
        "png_header_cut": (png[:8 + 25 - 1], "is a PNG whose chunk at byte 8 runs past the end "
                                             "of the file (32 bytes) before its image data"),
        "text": (b"hello, not an image", "is not an image format DALI decodes (JPEG, PNG, JPEG "
                                         "2000, TIFF, BMP, PNM, WebP): it starts with bytes 68 "
                                         "65 6c 6c 6f 2c 20 6e"),
    }[kind]
    path = tmp_path / f"{kind}.JPEG"
    path.write_bytes(data)
    with pytest.raises(RuntimeError) as info:
        check_images([path])
    assert f"msda.image_check: the image {path} {expect}" in str(info.value), str(info.value)


def big_endian_tiff(image):
    """An uncompressed RGB TIFF in big-endian ("MM") byte order, one strip (Pillow writes
    little-endian ones only)."""
    H, W, _ = image.shape
    data = image.tobytes()
    tags = [(256, 3, W), (257, 3, H), (258, 3, None), (259, 3, 1), (262, 3, 2), (273, 4, None),
            (277, 3, 3), (278, 3, H), (279, 4, len(data))]
    bits_at = 8 + 2 + 12 * len(tags) + 4
    strip_at = bits_at + 6
    out = b"MM\x00*" + struct.pack(">IH", 8, len(tags))
    for tag, kind, value in tags:
        count = 3 if tag == 258 else 1
        value = {258: bits_at, 273: strip_at}.get(tag, value)
        packed = struct.pack(">HH", value, 0) if kind == 3 and tag != 258 else \
            struct.pack(">I", value)
        out += struct.pack(">HHI", tag, kind, count) + packed
    return out + b"\0\0\0\0" + struct.pack(">HHH", 8, 8, 8) + data


def test_image_check_passes_good_streams_unchanged(tmp_path):
    """Every format DALI decodes passes (JPEG; lossless PNG, BMP, TIFF in both byte orders, PPM,
    PGM, WebP, JPEG 2000 as a .jp2 file and as a bare codestream, each decoding to the image
    written), and a JPEG cut inside its scan data (decoders make an image of it); the decoded
    images equal those of the unchecked stream."""
    image = np.random.default_rng(1).integers(0, 256, (40, 56, 3), np.uint8)
    files, lossless = [tmp_path / "x.jpg"], {}
    Image.fromarray(image).save(files[0])
    for ext, args in [("png", {}), ("bmp", {}), ("tif", {}), ("ppm", {}), ("pgm", {}),
                      ("webp", {"lossless": True}), ("jp2", {"irreversible": False}),
                      ("j2k", {"irreversible": False})]:
        files.append(tmp_path / f"x.{ext}")
        grey = ext == "pgm"
        Image.fromarray(image[..., 0] if grey else image).save(files[-1], **args)
        lossless[len(files) - 1] = np.repeat(image[..., :1], 3, 2) if grey else image
    files.append(tmp_path / "mm.tif")
    files[-1].write_bytes(big_endian_tiff(image))
    lossless[len(files) - 1] = image
    heads = [f.read_bytes()[:4] for f in files]
    assert {b"II*\x00", b"MM\x00*", b"P6\n5", b"P5\n5", b"RIFF", b"\x00\x00\x00\x0c",
            b"\xffO\xffQ"} <= set(heads), heads  # the magic numbers the op knows
    assert heads[2][:2] == b"BM", heads
    for k, decoded in enumerate(check_images(files)):
        assert np.array(decoded).shape == (40, 56, 3), files[k]
        if k in lossless:
            np.testing.assert_array_equal(np.array(decoded), lossless[k], err_msg=str(files[k]))
    root = image_tree(str(tmp_path / "t"))
    from dali_msda.pipelines import imagenet_val

    outs = []
    for check in (True, False):
        it = MixIterator(imagenet_val(os.path.join(root, "val"), batch_size=16, num_threads=1,
                                      device="cpu", crop=32, resize=36, dtype="float32",
                                      check_images=check),
                         last_batch_policy=LastBatchPolicy.PARTIAL)
        outs.append([x.numpy().copy() for x, _ in it])
    for a, b in zip(*outs):
        np.testing.assert_array_equal(a, b)


def test_image_check_passes_fill_bytes_before_markers(tmp_path):
    """0xff fill bytes may precede any marker (JPEG, ITU T.81 B.1.1.2; some encoders pad with
    them): a JPEG with three before each DQT, its SOF0 and SOS passes and decodes as without
    them."""
    jpeg = encode_jpeg(3)
    padded, at, pads = bytearray(jpeg[:2]), 2, 0
    while jpeg[at + 1] != 0xda:
        end = at + 2 + int.from_bytes(jpeg[at + 2:at + 4], "big")
        pad = jpeg[at + 1] in (0xdb, 0xc0)  # Pillow writes two DQT segments
        padded += b"\xff" * 3 * pad + jpeg[at:end]
        at, pads = end, pads + pad
    padded += b"\xff" * 3 + jpeg[at:]
    assert pads == 3 and len(padded) == len(jpeg) + 3 * (pads + 1)
    files = [tmp_path / "padded.jpg", tmp_path / "plain.jpg"]
    files[0].write_bytes(bytes(padded))
    files[1].write_bytes(jpeg)
    padded_image, plain_image = (np.array(x) for x in check_images(files))
    np.testing.assert_array_equal(padded_image, plain_image)
    np.testing.assert_array_equal(padded_image, np.asarray(Image.open(files[0])))


@pytest.mark.parametrize("device", DEVICES)
def test_training_names_a_headers_only_jpeg(tmp_path, device):
    """The file that once stopped training with "nvImageCodec failure: '#4'" and no name."""
    from dali_msda.pipelines import MixConfig, imagenet_train

    root = image_tree(str(tmp_path / "t"), "bad.JPEG", headers_only(encode_jpeg(3)))
    path = os.path.join(root, "train", "a", "bad.JPEG")
    with pytest.raises(DataError) as info:
        for _ in MixIterator(imagenet_train(os.path.join(root, "train"), batch_size=6,
                                            num_threads=1, device=device, crop=32,
                                            mix=MixConfig())):
            pass
    text = str(info.value)
    assert f"msda.image_check: the image {path} is a JPEG with no image data" in text, text
    assert f"python -m dali_msda.pipelines.scan {os.path.join(root, 'train')} --out good.txt" \
        in text


def run_train(args, cwd, timeout=600):
    return subprocess.run([sys.executable, "-m", "dali_msda.pipelines.train", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT))


def test_the_printed_way_out_trains_the_users_run(tmp_path):
    """Training stops on a bad file in the user's --data; the commands it prints, typed as
    printed in a fresh folder, scan the user's train/ and train on its good files with the
    user's --data and options (not the embedded set's classes and val split)."""
    import shlex

    pytest.importorskip("torch")
    root = image_tree(str(tmp_path / "data"), "bad.JPEG", headers_only(encode_jpeg(3)))
    user = ["--data", root, "--epochs", "1", "--batch-size", "8", "--crop", "32", "--width",
            "4", "--threads", "1", "--device", "cpu"]
    proc = run_train(user, ROOT)
    assert proc.returncode != 0
    found = re.search(r"For this run: `([^`]*)` lists every bad file and writes the good ones "
                      r"to good.txt; then `([^`]*)` trains on them.", proc.stderr)
    assert found, proc.stderr[-3000:]
    scan, train = (shlex.split(c) for c in found.groups())
    assert scan[3:] == [os.path.join(root, "train"), "--out", "good.txt"]
    assert train[3:] == ["--data", root, "--file-list", "good.txt", "--epochs", "1",
                         "--batch-size", "8", "--crop", "32", "--width", "4", "--threads", "1",
                         "--device", "cpu"]
    work = tmp_path / "work"
    work.mkdir()
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT)
    s = subprocess.run([sys.executable if a == "python" else a for a in scan] +
                       ["--workers", "1", "--quiet"], cwd=work, env=env, capture_output=True,
                       text=True, timeout=600)
    assert s.returncode == 1 and "bad.JPEG" in s.stdout, s.stdout + s.stderr
    t = subprocess.run([sys.executable if a == "python" else a for a in train], cwd=work, env=env,
                       capture_output=True, text=True, timeout=600)
    assert t.returncode == 0, t.stderr[-3000:]
    assert f"data: {root}" in t.stdout and "(16 images)" in t.stdout, t.stdout


def test_a_file_list_without_data_must_be_of_the_embedded_set(tmp_path):
    """--file-list's labels index --data's classes; without --data they would silently be the
    embedded set's, so a list of other files is refused, naming the first."""
    root = image_tree(str(tmp_path / "data"))
    lst = tmp_path / "good.txt"
    lst.write_text("".join(f"{os.path.join(root, 'train', 'a', f'{k}.JPEG')} 0\n"
                           for k in range(4)))
    proc = run_train(["--file-list", str(lst), "--epochs", "1", "--device", "cpu"], ROOT)
    assert proc.returncode == 2
    assert (f"--file-list {lst}: its labels index the classes of --data's train/, and no --data "
            f"was given") in proc.stderr
    assert f"but {os.path.join(root, 'train', 'a', '0.JPEG')} (and 3 more) is not a file of " \
        "the embedded dataset. Add --data ROOT" in proc.stderr
