"""Segmentation train / val pipeline factories with fn.msda.mix and label maps.

Data: a VOC/ADE-style tree, DIR/images/NAME.(jpg|png|...) with DIR/masks/NAME.png, or a file
list of pairs ("image mask" per line, a tab between them when the paths hold spaces; relative
paths are relative to the list's folder). Masks hold class indices as Pillow's Image.open reads
them: single-channel PNGs whose values are the indices (ADE20K's annotations, VOC's
SegmentationClassAug) or palette PNGs whose pixel values are (VOC's SegmentationClass, as it
comes), `ignore_index` (255) marking pixels without a class. Masks whose values cannot be
indices (RGB, RGBA, grey-and-alpha, 16-bit, JPEG) and labels that are neither below
`num_classes` nor `ignore_index` stop the pipeline with an error naming the file
(fn.msda.label_map); `python -m dali_msda.pipelines.scan --segmentation DATA` lists them all,
and `--convert-masks FOLDER` writes index PNGs of the ones that can be converted.

Train: two readers over the same pair list with the same seed, shards and shuffling (so that
they stay in step: an image and its map arrive together) -> decode (image "mixed" on GPU, map on
the CPU: fn.msda.label_map) -> one random resized crop drawn per sample and cut from both with
fn.slice (relative window: area in `scale`, width / height in `ratio`) -> resize to `crop` (image
bilinear, map nearest) -> fn.msda.mix(images, soft, maps) with the flip, normalisation and CHW
output fused, the maps mixed by the same masks (spec 11; ClassMix with `method="classmix"`).
The targets are the two mixing weights (own, partner) per sample: the mean of the sample's
mask and its complement. Val: decode -> resize both to `crop` -> normalise; no mixing.
"""

import math
import os

from dali_msda import DataError
from nvidia.dali import fn, math as dmath, pipeline_def, types

from .common import (DTYPES, IMAGE_EXTENSIONS, IMAGENET_MEAN, IMAGENET_STD, check_crop,
                     check_sizes, is_int, placement, schedule_of)


def check_num_classes(num_classes):
    if not (is_int(num_classes) and 0 < num_classes <= 256):
        raise ValueError(f"`num_classes` must be an int in [1, 256] (uint8 maps); got "
                         f"{num_classes!r}.")


