"""ImageNet train / val pipeline factories with fn.msda.mix.

Train: reader (ImageFolder tree, file list or WebDataset shards) -> fused decode + random crop
(`decoders.image_random_crop`, "mixed" on GPU, "cpu" without) -> resize to `crop` ->
`fn.msda.mix` with the random flip, normalisation and CHW float16/float32 output fused into it
(without mixing: `crop_mirror_normalize`). Val: decode ->
resize shorter side to `resize` -> centre crop -> normalise; one-hot or class-id targets.

Sharding follows torchrun's environment (`dist_env`): shard RANK of WORLD_SIZE on device
LOCAL_RANK. The reader's shuffling seed is the same on every rank (a global shuffle per epoch,
then sharded: disjoint samples on every rank), the pipeline (augmentation and mixing) seed
differs per rank. Readers pad their last batch, so an epoch is a whole number of iterations.
"""

import os

from nvidia.dali import fn, pipeline_def, types

from .common import (DTYPES, IMAGENET_MEAN, IMAGENET_STD, check_crop, check_sizes,
                     file_list_entries, folder_classes, folder_files, is_int, placement,
                     schedule_of)


def _class_count(num_classes, names):
    """The number of classes: `num_classes` if given (it must agree with the class names the
    reader knows), else the number of those names; None when neither is known."""
    if num_classes is not None and not (is_int(num_classes) and num_classes >= 1):
        raise ValueError(f"`num_classes` must be an int >= 1 or None; got {num_classes!r}.")
    if num_classes and names and num_classes != len(names):
        raise ValueError(f"`num_classes` ({num_classes}) differs from the number of "
                         f"`classes` ({len(names)}).")
    return num_classes or (len(names) if names else None)


def _reader(data_dir, file_list, wds_paths, wds_index, shard_id, num_shards, shuffle,
            shuffle_seed, reader_name, classes=None, num_classes=None, check_images=True):
    """(encoded images, int32 labels, class names or None, number of classes) from one of the
    three sources, every label a class index in [0, number of classes) (file lists are checked
    line by line first, WebDataset `.cls` texts parsed strictly by fn.msda.class_label), every
    image's structure checked before it is decoded (fn.msda.image_check, unless
    `check_images` is False: a file no decoder can read stops the pipeline naming it).
    `classes`: number an ImageFolder tree's folders by their index in this list rather than by
    their sorted order in this tree; for a file list, its class names (their count bounds the
    labels)."""
    jpegs, labels, names, n = _read(data_dir, file_list, wds_paths, wds_index, shard_id,
                                    num_shards, shuffle, shuffle_seed, reader_name, classes,
                                    num_classes)
    return (fn.msda.image_check(jpegs) if check_images else jpegs), labels, names, n


def _read(data_dir, file_list, wds_paths, wds_index, shard_id, num_shards, shuffle,
          shuffle_seed, reader_name, classes, num_classes):
    common = dict(shard_id=shard_id, num_shards=num_shards, pad_last_batch=True,
                  name=reader_name)
    if shuffle:
        common.update(shuffle_after_epoch=True, seed=shuffle_seed)
    given = [x is not None for x in (data_dir, file_list, wds_paths)]
    if sum(given) != 1:
        raise ValueError("Give exactly one of `data_dir` (ImageFolder tree), `file_list` "
                         "(lines 'path label') or `wds_paths` (WebDataset tar shards).")
    if data_dir is not None:
        if classes is None:
            classes = folder_classes(data_dir)
            jpegs, labels = fn.readers.file(file_root=data_dir, **common)
        else:
            files, labels = folder_files(data_dir, list(classes))
            jpegs, labels = fn.readers.file(files=files, labels=labels, **common)
        return jpegs, labels, list(classes), _class_count(num_classes, classes)
    if classes is not None and file_list is None:
        raise ValueError("`classes` applies to ImageFolder trees (`data_dir`) and file lists "
                         "(`file_list`) only.")
    n_classes = _class_count(num_classes, classes)
    if n_classes is None:
        raise ValueError("`num_classes` (or `classes`) is required with `file_list` or "
                         "`wds_paths`: labels are checked against it.")
    if file_list is not None:
        if not os.path.isfile(file_list):
            raise FileNotFoundError(f"`file_list` {file_list!r} does not exist.")
        file_list_entries(file_list, n_classes)  # every line, before DALI parses it
        jpegs, labels = fn.readers.file(file_list=file_list, **common)
        return jpegs, labels, None if classes is None else list(classes), n_classes
    paths = [wds_paths] if isinstance(wds_paths, str) else list(wds_paths)
    missing = [p for p in paths if not os.path.isfile(p)]
    if not paths or missing:
        raise FileNotFoundError(f"`wds_paths`: missing WebDataset shards {missing or paths}.")
    if shuffle:  # the webdataset reader shuffles within a buffer, not globally per epoch
        common.pop("shuffle_after_epoch")
        common.update(random_shuffle=True, initial_fill=1024)
    jpegs, cls = fn.readers.webdataset(
        paths=paths, index_paths=wds_index, ext=["jpg;jpeg;png", "cls"],
        dtypes=[types.UINT8, types.UINT8], missing_component_behavior="error", **common)
    return jpegs, fn.msda.class_label(cls, num_classes=n_classes), None, n_classes


