"""Mixing configuration and the schedule that feeds it into a running pipeline.

`MixConfig` is what a training recipe states (method, alpha, ratio, prob, mode, smoothing).
`MixSchedule` holds the live configuration of one pipeline: the pipeline reads method, alpha,
hmix_ratio and prob from it every iteration (through `fn.external_source` argument inputs of
fn.msda.mix), so the training loop can change them, or switch mixing off, without rebuilding.
`mode`, `label_smoothing` and `correct_lam` are fixed when the pipeline is built.
"""

import collections
import dataclasses
import threading
from typing import Optional

import numpy as np

from dali_msda import reference as ref
from dali_msda.methods import METHOD_IDS, MODES  # noqa: F401  (classmix: segmentation only)


CUTMIX_MODES = {"bbox": "cutmix", "hmix": "hmix", "gmix": "gmix"}  # the official code's names
# MixConfig fields baked into a pipeline when it is built (not live through the schedule)
BUILD_FIXED = ("mode", "label_smoothing", "correct_lam", "num_classes", "decay_power",
               "scale_min", "scale_max", "resize_interp", "box", "bce_target_thresh",
               "cutmix_minmax", "cutmix_area", "cutmix_aspect", "multi_label")


NUMBER_FIELDS = ("alpha", "hmix_ratio", "prob", "label_smoothing", "switch_alpha", "switch_prob",
                 "decay_power", "scale_min", "scale_max")


