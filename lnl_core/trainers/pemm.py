"""PEMM (Wang et al., wang2024pemm): a distance-based classifier whose class centres carry a
potential-energy regulariser.

One network, Algorithm 1 of the paper. Every mini-batch:

1. features z = f(x), L2-normalised, and the distance head's logits log d_{n,k} (Eq. (6)-(7));
2. the classifier loss of Eq. (9): alpha CE + RCE (SCE with beta = 1);
3. the potential energy of the centres and the origin, Eq. (11)-(12);
4. the total of Eq. (13), L = mean_batch l_clf + lambda L_pem, one SGD step.

Ablations (the paper's Fig. 8) are hyperparameter settings: ``loss="ce"`` (SCE -> CE),
``alpha=0`` (no CE term), ``lam=0`` (no PE term); ``recon`` adds the public code's
reconstruction term, which the paper names but never defines (see the Deviations page).

"Out of box": :func:`pe_penalty` adds the same regulariser to any network with a distance
head. Method ``dividemix-pe`` is DivideMix with distance heads and this term in every warm-up
and MixMatch batch, plugged in through DivideMix's :class:`~.dividemix.Extension`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .. import losses
from ..config import PROFILES, REDUCED_VIEWS, hp_field
from ..engine import Run
from ..models import DistanceClassifier
from . import Method, TrainOutput, register
from .dividemix import DivideMixHParams, Extension, train_dividemix
from .dividemix import _adjust as _dividemix_adjust
from .dividemix import per_sample as _dividemix_per_sample

LOSSES = ("sce", "ce")


@dataclass(frozen=True)
class PEMMHParams:
    alpha: float = hp_field(0.1, "Eq. (9): weight of the CE term (Sec. 6.1: 0.1)")
    A: float = hp_field(-4.0, "Eq. (9): log 0 in the reverse CE, clamped as in SCE (Wang et al. 2019)")
    loss: str = hp_field("sce", "classifier loss: sce (Eq. (9)) or ce (ablation (a) of Fig. 8)")
    lam: float = hp_field(1.0, "Eq. (13): weight lambda of the PE term (Sec. 6.1: 1)")
    beta: float = hp_field(0.3, "Eq. (12): distance shift, 0 <= beta < r0 (Sec. 6.1: 0.3)")
    u: int = hp_field(3, "Eq. (10): repulsive power (paper: 3)")
    v: int = hp_field(2, "Eq. (10): attractive power (paper: 2)")
    xi: float = hp_field(2.0, "Eq. (10): weight of the attraction (paper: 2, so r0 = 0.75)")
    sigma: float = hp_field(1.0, "Eq. (6): radius of the distance kernel (paper: 1)")
    normalize: bool = hp_field(True, "Sec. 6.1: L2-normalise the features before Eq. (6)")
    recon: float = hp_field(0.0, "weight of the public code's reconstruction term; 0 = the paper's Eq. (13)")
    center_lr_scale: float = hp_field(
        1.0, "centres' learning rate / the run's (paper: 1; see the stability bound)"
    )

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        r0 = losses.pe_equilibrium(self.u, self.v, self.xi)  # also checks u > v > 0, xi > 0
        if not 0.0 <= self.beta < r0:
            raise ValueError(f"beta must be in [0, r0) = [0, {r0:g}), got {self.beta}")
        if self.lam < 0 or self.alpha < 0 or self.recon < 0:
            raise ValueError("alpha, lam and recon must be non-negative")
        if self.center_lr_scale <= 0:
            raise ValueError(f"center_lr_scale must be positive, got {self.center_lr_scale}")
        if self.sigma <= 0:
            raise ValueError(f"sigma must be positive, got {self.sigma}")


def pe_penalty(net, *, beta: float = 0.3, u: int = 3, v: int = 2, xi: float = 2.0) -> torch.Tensor:
    """Eq. (11)-(12) on the centres of ``net``'s distance head (the "out of box" use)."""
    head = net.classifier
    if not isinstance(head, DistanceClassifier):
        raise TypeError("the PE regulariser needs a network with a DistanceClassifier head (head='distance')")
    return losses.pe_regularizer(head.centers, beta=beta, u=u, v=v, xi=xi)


def center_param_groups(net, center_lr_scale: float) -> list[dict]:
    """Optimiser parameter groups: everything else, and the distance head's centres at
    ``center_lr_scale`` times the learning rate (``Run.set_lr`` applies ``lr_scale``)."""
    others = [p for name, p in net.named_parameters() if name != "classifier.centers"]
    return [{"params": others}, {"params": [net.classifier.centers], "lr_scale": center_lr_scale}]


