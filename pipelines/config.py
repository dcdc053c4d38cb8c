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

import numpy as np

METHOD_IDS = {"mixup": 0, "cutmix": 1, "hmix": 2, "gmix": 3}


@dataclasses.dataclass(frozen=True)
class MixConfig:
    method: str = "hmix"
    alpha: float = 1.0
    hmix_ratio: float = 0.5
    prob: float = 1.0
    mode: str = "batch"
    label_smoothing: float = 0.0
    correct_lam: bool = True
    enabled: bool = True

    def __post_init__(self):
        if self.method not in METHOD_IDS:
            raise ValueError(f"MixConfig: `method` must be one of {tuple(METHOD_IDS)}; got "
                             f"{self.method!r}.")
        if self.mode not in ("batch", "elem"):
            raise ValueError(f"MixConfig: `mode` must be 'batch' or 'elem'; got {self.mode!r}.")
        if not self.alpha > 0 or not np.isfinite(self.alpha):
            raise ValueError(f"MixConfig: `alpha` must be a finite number > 0; got {self.alpha}.")
        for name in ("prob", "hmix_ratio", "label_smoothing"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"MixConfig: `{name}` must be in [0, 1]; got {value}.")

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


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
        # the configuration each scheduled iteration got, most recent last (bounded)
        self.history = collections.deque(maxlen=4096)

    @property
    def config(self):
        return self._config

    def set(self, **changes):
        """Change method, alpha, hmix_ratio, prob or enabled; other fields need a rebuild."""
        fixed = {"mode", "label_smoothing", "correct_lam"} & set(changes)
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
                "pending": [dataclasses.asdict(c) for c in pending]}

    def load_state_dict(self, state):
        """Restore `state_dict()`'s output. The fields fixed at build time (mode,
        label_smoothing, correct_lam) must equal this schedule's: they are baked into the
        pipeline."""
        config = MixConfig(**state["config"])
        pending = [MixConfig(**c) for c in state.get("pending", [])]
        for name in ("mode", "label_smoothing", "correct_lam"):
            saved, built = getattr(config, name), getattr(self._config, name)
            if saved != built:
                raise ValueError(f"MixSchedule: the checkpoint was saved with {name}={saved!r}, "
                                 f"this pipeline was built with {name}={built!r}; build it with "
                                 "the checkpoint's value to resume.")
        with self._lock:
            self._config = config
            self._pending = collections.deque(pending)

    def __call__(self, batch_info=None):
        """external_source callback: per-sample method_id, alpha, hmix_ratio, prob.
        `batch_info` (the iteration index DALI passes) is unused: the configuration is live."""
        if self.batch_size is None:
            raise RuntimeError("MixSchedule used outside a pipeline built by dali_msda.pipelines")
        with self._lock:
            cfg = self._pending.popleft() if self._pending else self._config
        self.history.append(cfg)
        n = self.batch_size
        if self._feed is None or self._feed[:2] != (cfg, n):  # built once per configuration
            prob = cfg.prob if cfg.enabled else 0.0
            arrays = ([np.array(METHOD_IDS[cfg.method], dtype=np.int32)] * n,
                      [np.array(cfg.alpha, dtype=np.float32)] * n,
                      [np.array(cfg.hmix_ratio, dtype=np.float32)] * n,
                      [np.array(prob, dtype=np.float32)] * n)
            self._feed = (cfg, n, arrays)
        return self._feed[2]
