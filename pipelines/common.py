"""What the pipelines share (public: the ImageNet and segmentation factories, the training
scripts, the scanner and the benchmarks import it): normalisation constants and file types, where
a pipeline runs (device, shard, torchrun's environment), the crop and mixing-schedule arguments,
and the data sources as the readers see them (ImageFolder trees, file lists and their labels).
"""

import os

import numpy as np
from dali_msda import DataError, has_gpu  # (importing dali_msda registers fn.msda.mix)
from nvidia.dali import types

from .config import MixConfig, MixSchedule, finite_pair, is_int

IMAGENET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
IMAGENET_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)
# what fn.readers.file(file_root=...) reads (case-insensitive); images, then audio
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".jp2", ".pnm",
                    ".ppm", ".pgm", ".pbm")
READER_EXTENSIONS = IMAGE_EXTENSIONS + (".flac", ".ogg", ".wav")
DTYPES = {"float16": types.FLOAT16, "float32": types.FLOAT}


def dist_env():
    """(shard_id, num_shards, local_rank) from torchrun's RANK / WORLD_SIZE / LOCAL_RANK."""
    rank = int(os.environ.get("RANK", 0))
    world = int(os.environ.get("WORLD_SIZE", 1))
    local = int(os.environ.get("LOCAL_RANK", rank))
    if not 0 <= rank < world:
        raise ValueError(f"RANK must be in [0, WORLD_SIZE); got RANK={rank}, WORLD_SIZE={world}.")
    return rank, world, local


def resolve_device(device):
    if device == "auto":
        return "gpu" if has_gpu() else "cpu"
    if device not in ("cpu", "gpu"):
        raise ValueError(f"`device` must be 'auto', 'cpu' or 'gpu'; got {device!r}.")
    return device


def placement(device, dtype, shard_id, num_shards, device_id):
    """Resolved (device, shard_id, num_shards, device_id), torchrun's environment filling what
    is not given; checks `dtype`."""
    device = resolve_device(device)
    if dtype not in DTYPES:
        raise ValueError(f"`dtype` must be one of {tuple(DTYPES)}; got {dtype!r}.")
    env_shard, env_shards, local_rank = dist_env()
    shard_id = env_shard if shard_id is None else shard_id
    num_shards = env_shards if num_shards is None else num_shards
    if device_id is None and device == "gpu":
        device_id = local_rank
    if not (is_int(num_shards) and num_shards >= 1):
        raise ValueError(f"`num_shards` must be an int >= 1; got {num_shards!r}.")
    if not (is_int(shard_id) and 0 <= shard_id < num_shards):
        raise ValueError(f"`shard_id` must be an int in [0, num_shards) = [0, {num_shards}); "
                         f"got {shard_id!r}.")
    return device, shard_id, num_shards, device_id


def check_sizes(batch_size, num_threads, crop, seed, flip_prob=None, prefetch_queue_depth=None,
                resize=None, shuffle_seed=None):
    """A pipeline's sizes and seeds, refused with the argument's name, the rule and the value
    before DALI sees them (where a crop of 0 fails deep inside, a negative crop gives |crop|
    pixels, a flip probability outside [0, 1] is taken as it comes and a negative seed means
    "random", which no run repeats: a negative shuffle seed would shard each rank's own random
    order, overlapping)."""
    for name, value, low in (("batch_size", batch_size, 1), ("num_threads", num_threads, 1),
                             ("crop", crop, 1), ("prefetch_queue_depth", prefetch_queue_depth, 1),
                             ("resize", resize, 1)):
        if value is not None and not (is_int(value) and value >= low):
            raise ValueError(f"`{name}` must be an int >= {low}; got {value!r}.")
    if resize is not None and resize < crop:
        raise ValueError(f"`resize` (the shorter side before the centre crop) must be >= `crop`;"
                         f" got resize={resize} < crop={crop}.")
    for name, value in (("seed", seed), ("shuffle_seed", shuffle_seed)):
        if value is not None and not (is_int(value) and 0 <= value < 2 ** 63):
            raise ValueError(f"`{name}` must be an int in [0, 2**63) or None (DALI takes a "
                             f"negative seed for a random one, which no run repeats); got "
                             f"{value!r}.")
    if flip_prob is not None and not (isinstance(flip_prob, (int, float, np.number)) and
                                      0.0 <= flip_prob <= 1.0):
        raise ValueError(f"`flip_prob` must be in [0, 1]; got {flip_prob!r}.")


def check_crop(scale, ratio):
    """The random resized crop's ranges: area share `scale`, aspect `ratio`."""
    for name, value in (("scale", scale), ("ratio", ratio)):
        if not finite_pair(value):
            raise ValueError(f"`{name}` must be two finite numbers (min, max); got {value!r}.")
    if not (0 < scale[0] <= scale[1] <= 1):
        raise ValueError(f"`scale` must satisfy 0 < min <= max <= 1; got {scale}.")
    if not (0 < ratio[0] <= ratio[1]):
        raise ValueError(f"`ratio` must satisfy 0 < min <= max; got {ratio}.")


def schedule_of(mix, batch_size, seed):
    """The live MixSchedule a pipeline reads (None without mixing), for a MixConfig or a
    MixSchedule, set up for this pipeline's batch size and seed."""
    schedule = mix if isinstance(mix, MixSchedule) else (
        MixSchedule(mix) if isinstance(mix, MixConfig) else None)
    if mix is not None and schedule is None:
        raise TypeError(f"`mix` must be a MixConfig, a MixSchedule or None; got {type(mix)}.")
    if schedule is not None:
        if schedule.config.multi_label:
            raise ValueError("`mix`: multi_label=True mixes multi-hot label vectors, and the "
                             "pipelines read one class id a sample; it is for "
                             "dali_msda.pytorch.Mixer (or fn.msda.mix) on labels of your own.")
        schedule.batch_size = batch_size
        schedule.seed = seed
    return schedule