def is_int(value):
    """Whether `value` is an integer (Python's or NumPy's), not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def is_number(value):
    """Whether `value` is a number (Python's or NumPy's), not a bool."""
    return isinstance(value, (int, float, np.number)) and not isinstance(value, (bool, np.bool_))


def finite_pair(value):
    """Whether `value` is two finite real numbers."""
    try:
        pair = [float(v) for v in value]
    except (TypeError, ValueError):  # not a sequence, or not of numbers
        return False
    return len(pair) == 2 and all(np.isfinite(pair))


@dataclasses.dataclass(frozen=True)
class MixConfig:
    """A mixing recipe. `method` with lam ~ Beta(`alpha`, `alpha`); with `switch_method` set,
    each batch (batch mode), sample (elem mode) or pair (pair mode: samples i and B - 1 - i
    share one draw, timm's "pair") uses `switch_method` instead with probability
    `switch_prob`, its lam drawn from Beta(`switch_alpha`, `switch_alpha`): timm's Mixup /
    CutMix switching (see `from_timm`). `prob`: the chance that mixing is applied at all.
    `num_classes` (optional): checked against the data's class count by the pipelines.
    `decay_power`: FMix's spectrum decay; `scale_min`, `scale_max`, `resize_interp`: ResizeMix's
    scale range and resizing; `box`: CutMix's and HMix's box, "even" (the CutMix authors', the
    default) or "exact" (timm's since 1.0.29) (fn.msda.mix arguments of the same names).
    `bce_target_thresh`: targets binarised after mixing, 1 where above it and 0 elsewhere, for
    a binary cross-entropy (timm's `--bce-target-thresh`, its BinaryCrossEntropy's
    `target_threshold`); dense targets only.
    `cutmix_minmax` (timm's), or `cutmix_area` with `cutmix_aspect` (UniMatch's box): CutMix's
    box drawn from ranges instead of from lam (fn.msda.mix arguments; docs/methods.md 4b).
    `multi_label`: the labels are multi-hot float32 vectors, each entry smoothed towards 1/2
    (timm's `Mixup(multi_label=True)`; for `dali_msda.pytorch.Mixer`: the pipelines read class
    ids)."""
    method: str = "hmix"
    alpha: float = 1.0
    hmix_ratio: float = 0.5
    prob: float = 1.0
    mode: str = "batch"
    label_smoothing: float = 0.0
    correct_lam: bool = True
    enabled: bool = True
    switch_method: Optional[str] = None
    switch_alpha: float = 1.0
    switch_prob: float = 0.5
    num_classes: Optional[int] = None
    decay_power: float = 3.0
    scale_min: float = 0.1
    scale_max: float = 0.8
    resize_interp: str = "nearest"
    box: str = "even"
    bce_target_thresh: Optional[float] = None
    cutmix_minmax: Optional[tuple] = None
    cutmix_area: Optional[tuple] = None
    cutmix_aspect: Optional[tuple] = None
    multi_label: bool = False

    def __post_init__(self):
        for name in NUMBER_FIELDS:  # a str, None or bool would fail below without a name
            value = getattr(self, name)
            if not is_number(value):
                raise ValueError(f"MixConfig: `{name}` must be a number; got {value!r}.")
        for name in ("method", "switch_method"):
            value = getattr(self, name)
            if value not in METHOD_IDS and (name == "method" or value is not None):
                raise ValueError(f"MixConfig: `{name}` must be one of {tuple(METHOD_IDS)}"
                                 f"{' or None' if name == 'switch_method' else ''}; got "
                                 f"{value!r}.")
        if self.mode not in MODES:
            raise ValueError(f"MixConfig: `mode` must be one of {MODES}; got {self.mode!r}.")
        for name in ("alpha", "switch_alpha", "decay_power"):
            value = getattr(self, name)
            if not value > 0 or not np.isfinite(value):
                raise ValueError(f"MixConfig: `{name}` must be a finite number > 0; got "
                                 f"{value}.")
        for name in ("prob", "hmix_ratio", "label_smoothing", "switch_prob"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"MixConfig: `{name}` must be in [0, 1]; got {value}.")
        for name in ("scale_min", "scale_max"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                raise ValueError(f"MixConfig: `{name}` must be in (0, 1]; got {value}.")
        if self.resize_interp not in ("nearest", "bilinear"):
            raise ValueError(f"MixConfig: `resize_interp` must be 'nearest' or 'bilinear'; got "
                             f"{self.resize_interp!r}.")
        if not isinstance(self.multi_label, (bool, np.bool_)):
            raise ValueError(f"MixConfig: `multi_label` must be True or False; got "
                             f"{self.multi_label!r}.")
        if self.box not in ("even", "exact"):
            raise ValueError(f"MixConfig: `box` must be 'even' or 'exact'; got {self.box!r}.")
        if self.scale_min > self.scale_max:
            raise ValueError(f"MixConfig: `scale_min` must be <= `scale_max`; got "
                             f"{self.scale_min} > {self.scale_max}.")
        for name in ("cutmix_minmax", "cutmix_area", "cutmix_aspect"):
            value = getattr(self, name)
            if value is not None and not finite_pair(value):
                raise ValueError(f"MixConfig: `{name}` must be (min, max) or None; got "
                                 f"{value!r}.")
        if self.cutmix_minmax is not None and self.cutmix_area is not None:
            raise ValueError("MixConfig: `cutmix_minmax` and `cutmix_area` are two ways to draw "
                             "CutMix's box: give one.")
        if self.cutmix_aspect is not None and self.cutmix_area is None:
            raise ValueError("MixConfig: `cutmix_aspect` goes with `cutmix_area` (UniMatch's "
                             "box, docs/methods.md 4b).")
        # fn.msda.mix's rules for the ranges (4b), here so that a recipe is refused when made,
        # not when its pipeline first runs
        for name, rule, ok in (
                ("cutmix_minmax", "0 < min < max <= 1", lambda lo, hi: 0 < lo < hi <= 1),
                ("cutmix_area", "0 < min <= max <= 1", lambda lo, hi: 0 < lo <= hi <= 1),
                ("cutmix_aspect", "0 < min <= max (h / w)", lambda lo, hi: 0 < lo <= hi)):
            value = getattr(self, name)
            if value is not None and not ok(*(float(v) for v in value)):
                raise ValueError(f"MixConfig: `{name}` must satisfy {rule}; got "
                                 f"{tuple(float(v) for v in value)}.")
        if self.bce_target_thresh is not None and (
                not is_number(self.bce_target_thresh) or not 0.0 <= self.bce_target_thresh < 1.0):
            raise ValueError(f"MixConfig: `bce_target_thresh` must be in [0, 1) or None; got "
                             f"{self.bce_target_thresh}.")
        if self.num_classes is not None and not (is_int(self.num_classes) and
                                                 self.num_classes > 0):
            raise ValueError(f"MixConfig: `num_classes` must be a positive int or None; got "
                             f"{self.num_classes!r}.")

    @classmethod
    def from_timm(cls, mixup_alpha=1.0, cutmix_alpha=0.0, cutmix_minmax=None, prob=1.0,
                  switch_prob=0.5, mode="batch", correct_lam=True, label_smoothing=0.1,
                  num_classes=1000, cutmix_mode="bbox", hmix_ratio=1.0, bce_target_thresh=None,
                  multi_label=False, box=None):
        """The configuration equivalent to ``timm.data.Mixup(...)`` with the same arguments
        (defaults included), and to the official HMix / GMix ``Mixup`` (naver-ai/hmix-gmix,
        whose `cutmix_mode` "bbox" / "hmix" / "gmix" chooses what the CutMix branch does and
        whose `hmix_ratio` defaults to 1.0): with both alphas > 0, each batch (mode "batch"),
        sample ("elem") or pair of samples i and B - 1 - i ("pair") uses the CutMix branch with
        probability `switch_prob` (lam ~ Beta(cutmix_alpha)), else Mixup (lam ~
        Beta(mixup_alpha)); with one alpha > 0, that branch always; mixing is applied with
        probability `prob`. Refused as timm refuses (no alpha > 0). Generalisation: timm
        refuses an odd batch in mode "pair"; here its middle sample is left unmixed.
        `cutmix_minmax` draws the CutMix branch's box sides from that range (spec
        4b) and, as timm does, forces cutmix_alpha to 1.0 (its lam is then not used).
        Generalisation: the official code applies `cutmix_mode` in batch mode only (its elem
        mode always cuts plain boxes); here it applies in elem mode too. `bce_target_thresh` is
        timm's train.py argument of that name (its BinaryCrossEntropy loss binarises the mixed
        targets); here the pipeline binarises them. `multi_label` (timm 1.0.31's): multi-hot
        label vectors, each entry smoothed towards 1/2. `box` (ours): how the CutMix box is cut
        (spec 4); by default "exact" for timm's CutMix (`cutmix_mode` "bbox": timm's rand_bbox
        since timm 1.0.29; give "even" for timm up to 1.0.28) and "even" for the HMix / GMix
        fork's modes (its rand_bbox)."""
        if cutmix_minmax is not None:  # timm: "force cutmix alpha == 1.0 when minmax active"
            if not finite_pair(cutmix_minmax):
                raise ValueError("MixConfig.from_timm: `cutmix_minmax` must be (min, max); got "
                                 f"{cutmix_minmax!r}.")
            cutmix_alpha = 1.0
        if cutmix_mode not in CUTMIX_MODES:
            raise ValueError(f"MixConfig.from_timm: `cutmix_mode` must be one of "
                             f"{tuple(CUTMIX_MODES)}; got {cutmix_mode!r}.")
        for name, value in (("mixup_alpha", mixup_alpha), ("cutmix_alpha", cutmix_alpha)):
            if not (is_number(value) and value >= 0 and np.isfinite(value)):
                raise ValueError(f"MixConfig.from_timm: `{name}` must be a finite number >= 0 "
                                 f"(0 turns that branch off); got {value}.")
        if not (mixup_alpha > 0 or cutmix_alpha > 0):
            raise ValueError("MixConfig.from_timm: one of mixup_alpha > 0 or cutmix_alpha > 0 "
                             "must hold (timm: 'One of mixup_alpha > 0., cutmix_alpha > 0., "
                             "cutmix_minmax not None should be true').")
        if box is None:
            box = "exact" if cutmix_mode == "bbox" else "even"
        common = dict(prob=prob, mode=mode, correct_lam=correct_lam, hmix_ratio=hmix_ratio,
                      box=box, label_smoothing=label_smoothing, num_classes=num_classes,
                      bce_target_thresh=bce_target_thresh, multi_label=multi_label,
                      cutmix_minmax=None if cutmix_minmax is None else tuple(cutmix_minmax))
        cut = CUTMIX_MODES[cutmix_mode]
        if mixup_alpha > 0 and cutmix_alpha > 0:
            return cls(method="mixup", alpha=mixup_alpha, switch_method=cut,
                       switch_alpha=cutmix_alpha, switch_prob=switch_prob, **common)
        if mixup_alpha > 0:
            return cls(method="mixup", alpha=mixup_alpha, **common)
        return cls(method=cut, alpha=cutmix_alpha, **common)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def box_range_args(self):
        """fn.msda.mix's arguments for CutMix's ranged box (spec 4b), the ones set."""
        return {k: list(getattr(self, k)) for k in ("cutmix_minmax", "cutmix_area",
                                                    "cutmix_aspect") if getattr(self, k)}

    def op_args(self):
        """fn.msda.mix's arguments fixed when a pipeline is built (BUILD_FIXED but the class
        count, the label smoothing and bce_target_thresh, which the caller applies: they depend
        on the targets' form and the data); the live ones (method, alpha, hmix_ratio, prob) are
        MixSchedule's argument inputs."""
        return dict(mode=self.mode, correct_lam=self.correct_lam, decay_power=self.decay_power,
                    scale_min=self.scale_min, scale_max=self.scale_max,
                    resize_interp=self.resize_interp, box=self.box, multi_label=self.multi_label,
                    **self.box_range_args())


