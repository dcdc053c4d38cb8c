"""A thin PyTorch adapter over DALIGenericIterator: yields (images, targets) torch tensors.

    from dali_msda.pipelines import imagenet_train, MixConfig
    from dali_msda.pytorch import MixIterator

    pipe = imagenet_train(root, batch_size=256, mix=MixConfig(method="hmix"))
    loader = MixIterator(pipe)                      # len(loader) batches per epoch
    for epoch in range(epochs):
        if epoch == epochs - 10:
            loader.set_mix(enabled=False)           # the whole next epoch is unmixed
        for images, targets in loader:              # CUDA tensors when the pipeline is on GPU
            loss = torch.nn.functional.cross_entropy(model(images), targets)

Tensors are on ``cuda:<device_id>`` when the pipeline runs on the GPU, on the CPU otherwise.
Targets are float32 probability rows (sum 1), which ``torch.nn.CrossEntropyLoss`` accepts as
targets directly; with a validation pipeline built with ``targets="index"`` they are int64 ids.

Last-batch policy: ``DROP`` by default (training): an epoch is ``floor(shard / batch)`` full
batches and the partial last batch, which the mixing op saw with padding, is discarded. Use
``PARTIAL`` for evaluation: the last batch is trimmed to the shard's real samples.

Epoch boundaries: DALIGenericIterator keeps ``prefetch_queue_depth`` iterations in flight and so
computes the first batches of epoch e + 1 during epoch e, before the training loop can change
the mixing schedule. MixIterator schedules no iteration past the end of the current epoch (the
readers pad their last batch, so an epoch is a whole number of iterations) and starts the next
epoch's prefetch on its first ``next()``: a ``set_mix`` between epochs covers the whole next
epoch (timm's mixup-off epoch can silently miss this with persistent loader workers).

Checkpoint and resume (a pipeline built with ``checkpointing=True``)::

    state = loader.checkpoint()      # bytes: as of the last batch next() returned
    ...                              # save it with the model (torch.save takes bytes)
    pipe = imagenet_train(root, ..., checkpoint=state)   # same arguments otherwise
    loader = MixIterator(pipe)       # continues with the batch after that one

(torch 2.1's ``torch.load(weights_only=True)`` refuses bytes; there keep the state as a uint8
tensor, ``torch.frombuffer(bytearray(state), dtype=torch.uint8)``, and give back
``t.numpy().tobytes()``, as the training example's checkpoints do.)

The state holds DALI's checkpoint of the pipeline (reader position and shuffling, the state of
every random operator, fn.msda.mix's included), the iterator's position in the epoch and the
mixing schedule, including the configuration of the batches that were prefetched but not yet
returned: the resumed loader yields bit for bit the batches the interrupted one would have.
A pipeline of your own needs ``enable_checkpointing=True`` / ``checkpoint=state`` in its
``pipeline_def`` and, if it mixes through a MixSchedule, the same schedule object as
``pipe.mix_schedule``.
"""

import contextlib
import json
import math
import os
import re
import secrets

import numpy as np
import torch
from nvidia.dali import types
from nvidia.dali.plugin.base_iterator import LastBatchPolicy
from nvidia.dali.plugin.pytorch import DALIGenericIterator

from dali_msda import DataError, dali_error_reason

__all__ = ["MixIterator", "LastBatchPolicy", "DataError", "Mixer", "mixed_cross_entropy"]


