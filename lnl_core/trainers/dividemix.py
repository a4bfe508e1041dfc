"""DivideMix (Li et al. 2020): two networks, a loss-based cleaner, co-divide, MixMatch.

Each epoch after warm-up:

1. *select*: every network's per-sample losses (eval mode, no augmentation, float32) go
   through the cleaner, giving clean probabilities (N,) per network;
2. *co-divide*: each network trains on the division made by the *other* network (labelled =
   clean probability above ``p_threshold``);
3. *train*: MixMatch on the labelled and unlabelled parts: label co-refinement of labelled
   samples, co-guessing of unlabelled ones with both networks, sharpening, MixUp, then
   Lx + ramped lambda_u * Lu + a uniform-prior penalty;
4. *evaluate*: the two networks' summed logits.

The cleaner is a replaceable piece (``cleaner=``): a function of the per-sample pass and the
run that returns clean probabilities. CPC and PLReMix plug in here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .. import losses
from ..cleaners import gmm_clean_probability, selection_metrics
from ..config import hp_field
from ..engine import Run
from ..models import HEADS
from . import Method, TrainOutput, register
from .pemm import center_param_groups, pe_penalty


@dataclass(frozen=True)
class DivideMixHParams:
    warmup_epochs: int = hp_field(10, "Li et al. (2020): 10 epochs for CIFAR-10, 30 for CIFAR-100")
    p_threshold: float = hp_field(0.5, "clean-probability threshold of co-divide (0.6 at 90% noise)")
    T: float = hp_field(0.5, "sharpening temperature")
    alpha: float = hp_field(4.0, "MixUp Beta(alpha, alpha); lambda' = max(lambda, 1 - lambda)")
    lambda_u: float = hp_field(25.0, "weight of the unlabelled loss, per setting (see full profile)")
    rampup_epochs: int = hp_field(16, "linear ramp of lambda_u after warm-up (reference code)")
    loss_average: int = hp_field(1, "epochs of normalised losses averaged for the GMM (5 at 90% noise)")
    entropy_penalty: bool = hp_field(False, "negative-entropy penalty in warm-up (asymmetric noise)")
    warmup_batch_factor: int = hp_field(2, "warm-up batch = factor x batch size (reference code)")
    class_aware: bool = hp_field(False, "one GMM per given class instead of one for all samples")
    head: str = hp_field("linear", "classifier head: linear, or PEMM's distance head (Eq. (6)-(7))")
    pe_lambda: float = hp_field(0.0, "weight of PEMM's potential-energy term on the centres (head=distance)")
    pe_beta: float = hp_field(0.3, "PEMM Eq. (12): distance shift of the potential-energy term")
    center_lr_scale: float = hp_field(1.0, "distance head: centres' learning rate / the run's (PEMM chapter)")

    def __post_init__(self) -> None:
        if self.head not in HEADS:
            raise ValueError(f"head must be one of {', '.join(HEADS)}, got {self.head!r}")
        if self.pe_lambda > 0 and self.head != "distance":
            raise ValueError("pe_lambda > 0 needs head='distance' (the PE acts on class centres)")


Cleaner = Callable[[dict, Run, DivideMixHParams], torch.Tensor]


def gmm_cleaner(passed: dict, run: Run, hp: DivideMixHParams) -> torch.Tensor:
    """DivideMix's cleaner on (possibly averaged, already normalised) losses."""
    labels = run.labels if hp.class_aware else None
    return gmm_clean_probability(
        passed["gmm_input"], class_labels=labels, num_classes=run.num_classes, normalize=False
    )


def sharpen(p: torch.Tensor, T: float) -> torch.Tensor:
    """p^(1/T), renormalised over classes. p: (B, K)."""
    pt = p ** (1.0 / T)
    return pt / pt.sum(1, keepdim=True)


def neg_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Mean of sum_k p_k log p_k: added in warm-up under asymmetric noise to discourage
    over-confident predictions."""
    p = F.softmax(logits.float(), dim=1)
    return (p * F.log_softmax(logits.float(), dim=1)).sum(1).mean()


def mixmatch_losses(
    logits: torch.Tensor, targets: torch.Tensor, n_labeled: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Lx (soft cross-entropy on the first ``n_labeled`` rows), Lu (mean squared error between
    probabilities and targets on the rest) and the uniform-prior penalty
    KL(uniform || mean prediction). logits, targets: (B, K)."""
    logits = logits.float()
    lx = -(F.log_softmax(logits[:n_labeled], 1) * targets[:n_labeled]).sum(1).mean()
    if logits.shape[0] > n_labeled:
        lu = ((F.softmax(logits[n_labeled:], 1) - targets[n_labeled:]) ** 2).mean()
    else:
        lu = logits.new_zeros(())
    k = logits.shape[1]
    prior = torch.full((k,), 1.0 / k, device=logits.device)
    mean_pred = F.softmax(logits, 1).mean(0)
    penalty = (prior * torch.log(prior / mean_pred)).sum()
    return lx, lu, penalty