# ---- data sources, as the readers see them

def folder_classes(data_dir):
    """Sorted class folders of an ImageFolder tree, those without images included (the reader
    counts them: a class's label is its folder's index among all of them); clear errors for a
    missing tree, one without folders, or one without any image."""
    if not os.path.isdir(data_dir):
        raise FileNotFoundError(f"`data_dir` {data_dir!r} does not exist or is not a folder.")
    classes = sorted(d.name for d in os.scandir(data_dir) if d.is_dir())
    if not classes:
        raise ValueError(f"`data_dir` {data_dir!r} has no class sub-folders; expected an "
                         "ImageFolder tree (data_dir/<class>/<image>).")
    n_images = sum(1 for c in classes for f in os.scandir(os.path.join(data_dir, c))
                   if f.name.lower().endswith(IMAGE_EXTENSIONS))
    if n_images == 0:
        raise ValueError(f"`data_dir` {data_dir!r} has {len(classes)} class folders but no "
                         f"images ({', '.join(IMAGE_EXTENSIONS)}).")
    return classes


def folder_files(data_dir, classes):
    """(files, labels) of an ImageFolder tree, labelled by their class folder's index in
    `classes` (the training classes), sorted as fn.readers.file sorts them. A folder whose
    class is not in `classes` is refused with its name; a class without a folder is fine."""
    present = folder_classes(data_dir)
    unknown = [c for c in present if c not in classes]
    if unknown:
        raise ValueError(f"`data_dir` {data_dir!r} has class folders the training classes do not "
                         f"know: {unknown[:5]}{' ...' if len(unknown) > 5 else ''}; their images "
                         "would get another class's index. Train on a tree with these classes, "
                         "or remove them.")
    index = {c: k for k, c in enumerate(classes)}
    files, labels = [], []
    for c in present:
        folder = os.path.join(data_dir, c)
        for name in reader_files(folder)[0]:
            files.append(os.path.join(folder, name))
            labels.append(index[c])
    return files, labels


def reader_files(folder):
    """(read, skipped): the sorted names of the files in `folder` that fn.readers.file reads
    from a class folder (its extensions in any case, files or links to files), and the other
    entries' names (other files, nested folders), which it skips."""
    names = sorted(os.listdir(folder))
    read = [n for n in names if n.lower().endswith(READER_EXTENSIONS)
            and os.path.isfile(os.path.join(folder, n))]
    chosen = set(read)
    return read, [n for n in names if n not in chosen]


CLASS_INDEX_RULE = "ASCII digits in [0, {n}) (the number of classes)"


LABEL_LIMIT = 2**31  # DALI's readers hold labels as int32


def class_index(text, num_classes):
    """The class index `text` (bytes) holds, or None: ASCII digits, maybe surrounded by
    whitespace, below `num_classes` (None: below 2^31, what an int32 label holds), and nothing
    else (fn.msda.class_label's rule)."""
    text = text.strip()
    if not (text.isdigit() and text.isascii()):
        return None
    value = int(text)
    return value if value < (LABEL_LIMIT if num_classes is None else num_classes) else None


def read_file_list(file_list, num_classes):
    """Every line of a 'path label' file list as fn.readers.file reads it (the label is the last
    field; the path, which may hold spaces, is the rest, relative to the list's folder unless
    absolute): (line number, path, label or None when the label breaks class_index's rule,
    the line's text). Blank lines are skipped, as the reader skips them."""
    base = os.path.dirname(os.path.abspath(file_list))
    out = []
    with open(file_list, "rb") as f:
        for k, raw in enumerate(f, 1):
            line = raw.rstrip(b"\r\n")
            if not line.strip():
                continue
            parts = line.rsplit(None, 1)
            label = class_index(parts[-1], num_classes) if len(parts) == 2 else None
            path = os.path.join(base, os.fsdecode(parts[0].strip())) if len(parts) == 2 else None
            out.append((k, path, label, line.decode("utf-8", "replace")))
    return out


def file_list_entries(file_list, num_classes):
    """(path, label) of every line of a file list, checked strictly (read_file_list): a
    DataError names the file, the first bad line and what it holds."""
    entries = []
    for k, path, label, text in read_file_list(file_list, num_classes):
        if label is None:
            raise DataError(
                f"`file_list` {file_list!r} line {k}: expected 'path label' with the label a "
                f"class index, {CLASS_INDEX_RULE.format(n=num_classes)}; got {text[:120]!r}.")
        entries.append((path, label))
    if not entries:
        raise DataError(f"`file_list` {file_list!r} lists no files.")
    return entries


def tree_items(root):
    """(items, skipped, empty_classes, classes): items are (path, label) of every file the
    reader reads, labelled as fn.readers.file(file_root=root) labels them."""
    classes = folder_classes(root)
    items, skipped, empty = [], [], []
    for label, c in enumerate(classes):
        folder = os.path.join(root, c)
        read, other = reader_files(folder)
        skipped += [os.path.join(folder, n) for n in other]
        if not [n for n in read if n.lower().endswith(IMAGE_EXTENSIONS)]:
            empty.append(c)
        items += [(os.path.join(folder, n), label) for n in read]
    return items, skipped, empty, classes