def data_error_message(error, source):
    """DALI's error `error` explained, or None when it is not about the data. `source`: what
    the pipeline reads (a tree, a file list, shards), for the scan command."""
    text = str(error)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    op = next((m.group(1) for ln in lines for m in [re.search(r"operator `([^`]+)`", ln)] if m),
              "")
    underful = re.search(r'Underful sample detected at tar file at "?([^"\s]+)', text)
    named = (re.search(r"Failed to decode sample #\d+ : (\S+)", text) or
             re.search(r"File mapping failed: (\S+)", text))
    label = re.search(r"msda\.class_label: (.*)", text)
    ours = re.search(r"msda\.(image_check|label_map|pair_check): (.*)", text)
    if not (underful or named or label or ours or "decoders" in op or "readers" in op):
        return None
    reason = dali_error_reason(error)
    scan = "python -m dali_msda.pipelines.scan"
    where = _where(source)
    if label:  # our own message names the shard and key, the rule and the text
        return (f"{label.group(1).strip()}\n`{scan} {where}` lists every bad sample; repack the "
                "shards without them.")
    if ours and (ours.group(1) != "image_check" or "the label map " in ours.group(2)):
        # a segmentation pair: the file and the rule
        message = ours.group(0).strip().replace("--segmentation DATA",
                                                f"--segmentation {where}")
        return (f"{message}\n`{scan} --segmentation {where} --out good_pairs.txt` lists every "
                "bad pair with the reason and writes a pair list of the good ones "
                "(segmentation_train(file_list='good_pairs.txt', ...)).")
    if ours:  # an image no decoder can read: named by fn.msda.image_check
        message = ours.group(0).strip()
        path = re.match(r"msda\.image_check: the image (.+?) (is|of) ", message)
        if path and isinstance(source, str) and not os.path.isabs(path.group(1)) and \
                os.path.isdir(source):  # a tree's reader names files relative to its root
            message = message.replace(path.group(1), os.path.join(source, path.group(1)), 1)
        return (f"{message}\n`{scan} {where} --out good.txt` lists every bad "
                "file with the reason and writes a file list of the good ones; train on it "
                "with imagenet_train(file_list='good.txt', classes=...) (`python -m "
                "dali_msda.pipelines.train` prints the command for its run).")
    if underful:
        what = (f"a WebDataset sample in {underful.group(1)} lacks its image or its .cls "
                "(DALI does not say which)")
    elif named:
        what = f"{named.group(1)} cannot be read or decoded ({reason})"
    else:
        what = (f"a file of this batch does not decode ({op}: {reason}); DALI does not say "
                "which")
    fix = (f"`{scan} {where}` lists every bad sample with the reason" if underful else
           f"`{scan} {where} --out good.txt` lists every bad file with the reason and writes a "
           "file list of the good ones; train on it with imagenet_train(file_list="
           "'good.txt', classes=...) (`python -m dali_msda.pipelines.train` prints the command "
           "for its run)")
    return f"{what}.\n{fix}.\n(DALI: {reason})"


def _where(source):
    """What a pipeline reads, as scan's arguments."""
    if isinstance(source, (list, tuple)):
        return " ".join(source[:3]) + (" ..." if len(source) > 3 else "")
    return source or "<your data>"


def _without_repeats(error):
    """DALI's error with the lines it doubles when an iterator re-raises it ("Critical error in
    pipeline:", "Current pipeline object is no longer valid.") said once."""
    lines, out = str(error).splitlines(), []
    for line in lines:
        if out and line.strip() and line.strip() == out[-1].strip():
            continue
        out.append(line)
    return RuntimeError("\n".join(out))


def _as_data_error(error, pipeline):
    """DataError for a DALI error about the pipeline's data, else None (re-raise `error`)."""
    message = data_error_message(error, getattr(pipeline, "data_source", None))
    return None if message is None else DataError(message)


