"""Run configuration and profiles.

A :class:`RunConfig` is everything that decides a run's numbers: the experiment
(method, data, noise, seed), the profile's data and optimisation settings, and the
method's own hyperparameters (``hp``, a frozen dataclass defined next to its trainer).

Profiles are data (``PROFILES``), shown by ``lnl list``:

* ``reduced``: a Fashion-MNIST subset and a small CNN, sized for a 2-core CPU in
  well under a minute per CE run; long enough that CE visibly memorises noisy labels.
  Its numbers illustrate the methods; they are never paper reproductions.
* ``full``: the papers' CIFAR protocol (PreAct ResNet-18, 300 epochs, SGD 0.02, ...),
  meant for a GPU. Methods adjust it to their own paper (see each trainer's ``full``).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field, fields
from typing import Any

from .errors import LNLError


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    datasets: tuple[str, ...]
    settings: dict[str, Any]


PROFILES: dict[str, Profile] = {
    # v2, calibrated on clean labels and a validation split (benchmarks/calibrate.py, the book's page
    # "Calibrating the reduced profile"): one budget for every method, a decayed learning rate
    "reduced": Profile(
        "reduced",
        "CPU-sized: a stratified Fashion-MNIST subset and a small CNN, 30 epochs, cosine; minutes, not hours",
        ("fashion_mnist", "cifar10", "cifar100"),
        dict(
            train_size=4000,
            test_size=2000,
            model="small_cnn",
            augment="none",  # plain CE, GCE, SCE; methods that augment take the flip views (REDUCED_VIEWS)
            epochs=30,
            batch_size=64,
            lr=0.05,
            momentum=0.9,
            weight_decay=0.0,
            schedule="cosine",
            milestones=(),
            eval_batch_size=1000,
        ),
    ),
    "full": Profile(
        "full",
        "the papers' CIFAR protocol (DivideMix substrate): PreAct ResNet-18, 300 epochs; GPU",
        ("cifar10", "cifar100"),
        dict(
            train_size=None,
            test_size=None,
            model="preact_resnet18",
            augment="weak",
            epochs=300,
            batch_size=128,
            lr=0.02,
            momentum=0.9,
            weight_decay=5e-4,
            schedule="multistep",
            milestones=(150,),
            eval_batch_size=1024,
        ),
    ),
}

# The reduced profile's views. Methods that augment take "flip" (random crop with 4-pixel padding
# costs CE and DivideMix several points on clean 28-pixel images, calibration stage 4); where a paper
# uses a stronger augmentation beside it (contrastive or consistency views), the reduced profile
# takes crop + flip ("weak"), RandAugment and AutoAugment being too slow on a CPU.
REDUCED_VIEWS, REDUCED_STRONG_VIEWS = "flip", "weak"

SCHEDULES = ("constant", "multistep", "cosine")
EVAL_SPLITS = ("test", "val")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")  # meaning: engine.amp_dtype
CHANNELS_LAST = ("auto", "on", "off")  # meaning: engine.use_channels_last


@dataclass(frozen=True)
class RunConfig:
    """Every setting of one run. Build it with :func:`make_config`."""

    method: str
    dataset: str
    noise: str
    rate: float
    seed: int
    profile: str
    hp: Any  # the method's hyperparameter dataclass
    # data
    train_size: int | None = None  # None: the whole training set
    test_size: int | None = None
    subset_seed: int = 0  # the same subset for every noise seed
    # what test_acc measures: the test split, or "val", a stratified held-out part of the training
    # split (disjoint from the training subset, correct labels) for choosing settings without the test set
    eval_split: str = "test"
    model: str = "preact_resnet18"
    augment: str = "weak"
    # optimisation
    epochs: int = 300
    batch_size: int = 128
    lr: float = 0.02
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = False
    schedule: str = "multistep"
    milestones: tuple[int, ...] = ()
    lr_gamma: float = 0.1
    # execution (speed only; results on the CPU do not depend on them)
    eval_batch_size: int = 1024
    precision: str = "auto"  # auto (bf16/fp16 autocast on CUDA, fp32 elsewhere), fp32, bf16, fp16
    channels_last: str = "auto"  # auto (on CUDA only), on, off
    track_memorization: bool = True  # per-epoch accuracy on the clean / mislabelled part

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "hp"}
        d["milestones"] = list(self.milestones)
        d["hp"] = dataclasses.asdict(self.hp)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


_EXPERIMENT_FIELDS = ("method", "dataset", "noise", "rate", "seed", "profile", "hp")


def settable_keys(hp_type: type) -> dict[str, Any]:
    """Name -> default of every key that ``--set`` accepts for a method."""
    keys = {f.name: f.default for f in fields(RunConfig) if f.name not in _EXPERIMENT_FIELDS}
    keys.update({f.name: f.default for f in fields(hp_type)})
    return keys


def _coerce(key: str, value: Any, default: Any) -> Any:
    """Parse a ``--set`` string (or check a Python value) against the default's type."""
    if not isinstance(value, str):
        return tuple(value) if isinstance(default, tuple) else value
    text = value.strip()
    try:
        if isinstance(default, bool):
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            return float(text)
        if isinstance(default, tuple):
            return tuple(int(t) for t in text.replace(",", " ").split()) if text else ()
        if default is None:  # optional ints such as train_size
            return None if text.lower() in ("none", "all") else int(text)
    except ValueError:
        raise LNLError(f"--set {key}={value}: expected a value like {default!r}") from None
    return text


