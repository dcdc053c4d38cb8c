"""The embedded default dataset, and a WebDataset writer.

`embedded_dataset()` builds (once, then cached) a small ImageNet-style JPEG tree from the real
photographs that scikit-image ships: 14 classes, one per photograph, each class made of random
crops (varied size, aspect and position), flips and mild colour changes of its photograph:
train/ 14 x 30 images, val/ 14 x 8. It exists so that the main job runs out of the box without a
download; real datasets are used by passing their path.
"""

import fcntl
import io
import json
import os
import shutil
import tarfile

import numpy as np

from .common import tree_items

PHOTOS = [  # skimage/data file -> class name
    ("astronaut.png", "astronaut"), ("chelsea.png", "cat"), ("coffee.png", "coffee"),
    ("rocket.jpg", "rocket"), ("motorcycle_left.png", "motorcycle"),
    ("hubble_deep_field.jpg", "galaxies"), ("retina.jpg", "retina"), ("ihc.png", "tissue"),
    ("camera.png", "cameraman"), ("coins.png", "coins"), ("moon.png", "moon"),
    ("brick.png", "brick"), ("grass.png", "grass"), ("gravel.png", "gravel"),
]
VERSION = "v1"
TRAIN_PER_CLASS, VAL_PER_CLASS = 30, 8


DEFAULT_SIDES = (160, 288)  # long side range of the images, px
IMAGENET_SIDES = (400, 500)  # about ImageNet's (most of its photos are 500 x 375 or 375 x 500)