class MixIterator(DALIGenericIterator):
    """Iterates one pipeline from `dali_msda.pipelines` as (images, targets), or as the
    pipeline's `output_names` (segmentation: (images, targets, maps))."""

    def __init__(self, pipeline, reader_name=None, last_batch_policy=LastBatchPolicy.DROP,
                 auto_reset=True, output_map=None):
        reader_name = reader_name or getattr(pipeline, "reader_name", "Reader")
        try:
            pipeline.build()  # the WebDataset reader reads its shards' index here
        except RuntimeError as e:
            data_error = _as_data_error(e, pipeline)
            if data_error is None:
                raise
            raise data_error from e
        meta = pipeline.reader_meta(reader_name)
        if not meta.get("pad_last_batch"):
            raise ValueError("MixIterator needs a reader with pad_last_batch=True (as the "
                             "dali_msda.pipelines factories build), so that epochs end on a "
                             "batch boundary.")
        shard = math.ceil(meta["epoch_size_padded"] / meta["number_of_shards"])
        self._epoch_iters = math.ceil(shard / pipeline.max_batch_size)
        self._depth = _queue_depth(pipeline)
        self._scheduled = 0  # pipeline iterations scheduled in this epoch
        self._in_flight = 0
        self.mix_schedule = getattr(pipeline, "mix_schedule", None)
        self.epoch = 0
        # the pipeline's own names (segmentation: images, targets, maps), else the classifier's
        output_map = list(output_map or getattr(pipeline, "output_names", ("images", "targets")))
        if pipeline.num_outputs > len(output_map):  # e.g. output_params
            output_map += [f"out{k}" for k in range(len(output_map), pipeline.num_outputs)]
        super().__init__([pipeline], output_map, reader_name=reader_name,
                         last_batch_policy=last_batch_policy, auto_reset=auto_reset,
                         prepare_first_batch=False)
        self._names = output_map

    def set_mix(self, **changes):
        """Change the live mixing configuration (method, alpha, hmix_ratio, prob, enabled).
        Between epochs it covers the whole next epoch; inside an epoch it applies from the next
        iteration the pipeline schedules."""
        if self.mix_schedule is None:
            raise ValueError("This pipeline was built without mixing (mix=None); build it with "
                             "a MixConfig or MixSchedule to change mixing.")
        return self.mix_schedule.set(**changes)

    # ---- checkpointing
    def checkpoint(self):
        """The state to resume from (bytes), as of the last batch this iterator returned; build
        the pipeline again with ``checkpoint=`` this value and wrap it in a MixIterator."""
        if not self._enable_checkpointing or not getattr(self._pipes[0], "checkpointing", True):
            raise ValueError("MixIterator.checkpoint: the pipeline was built without "
                             "checkpointing; build it with checkpointing=True (the "
                             "dali_msda.pipelines factories) or enable_checkpointing=True.")
        return self.checkpoints()[0]

    def _save_state(self):
        data = json.loads(super()._save_state())
        in_flight = self._in_flight
        data["msda"] = {
            "epoch": self.epoch, "consumed": self._scheduled - in_flight,
            "schedule": (self.mix_schedule.state_dict(in_flight)
                         if self.mix_schedule is not None else None)}
        return json.dumps(data)

    def _restore_state(self, iterator_data):
        super()._restore_state(iterator_data)
        state = json.loads(iterator_data).get("msda") if iterator_data else None
        if state is None:
            raise ValueError("MixIterator: the pipeline was restored from a checkpoint that a "
                             "MixIterator did not write (no iterator position in it).")
        if (state["schedule"] is None) != (self.mix_schedule is None):
            raise ValueError("MixIterator: the checkpoint was saved from a pipeline "
                             f"{'without' if state['schedule'] is None else 'with'} mixing; "
                             "this one is built "
                             f"{'with' if state['schedule'] is None else 'without'}.")
        self.epoch = state["epoch"]
        self._scheduled, self._in_flight = state["consumed"], 0
        if self.mix_schedule is not None:
            self.mix_schedule.load_state_dict(state["schedule"])

    # ---- scheduling: never past the end of the current epoch
    def _schedule_runs(self, release_outputs=True):
        self._ever_scheduled = True
        pipe = self._pipes[0]
        with pipe._check_api_type_scope(types.PipelineAPIType.ITERATOR):
            if release_outputs:
                pipe.release_outputs()
            while self._in_flight < self._depth and self._scheduled < self._epoch_iters:
                pipe._first_iter = False  # one iteration per call (no automatic full prefetch)
                pipe.schedule_run()
                self._scheduled += 1
                self._in_flight += 1

    def _get_outputs(self):
        if self._in_flight == 0:  # first batch of an epoch (or after a restore): prefetch now
            self._schedule_runs(release_outputs=False)
        outputs = super()._get_outputs()
        self._in_flight -= 1
        return outputs

    def reset(self):
        # DALIGenericIterator.reset() schedules a run on an empty pipeline right away: that would
        # compute the next epoch's first batch now, with the current configuration. Hide the
        # emptiness from it; the next epoch starts on the first next() instead.
        pipe = self._pipes[0]
        pipe.empty = lambda: False
        try:
            super().reset()
        finally:
            del pipe.empty
        if self._in_flight == 0 and self._scheduled >= self._epoch_iters:  # epoch completed
            self._scheduled = 0
            self.epoch += 1

    def __next__(self):
        try:
            batch = super().__next__()[0]
        except RuntimeError as e:
            data_error = _as_data_error(e, self._pipes[0])
            if data_error is None:
                raise _without_repeats(e) from e
            raise data_error from e
        return tuple(batch[name] for name in self._names)


def _queue_depth(pipeline):
    depth = pipeline.prefetch_queue_depth
    if isinstance(depth, dict):
        depth = max(depth.values())
    return max(1, int(depth))


