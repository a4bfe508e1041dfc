"""The method registry: ``METHODS[name]`` for the CLI, the notebooks and the tests.

Each :class:`Method` names its trainer function, its hyperparameter dataclass and how it
adjusts each profile. A new module here registers itself on import, and the
registry-wide tests then cover it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from ..errors import LNLError


@dataclass(frozen=True)
class TrainOutput:
    """What a trainer returns: its networks (by name), the per-epoch history, and the
    final per-sample method state."""

    models: dict[str, Any]
    history: list[dict[str, Any]]
    state: dict[str, Any]


class PerSample(NamedTuple):
    """What a method knows about each training sample after an epoch (for the export)."""

    clean_prob: Any  # (M, N) tensor, one row per network (M = 1 for one network)
    threshold: float  # the method flags a sample when its clean probability is <= threshold
    refurbished: Any  # (N,) tensor of the labels the method trains on instead of the given ones, or None
    meaning: str  # what the clean probability is, in a sentence


@dataclass(frozen=True)
class Method:
    name: str
    summary: str
    citation: str  # bibliography key
    hparams: type  # frozen dataclass of the method's hyperparameters
    train: Callable[..., TrainOutput]  # train(run, hp) -> TrainOutput
    selects_samples: bool = False  # reports selection AUC/precision/recall/F1 per epoch
    # profile, dataset, noise, rate -> settings that this method changes in that profile
    adjust: Callable[[str, str, str, float], dict[str, Any]] | None = None
    # (hp, per-sample state, epochs done) -> PerSample, or None before the first selection;
    # None for a method that keeps no per-sample clean probabilities or refurbished labels
    per_sample: Callable[[Any, dict[str, Any], int], PerSample | None] | None = None

    def profile_settings(self, profile: str, dataset: str, noise: str, rate: float) -> dict[str, Any]:
        return dict(self.adjust(profile, dataset, noise, rate)) if self.adjust else {}


METHODS: dict[str, Method] = {}


def register(method: Method) -> Method:
    if method.name in METHODS:
        raise ValueError(f"method {method.name!r} registered twice")
    METHODS[method.name] = method
    return method


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise LNLError(f"unknown method {name!r}; choose one of {', '.join(sorted(METHODS))}")
    return METHODS[name]


from . import cpc, dividemix, flywheel, pemm, plremix, pmnar, standard  # noqa: E402,F401  (registers the methods)