def cache_base():
    """Where the embedded datasets are built: $DALI_MSDA_CACHE, else ~/.cache/dali_msda."""
    return os.environ.get("DALI_MSDA_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "dali_msda")


def default_cache_dir(sides=DEFAULT_SIDES):
    suffix = "" if tuple(sides) == DEFAULT_SIDES else f"-{sides[0]}-{sides[1]}"
    return os.path.join(cache_base(), f"embedded-{VERSION}{suffix}")


def build_once(root, build, log=None, what="the embedded dataset"):
    """`root`, built by build(tmp) into a temporary folder then renamed, unless it is complete
    already. Safe under many processes at once (torchrun ranks): one builds it under a file
    lock, the others wait for it and then use it. `log` hears where it is being built."""
    done = os.path.join(root, ".complete")
    if os.path.exists(done):
        return root
    os.makedirs(os.path.dirname(root), exist_ok=True)
    with open(root + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also on a crash
        if os.path.exists(done):  # another process built it while this one waited
            return root
        if log:
            log(f"building {what} (once) in {root}")
        tmp = f"{root}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        build(tmp)
        shutil.rmtree(root, ignore_errors=True)  # a partial tree left by an older version
        os.replace(tmp, root)
        open(done, "w").close()
    return root


def photo_path(name):
    """Path of one of scikit-image's sample photographs (a file in skimage/data)."""
    try:
        import skimage
    except ImportError as e:
        raise ImportError("The sample photographs come with scikit-image: "
                          "pip install scikit-image") from e
    path = os.path.join(os.path.dirname(skimage.__file__), "data", name)
    if not os.path.exists(path):
        raise FileNotFoundError(f"scikit-image sample photograph {path} is missing")
    return path


def _photo(name):
    from PIL import Image

    return Image.open(photo_path(name)).convert("RGB")


def _variant(img, rng, sides=DEFAULT_SIDES):
    """A random crop (30-100% of the area, aspect 3/4-4/3) resized to `sides` px on the long
    side (160-288 by default), maybe flipped, with brightness and saturation jitter."""
    from PIL import Image, ImageEnhance

    w, h = img.size
    area = rng.uniform(0.3, 1.0) * w * h
    aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
    cw = int(min(w, round(np.sqrt(area * aspect))))
    ch = int(min(h, round(np.sqrt(area / aspect))))
    x0, y0 = rng.integers(0, w - cw + 1), rng.integers(0, h - ch + 1)
    out = img.crop((x0, y0, x0 + cw, y0 + ch))
    side = int(rng.integers(sides[0], sides[1] + 1))
    scale = side / max(cw, ch)
    out = out.resize((max(1, round(cw * scale)), max(1, round(ch * scale))), Image.BILINEAR)
    if rng.random() < 0.5:
        out = out.transpose(Image.FLIP_LEFT_RIGHT)
    out = ImageEnhance.Brightness(out).enhance(rng.uniform(0.8, 1.2))
    return ImageEnhance.Color(out).enhance(rng.uniform(0.8, 1.2))


def embedded_dataset(root=None, seed=0, sides=DEFAULT_SIDES, log=None):
    """Path of the embedded dataset (root/train, root/val), building it if needed. `sides`: the
    range of the images' long side; `IMAGENET_SIDES` gives photos of ImageNet's size (for
    throughput measurements, where decoding cost matters).

    Safe to call from many processes at once (torchrun ranks): one builds the dataset under a
    file lock, the others wait for it and then use it. `log` (a callable) hears where the
    dataset is being built."""
    root = os.path.abspath(root or default_cache_dir(sides))
    if os.path.exists(os.path.join(root, ".complete")):
        return root
    try:
        import skimage  # noqa: F401
        import PIL  # noqa: F401
    except ImportError as e:
        raise ImportError("The embedded dataset is made from scikit-image's sample "
                          "photographs: pip install scikit-image pillow") from e

    def build(tmp):
        rng = np.random.default_rng(seed)
        for split, count in (("train", TRAIN_PER_CLASS), ("val", VAL_PER_CLASS)):
            for fname, cls in PHOTOS:
                folder = os.path.join(tmp, split, cls)
                os.makedirs(folder, exist_ok=True)
                img = _photo(fname)
                for k in range(count):
                    path = os.path.join(folder, f"{cls}_{k:03d}.jpg")
                    _variant(img, rng, sides).save(path, quality=90)

    return build_once(root, build, log)


def write_webdataset(image_root, out_dir, shard_size=100):
    """Pack an ImageFolder tree into WebDataset tar shards: the files that
    fn.readers.file(file_root=image_root) reads, in its order and with its labels (the index of
    the class folder among all sorted folders), each as key.jpg (the file's bytes as they are:
    decoders read the format from them) + key.cls (the label as text); files the reader skips
    (other extensions, nested folders) are left out, as it leaves them. Returns the list of
    shard paths."""
    if shard_size < 1:
        raise ValueError(f"`shard_size` must be at least 1; got {shard_size}.")
    items = tree_items(image_root)[0]
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for start in range(0, len(items), shard_size):
        path = os.path.join(out_dir, f"shard-{start // shard_size:05d}.tar")
        with tarfile.open(path, "w") as tar:
            for k, (img_path, label) in enumerate(items[start:start + shard_size], start):
                with open(img_path, "rb") as f:
                    image = f.read()
                for ext, data in (("jpg", image), ("cls", str(label).encode())):
                    info = tarfile.TarInfo(f"{k:08d}.{ext}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        paths.append(path)
    return paths


# ---- the embedded segmentation dataset -----------------------------------------------------------

# classes of the segmentation set: three textures (backgrounds) and five objects, each class the
# scikit-image photograph its pixels are copied from
SEG_CLASSES = [("brick.png", "brick"), ("grass.png", "grass"), ("gravel.png", "gravel"),
               ("astronaut.png", "astronaut"), ("chelsea.png", "cat"), ("coffee.png", "coffee"),
               ("coins.png", "coins"), ("moon.png", "moon")]
SEG_BACKGROUNDS = 3  # the first three classes fill the background
SEG_IGNORE = 255     # the void band around every object (as PASCAL VOC marks its boundaries)
SEG_VERSION = "v2"  # v2: + instances.json (the same images and maps as v1)
MIN_OBJECT_PIXELS = 64  # an ellipse mostly covered by later ones is not an object box
SEG_TRAIN, SEG_VAL = 160, 40


def _seg_sample(photos, rng):
    """One (image, map, objects): a random crop of a texture as background, then one to three
    ellipses, each filled with a crop of an object photograph; the map holds, per pixel, the
    class of the photograph the pixel was copied from, and 255 on a 2-pixel band along every class
    boundary (the JPEG blurs colours there, as in VOC's void boundaries). `objects`: per ellipse
    still visible (at least MIN_OBJECT_PIXELS of its pixels neither covered by a later one nor
    void), its class and the box (x, y, w, h in pixels) of those pixels and their count."""
    from PIL import Image

    h, w = int(rng.integers(128, 193)), int(rng.integers(128, 193))

    def crop_of(k, size):
        img = photos[k]
        pw, ph = img.size
        cw = int(rng.integers(max(8, pw // 3), pw + 1))
        ch = int(rng.integers(max(8, ph // 3), ph + 1))
        x0, y0 = int(rng.integers(0, pw - cw + 1)), int(rng.integers(0, ph - ch + 1))
        return np.asarray(img.crop((x0, y0, x0 + cw, y0 + ch)).resize(size, Image.BILINEAR))

    bg = int(rng.integers(0, SEG_BACKGROUNDS))
    image = crop_of(bg, (w, h)).copy()
    labels = np.full((h, w), bg, np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    instance = np.zeros((h, w), np.int32)  # which ellipse each pixel shows (0: background)
    classes = []
    for n in range(int(rng.integers(1, 4))):
        k = int(rng.integers(SEG_BACKGROUNDS, len(SEG_CLASSES)))
        ry, rx = rng.uniform(0.15, 0.4) * h, rng.uniform(0.15, 0.4) * w
        cy, cx = rng.uniform(ry, h - ry), rng.uniform(rx, w - rx)
        inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
        fill = crop_of(k, (w, h))
        image[inside] = fill[inside]
        labels[inside] = k
        instance[inside] = n + 1
        classes.append(k)
    edge = np.zeros((h, w), bool)
    for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
        a = labels[max(dy, 0):h, max(dx, 0):w + min(dx, 0)]
        b = labels[:h - dy, max(-dx, 0):w - max(dx, 0)]
        diff = a != b
        edge[max(dy, 0):h, max(dx, 0):w + min(dx, 0)] |= diff
        edge[:h - dy, max(-dx, 0):w - max(dx, 0)] |= diff
    labels[edge] = SEG_IGNORE
    objects = []
    for n, k in enumerate(classes):
        ys, xs = np.nonzero((instance == n + 1) & ~edge)
        if len(ys) >= MIN_OBJECT_PIXELS:
            x0, y0 = int(xs.min()), int(ys.min())
            box = (x0, y0, int(xs.max()) + 1 - x0, int(ys.max()) + 1 - y0)
            objects.append((k, box, len(ys)))
    return Image.fromarray(image), Image.fromarray(labels), objects  # map: uint8 2-D, "L"


def segmentation_dataset(root=None, seed=0, log=None):
    """Path of the embedded segmentation dataset, building it once (then cached, like
    `embedded_dataset`): root/train and root/val, each with images/NAME.jpg and masks/NAME.png
    (single-channel PNG, pixel value = class index; 255 = ignore), 160 and 40 pairs of
    128-192 px sides, 8 classes (`SEG_CLASSES`: brick, grass, gravel as backgrounds; astronaut,
    cat, coffee, coins, moon as ellipses pasted on them), made from scikit-image's photographs.
    Each split also has instances.json, COCO-style detection annotations of its images: one box
    per visible ellipse (the box of its visible pixels, xywh in pixels; category id = class
    index, 3-7; `file_name` relative to images/), for `fn.readers.coco`.
    Safe under many processes (a file lock)."""
    root = os.path.abspath(root or os.path.join(cache_base(), f"segmentation-{SEG_VERSION}"))

    def build(tmp):
        photos = [_photo(name) for name, _ in SEG_CLASSES]
        rng = np.random.default_rng(seed)
        for split, count in (("train", SEG_TRAIN), ("val", SEG_VAL)):
            for sub in ("images", "masks"):
                os.makedirs(os.path.join(tmp, split, sub), exist_ok=True)
            coco = {"images": [], "annotations": [], "categories": [
                {"id": k, "name": name} for k, (_, name) in enumerate(SEG_CLASSES)
                if k >= SEG_BACKGROUNDS]}
            for k in range(count):
                image, labels, objects = _seg_sample(photos, rng)
                name = f"{split}_{k:04d}"
                image.save(os.path.join(tmp, split, "images", name + ".jpg"), quality=90)
                labels.save(os.path.join(tmp, split, "masks", name + ".png"))
                coco["images"].append({"id": k + 1, "file_name": name + ".jpg",
                                       "width": image.width, "height": image.height})
                for cls, box, pixels in objects:
                    coco["annotations"].append({
                        "id": len(coco["annotations"]) + 1, "image_id": k + 1,
                        "category_id": cls, "bbox": list(box), "area": pixels, "iscrowd": 0})
            with open(os.path.join(tmp, split, "instances.json"), "w") as f:
                json.dump(coco, f)

    return build_once(root, build, log, "the embedded segmentation dataset")