class Mixer:
    """fn.msda.mix inside an existing PyTorch loop: the op called eagerly on a batch of torch
    tensors (DALI's dynamic mode), where timm's ``mixup_fn(x, y)`` would be, with a random
    generator of its own that is saved and restored with the model::

        mixer = Mixer(method="cutmix", num_classes=1000, seed=0)
        for x, y in loader:               # x [B, C, H, W] float (CUDA or CPU), y [B] class ids
            x, targets = mixer(x, y)      # targets [B, K] float32, label-smoothed mixes
            loss = torch.nn.functional.cross_entropy(model(x), targets)
        torch.save({"model": model.state_dict(), "mixer": mixer.state_dict()}, path)

    Keyword arguments are fn.msda.mix's (``method``, ``alpha``, ``mode``, ``prob``,
    ``label_smoothing``, ``targets="index"``, ``mean`` / ``std``, ``mirror``, ``dtype`` (a torch
    dtype or DALI's), ``output_layout``, ...; ``num_classes`` with class-index labels).
    `layout`: the images' layout, "CHW" for [B, C, H, W] (torch's) or "HWC" for [B, H, W, C]
    (decoded uint8, say). `seed`: the generator's (None: a random one). A call returns the op's
    outputs as torch tensors on the images' device: (mixed, targets), or (mixed, labels,
    weights) with ``targets="index"`` (then ``mixed_cross_entropy``), then the mixed label maps
    when `maps` are given, then the boxes, their labels and weights when `boxes` are given
    (lists of one tensor a sample: [N'_i, 4], [N'_i], [N'_i]), then the mask and params outputs
    where asked for. The tensors are passed to DALI and back without copies (DLPack); the labels
    and boxes are read on the host (the op draws there). A call that is refused (a label out of
    range, an empty batch, ...) leaves the generator and the schedule as they were.

    A channels_last [B, C, H, W] batch (``x.contiguous(memory_format=torch.channels_last)``) is
    mixed as the HWC memory it is, without a copy, and comes back channels_last (unless
    ``output_layout`` asks for another). `memory_format`: the output's, whatever the input's:
    ``torch.channels_last`` (for a channels_last model: the conversion done by the mix, where
    timm's train.py converts the mixed batch after ``mixup_fn``) or ``torch.contiguous_format``;
    None (default): the input's.

    `maps` (segmentation): label maps [B, H, W], [B, 1, H, W] or [B, H, W, 1] of uint8, int32
    or int64 class ids (int64: copied to the op's int32 and back, its values checked to fit);
    the mixed maps come back in the shape and type given.

    `boxes` (detection, docs/methods.md 13): one float32 [N_i, 4] tensor a sample (relative
    ltrb, as ``fn.readers.coco(ltrb=True, ratio=True)`` gives them) and `box_labels`, one int
    [N_i] tensor a sample; Mixup, CutMix and ResizeMix mix them with the image's own draw.

    `config`: a ``dali_msda.pipelines.MixConfig`` instead of the method's keywords, as the
    pipelines take it: timm's recipes with ``MixConfig.from_timm(...)`` (Mixup and CutMix
    switched per batch, pair or sample with `switch_prob`, drawn as the pipelines draw it),
    `bce_target_thresh` applied to the targets. ``mixer.schedule`` (a ``MixSchedule``) then
    changes it between calls: ``mixer.schedule.off()`` for timm's mixup-off epochs,
    ``mixer.schedule.set(alpha=...)``; `state_dict` holds the switching's draws too. With
    ``targets="index"`` the config's label smoothing is the loss's: pass
    ``mixer.label_smoothing`` to ``mixed_cross_entropy`` (as ``pipe.label_smoothing`` of
    ``imagenet_train(targets="index")``).
    """

    def __init__(self, config=None, *, seed=None, layout="CHW", memory_format=None,
                 **op_args):
        import dali_msda  # noqa: F401  (the plugin, before ndd builds its operator list)
        import nvidia.dali.experimental.dynamic as ndd

        if layout not in ("CHW", "HWC"):
            raise ValueError(f"`layout` must be 'CHW' or 'HWC'; got {layout!r}.")
        if memory_format not in (None, torch.channels_last, torch.contiguous_format):
            raise ValueError("`memory_format` must be torch.channels_last, "
                             f"torch.contiguous_format or None; got {memory_format}.")
        if memory_format is not None and (layout != "CHW" or "output_layout" in op_args):
            raise ValueError("`memory_format` is the memory of a [B, C, H, W] output: it "
                             "takes layout='CHW' and no `output_layout`.")
        self._ndd = ndd
        self.layout = layout
        self.memory_format = memory_format
        self.op_args = dict(op_args)
        if isinstance(op_args.get("dtype"), torch.dtype):  # torch's names for the op's types
            types = {torch.uint8: ndd.uint8, torch.float16: ndd.float16,
                     torch.float32: ndd.float32}
            if op_args["dtype"] not in types:
                raise ValueError(f"`dtype` must be torch.uint8, torch.float16 or torch.float32 "
                                 f"(the op's output types); got {op_args['dtype']}.")
            self.op_args["dtype"] = types[op_args["dtype"]]
        from dali_msda.pipelines.config import is_int

        if seed is not None and not is_int(seed):
            raise ValueError(f"`seed` must be an int or None (a random one); got {seed!r}.")
        self.rng = ndd.random.RNG(seed=seed)
        self.schedule = None if config is None else self._schedule_of(config, seed)

    @property
    def label_smoothing(self):
        """The label smoothing of this mixer's targets: the config's or the `label_smoothing`
        argument's (0 if none); with index targets, the one to give the loss."""
        if self.schedule is not None:
            return self.schedule.config.label_smoothing
        return float(self.op_args.get("label_smoothing", 0.0))

    def _schedule_of(self, config, seed):
        from dali_msda.pipelines import MixConfig, MixSchedule
        from dali_msda.pipelines.config import BUILD_FIXED

        if not isinstance(config, MixConfig):
            raise TypeError(f"`config` must be a dali_msda.pipelines.MixConfig; got "
                            f"{type(config).__name__}.")
        # fn.msda.mix's arguments the config sets: its build-fixed fields of the op's names
        # (the class count is checked below; bce_target_thresh is not the op's), the method
        # and the schedule's per-sample argument inputs
        config_args = (set(BUILD_FIXED) - {"num_classes", "bce_target_thresh"}) | {
            "method", "method_id", "alpha", "hmix_ratio", "prob"}
        clash = sorted(set(self.op_args) & config_args)
        if clash:
            raise ValueError(f"Mixer: {', '.join(clash)} set beside `config`; a MixConfig sets "
                             "them: give them to it (MixConfig(...) or MixConfig.from_timm(...)).")
        given = self.op_args.get("num_classes", config.num_classes)
        if config.num_classes is not None and given != config.num_classes:
            raise ValueError(f"Mixer: num_classes={given} differs from the config's "
                             f"({config.num_classes}).")
        if given is not None:
            self.op_args["num_classes"] = given
        schedule = MixSchedule(config)
        schedule.seed = secrets.randbits(32) if seed is None else int(seed)
        return schedule

    def __call__(self, images, labels, maps=None, boxes=None, box_labels=None):
        # a refused call (bad labels, say) leaves the generator and the schedule as they were:
        # the next call draws what it would have drawn without it
        with self._unchanged_on_error():
            return self._mix(images, labels, maps, boxes, box_labels)

    @contextlib.contextmanager
    def _unchanged_on_error(self):
        """The generator and the schedule (with its switching seed) put back as they were when
        the block raises."""
        rng = self.rng.get_state()
        schedule = None if self.schedule is None else (self.schedule.state_dict(),
                                                       self.schedule.seed)
        try:
            yield
        except BaseException:
            self.rng.set_state(rng)
            if schedule is not None:
                self.schedule.load_state_dict(schedule[0])
                self.schedule.seed = schedule[1]
            raise

    def _mix(self, images, labels, maps, boxes, box_labels):
        ndd = self._ndd
        given = {"images": images, "labels": labels, **({} if maps is None else {"maps": maps})}
        for name, value in given.items():
            if not isinstance(value, torch.Tensor):
                raise TypeError(f"`{name}` must be a torch.Tensor; got {type(value).__name__} "
                                "(torch.as_tensor(...) makes one).")
        if images.dim() != 4:
            raise ValueError(f"`images` must be a batch [B, C, H, W] (layout {self.layout!r}: "
                             f"[B, {', '.join(self.layout)}]); got shape {tuple(images.shape)}.")
        if images.shape[0] == 0:
            raise ValueError("`images` is an empty batch (0 samples): a batch to mix has at "
                             "least one sample.")
        if labels.dim() == 0 or labels.shape[0] != images.shape[0]:
            raise ValueError(f"`labels` must have one entry per image: got "
                             f"{labels.shape[0] if labels.dim() else 'a 0-d tensor'} for "
                             f"{images.shape[0]} images.")
        if images.requires_grad:  # DLPack refuses it, saying "Can't call numpy()"
            raise ValueError("`images` require grad, and the op is not differentiable: mix "
                             "`images.detach()` (the gradient stops at the mixed batch).")
        if images.dtype == torch.bfloat16:  # DLPack's conversion would fail without a name
            raise ValueError("`images` must be uint8, float16 or float32 (the op's types); got "
                             "bfloat16: mix `images.float()` or `images.half()`.")
        device = _op_device(images)
        layout, args = self.layout, dict(self.op_args)
        # a channels_last [B, C, H, W] batch is HWC in memory: mixed as such, without a copy,
        # and handed back as a channels_last view unless an output layout is asked for
        given_last = (layout == "CHW" and not images.is_contiguous() and
                      images.is_contiguous(memory_format=torch.channels_last))
        if given_last:
            images, layout = images.permute(0, 2, 3, 1), "HWC"
        if self.memory_format is not None:  # the transposition fused into the mix
            out_last = self.memory_format == torch.channels_last
            args["output_layout"] = "HWC" if out_last else "CHW"
        else:
            out_last = given_last and "output_layout" not in args  # the op keeps HWC
        inputs = [ndd.as_batch(images.contiguous(), layout=layout),
                  ndd.as_batch(labels.detach().cpu().contiguous())]
        if maps is not None:
            maps, maps_back = _op_maps(maps, images.shape[0])
            inputs.append(ndd.as_batch(maps, layout="HW"))
        args.update(self._box_args(boxes, box_labels, images.shape[0]))
        index = args.get("targets") == "index"
        cfg = self._scheduled_args(images.shape[0], index, args)
        outs = ndd.msda.mix(*inputs, rng=self.rng, device=device, **args)
        outs = outs if isinstance(outs, tuple) else (outs,)
        first_box = (3 if index else 2) + (maps is not None)
        ragged = range(first_box, first_box + 3) if boxes is not None else ()
        outs = [[t.torch() for t in o.tensors] if k in ragged else o.torch()
                for k, o in enumerate(outs)]
        if maps is not None:
            outs[first_box - 1] = maps_back(outs[first_box - 1])
        if out_last:
            outs[0] = outs[0].permute(0, 3, 1, 2)  # [B, C, H, W], channels_last memory
        if cfg is not None and cfg.bce_target_thresh is not None and not index:
            outs[1] = (outs[1] > cfg.bce_target_thresh).to(outs[1].dtype)  # timm's BCE
        return tuple(outs)

    def _scheduled_args(self, n, index, args):
        """With a config: this call's method, alpha, hmix ratio and prob per sample (the
        schedule's draw) and the config's other arguments, into `args`; returns the config."""
        if self.schedule is None:
            return None
        self.schedule.batch_size = n
        method_id, alpha, ratio, prob = self.schedule()
        cfg = self.schedule.history[-1]
        per_sample = lambda arrays: self._ndd.as_batch(torch.from_numpy(np.stack(arrays)))  # noqa
        args.update(method_id=per_sample(method_id), alpha=per_sample(alpha),
                    hmix_ratio=per_sample(ratio), prob=per_sample(prob), **cfg.op_args(),
                    label_smoothing=0.0 if index else cfg.label_smoothing)
        return cfg

    def _box_args(self, boxes, box_labels, n):
        """boxes / box_labels as the op's argument inputs (host batches), or {}."""
        if boxes is None and box_labels is None:
            return {}
        if boxes is None or box_labels is None:
            raise ValueError("`boxes` and `box_labels` go together: give both or neither.")
        for name, value in (("boxes", boxes), ("box_labels", box_labels)):
            if len(value) != n:
                raise ValueError(f"`{name}` must hold one tensor per image: got {len(value)} "
                                 f"for {n} images.")
        return {"boxes": self._ndd.as_batch(_host_boxes(boxes)),
                "box_labels": self._ndd.as_batch(_host_box_labels(box_labels))}

    def state_dict(self):
        """The generator's state, as text (torch.save and json take it), and with a config the
        schedule's (its configuration and the switching's seed and draws): the next call after
        load_state_dict draws what this one's next call would."""
        state = {"rng": str(self.rng.get_state())}
        if self.schedule is not None:
            state["schedule"] = self.schedule.state_dict()
            state["switch_seed"] = self.schedule.seed
        return state

    def load_state_dict(self, state):
        """Restores `state_dict()`'s state; a state that cannot be loaded (another kind of
        Mixer's, a damaged one) is refused and leaves this one as it was."""
        if not isinstance(state, dict) or "rng" not in state:
            raise ValueError("Mixer.load_state_dict: the state must be a dict from "
                             f"Mixer.state_dict(); got {type(state).__name__}"
                             f"{'' if not isinstance(state, dict) else ' without rng'}.")
        if ("schedule" in state) != (self.schedule is not None):
            raise ValueError("Mixer.load_state_dict: the state is of a Mixer "
                             f"{'with' if 'schedule' in state else 'without'} a config; this "
                             f"one has {'one' if self.schedule is not None else 'none'}.")
        with self._unchanged_on_error():
            self.rng.set_state(state["rng"])
            if self.schedule is not None:
                self.schedule.load_state_dict(state["schedule"])
                self.schedule.seed = int(state["switch_seed"])