def imagenet_train(data_dir=None, *, file_list=None, wds_paths=None, wds_index=None,
                   num_classes=None, batch_size=64, num_threads=4, device="auto",
                   device_id=None, crop=224, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3),
                   flip_prob=0.5, dtype="float16", mix=None, seed=None, shuffle_seed=42,
                   shard_id=None, num_shards=None, reader_name="Reader",
                   prefetch_queue_depth=2, output_params=False, fused=True, classes=None,
                   checkpointing=False, checkpoint=None, check_images=True, targets="dense"):
    """The training pipeline: outputs (images CHW `dtype`, targets float32 [num_classes]), or
    with `targets="index"` (images, labels int32 [2], weights float32 []): each sample's own and
    partner class and the own class's weight, for `dali_msda.pytorch.mixed_cross_entropy` (no
    K floats a sample; the schedule's label smoothing is then the loss's: `pipe.label_smoothing`).

    With mixing, the flip, the normalisation and the HWC -> CHW transposition are fused into
    fn.msda.mix (`fused=True`, the default): one pass reads the two resized uint8 images and
    writes the normalised mix, with the same augmentation as crop_mirror_normalize followed by
    the mix (each image flipped by its own coin before mixing). `fused=False` runs the two
    operators (for comparison).

    `mix`: a MixConfig, a MixSchedule (live, changeable between epochs) or None (no mixing:
    one-hot, smoothed-free targets). `shard_id` / `num_shards` / `device_id` default to
    torchrun's environment (`dist_env`). `seed` (augmentation and mixing) defaults to
    1234 + shard_id, so every rank mixes differently (a `seed` given is taken as it is: give each
    rank its own, as the training example does with seed * 1000 + rank, or every rank draws the
    same crops, flips and mixes); `shuffle_seed` must be equal on all ranks.
    `classes` (ImageFolder trees): the class names in index order, for a tree that must keep
    another run's numbering (default: this tree's sorted class folders). The pipeline carries
    the schedule as `pipe.mix_schedule`, the class count as `pipe.num_classes` and the class
    names (ImageFolder trees; else None) as `pipe.classes`: give them to `imagenet_val` so that
    validation numbers its folders the same way.

    `checkpointing=True` lets `dali_msda.pytorch.MixIterator.checkpoint()` save the pipeline's
    state; `checkpoint=` that state (with the same other arguments) builds the pipeline where
    it left off. DALI's checkpointing is on in every case: its file reader shuffles differently
    with it than without, so the same seed gives the same batches whether a run saves
    checkpoints or not. `check_images=False` leaves out fn.msda.image_check (each encoded
    image's structure read before decoding, so that a file no decoder can read stops the run
    naming it; at most 0.25 % of the CPU pipeline's time, benchmarks/README.md).
    """
    device, shard_id, num_shards, device_id = placement(device, dtype, shard_id, num_shards,
                                                         device_id)
    check_crop(scale, ratio)
    check_sizes(batch_size, num_threads, crop, seed, flip_prob, prefetch_queue_depth,
                shuffle_seed=shuffle_seed)
    seed = 1234 + shard_id if seed is None else seed
    schedule = schedule_of(mix, batch_size, seed)
    if targets not in ("dense", "index"):
        raise ValueError(f"`targets` must be 'dense' or 'index'; got {targets!r}.")
    index = targets == "index"
    thresh = schedule.config.bce_target_thresh if schedule else None
    if index and thresh is not None:
        raise ValueError("`mix`: bce_target_thresh binarises dense targets; it does not go with "
                         "targets='index'.")
    gpu = device == "gpu"
    holder = {}

    @pipeline_def(batch_size=batch_size, num_threads=num_threads,
                  device_id=device_id if gpu else None, seed=seed,
                  prefetch_queue_depth=prefetch_queue_depth,
                  enable_checkpointing=True, checkpoint=checkpoint)
    def pipe():
        jpegs, labels, names, n_classes = _reader(data_dir, file_list, wds_paths, wds_index,
                                                  shard_id, num_shards, True, shuffle_seed,
                                                  reader_name, classes, num_classes,
                                                  check_images)
        holder.update(num_classes=n_classes, classes=names)
        images = fn.decoders.image_random_crop(
            jpegs, device="mixed" if gpu else "cpu", output_type=types.RGB,
            random_area=list(scale), random_aspect_ratio=list(ratio), num_attempts=100)
        images = fn.resize(images, resize_x=crop, resize_y=crop)
        mirror = fn.random.coin_flip(probability=flip_prob)
        normalize = dict(mean=list(IMAGENET_MEAN), std=list(IMAGENET_STD), output_layout="CHW")
        if schedule is None or not fused:
            images = fn.crop_mirror_normalize(images, dtype=DTYPES[dtype], mirror=mirror,
                                              **normalize)
        if schedule is None and index:  # unmixed: the own class twice, weight 1
            pair = fn.cat(labels, labels)
            weights = fn.reshape(fn.cast(labels * 0 + 1, dtype=types.FLOAT), shape=[])
            return (images, pair.gpu(), weights.gpu()) if gpu else (images, pair, weights)
        if schedule is None:
            one_hot = fn.one_hot(labels, num_classes=n_classes, dtype=types.FLOAT)
            one_hot = fn.reshape(one_hot, shape=[n_classes])
            if gpu:
                one_hot = one_hot.gpu()
            return images, one_hot
        method_id, alpha, ratio_, prob = fn.external_source(source=schedule, num_outputs=4,
                                                            batch=True)
        cfg = schedule.config
        if cfg.num_classes is not None and cfg.num_classes != n_classes:
            raise ValueError(f"`mix`: its num_classes ({cfg.num_classes}) differs from the "
                             f"data's ({n_classes} classes).")
        fused_args = dict(mirror=mirror, dtype=DTYPES[dtype], **normalize) if fused else {}
        outs = fn.msda.mix(images, labels, method_id=method_id, alpha=alpha,
                           hmix_ratio=ratio_, prob=prob, **cfg.op_args(),
                           label_smoothing=0.0 if index else cfg.label_smoothing,
                           targets=targets, num_classes=n_classes,
                           output_params=output_params, **fused_args)
        if thresh is not None:  # timm's BinaryCrossEntropy: target.gt(threshold)
            outs = (outs[0], fn.cast(outs[1] > thresh, dtype=types.FLOAT), *outs[2:])
        return tuple(outs)

    p = pipe()
    p.mix_schedule = schedule
    if index:
        p.output_names = ("images", "labels", "weights")
        p.label_smoothing = schedule.config.label_smoothing if schedule else 0.0
    p.num_classes = holder["num_classes"]
    p.classes = holder["classes"]
    p.reader_name = reader_name
    p.data_source = data_dir or file_list or wds_paths
    p.checkpointing = checkpointing or checkpoint is not None  # MixIterator.checkpoint() allowed
    return p