def _warmup_epoch(run: Run, net, opt, hp: DivideMixHParams) -> torch.Tensor:
    net.train()
    total = torch.zeros((), device=run.device)
    for idx in run.batches(batch_size=hp.warmup_batch_factor * run.config.batch_size):
        with run.autocast():
            logits = net(run.inputs(idx))
        loss = losses.ce(logits, run.labels[idx])
        if hp.entropy_penalty:
            loss = loss + neg_entropy(logits)
        if hp.pe_lambda > 0:
            loss = loss + hp.pe_lambda * pe_penalty(net, beta=hp.pe_beta)
        run.step(loss, opt)
        total += loss.detach() * idx.numel()
    return total / len(run.train)


def _mixmatch_epoch(run: Run, net, peer, opt, prob: torch.Tensor, epoch: int, hp: DivideMixHParams) -> dict:
    """Train ``net`` for one epoch on the division ``prob`` (N,) made by ``peer``'s cleaner."""
    net.train()
    peer.eval()  # the peer only guesses labels
    labeled = prob > hp.p_threshold
    lab_idx = torch.nonzero(labeled).squeeze(1)  # one host sync per epoch
    unl_idx = torch.nonzero(~labeled).squeeze(1)
    n_lab, n_unl, b = lab_idx.numel(), unl_idx.numel(), run.config.batch_size
    if n_lab == 0:
        return {"lx": float("nan"), "lu": float("nan")}
    k = run.num_classes
    num_iter = n_lab // b + 1
    unl_batches = iter(())
    sums = torch.zeros(2, device=run.device)
    for it, pos in enumerate(run.batches(n_lab)):
        ix = lab_idx[pos]
        x1, x2 = run.inputs(ix), run.inputs(ix)
        w = prob[ix][:, None]
        onehot = F.one_hot(run.labels[ix], k).float()
        if n_unl:
            iu = next(unl_batches, None)
            if iu is None:  # restart the unlabelled batches when they run out
                unl_batches = (unl_idx[p] for p in run.batches(n_unl))
                iu = next(unl_batches)
            u1, u2 = run.inputs(iu), run.inputs(iu)
        with torch.no_grad(), run.autocast():
            if n_unl:
                # co-guessing: both networks, both views (net in train mode, as the reference)
                pu = sum(F.softmax(m(u).float(), 1) for m in (net, peer) for u in (u1, u2)) / 4
                targets_u = sharpen(pu, hp.T)
            # co-refinement: the given label, weighted by its clean probability
            px = (F.softmax(net(x1).float(), 1) + F.softmax(net(x2).float(), 1)) / 2
            targets_x = sharpen(w * onehot + (1 - w) * px, hp.T)
        lam = float(np.random.beta(hp.alpha, hp.alpha)) if hp.alpha > 0 else 1.0
        lam = max(lam, 1.0 - lam)
        parts = [x1, x2, u1, u2] if n_unl else [x1, x2]
        inputs = torch.cat(parts)
        targets = torch.cat([targets_x, targets_x, targets_u, targets_u] if n_unl else [targets_x, targets_x])
        perm = torch.randperm(inputs.shape[0], generator=run.gen, device=run.device)
        mixed_input = lam * inputs + (1 - lam) * inputs[perm]
        mixed_target = lam * targets + (1 - lam) * targets[perm]
        with run.autocast():
            logits = net(mixed_input)
        lx, lu, penalty = mixmatch_losses(logits, mixed_target, 2 * ix.numel())
        ramp = np.clip((epoch + it / num_iter - hp.warmup_epochs) / hp.rampup_epochs, 0.0, 1.0)
        loss = lx + hp.lambda_u * float(ramp) * lu + penalty
        if hp.pe_lambda > 0:
            loss = loss + hp.pe_lambda * pe_penalty(net, beta=hp.pe_beta)  # PEMM "out of box"
        run.step(loss, opt)
        sums += torch.stack([lx.detach(), lu.detach()])
    lx_mean, lu_mean = (sums / (it + 1)).tolist()
    return {"lx": lx_mean, "lu": lu_mean}