def _op_device(images):
    """Where the op runs for a batch: the images' own GPU by its index ("gpu:<index>"; under
    torchrun a rank's cuda:<rank>, whatever the current device is), else the CPU."""
    return f"gpu:{images.device.index}" if images.is_cuda else "cpu"


def _op_maps(maps, n):
    """`maps` as the op takes them ([B, H, W], uint8 or int32) and a function that gives the
    mixed maps back in the given shape and type: [B, H, W], [B, 1, H, W] or [B, H, W, 1];
    int64 (torch's class ids, what cross-entropy takes) through int32, its values checked to
    fit (mixing only moves values)."""
    shape, dtype = tuple(maps.shape), maps.dtype
    if maps.dim() not in (3, 4) or (maps.dim() == 4 and 1 not in (shape[1], shape[3])):
        raise ValueError(f"`maps` must be label maps [B, H, W] (or [B, 1, H, W], [B, H, W, 1]); "
                         f"got shape {shape}.")
    if shape[0] != n:
        raise ValueError(f"`maps` must hold one map per image: got {shape[0]} for {n} images.")
    if dtype not in (torch.uint8, torch.int32, torch.int64):
        raise ValueError(f"`maps` must be uint8, int32 or int64 class ids; got {dtype}.")
    h, w = shape[1:3] if maps.dim() == 3 or shape[1] != 1 else shape[2:4]
    maps = maps.detach().reshape(n, h, w).contiguous()
    if dtype == torch.int64 and maps.numel():
        low, high = (int(v) for v in torch.aminmax(maps))
        if low < -2**31 or high >= 2**31:
            bad = low if low < -2**31 else high
            raise ValueError(f"`maps` of int64 must hold values that fit in int32 (the op's "
                             f"type); got {bad}.")
    if dtype == torch.int64:
        maps = maps.to(torch.int32)
    return maps, lambda out: out.reshape(shape).to(dtype)