class MixSchedule:
    """The live mixing configuration of a pipeline; call `set`, `off` or `on` between epochs.

    The pipeline takes the configuration when it schedules an iteration. With
    `dali_msda.pytorch.MixIterator`, no iteration of the next epoch is scheduled before the
    training loop asks for its first batch, so a change made between epochs applies to the
    whole next epoch and to nothing before it. A change made inside an epoch applies from the
    next iteration the pipeline schedules (up to `prefetch_queue_depth` batches later).
    """

    def __init__(self, config=None):
        self._config = config if config is not None else MixConfig()
        self._lock = threading.Lock()
        self.batch_size = None  # set by the pipeline factory
        self._feed = None  # (config, batch size, the arrays fed for it)
        self._pending = collections.deque()  # restored in-flight iterations, fed first
        self._draws = 0  # iterations scheduled so far (seeds the method switching)
        self.seed = 0  # set by the pipeline factory (its seed)
        # the configuration each scheduled iteration got, most recent last (bounded)
        self.history = collections.deque(maxlen=4096)

    @property
    def config(self):
        return self._config

    def set(self, **changes):
        """Change method, alpha, hmix_ratio, prob, enabled or the switching (switch_method,
        switch_alpha, switch_prob); mode, label_smoothing, correct_lam and num_classes are
        fixed when the pipeline is built (and decay_power, scale_min, scale_max,
        resize_interp, box)."""
        fixed = set(BUILD_FIXED) & set(changes)
        if fixed:
            raise ValueError(f"MixSchedule.set: {sorted(fixed)} are fixed when the pipeline is "
                             "built; build a new pipeline to change them.")
        with self._lock:
            self._config = self._config.replace(**changes)
        return self._config

    def off(self):
        return self.set(enabled=False)

    def on(self):
        return self.set(enabled=True)

    # ---- checkpointing (dali_msda.pytorch.MixIterator saves and restores this)
    def state_dict(self, in_flight=0):
        """Plain data (JSON-able): the current configuration and the configurations of the
        `in_flight` most recently scheduled iterations, which the consumer has not received
        yet (a restored pipeline recomputes them, and must do so with what they had)."""
        if in_flight > len(self.history):
            raise ValueError(f"MixSchedule.state_dict: {in_flight} iterations in flight, but "
                             f"only {len(self.history)} recorded.")
        pending = list(self.history)[len(self.history) - in_flight:] if in_flight else []
        return {"config": dataclasses.asdict(self._config),
                "pending": [dataclasses.asdict(c) for c in pending],
                "draws": self._draws - in_flight}

    def load_state_dict(self, state):
        """Restore `state_dict()`'s output. The fields fixed at build time (BUILD_FIXED) must
        equal this schedule's: they are baked into the pipeline."""
        config = MixConfig(**state["config"])
        pending = [MixConfig(**c) for c in state.get("pending", [])]
        for name in BUILD_FIXED:
            saved, built = getattr(config, name), getattr(self._config, name)
            if saved != built:
                raise ValueError(f"MixSchedule: the checkpoint was saved with {name}={saved!r}, "
                                 f"this pipeline was built with {name}={built!r}; build it with "
                                 "the checkpoint's value to resume.")
        with self._lock:
            self._config = config
            self._pending = collections.deque(pending)
            self._draws = int(state.get("draws", 0))

    def __call__(self, batch_info=None):
        """external_source callback: per-sample method_id, alpha, hmix_ratio, prob.
        `batch_info` (the iteration index DALI passes) is unused: the configuration is live.
        With `switch_method`, the method of each batch / sample is drawn here, from a generator
        seeded by (`seed`, the number of iterations scheduled before), so a restored
        checkpoint draws the same."""
        if self.batch_size is None:
            raise RuntimeError("MixSchedule used outside a pipeline built by dali_msda.pipelines")
        with self._lock:
            cfg = self._pending.popleft() if self._pending else self._config
            index = self._draws
            self._draws += 1
        self.history.append(cfg)
        n = self.batch_size
        if self._feed is None or self._feed[:2] != (cfg, n):  # built once per configuration
            prob = cfg.prob if cfg.enabled else 0.0
            arrays = ([np.array(METHOD_IDS[cfg.method], dtype=np.int32)] * n,
                      [np.array(cfg.alpha, dtype=np.float32)] * n,
                      [np.array(cfg.hmix_ratio, dtype=np.float32)] * n,
                      [np.array(prob, dtype=np.float32)] * n)
            self._feed = (cfg, n, arrays)
        arrays = self._feed[2]
        if cfg.switch_method is None:
            return arrays
        rng = np.random.default_rng([self.seed & 0xFFFFFFFF, index])
        return self._switched(cfg, n, rng) + arrays[2:]

    @staticmethod
    def _switched(cfg, n, rng):
        """(method ids, alphas) of timm's branch choice: `switch_method` with probability
        `switch_prob`, per batch in batch mode (one coin), per sample in elem mode, per pair
        (samples i and n - 1 - i, a coin for each i <= n - 1 - i in order) in pair mode, with
        that branch's alpha."""
        coins = (rng.random(ref.draw_count(cfg.mode, n)) < cfg.switch_prob)[
            ref.draw_sources(cfg.mode, n)]
        methods = np.where(coins, METHOD_IDS[cfg.switch_method], METHOD_IDS[cfg.method])
        alphas = np.where(coins, cfg.switch_alpha, cfg.alpha)
        return ([np.array(m, dtype=np.int32) for m in methods],
                [np.array(a, dtype=np.float32) for a in alphas])