def train_dividemix(run: Run, hp: DivideMixHParams, *, cleaner: Cleaner = gmm_cleaner) -> TrainOutput:
    """Algorithm 1 of Li et al. (2020) with a replaceable cleaner."""
    nets = [run.model(head=hp.head), run.model(head=hp.head)]
    opts = [
        run.optimizer(
            center_param_groups(net, hp.center_lr_scale) if hp.head == "distance" else net.parameters()
        )
        for net in nets
    ]
    n = len(run.train)
    state = {
        "loss_history": torch.zeros(2, max(hp.loss_average, 1), n, device=run.device),  # normalised losses
        "loss_count": torch.zeros((), dtype=torch.long, device=run.device),
        "clean_prob": torch.ones(2, n, device=run.device),  # last division of each network
    }
    models = {"net1": nets[0], "net2": nets[1]}
    for epoch in run.epochs(models, {"opt1": opts[0], "opt2": opts[1]}, state):
        for opt in opts:
            run.set_lr(opt, epoch)
        record: dict = {}
        if epoch < hp.warmup_epochs:
            # ---- warm-up: CE on all samples, each network on its own
            record["train_loss"] = sum(_warmup_epoch(run, net, opt, hp) for net, opt in zip(nets, opts)) / 2
        else:
            # ---- select: per-sample losses of both networks -> clean probabilities
            slot = int(state["loss_count"]) % state["loss_history"].shape[1]
            state["loss_count"] += 1
            used = min(int(state["loss_count"]), state["loss_history"].shape[1])
            for i, net in enumerate(nets):
                passed = run.per_sample(net)
                ls = passed["losses"]
                state["loss_history"][i, slot] = (ls - ls.min()) / (ls.max() - ls.min()).clamp_min(1e-12)
                passed["gmm_input"] = state["loss_history"][i, :used].mean(0)
                state["clean_prob"][i] = cleaner(passed, run, hp)
            # ---- co-divide + train: each network learns from the other's division
            stats = [
                _mixmatch_epoch(run, nets[0], nets[1], opts[0], state["clean_prob"][1], epoch, hp),
                _mixmatch_epoch(run, nets[1], nets[0], opts[1], state["clean_prob"][0], epoch, hp),
            ]
            record["train_loss"] = float(np.mean([s["lx"] for s in stats]))
            record["train_lu"] = float(np.mean([s["lu"] for s in stats]))
            clean = ~run.is_noisy
            per_net = [selection_metrics(state["clean_prob"][i], clean, hp.p_threshold) for i in range(2)]
            for key in per_net[0]:
                record[f"{key}_net1"], record[f"{key}_net2"] = per_net[0][key], per_net[1][key]
                record[key] = float(np.mean([per_net[0][key], per_net[1][key]]))
        # ---- evaluate: the ensemble of both networks
        run.end_epoch(record, models=nets)
    return TrainOutput(models, run.history, state)


# --------------------------------------------------------------------------- profiles

# lambda_u per (data set, symmetric noise rate) from Li et al. (2020) and the PLReMix README.
_LAMBDA_U = {"cifar10": ((0.35, 0.0), (0.85, 25.0), (1.0, 50.0)), "cifar100": ((0.35, 0.0), (1.0, 150.0))}


def _adjust(profile: str, dataset: str, noise: str, rate: float) -> dict:
    asym = noise == "asymmetric"
    if profile == "reduced":
        return {
            "augment": "weak",  # MixMatch needs two augmented views of every sample
            "epochs": 20,  # an epoch costs about 4x a CE epoch: keeps a run near a minute on a CPU
            "warmup_epochs": 3,
            "lambda_u": 0.0 if asym else 25.0,
            "entropy_penalty": asym,
        }
    settings: dict = {
        "batch_size": 64,  # the reference code's (the paper says 128)
        "warmup_epochs": 10 if dataset == "cifar10" else 30,
        "entropy_penalty": asym,
        "p_threshold": 0.6 if rate >= 0.9 else 0.5,
        "loss_average": 5 if rate >= 0.9 else 1,
    }
    if asym:
        settings["lambda_u"] = 0.0
    elif noise.startswith("cifar-n"):
        settings["lambda_u"] = 25.0 if dataset == "cifar10" else 150.0
    else:
        settings["lambda_u"] = next(v for bound, v in _LAMBDA_U[dataset] if rate < bound)
    return settings


register(
    Method(
        "dividemix",
        "co-divide with a per-sample-loss GMM, MixMatch on labelled + unlabelled parts",
        "li2020dividemix",
        DivideMixHParams,
        train_dividemix,
        selects_samples=True,
        adjust=_adjust,
    )
)