def _host_boxes(boxes):
    """Per-sample boxes as float32 host tensors (the op's type)."""
    out = []
    for i, t in enumerate(boxes):
        if not t.is_floating_point():
            raise ValueError(f"`boxes` must be floating point (relative ltrb); sample {i} is "
                             f"{t.dtype}.")
        out.append(t.detach().cpu().to(torch.float32).contiguous())
    return out


def _host_box_labels(labels):
    """Per-sample box labels as int32 host tensors (the op's type), each value checked to fit:
    DALI's dynamic mode casts argument inputs to the op's type, saturating (2**40 would arrive
    as 2147483647), where the pipeline op refuses another type."""
    out = []
    for i, t in enumerate(labels):
        t = t.detach().cpu()
        if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
            raise ValueError(f"`box_labels` must be integers; sample {i} is {t.dtype}.")
        wide = t.to(torch.int64)
        bad = ((wide < -2**31) | (wide >= 2**31)).nonzero()
        if len(bad):
            k = int(bad[0, 0])
            raise ValueError(f"`box_labels` must fit in int32 (the op's type); got "
                             f"{int(wide.reshape(-1)[k])} at index {k} of sample {i}.")
        out.append(t.to(torch.int32).contiguous())
    return out


def soft_cross_entropy(logits, targets):
    """Cross entropy with probability targets (the same as torch.nn.CrossEntropyLoss)."""
    return torch.nn.functional.cross_entropy(logits.float(), targets)


