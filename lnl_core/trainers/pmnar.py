"""PMNAR (positive and multi-negative learning with adaptive reweighting): two networks
that weight each other's losses.

Algorithm 1, each epoch:

1. *select* (after warm-up): an eval-mode, un-augmented float32 pass of each network over
   the training set gives f_y(x), its probability of the given label, and its prediction
   y' = argmax f(x). Each network's complementary sets lose y' (Alg. 1 line 8), and each
   network's adaptive weights w = f'_y - f'_min come from its *peer's* f_y (Eq. (4), (8),
   Alg. 1 line 10);
2. *train*: both networks on the same batches, each minimising
   mean_batch[w * PM loss] (Eq. (7)) + beta * KL(ensemble on x || own prediction on Aug(x))
   (Eq. (9)-(10));
3. *evaluate*: network f alone (``test_acc``, the headline: Algorithm 1 outputs theta, f's
   parameters), and the two networks' summed logits beside it (``test_acc_ensemble``).

Warm-up epochs train with weights 1 and full complementary sets (Alg. 1 lines 1-3, 12).
The ablations of Table 5, Fig. 1 and Fig. 4 are hyperparameters of this one trainer:
``loss`` (ce / nl / ml / pm), ``reweight`` (AR on or off), ``dual`` (two networks or one
weighted by its own confidences), ``beta`` (0 drops the consistency term) and ``prune``
(False keeps the complementary sets of line 3 whole).

Choices the paper leaves open (the book's Deviations page):

* one complementary mask per network, pruned by that network's own predictions: Alg. 1
  writes a single S pruned by f only and used by both networks; we apply its rule
  symmetrically so that neither network's negative labels depend on the other's errors;
* the ensemble target of Eq. (9) is detached (a fixed teacher for the step), and comes from
  the same train-mode forward pass on x as the PM loss; the AR weight multiplies only the
  PM term (Eq. (10));
* with ``loss="nl"`` the one complementary label per sample and iteration is drawn
  uniformly from the *pruned* set; a sample whose set is empty gets no NL term;
* both networks train on the same batches and the same augmented views, since the target
  of Eq. (9) needs f(x) and f'(x) on one x; with ``dual=False`` the target is f(x) alone;
* the noise detector of Table 4 is f_y > 0.5 of each network from the pass at the start of
  the epoch (the pass that sets the weights).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .. import losses
from ..augment import AUGMENTATIONS
from ..cleaners import selection_metrics
from ..config import REDUCED_STRONG_VIEWS, REDUCED_VIEWS, hp_field
from ..engine import Run
from . import Method, PerSample, TrainOutput, register
from .dividemix import REDUCED as DIVIDEMIX_REDUCED

LOSSES = ("ce", "nl", "ml", "pm")


@dataclass(frozen=True)
class PMNARHParams:
    warmup_epochs: int = hp_field(10, "not given by the paper (Fig. 7a: insensitive); DivideMix's 10 / 30")
    beta: float = hp_field(1.0, "Eq. (10) weight of the consistency term (Fig. 6); 0 drops the term")
    consistency_augment: str = hp_field("strong", "Aug(x) of Eq. (9); the paper does not name it")
    loss: str = hp_field("pm", "pm: Eq. (7); ablations ce: Eq. (1), nl: Eq. (5), ml: Eq. (6)")
    reweight: bool = hp_field(True, "adaptive reweighting, Eq. (4) / (8); False: all weights 1")
    dual: bool = hp_field(True, "two networks weighting each other (Alg. 1); False: one, own weights")
    threshold: float = hp_field(0.5, "noise detection: clean if f_y > threshold (Table 4)")
    prune: bool = hp_field(True, "Alg. 1 line 8: drop predicted labels from S; False: S never shrinks")

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"unknown PMNAR loss {self.loss!r}; choose one of {', '.join(LOSSES)}")
        if self.consistency_augment not in AUGMENTATIONS:
            raise ValueError(
                f"unknown consistency_augment {self.consistency_augment!r}; choose one of {', '.join(AUGMENTATIONS)}"
            )
        if self.warmup_epochs < 0:
            raise ValueError(f"warmup_epochs must be >= 0, got {self.warmup_epochs}")
        if not self.beta >= 0.0:
            raise ValueError(f"beta must be >= 0, got {self.beta}")
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {self.threshold}")


def prune_complementary(complementary: torch.Tensor, predictions: torch.Tensor) -> torch.Tensor:
    """Alg. 1 line 8: each sample's complementary set without its predicted label y'.

    complementary (N, K) bool, predictions (N,) int -> a new (N, K) bool mask. It can only
    lose labels, so a label once removed never comes back, and the given label, absent from
    the initial sets, never enters one (a prediction equal to it changes nothing).
    """
    if complementary.dtype != torch.bool or complementary.dim() != 2:
        raise ValueError(
            f"complementary must be an (N, K) bool mask, got {complementary.dtype} {tuple(complementary.shape)}"
        )
    if predictions.shape != complementary.shape[:1]:
        raise ValueError(f"predictions must be ({complementary.shape[0]},), got {tuple(predictions.shape)}")
    return complementary.scatter(1, predictions[:, None], False)


def _supervised(
    hp: PMNARHParams, logits: torch.Tensor, labels: torch.Tensor, comp: torch.Tensor, run: Run
) -> torch.Tensor:
    """(B,) per-sample supervised loss of the chosen kind; comp (B, K) the complementary sets."""
    if hp.loss == "ce":
        return losses.ce(logits, labels, "none")  # Eq. (1)
    if hp.loss == "nl":
        cbar = losses.random_complementary(labels, run.num_classes, run.gen, allowed=comp)  # (B,)
        return losses.nl_loss(logits, cbar, "none") * comp.any(1)  # Eq. (5); empty set: no term
    if hp.loss == "ml":
        return losses.ml_loss(logits, comp, "none")  # Eq. (6)
    return losses.pm_loss(logits, labels, comp, "none")  # Eq. (7)


def _train_epoch(run: Run, nets: list, opts: list, state: dict, hp: PMNARHParams) -> dict:
    """One epoch of Alg. 1 line 12 for every network, on shared batches."""
    for net in nets:
        net.train()
    consistency = hp.beta > 0
    sums = torch.zeros(2, device=run.device)  # summed (total loss, KL) over samples and networks
    for idx in run.batches():
        y = run.labels[idx]
        x = run.inputs(idx)  # the config's augmentation
        x_aug = run.inputs(idx, hp.consistency_augment) if consistency else None  # Aug(x)
        with run.autocast():
            logits = [net(x) for net in nets]  # M x (B, K)
            logits_aug = [net(x_aug) for net in nets] if consistency else []
        if consistency:
            with torch.no_grad():  # Eq. (9): the ensemble (f(x) + f'(x)) / 2, a detached target
                target = torch.stack([F.softmax(z.float(), 1) for z in logits]).mean(0)  # (B, K)
        for i, opt in enumerate(opts):
            sup = _supervised(hp, logits[i], y, state["complementary"][i, idx], run)  # (B,)
            loss = (state["weights"][i, idx] * sup).mean()  # Eq. (10), first term
            kl = torch.zeros((), device=run.device)
            if consistency:
                kl = losses.consistency_kl(target, logits_aug[i])  # Eq. (9)
                loss = loss + hp.beta * kl  # Eq. (10)
            run.step(loss, opt)
            sums += torch.stack([loss.detach(), kl.detach()]) * idx.numel()
    sums /= len(nets) * len(run.train)
    return {"train_loss": sums[0], "train_consistency": sums[1]}


def _detection_record(run: Run, state: dict, hp: PMNARHParams) -> dict:
    """Noise detection (Table 4) per network, its mean, and how the AR weights and the
    complementary sets look. Reporting only."""
    clean, noisy = ~run.is_noisy, run.is_noisy
    m = state["clean_prob"].shape[0]
    per_net = [selection_metrics(state["clean_prob"][i], clean, hp.threshold) for i in range(m)]
    record: dict = {}
    for key in per_net[0]:
        if m == 2:
            record[f"{key}_net1"], record[f"{key}_net2"] = per_net[0][key], per_net[1][key]
        record[key] = float(np.mean([p[key] for p in per_net]))
    w, comp = state["weights"], state["complementary"]  # (M, N), (M, N, K)
    true_in = comp.gather(2, run.clean_labels.expand(m, -1)[:, :, None]).squeeze(2)  # (M, N)
    stats = torch.stack(
        [
            w[:, clean].mean(),
            w[:, noisy].mean(),
            comp.sum(2).float().mean(),
            true_in[:, noisy].float().mean(),
        ]
    ).tolist()  # one sync
    keys = ("ar_weight_clean", "ar_weight_mislabelled", "complementary_size", "true_label_in_complementary")
    record.update(zip(keys, stats))
    return record


def train_pmnar(run: Run, hp: PMNARHParams) -> TrainOutput:
    """Algorithm 1 of PMNAR, with the ablation switches of ``hp``."""
    m = 2 if hp.dual else 1
    nets = [run.model() for _ in range(m)]
    opts = [run.optimizer(net.parameters()) for net in nets]
    n, k = len(run.train), run.num_classes
    full = ~F.one_hot(run.labels, k).bool()  # (N, K): every label but the given one (Alg. 1 line 2)
    state = {
        "complementary": full.expand(m, n, k).clone(),  # (M, N, K) S of each network (line 3)
        "weights": torch.ones(m, n, device=run.device),  # (M, N) AR weights (line 1)
        "clean_prob": torch.ones(m, n, device=run.device),  # (M, N) f_y of the last pass
    }
    names = ("net1", "net2") if hp.dual else ("net",)
    models = dict(zip(names, nets))
    optimizers = dict(zip([s.replace("net", "opt") for s in names], opts))
    peer = (1, 0) if hp.dual else (0,)  # whose confidences weight network i (Eq. (8))
    for epoch in run.epochs(models, optimizers, state):
        for opt in opts:
            run.set_lr(opt, epoch)
        record: dict = {}
        if epoch >= hp.warmup_epochs:
            # ---- select: f_y and argmax of every network, eval mode, no augmentation (lines 6-9)
            for i, net in enumerate(nets):
                probs = run.per_sample(net)["probs"]  # (N, K) float32
                state["clean_prob"][i] = probs.gather(1, run.labels[:, None]).squeeze(1)
                if hp.prune:  # line 8 (prune=False, an ablation: the sets of line 3 throughout)
                    comp = state["complementary"]
                    comp[i] = prune_complementary(comp[i], probs.argmax(1))
            if hp.reweight:  # line 10: each network weighted by its peer's confidences
                for i in range(m):
                    state["weights"][i] = losses.ar_weights(state["clean_prob"][peer[i]])
            record.update(_detection_record(run, state, hp))
        # ---- train: weighted PM loss + consistency (line 12)
        record.update(_train_epoch(run, nets, opts, state, hp))
        # ---- evaluate: network f is the output of Alg. 1 (the headline); the ensemble beside it
        if hp.dual:
            record["test_acc_ensemble"] = run.accuracy(nets)
        run.end_epoch(record, models=nets[:1])
    return TrainOutput(models, run.history, state)


# --------------------------------------------------------------------------- profiles


def _adjust(profile: str, dataset: str, noise: str, rate: float) -> dict:
    if profile == "reduced":
        return {
            # the reduced profile's 30 epochs; the warm-up is DivideMix's calibrated one on the same
            # data (the paper does not give T_warm), x takes the profile's flip views as x takes crop
            # + flip in the full profile, and Aug(x) the stronger crop + flip (RandAugment, batched
            # per operation on the CPU, costs about 15 small-CNN epochs)
            "warmup_epochs": DIVIDEMIX_REDUCED["warmup_epochs"],
            "augment": REDUCED_VIEWS,
            "consistency_augment": REDUCED_STRONG_VIEWS,
        }
    return {
        # Sec. 4.1: SGD, lr 0.02 divided by 10 every 120 epochs of 300, wd 5e-4, batch 128
        "epochs": 300,
        "lr": 0.02,
        "schedule": "multistep",
        "milestones": (120, 240),
        "weight_decay": 5e-4,
        "batch_size": 128,
        "augment": "weak",  # x: crop + flip
        "consistency_augment": "strong",  # Aug(x): RandAugment on top (the paper does not name it)
        # Not given by the paper (Fig. 7a: insensitive to it); DivideMix's warm-up on the same data
        "warmup_epochs": 10 if dataset == "cifar10" else 30,
        # Sec. 4.5: insensitive on CIFAR-10, "a smaller beta should be chosen for CIFAR-100";
        # the values are ours
        "beta": 1.0 if dataset == "cifar10" else 0.5,
    }


def per_sample(hp: PMNARHParams, state: dict, epochs_done: int) -> PerSample | None:
    """f_y, each network's softmax probability of the given label in the last per-sample pass
    (clean if above ``threshold``, Table 4); none during warm-up."""
    if epochs_done <= hp.warmup_epochs:
        return None
    return PerSample(
        state["clean_prob"], hp.threshold, None, "each network's probability of the given label, f_y"
    )


register(
    Method(
        "pmnar",
        "two networks, PM loss (CE + negative learning on pruned complementary sets) weighted by the peer's confidence",
        "pmnar",
        PMNARHParams,
        train_pmnar,
        selects_samples=True,
        adjust=_adjust,
        per_sample=per_sample,
    )
)