def reconstruction(head: DistanceClassifier, features: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """The public code's reconstruction term: mean squared error between z and the
    probability-weighted centre sum_k p_k c_k. Not in the paper's Eq. (13)."""
    z = head.embed(features)  # (B, D)
    return F.mse_loss(F.softmax(logits.float(), 1) @ head.centers.float(), z)


def center_geometry(centers: torch.Tensor) -> dict[str, float]:
    """Pairwise distances of {0, c_1, ..., c_K} (reporting): mean, coefficient of variation,
    and the mean centre norm. One host sync."""
    c = centers.detach().float()
    points = torch.cat([c.new_zeros(1, c.shape[1]), c])
    d = torch.pdist(points)
    stats = torch.stack([d.mean(), d.std() / d.mean(), c.norm(dim=1).mean()]).tolist()
    return {"center_dist": stats[0], "center_dist_cv": stats[1], "center_norm": stats[2]}


def train_pemm(run: Run, hp: PEMMHParams) -> TrainOutput:
    """Algorithm 1 of the paper: one network with a distance head, Eq. (13) per mini-batch."""
    net = run.model(head="distance", head_options={"sigma": hp.sigma, "normalize": hp.normalize})
    head = net.classifier
    opt = run.optimizer(center_param_groups(net, hp.center_lr_scale))
    for epoch in run.epochs({"net": net}, {"opt": opt}):
        run.set_lr(opt, epoch)
        net.train()
        sums = torch.zeros(3, device=run.device)  # l_clf, L_pem, total; summed on the device
        for idx in run.batches():
            x, y = run.inputs(idx), run.labels[idx]
            with run.autocast():
                features = net.backbone(x)
            logits = head(features)  # Eq. (6)-(7), float32
            if hp.loss == "sce":
                l_clf = losses.sce(logits, y, alpha=hp.alpha, beta=1.0, A=hp.A)  # Eq. (9)
            else:
                l_clf = losses.ce(logits, y)
            l_pem = losses.pe_regularizer(head.centers, beta=hp.beta, u=hp.u, v=hp.v, xi=hp.xi)  # Eq. (11)
            loss = l_clf + hp.lam * l_pem  # Eq. (13), batch mean instead of sum (Deviations page)
            if hp.recon > 0:
                loss = loss + hp.recon * reconstruction(head, features, logits)
            run.step(loss, opt)
            sums += torch.stack([l_clf.detach(), l_pem.detach(), loss.detach()]) * idx.numel()
        l_clf_mean, l_pem_mean, total = (sums / len(run.train)).tolist()
        record = {"train_loss": total, "clf_loss": l_clf_mean, "pe_loss": l_pem_mean}
        record.update(center_geometry(head.centers))
        run.end_epoch(record, models=[net])
    return TrainOutput({"net": net}, run.history, {})


# The centres' learning rate. Near its minimum the PE has curvature: the largest Hessian
# eigenvalue at the regular simplex is about 132 for K = 10 and 1270 for K = 100 (lambda = 1,
# beta = 0.3; 1264 at the compromise layout 100 centres reach in ResNet-44's 64 feature
# dimensions, where the simplex cannot exist); heavy-ball SGD with momentum 0.9 is stable only
# below 2 (1 + 0.9) / that, i.e. lr < 0.029 (K = 10) and lr < 0.003 (K = 100). Above it the
# centres overshoot, collide and are flung far from the origin, where the PE is nearly flat (the
# chapter shows it). So the centres take a scaled learning rate: 0.01 for K = 10 (the paper's
# own Sec. 6.1 rate), 0.002 for K = 100.
# Deviations page; ``center_lr_scale=1`` gives the paper as written.
_CENTER_LR = {10: 0.01, 100: 0.002}


def _adjust(profile: str, dataset: str, noise: str, rate: float) -> dict:
    k = 100 if dataset == "cifar100" else 10
    if profile == "reduced":
        # the reduced profile (lr 0.05, 30 epochs, cosine) on its flip views: the paper trains on
        # shifted and flipped images (Sec. 6.2), which the full profile's crop + flip is
        return {
            "center_lr_scale": _CENTER_LR[k] / PROFILES["reduced"].settings["lr"],
            "augment": REDUCED_VIEWS,
        }
    # Sec. 6.2 (the setting behind Table 1): SGD 0.1, momentum 0.9, wd 5e-3; CIFAR-10: the 8-layer
    # CNN, 80 epochs, lr / 10 at 20 and 50; CIFAR-100: ResNet-44, 150 epochs, / 10 at 80 and 120.
    # "Width/height shift and horizontal flip" = the 4-pixel crop + flip of augment="weak".
    settings = {"lr": 0.1, "weight_decay": 5e-3, "momentum": 0.9, "augment": "weak", "batch_size": 128}
    settings["center_lr_scale"] = _CENTER_LR[k] / 0.1
    if dataset == "cifar10":
        settings.update(model="cnn8", epochs=80, milestones=(20, 50))
    else:
        settings.update(model="resnet44", epochs=150, milestones=(80, 120))
    return settings


register(
    Method(
        "pemm",
        "distance-based classifier (SCE) with a potential-energy regulariser on the class centres",
        "wang2024pemm",
        PEMMHParams,
        train_pemm,
        adjust=_adjust,
    )
)


# --------------------------------------------------------------------------- out of box: DivideMix + PE


@dataclass(frozen=True)
class DivideMixPEHParams(DivideMixHParams):
    pe_lambda: float = hp_field(
        1.0, "Eq. (13): weight of the potential energy on the centres (0: distance head only)"
    )
    pe_beta: float = hp_field(0.3, "Eq. (12): distance shift of the potential energy")
    sigma: float = hp_field(
        1.0, "Eq. (6): radius of the distance kernel (paper: 1; set per profile so the head can be confident)"
    )
    normalize: bool = hp_field(True, "Sec. 6.1: L2-normalise the features before Eq. (6)")
    center_lr_scale: float = hp_field(1.0, "centres' learning rate / the run's (set per profile, as PEMM's)")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.pe_lambda < 0:
            raise ValueError(f"pe_lambda must be non-negative, got {self.pe_lambda}")
        r0 = losses.pe_equilibrium(3, 2, 2.0)
        if not 0.0 <= self.pe_beta < r0:
            raise ValueError(f"pe_beta must be in [0, r0) = [0, {r0:g}), got {self.pe_beta}")
        if self.center_lr_scale <= 0 or self.sigma <= 0:
            raise ValueError("center_lr_scale and sigma must be positive")


class PotentialEnergyExtension(Extension):
    """DivideMix's two networks get PEMM's distance head (Eq. (6)-(7)); the centres take their
    own learning rate, and lambda * PE (Eq. (11)-(12)) is added to every warm-up and MixMatch
    batch. Selection is DivideMix's."""

    hp: DivideMixPEHParams

    def network_options(self) -> dict:
        return {"head": "distance", "head_options": {"sigma": self.hp.sigma, "normalize": self.hp.normalize}}

    def param_groups(self, net):
        return center_param_groups(net, self.hp.center_lr_scale)

    def _terms(self, net) -> dict:
        if self.hp.pe_lambda == 0:
            return {}
        return {"pe": self.hp.pe_lambda * pe_penalty(net, beta=self.hp.pe_beta)}  # Eq. (13), second term

    def warmup_terms(self, run, i, net, idx, x, logits) -> dict:
        return self._terms(net)

    def batch_terms(self, run, i, net, batch) -> dict:
        return self._terms(net)


def train_dividemix_pe(run: Run, hp: DivideMixPEHParams) -> TrainOutput:
    return train_dividemix(run, hp, extension=PotentialEnergyExtension(hp))


# DivideMix needs confident predictions: it sharpens guessed labels (T = 0.5), fits co-refined
# targets close to one-hot and models the per-sample losses with a GMM. PEMM's head with the
# paper's sigma = 1 cannot give any input more than 18% (K = 10) or 2% (K = 100) once the PE has
# placed its centres (losses.pe_confidence_ceiling): every loss is then at least 1.7 and the
# targets are out of reach, which is what made this combination collapse. PEMM's own SCE loss
# never asks for confidence. So DivideMix + PE takes the largest sigma at which the head can
# express 99% confidence at the PE's minimum: 0.31 for K = 10, 0.26 for K = 100 (Deviations page).
PE_HEAD_CONFIDENCE = 0.99


def _dividemix_pe_adjust(profile: str, dataset: str, noise: str, rate: float) -> dict:
    settings = _dividemix_adjust(profile, dataset, noise, rate)
    lr = settings.get("lr", PROFILES[profile].settings["lr"])  # DivideMix keeps the profile's rate
    k = 100 if dataset == "cifar100" else 10
    settings["center_lr_scale"] = _CENTER_LR[k] / lr
    settings["sigma"] = round(losses.pe_sigma_for_confidence(k, PE_HEAD_CONFIDENCE), 4)
    return settings


register(
    Method(
        "dividemix-pe",
        "DivideMix with PEMM's distance heads and potential energy on their centres (PEMM 'out of box')",
        "wang2024pemm",
        DivideMixPEHParams,
        train_dividemix_pe,
        selects_samples=True,
        adjust=_dividemix_pe_adjust,
        per_sample=_dividemix_per_sample,
    )
)