def segmentation_pairs(data_dir=None, file_list=None):
    """(images, masks): the paths of the pairs, in a fixed order, from a tree (images/ and
    masks/ with matching names) or a file list of pairs; DataError naming what is missing."""
    if (data_dir is None) == (file_list is None):
        raise ValueError("Give exactly one of `data_dir` (images/ and masks/) or `file_list` "
                         "(lines 'image mask').")
    if file_list is not None:
        if not os.path.isfile(file_list):
            raise FileNotFoundError(f"`file_list` {file_list!r} does not exist.")
        base = os.path.dirname(os.path.abspath(file_list))
        images, masks = [], []
        with open(file_list, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                text = line.rstrip("\n")
                if not text.strip():
                    continue
                fields = text.split("\t") if "\t" in text else text.split()
                if len(fields) != 2:
                    raise DataError(f"{file_list}:{number}: a line must be 'image mask' (two "
                                    f"paths, a tab between them if they hold spaces); got "
                                    f"{text!r}.")
                pair = [os.path.join(base, p.strip()) for p in fields]
                for p in pair:
                    if not os.path.isfile(p):
                        raise DataError(f"{file_list}:{number}: {p} does not exist.")
                images.append(pair[0])
                masks.append(pair[1])
        if not images:
            raise DataError(f"{file_list}: no pairs.")
        return images, masks
    image_dir, mask_dir = os.path.join(data_dir, "images"), os.path.join(data_dir, "masks")
    for d in (image_dir, mask_dir):
        if not os.path.isdir(d):
            raise FileNotFoundError(f"`data_dir` {data_dir!r} must hold images/ and masks/; "
                                    f"{d} is missing.")
    stems, masks = _by_stem(image_dir, "images"), _by_stem(mask_dir, "masks")
    missing = sorted(set(stems) - set(masks))
    stray = sorted(set(masks) - set(stems))
    if missing or stray:
        what = []
        if missing:
            what.append(f"{len(missing)} image(s) without a mask in {mask_dir} (first: "
                        f"{stems[missing[0]]})")
        if stray:
            what.append(f"{len(stray)} mask(s) without an image in {image_dir} (first: "
                        f"{masks[stray[0]]})")
        raise DataError(f"{data_dir}: images and masks must match by name: " +
                        "; ".join(what) + ".")
    if not stems:
        raise DataError(f"{image_dir}: no images.")
    order = sorted(stems)
    return [stems[s] for s in order], [masks[s] for s in order]


def _by_stem(folder, what):
    """Name stem -> path of each image file in `folder` (nested folders left out). Pairs are
    matched by stem, so two files of one stem (a.jpg and a.png) are refused, naming both: one
    of them would be left out silently."""
    out = {}
    for name in sorted(os.listdir(folder)):
        stem, ext = os.path.splitext(name)
        path = os.path.join(folder, name)
        if ext.lower() not in IMAGE_EXTENSIONS or not os.path.isfile(path):
            continue
        if stem in out:
            raise DataError(f"{folder}: {os.path.basename(out[stem])} and {name} have one name "
                            f"({stem!r}); {what} are paired by name, so one of them would be "
                            "left out: rename or remove one.")
        out[stem] = path
    return out


def pair_readers(images, masks, shard_id=0, num_shards=1, shuffle=False, shuffle_seed=0,
                 reader_name="Reader"):
    """(encoded images, encoded maps, pair index int32) of one pair per sample: two readers,
    identical but for their files, so they visit the pairs in the same order. DALI's
    `shuffle_after_epoch` permutes by the epoch number alone (a fixed loader seed, so that
    shards agree), so the two readers permute alike in every epoch
    (tests/test_segmentation_pipelines.py checks it over three epochs with images and maps that
    encode their file and cell)."""
    common = dict(shard_id=shard_id, num_shards=num_shards, pad_last_batch=True,
                  labels=list(range(len(images))))
    if shuffle:
        common.update(shuffle_after_epoch=True, seed=shuffle_seed)
    jpegs, index = fn.readers.file(files=images, name=reader_name, **common)
    pngs, _ = fn.readers.file(files=masks, name=reader_name + "Masks", **common)
    # a file no decoder can read stops the pipeline naming it (not the decoder, unnamed), and a
    # map whose header says it cannot hold class indices too
    return fn.msda.image_check(jpegs), fn.msda.image_check(pngs, label_maps=True), index


def decode_pair(jpegs, pngs, gpu, num_classes, ignore_index=255):
    """Decoded images (RGB, "mixed" on the GPU) and maps (H x W x 1 uint8 class indices, CPU):
    each map read as its PNG holds its indices (fn.msda.label_map: a greyscale PNG's values, a
    palette PNG's indices; RGB, RGBA, grey-and-alpha, 16-bit and JPEG maps refused), its labels
    classes or `ignore_index`, its size its image's; every refusal names the file."""
    images = fn.decoders.image(jpegs, device="mixed" if gpu else "cpu", output_type=types.RGB)
    # ANY_DATA: one channel for a grey PNG (as cheap as a grey decode), colours for a palette
    decoded = fn.decoders.image(pngs, device="cpu", output_type=types.ANY_DATA)
    maps = fn.msda.label_map(pngs, decoded, num_classes=num_classes,
                             ignore_index=-1 if ignore_index is None else ignore_index)
    # a map of another size would be stretched onto its image by the crop and resize: refused,
    # naming the map's file
    return images, fn.msda.pair_check(fn.peek_image_shape(jpegs), maps)


def uniform(lo, hi):
    """A value per sample uniform over [lo, hi), or lo itself where lo == hi (which
    fn.random.uniform refuses as an empty range; check_crop allows min == max)."""
    if lo < hi:
        return fn.random.uniform(range=[lo, hi])
    return fn.random.uniform(range=[0.0, 1.0]) * 0.0 + lo  # the same random ops either way


def resize_pair(images, maps, crop):
    """Both resized to crop x crop: the image bilinearly, the map by nearest neighbour."""
    images = fn.resize(images, size=(crop, crop))
    maps = fn.resize(maps, size=(crop, crop), interp_type=types.INTERP_NN, antialias=False)
    return images, maps  # maps H x W x 1 (fn.flip wants a channel axis; squeezed at the end)


def segmentation_train(data_dir=None, *, file_list=None, num_classes, batch_size=16,
                       num_threads=4, device="auto", device_id=None, crop=256,
                       scale=(0.25, 1.0), ratio=(3 / 4, 4 / 3), flip_prob=0.5,
                       dtype="float16", mix=None, ignore_index=255, seed=None,
                       shuffle_seed=42, shard_id=None, num_shards=None, reader_name="Reader",
                       prefetch_queue_depth=2):
    """The segmentation training pipeline: outputs (images CHW `dtype`, targets float32 [2]:
    the own and the partner's mixing weight, maps uint8 crop x crop). `mix`: a MixConfig, a
    MixSchedule or None (no mixing; targets (1, 0)). `ignore_index`: the maps' label without
    a class (not counted by ClassMix). Sharding, seeds and devices as in `imagenet_train`."""
    device, shard_id, num_shards, device_id = placement(device, dtype, shard_id, num_shards,
                                                         device_id)
    check_crop(scale, ratio)
    check_sizes(batch_size, num_threads, crop, seed, flip_prob, prefetch_queue_depth,
                shuffle_seed=shuffle_seed)
    check_num_classes(num_classes)
    images_list, masks_list = segmentation_pairs(data_dir, file_list)
    seed = 1234 + shard_id if seed is None else seed
    schedule = schedule_of(mix, batch_size, seed)
    gpu = device == "gpu"

    # DALI's checkpointing on, as in imagenet_train: the readers shuffle as a checkpointed run's
    @pipeline_def(batch_size=batch_size, num_threads=num_threads,
                  device_id=device_id if gpu else None, seed=seed,
                  prefetch_queue_depth=prefetch_queue_depth, enable_checkpointing=True)
    def pipe():
        jpegs, pngs, _ = pair_readers(images_list, masks_list, shard_id, num_shards, True,
                                      shuffle_seed, reader_name)
        images, maps = decode_pair(jpegs, pngs, gpu, num_classes, ignore_index)
        # one window per sample, relative, cut from both (same H x W: the same pixels)
        area = uniform(*scale)
        aspect = dmath.exp(uniform(math.log(ratio[0]), math.log(ratio[1])))
        w = dmath.min(dmath.sqrt(area * aspect), 1.0)
        h = dmath.min(dmath.sqrt(area / aspect), 1.0)
        x0 = fn.random.uniform(range=[0.0, 1.0]) * (1.0 - w)
        y0 = fn.random.uniform(range=[0.0, 1.0]) * (1.0 - h)
        window = dict(rel_start=fn.stack(x0, y0), rel_shape=fn.stack(w, h), axis_names="WH")
        images = fn.slice(images, **window)
        maps = fn.slice(maps, **window)
        images, maps = resize_pair(images, maps, crop)
        if gpu:
            maps = maps.gpu()
        mirror = fn.random.coin_flip(probability=flip_prob)
        normalize = dict(mean=list(IMAGENET_MEAN), std=list(IMAGENET_STD), output_layout="CHW")
        own = fn.constant(fdata=[1.0, 0.0], shape=[2], dtype=types.FLOAT)
        if schedule is None:
            images = fn.crop_mirror_normalize(images, dtype=DTYPES[dtype], mirror=mirror,
                                              **normalize)
            maps = fn.squeeze(fn.flip(maps, horizontal=mirror), axes=[2])
            return images, own.gpu() if gpu else own, maps
        method_id, alpha, ratio_, prob = fn.external_source(source=schedule, num_outputs=4,
                                                            batch=True)
        cfg = schedule.config
        # every sample has the same label (1, 0), so the op's targets say nothing; the weights
        # come from the mask: w = mean(M), the own image's share (spec 1)
        mixed, _, mixed_maps, mask = fn.msda.mix(
            images, own, maps, method_id=method_id, alpha=alpha, hmix_ratio=ratio_,
            prob=prob, **cfg.op_args(), ignore_index=ignore_index, mirror=mirror,
            dtype=DTYPES[dtype], output_mask=True, **normalize)
        w = fn.reductions.mean(mask)
        return mixed, fn.stack(w, 1.0 - w), fn.squeeze(mixed_maps, axes=[2])

    p = pipe()
    p.mix_schedule = schedule
    p.num_classes = num_classes
    p.checkpointing = False  # MixIterator.checkpoint() refused (no resume support here yet)
    p.reader_name = reader_name
    p.output_names = ("images", "targets", "maps")
    p.data_source = data_dir or file_list
    return p


def segmentation_val(data_dir=None, *, file_list=None, num_classes, batch_size=16,
                     num_threads=4, device="auto", device_id=None, crop=256, dtype="float16",
                     ignore_index=255, shard_id=None, num_shards=None, reader_name="Reader",
                     seed=7):
    """The segmentation validation pipeline: outputs (images CHW `dtype`, maps uint8
    crop x crop), both resized to crop x crop (maps by nearest neighbour). Iterate it with
    last_batch_policy PARTIAL (the reader pads the last batch)."""
    device, shard_id, num_shards, device_id = placement(device, dtype, shard_id, num_shards,
                                                         device_id)
    check_sizes(batch_size, num_threads, crop, seed)
    check_num_classes(num_classes)
    images_list, masks_list = segmentation_pairs(data_dir, file_list)
    gpu = device == "gpu"

    @pipeline_def(batch_size=batch_size, num_threads=num_threads,
                  device_id=device_id if gpu else None, seed=seed)
    def pipe():
        jpegs, pngs, _ = pair_readers(images_list, masks_list, shard_id, num_shards, False, 0,
                                      reader_name)
        images, maps = resize_pair(*decode_pair(jpegs, pngs, gpu, num_classes, ignore_index),
                                   crop)
        images = fn.crop_mirror_normalize(images, dtype=DTYPES[dtype], output_layout="CHW",
                                          mean=list(IMAGENET_MEAN), std=list(IMAGENET_STD))
        maps = fn.squeeze(maps, axes=[2])
        return images, maps.gpu() if gpu else maps

    p = pipe()
    p.num_classes = num_classes
    p.reader_name = reader_name
    p.output_names = ("images", "maps")
    p.data_source = data_dir or file_list
    return p