def make_config(
    *,
    method: str,
    hp_type: type,
    dataset: str,
    noise: str,
    rate: float,
    seed: int,
    profile: str,
    method_overrides: dict[str, Any] | None = None,
    overrides: dict[str, Any] | None = None,
) -> RunConfig:
    """Profile settings, then the method's profile adjustments, then user overrides."""
    if profile not in PROFILES:
        raise LNLError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    prof = PROFILES[profile]
    if dataset not in prof.datasets:
        raise LNLError(f"the {profile} profile is defined for {', '.join(prof.datasets)}, not {dataset!r}")
    keys = settable_keys(hp_type)
    values: dict[str, Any] = dict(prof.settings)
    values.update(method_overrides or {})
    for key, value in (overrides or {}).items():
        if key not in keys:
            raise LNLError(f"unknown setting {key!r} for {method}; settable: {', '.join(sorted(keys))}")
        values[key] = _coerce(key, value, keys[key])
    hp_names = {f.name for f in fields(hp_type)}
    try:
        hp = hp_type(**{k: v for k, v in values.items() if k in hp_names})
    except (TypeError, ValueError) as exc:
        raise LNLError(f"bad hyperparameters for {method}: {exc}") from None
    top = {k: v for k, v in values.items() if k not in hp_names}
    cfg = RunConfig(
        method=method, dataset=dataset, noise=noise, rate=float(rate), seed=int(seed),
        profile=profile, hp=hp, **top,
    )  # fmt: skip
    _validate(cfg)
    return cfg


def _validate(cfg: RunConfig) -> None:
    if cfg.schedule not in SCHEDULES:
        raise LNLError(f"unknown schedule {cfg.schedule!r}; choose one of {', '.join(SCHEDULES)}")
    for name in ("epochs", "batch_size", "eval_batch_size"):
        if getattr(cfg, name) < 1:
            raise LNLError(f"{name} must be at least 1, got {getattr(cfg, name)}")
    for name in ("train_size", "test_size"):
        value = getattr(cfg, name)
        if value is not None and value < 1:
            raise LNLError(f"{name} must be at least 1 (or None for all), got {value}")
    if cfg.eval_split not in EVAL_SPLITS:
        raise LNLError(f"unknown eval_split {cfg.eval_split!r}; choose one of {', '.join(EVAL_SPLITS)}")
    if cfg.precision not in PRECISIONS:
        raise LNLError(f"unknown precision {cfg.precision!r}; choose one of {', '.join(PRECISIONS)}")
    if cfg.channels_last not in CHANNELS_LAST:
        raise LNLError(
            f"unknown channels_last {cfg.channels_last!r}; choose one of {', '.join(CHANNELS_LAST)}"
        )
    if cfg.lr <= 0:
        raise LNLError(f"lr must be positive, got {cfg.lr}")
    if not 0.0 <= cfg.rate < 1.0:
        raise LNLError(f"noise rate must be in [0, 1), got {cfg.rate}")


def hp_field(default: Any, doc: str) -> Any:
    """A hyperparameter with a one-line source (paper, equation, table) in its metadata."""
    return field(default=default, metadata={"doc": doc})