class _MixedCrossEntropy(torch.autograd.Function):
    """Per-sample w CE_eps(own) + (1 - w) CE_eps(partner) from the logits, the dense target never
    built. With lsm = log_softmax(logits) (one fused pass, kept for the backward):
    CE_eps(y) = -(1 - eps) lsm[y] - eps mean(lsm), and the gradient softmax - target is
    (exp(lsm) - eps / K) g, then the two picked classes' shares subtracted: three passes over
    [B, K] where torch's probability-target backward reads the dense target besides."""

    @staticmethod
    def forward(ctx, logits, own, partner, weight, eps):
        lsm = torch.log_softmax(logits, dim=1)
        picked = (weight * lsm.gather(1, own).squeeze(1) +
                  (1 - weight) * lsm.gather(1, partner).squeeze(1))
        loss = -(1.0 - eps) * picked
        if eps:
            loss = loss - eps * lsm.mean(dim=1)
        ctx.save_for_backward(lsm, own, partner, weight)
        ctx.eps = eps
        return loss

    @staticmethod
    def backward(ctx, grad_loss):
        lsm, own, partner, weight = ctx.saved_tensors
        eps, k = ctx.eps, lsm.shape[1]
        g = grad_loss[:, None]
        grad = lsm.exp()  # softmax
        if eps:
            grad.sub_(eps / k)
        grad.mul_(g)
        grad.scatter_add_(1, own, -(1.0 - eps) * weight[:, None] * g)
        grad.scatter_add_(1, partner, -(1.0 - eps) * (1 - weight[:, None]) * g)
        return grad, None, None, None, None