def imagenet_val(data_dir=None, *, file_list=None, wds_paths=None, wds_index=None,
                 num_classes=None, batch_size=64, num_threads=4, device="auto", device_id=None,
                 resize=256, crop=224, dtype="float16", targets="onehot", shard_id=None,
                 num_shards=None, reader_name="Reader", seed=None, classes=None,
                 check_images=True):
    """The validation pipeline: outputs (images CHW `dtype`, targets): `targets="onehot"`
    (float32 [num_classes]) or `"index"` (int32 class ids, shape [1]). No shuffling, no mixing.
    Iterate it with last_batch_policy PARTIAL (the reader pads the last batch).

    `classes`: the training pipeline's `pipe.classes`. Give it: a val tree numbers its own
    sorted folders otherwise, so a val tree that lacks one training class shifts every later
    index (silently wrong accuracy). With it, each folder gets its training index, a missing
    class is fine, and a folder training does not know is refused with its name."""
    device, shard_id, num_shards, device_id = placement(device, dtype, shard_id, num_shards,
                                                         device_id)
    check_sizes(batch_size, num_threads, crop, seed, resize=resize)
    if targets not in ("onehot", "index"):
        raise ValueError(f"`targets` must be 'onehot' or 'index'; got {targets!r}.")
    gpu = device == "gpu"
    holder = {}

    @pipeline_def(batch_size=batch_size, num_threads=num_threads,
                  device_id=device_id if gpu else None, seed=seed if seed is not None else 7)
    def pipe():
        jpegs, labels, names, n_classes = _reader(data_dir, file_list, wds_paths, wds_index,
                                                  shard_id, num_shards, False, 0, reader_name,
                                                  classes, num_classes, check_images)
        holder.update(num_classes=n_classes, classes=names)
        images = fn.decoders.image(jpegs, device="mixed" if gpu else "cpu",
                                   output_type=types.RGB)
        images = fn.resize(images, resize_shorter=resize)
        images = fn.crop_mirror_normalize(
            images, dtype=DTYPES[dtype], output_layout="CHW", crop=(crop, crop),
            mean=list(IMAGENET_MEAN), std=list(IMAGENET_STD))
        if targets == "onehot":
            out = fn.reshape(fn.one_hot(labels, num_classes=n_classes, dtype=types.FLOAT),
                             shape=[n_classes])
        else:
            out = fn.cast(labels, dtype=types.INT32)
        return images, (out.gpu() if gpu else out)

    p = pipe()
    p.num_classes = holder["num_classes"]
    p.classes = holder["classes"]
    p.reader_name = reader_name
    p.data_source = data_dir or file_list or wds_paths
    return p
