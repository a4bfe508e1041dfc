"""Standard training with one network and a (robust) loss: CE, GCE, SCE.

The baselines every chapter compares against. One loop, three losses.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .. import losses
from ..config import hp_field
from ..engine import Run
from . import Method, TrainOutput, register


@dataclass(frozen=True)
class CEHParams:
    """Cross-entropy has no hyperparameters of its own."""


@dataclass(frozen=True)
class GCEHParams:
    q: float = hp_field(0.7, "Zhang & Sabuncu (2018), their CIFAR setting")


@dataclass(frozen=True)
class SCEHParams:
    alpha: float = hp_field(0.1, "Wang et al. (2019), CIFAR-10 setting: weight of CE")
    beta: float = hp_field(1.0, "Wang et al. (2019), CIFAR-10 setting: weight of RCE")
    A: float = hp_field(-4.0, "Wang et al. (2019): log 0 is clamped to A")


def _loss_fn(hp):
    if isinstance(hp, GCEHParams):
        return lambda logits, y: losses.gce(logits, y, q=hp.q)
    if isinstance(hp, SCEHParams):
        return lambda logits, y: losses.sce(logits, y, alpha=hp.alpha, beta=hp.beta, A=hp.A)
    return lambda logits, y: losses.ce(logits, y)


def train_standard(run: Run, hp) -> TrainOutput:
    """Train one network on the given labels with the loss named by ``hp``'s type."""
    loss_fn = _loss_fn(hp)
    net = run.model()
    opt = run.optimizer(net.parameters())
    for epoch in run.epochs({"net": net}, {"opt": opt}):
        run.set_lr(opt, epoch)
        net.train()
        total = torch.zeros((), device=run.device)  # summed on the device: no sync per step
        for idx in run.batches():
            x, y = run.inputs(idx), run.labels[idx]
            with run.autocast():
                logits = net(x)
            loss = loss_fn(logits, y)  # losses compute in float32
            run.step(loss, opt)
            total += loss.detach() * idx.numel()
        run.end_epoch({"train_loss": total / len(run.train)}, models=[net])
    return TrainOutput({"net": net}, run.history, {})


register(Method("ce", "cross-entropy on the given labels", "goodfellow2016deep", CEHParams, train_standard))
register(
    Method("gce", "generalized cross-entropy (L_q loss)", "zhang2018generalized", GCEHParams, train_standard)
)
# Wang et al. (2019) set (alpha, beta) per data set: MNIST (0.01, 1.0), CIFAR-10 (0.1, 1.0),
# CIFAR-100 (6.0, 0.1). Fashion-MNIST takes the MNIST setting.
_SCE_SETTINGS = {"fashion_mnist": (0.01, 1.0), "cifar10": (0.1, 1.0), "cifar100": (6.0, 0.1)}


def _sce_adjust(profile: str, dataset: str, noise: str, rate: float) -> dict:
    alpha, beta = _SCE_SETTINGS[dataset]
    return {"alpha": alpha, "beta": beta}


register(
    Method(
        "sce",
        "symmetric cross-entropy (CE + reverse CE)",
        "wang2019symmetric",
        SCEHParams,
        train_standard,
        adjust=_sce_adjust,
    )  # fmt: skip
)
