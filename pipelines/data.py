"""The embedded default dataset, and a WebDataset writer.

`embedded_dataset()` builds (once, then cached) a small ImageNet-style JPEG tree from the real
photographs that scikit-image ships: 14 classes, one per photograph, each class made of random
crops (varied size, aspect and position), flips and mild colour changes of its photograph:
train/ 14 x 30 images, val/ 14 x 8. It exists so that the main job runs out of the box without a
download; real datasets are used by passing their path.
"""

import fcntl
import io
import os
import shutil
import tarfile

import numpy as np

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


def default_cache_dir(sides=DEFAULT_SIDES):
    base = os.environ.get("DALI_MSDA_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "dali_msda")
    suffix = "" if tuple(sides) == DEFAULT_SIDES else f"-{sides[0]}-{sides[1]}"
    return os.path.join(base, f"embedded-{VERSION}{suffix}")


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
    done = os.path.join(root, ".complete")
    if os.path.exists(done):
        return root
    try:
        import skimage  # noqa: F401
        import PIL  # noqa: F401
    except ImportError as e:
        raise ImportError("The embedded dataset is made from scikit-image's sample "
                          "photographs: pip install scikit-image pillow") from e
    os.makedirs(os.path.dirname(root), exist_ok=True)
    with open(root + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also on a crash
        if os.path.exists(done):  # another process built it while this one waited
            return root
        if log:
            log(f"building the embedded dataset (once) in {root}")
        tmp = f"{root}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        rng = np.random.default_rng(seed)
        for split, count in (("train", TRAIN_PER_CLASS), ("val", VAL_PER_CLASS)):
            for fname, cls in PHOTOS:
                folder = os.path.join(tmp, split, cls)
                os.makedirs(folder, exist_ok=True)
                img = _photo(fname)
                for k in range(count):
                    path = os.path.join(folder, f"{cls}_{k:03d}.jpg")
                    _variant(img, rng, sides).save(path, quality=90)
        shutil.rmtree(root, ignore_errors=True)  # a partial tree left by an older version
        os.replace(tmp, root)
        open(done, "w").close()
    return root


def write_webdataset(image_root, out_dir, shard_size=100):
    """Pack an ImageFolder tree into WebDataset tar shards (key.jpg + key.cls, the class index
    of the sorted class folders). Returns the list of shard paths."""
    classes = sorted(d.name for d in os.scandir(image_root) if d.is_dir())
    items = [(os.path.join(image_root, c, f), i) for i, c in enumerate(classes)
             for f in sorted(os.listdir(os.path.join(image_root, c)))]
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for start in range(0, len(items), shard_size):
        path = os.path.join(out_dir, f"shard-{start // shard_size:05d}.tar")
        with tarfile.open(path, "w") as tar:
            for k, (img_path, label) in enumerate(items[start:start + shard_size], start):
                for ext, data in (("jpg", open(img_path, "rb").read()),
                                  ("cls", str(label).encode())):
                    info = tarfile.TarInfo(f"{k:08d}.{ext}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        paths.append(path)
    return paths