def mixed_cross_entropy(logits, own, partner, weight, label_smoothing=0.0, reduction="mean"):
    """The cross-entropy of a mixed batch from index targets (fn.msda.mix's
    ``targets="index"``): ``w * CE(logits, own) + (1 - w) * CE(logits, partner)`` per sample,
    each CE label-smoothed by `label_smoothing`. It equals ``cross_entropy(logits, targets)``
    with the dense targets ``w * smooth(onehot(own)) + (1 - w) * smooth(onehot(partner))``
    (the op's ``targets="dense"``; the loss is linear in the target), value and gradient,
    without K floats a sample (one log-softmax forward; a backward of three passes over the
    logits' size that never builds the target).

    `logits` [B, K]; `own`, `partner` [B] class indices (any integer type); `weight` [B] the own
    class's weight (or a scalar); `reduction`: "mean" (default), "sum" or "none". Half-precision
    logits are computed in float32 (as a float16 model's loss should be), others as they come.
    """
    # the arguments' forms (no values read: on a GPU that would wait for the batch)
    if logits.dim() != 2:
        raise ValueError(f"`logits` must be [B, K]; got shape {tuple(logits.shape)}.")
    n = logits.shape[0]
    for name, ids in (("own", own), ("partner", partner)):
        if ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool:
            raise ValueError(f"`{name}` must be integer class indices; got {ids.dtype}.")
        if ids.numel() != n:
            raise ValueError(f"`{name}` must hold one class index per row of `logits` ({n}); "
                             f"got {ids.numel()}.")
    weight = torch.as_tensor(weight, device=logits.device).reshape(-1)
    if weight.numel() not in (1, n):
        raise ValueError(f"`weight` must hold one weight per row of `logits` ({n}) or be one "
                         f"number; got {weight.numel()}.")
    if not 0.0 <= float(label_smoothing) <= 1.0:  # also refuses NaN
        raise ValueError(f"`label_smoothing` must be in [0, 1]; got {label_smoothing}.")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"`reduction` must be 'mean', 'sum' or 'none'; got {reduction!r}.")
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    own, partner = own.reshape(-1, 1).long(), partner.reshape(-1, 1).long()
    weight = weight.to(logits.dtype)
    weight = weight.expand(n) if weight.numel() == 1 else weight
    loss = _MixedCrossEntropy.apply(logits, own, partner, weight.detach(),
                                    float(label_smoothing))
    if reduction == "mean":
        return loss.mean()
    return loss.sum() if reduction == "sum" else loss
