"""DivideMix (Li et al. 2020): two networks, a loss-based cleaner, co-divide, MixMatch.

Each epoch after warm-up:

1. *select*: every network's per-sample losses (eval mode, no augmentation, float32),
   min-max normalised (within each given class when ``class_aware``), go through a
   two-component GMM, giving clean probabilities (N,) per network;
2. *co-divide*: each network trains on the division made by the *other* network (labelled =
   clean probability above the threshold);
3. *train*: MixMatch on the labelled and unlabelled parts (:func:`mixmatch_batch`, one
   mini-batch): label co-refinement of labelled samples, co-guessing of unlabelled ones with
   both networks, sharpening, MixUp, then Lx + ramped lambda_u * Lu + a uniform-prior penalty;
4. *evaluate*: the two networks' summed logits.

``mix_augment`` turns on AugDesc-WS (Nishi et al. 2021): labels are guessed and co-refined on
the weak views, while two views of another augmentation (``strong``, ``autoaugment``) are
mixed and back-propagated.

Methods built on DivideMix (CPC, PLReMix, DivideMix + PEMM's potential energy) plug in
through one :class:`Extension`: networks with other heads, modules and optimisers of their
own, per-sample state, a hook when warm-up ends, the division itself, and extra loss terms
in warm-up and MixMatch batches. The base class changes nothing, and DivideMix is
``train_dividemix(run, hp)`` with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from .. import losses
from ..augment import AUGMENTATIONS
from ..cleaners import gmm_clean_probability, normalize_losses, selection_metrics
from ..config import PROFILES, REDUCED_VIEWS, hp_field
from ..engine import Run
from ..noise import is_asymmetric
from . import Method, PerSample, TrainOutput, register


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
    class_aware: bool = hp_field(False, "one GMM per given class, each on its class's own normalised losses")
    co_divide: bool = hp_field(
        True, "each network trains on its peer's division (False: on its own; an ablation, not the paper's)"
    )
    mix_augment: str = hp_field(
        "", "AugDesc-WS: augmentation of the mixed views ('' = the guessing views, as DivideMix)"
    )

    def __post_init__(self) -> None:
        if self.mix_augment and self.mix_augment not in AUGMENTATIONS:
            raise ValueError(
                f"mix_augment must be '' or one of {', '.join(AUGMENTATIONS)}, got {self.mix_augment!r}"
            )
        if self.warmup_epochs < 0 or self.rampup_epochs < 1 or self.loss_average < 1:
            raise ValueError("warmup_epochs must be >= 0, rampup_epochs and loss_average >= 1")


# --------------------------------------------------------------------------- the extension point


class Selection(NamedTuple):
    """A division of the training set for both networks."""

    clean_prob: torch.Tensor  # (2, N) float32; row i is made from network i and trains network 1 - i
    threshold: float  # labelled iff clean_prob > threshold
    record: dict[str, Any]  # extra history entries of the epoch


@dataclass
class Parts:
    """What an extension owns; the trainer checkpoints it with the networks and sets the
    optimisers' learning rates with theirs (a parameter group's ``lr_scale`` applies)."""

    modules: dict[str, torch.nn.Module] = field(default_factory=dict)
    optimizers: dict[str, torch.optim.Optimizer] = field(default_factory=dict)
    state: dict[str, torch.Tensor] = field(default_factory=dict)  # updated in place, restored on resume


class MixMatchBatch(NamedTuple):
    """The samples and views of one MixMatch iteration. ``x`` and ``u`` are the two views of
    the labelled and the unlabelled samples used to guess labels; ``x_mix`` and ``u_mix`` the
    two views that are mixed and back-propagated (the same tensors unless ``mix_augment``)."""

    ix: torch.Tensor  # (B,) labelled indices
    iu: torch.Tensor | None  # (B,) unlabelled indices, None if the division left none
    x: tuple[torch.Tensor, torch.Tensor]
    u: tuple[torch.Tensor, torch.Tensor] | None
    x_mix: tuple[torch.Tensor, torch.Tensor]
    u_mix: tuple[torch.Tensor, torch.Tensor] | None


class Extension:
    """What a method adds to DivideMix. Every hook of this base class is a no-op; a method
    subclasses it and overrides the hooks it needs. The trainer calls them, in order:

    * ``network_options()`` and ``param_groups(net)`` when it builds each network and its
      optimiser; ``setup(run, nets)`` once, for the extension's own :class:`Parts`;
    * ``warmup_terms(run, i, net, idx, x, logits)`` in every warm-up batch of network ``i``
      (``x`` the batch's view, ``logits`` the network's output on it);
    * ``end_warmup(run, nets)`` once, when warm-up is over, before the first division;
    * ``pass_options()`` for the per-sample pass of every network (``features``,
      ``embeddings``), then ``select(run, epoch, passes, gmm_prob)`` with both passes and
      both networks' GMM clean probabilities, which returns the :class:`Selection`;
    * ``batch_terms(run, i, net, batch)`` in every MixMatch iteration of network ``i``;
    * ``epoch_record(run, epoch)`` after every epoch's training, before evaluation: entries
      for the epoch's history (statistics the extension gathered during the epoch).

    ``*_terms`` return named loss terms (already weighted) that are added to the batch's
    loss and recorded as the epoch means ``train_<name>``; they train the network, whose
    optimiser takes the step. The extension's own modules are trained by the extension with
    its own optimisers (``run.step(loss, opt)``), e.g. inside ``select``; the trainer sets
    their learning rates and checkpoints them.
    """

    def __init__(self, hp: DivideMixHParams) -> None:
        self.hp = hp

    def network_options(self) -> dict[str, Any]:
        return {}

    def param_groups(self, net):
        return net.parameters()

    def setup(self, run: Run, nets: list) -> Parts:
        return Parts()

    def warmup_terms(
        self, run: Run, i: int, net, idx: torch.Tensor, x: torch.Tensor, logits: torch.Tensor
    ) -> dict:
        return {}

    def end_warmup(self, run: Run, nets: list) -> None:
        pass

    def pass_options(self) -> dict[str, bool]:
        return {}

    def select(self, run: Run, epoch: int, passes: list[dict], gmm_prob: torch.Tensor) -> Selection:
        return Selection(gmm_prob, self.hp.p_threshold, {})

    def batch_terms(self, run: Run, i: int, net, batch: MixMatchBatch) -> dict:
        return {}

    def epoch_record(self, run: Run, epoch: int) -> dict[str, Any]:
        return {}


# --------------------------------------------------------------------------- pieces


def gmm_probabilities(passed: dict, run: Run, hp: DivideMixHParams) -> torch.Tensor:
    """DivideMix's cleaner on one network's pass: a GMM on its (possibly averaged, already
    normalised) losses ``passed["gmm_input"]``, one per class when ``hp.class_aware``."""
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


def _views(run: Run, idx: torch.Tensor, hp: DivideMixHParams):
    """Two views of ``idx`` for guessing and the two that are mixed (the same unless
    ``mix_augment``)."""
    guess = (run.inputs(idx), run.inputs(idx))
    if not hp.mix_augment:
        return guess, guess
    return guess, (run.inputs(idx, hp.mix_augment), run.inputs(idx, hp.mix_augment))


def draw_batch(run: Run, hp: DivideMixHParams, ix: torch.Tensor, iu: torch.Tensor | None) -> MixMatchBatch:
    """The views of one MixMatch iteration for labelled ``ix`` and unlabelled ``iu`` (or None),
    drawn from the run's generators in the trainer's order."""
    x, x_mix = _views(run, ix, hp)
    u, u_mix = _views(run, iu, hp) if iu is not None else (None, None)
    return MixMatchBatch(ix, iu, x, u, x_mix, u_mix)


def mixmatch_batch(
    run: Run,
    net,
    peer,
    batch: MixMatchBatch,
    clean_prob: torch.Tensor,
    hp: DivideMixHParams,
    *,
    lambda_u: float,
    extension: Extension | None = None,
    i: int = 0,
) -> dict[str, Any]:
    """The loss of one MixMatch iteration for ``net`` (network ``i``), before the optimiser step.

    ``clean_prob`` (N,) is the division ``net`` trains on (its peer's); ``lambda_u`` the ramped
    weight of Lu. Targets come from the guessing views without gradient: co-refinement of the
    labelled samples by ``net`` (Eq. (3)-(4) of Li et al.), co-guessing of the unlabelled ones by
    both networks; the mixed views are mixed with lambda' = max(lambda, 1 - lambda). Returns
    the graph-carrying terms ``lx``, ``lu``, ``penalty``, ``sst`` (= lx + lambda_u lu + penalty),
    the extension's terms under ``terms``, and their total ``loss``.
    """
    ix, k = batch.ix, run.num_classes
    w = clean_prob[ix][:, None]
    onehot = F.one_hot(run.labels[ix], k).float()
    x1, x2 = batch.x
    with torch.no_grad(), run.autocast():
        if batch.iu is not None:
            # co-guessing: both networks, both views (net in train mode, as the reference)
            u1, u2 = batch.u
            pu = sum(F.softmax(m(u).float(), 1) for m in (net, peer) for u in (u1, u2)) / 4
            targets_u = sharpen(pu, hp.T)
        # co-refinement: the given label, weighted by its clean probability
        px = (F.softmax(net(x1).float(), 1) + F.softmax(net(x2).float(), 1)) / 2
        targets_x = sharpen(w * onehot + (1 - w) * px, hp.T)
    lam = float(np.random.beta(hp.alpha, hp.alpha)) if hp.alpha > 0 else 1.0
    lam = max(lam, 1.0 - lam)
    if batch.iu is not None:
        inputs = torch.cat([*batch.x_mix, *batch.u_mix])
        targets = torch.cat([targets_x, targets_x, targets_u, targets_u])
    else:
        inputs = torch.cat(batch.x_mix)
        targets = torch.cat([targets_x, targets_x])
    perm = torch.randperm(inputs.shape[0], generator=run.gen, device=run.device)
    mixed_input = lam * inputs + (1 - lam) * inputs[perm]
    mixed_target = lam * targets + (1 - lam) * targets[perm]
    with run.autocast():
        logits = net(mixed_input)
    lx, lu, penalty = mixmatch_losses(logits, mixed_target, 2 * ix.numel())
    sst = lx + lambda_u * lu + penalty
    terms = extension.batch_terms(run, i, net, batch) if extension is not None else {}
    loss = sst
    for term in terms.values():
        loss = loss + term
    return {"loss": loss, "sst": sst, "lx": lx, "lu": lu, "penalty": penalty, "terms": terms}


class _Means:
    """Sums of named scalar tensors on the device; one host sync when read."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.count = 0

    def add(self, terms: dict[str, torch.Tensor], weight: float = 1.0) -> None:
        for name, value in terms.items():
            self.sums[name] = self.sums.get(name, 0.0) + value.detach().float() * weight

    def record(self, total: float) -> dict[str, float]:
        if not self.sums:
            return {}
        values = (torch.stack(list(self.sums.values())) / total).tolist()
        return {f"train_{name}": v for name, v in zip(self.sums, values)}


def _warmup_epoch(run: Run, i: int, net, opt, hp: DivideMixHParams, ext: Extension, extra: _Means):
    net.train()
    total = torch.zeros((), device=run.device)
    for idx in run.batches(batch_size=hp.warmup_batch_factor * run.config.batch_size):
        x = run.inputs(idx)
        with run.autocast():
            logits = net(x)
        loss = losses.ce(logits, run.labels[idx])
        if hp.entropy_penalty:
            loss = loss + neg_entropy(logits)
        terms = ext.warmup_terms(run, i, net, idx, x, logits)
        for term in terms.values():
            loss = loss + term
        run.step(loss, opt)
        total += loss.detach() * idx.numel()
        extra.add(terms, idx.numel())
    return total / len(run.train)


def _mixmatch_epoch(
    run: Run, i: int, nets: list, opt, prob: torch.Tensor, threshold: float, epoch: int,
    hp: DivideMixHParams, ext: Extension, extra: _Means,
) -> dict:  # fmt: skip
    """Train network ``i`` for one epoch on the division ``prob`` (N,) made by its peer."""
    net, peer = nets[i], nets[1 - i]
    net.train()
    peer.eval()  # the peer only guesses labels
    labeled = prob > threshold
    lab_idx = torch.nonzero(labeled).squeeze(1)  # one host sync per epoch
    unl_idx = torch.nonzero(~labeled).squeeze(1)
    n_lab, n_unl = lab_idx.numel(), unl_idx.numel()
    if n_lab == 0:
        return {"lx": float("nan"), "lu": float("nan")}
    num_iter = n_lab // run.config.batch_size + 1
    unl_batches = iter(())
    sums = torch.zeros(2, device=run.device)
    for it, pos in enumerate(run.batches(n_lab)):
        ix = lab_idx[pos]
        x, x_mix = _views(run, ix, hp)
        iu = u = u_mix = None
        if n_unl:
            iu = next(unl_batches, None)
            if iu is None:  # restart the unlabelled batches when they run out
                unl_batches = (unl_idx[p] for p in run.batches(n_unl))
                iu = next(unl_batches)
            u, u_mix = _views(run, iu, hp)
        ramp = np.clip((epoch + it / num_iter - hp.warmup_epochs) / hp.rampup_epochs, 0.0, 1.0)
        out = mixmatch_batch(
            run, net, peer, MixMatchBatch(ix, iu, x, u, x_mix, u_mix), prob, hp,
            lambda_u=hp.lambda_u * float(ramp), extension=ext, i=i,
        )  # fmt: skip
        run.step(out["loss"], opt)
        sums += torch.stack([out["lx"].detach(), out["lu"].detach()])
        extra.add(out["terms"])
    extra.count += it + 1
    lx_mean, lu_mean = (sums / (it + 1)).tolist()
    return {"lx": lx_mean, "lu": lu_mean}


def train_dividemix(run: Run, hp: DivideMixHParams, *, extension: Extension | None = None) -> TrainOutput:
    """Algorithm 1 of Li et al. (2020); ``extension`` adds a method on top (see :class:`Extension`)."""
    ext = extension if extension is not None else Extension(hp)
    nets = [run.model(**ext.network_options()) for _ in range(2)]
    opts = [run.optimizer(ext.param_groups(net)) for net in nets]
    n = len(run.train)
    state = {
        "loss_history": torch.zeros(2, hp.loss_average, n, device=run.device),  # normalised losses
        "loss_count": torch.zeros((), dtype=torch.long, device=run.device),
        "clean_prob": torch.ones(2, n, device=run.device),  # last division made from each network
    }
    models = {"net1": nets[0], "net2": nets[1]}
    optimizers = {"opt1": opts[0], "opt2": opts[1]}
    parts = ext.setup(run, nets)
    for mine, theirs in ((models, parts.modules), (optimizers, parts.optimizers), (state, parts.state)):
        if set(mine) & set(theirs):
            raise ValueError(f"extension names {sorted(set(mine) & set(theirs))} are DivideMix's own")
        mine.update(theirs)
    groups = run.labels if hp.class_aware else None
    for epoch in run.epochs(models, optimizers, state):
        for opt in optimizers.values():
            run.set_lr(opt, epoch)
        record: dict = {}
        extra = _Means()
        if epoch < hp.warmup_epochs:
            # ---- warm-up: CE on all samples, each network on its own
            record["train_loss"] = (
                sum(_warmup_epoch(run, i, nets[i], opts[i], hp, ext, extra) for i in range(2)) / 2
            )
            record.update(extra.record(2 * n))
        else:
            if epoch == hp.warmup_epochs:
                ext.end_warmup(run, nets)
            # ---- select: per-sample losses of both networks -> GMM -> the extension's division
            slot = int(state["loss_count"]) % hp.loss_average
            state["loss_count"] += 1
            used = min(int(state["loss_count"]), hp.loss_average)
            passes, gmm_prob = [], torch.empty(2, n, device=run.device)
            for i, net in enumerate(nets):
                passed = run.per_sample(net, **ext.pass_options())
                state["loss_history"][i, slot] = normalize_losses(
                    passed["losses"], class_labels=groups, num_classes=run.num_classes
                )
                passed["gmm_input"] = state["loss_history"][i, :used].mean(0)
                gmm_prob[i] = gmm_probabilities(passed, run, hp)
                passes.append(passed)
            sel = ext.select(run, epoch, passes, gmm_prob)
            state["clean_prob"].copy_(sel.clean_prob)
            # ---- co-divide + train: each network learns from the other's division
            # (hp.co_divide False: from its own, the single-network ablation)
            stats = [
                _mixmatch_epoch(run, i, nets, opts[i], state["clean_prob"][1 - i if hp.co_divide else i],
                                sel.threshold, epoch, hp, ext, extra)
                for i in range(2)
            ]  # fmt: skip
            record["train_loss"] = float(np.mean([s["lx"] for s in stats]))
            record["train_lu"] = float(np.mean([s["lu"] for s in stats]))
            record.update(extra.record(max(extra.count, 1)))
            clean = ~run.is_noisy
            per_net = [selection_metrics(state["clean_prob"][i], clean, sel.threshold) for i in range(2)]
            for key in per_net[0]:
                record[f"{key}_net1"], record[f"{key}_net2"] = per_net[0][key], per_net[1][key]
                record[key] = float(np.mean([per_net[0][key], per_net[1][key]]))
            record.update(sel.record)
        record.update(ext.epoch_record(run, epoch))
        # ---- evaluate: the ensemble of both networks
        run.end_epoch(record, models=nets)
    return TrainOutput(models, run.history, state)


# --------------------------------------------------------------------------- profiles

# lambda_u per (data set, symmetric noise rate): (upper bound of the rate bracket, value), from
# Li et al. (2020)'s appendix (Table 7) and PLReMix's Table 9: CIFAR-10 0 / 25 / 25 / 50 and
# CIFAR-100 25 / 150 / 150 / 150 at 20 / 50 / 80 / 90%. (The PLReMix README's 0 for CIFAR-100 at
# 20% is its code's choice: --set lambda_u=0.)
_LAMBDA_U = {"cifar10": ((0.35, 0.0), (0.85, 25.0), (1.0, 50.0)), "cifar100": ((0.35, 25.0), (1.0, 150.0))}


def _lambda_u(dataset: str, noise: str, rate: float) -> float:
    if is_asymmetric(noise):
        return 0.0
    if noise.startswith("cifar-n") or noise == "given":  # real-world noise, rate unknown: as CIFAR-N
        return 25.0 if dataset != "cifar100" else 150.0
    return next(
        v for bound, v in _LAMBDA_U["cifar100" if dataset == "cifar100" else "cifar10"] if rate < bound
    )


# The reduced profile (v2): the profile's 30 epochs and cosine schedule, and DivideMix's settings as
# calibrated on clean labels and a validation split (benchmarks/calibrate.py): flip-only views,
# MixUp alpha 0.5, 10 warm-up epochs. lambda_u follows the paper's table for ten classes (clean
# labels cannot choose it); the ramp-up keeps the reference code's proportion, 16 of 290
# post-warm-up epochs. Methods built on DivideMix start from these.
REDUCED = {"warmup_epochs": 10, "alpha": 0.5}
_REFERENCE_RAMPUP = (16, 290)  # the reference code: 16 epochs of ramp-up after 10 of 300 are warm-up


def reduced_rampup(epochs: int, warmup_epochs: int) -> int:
    """The reference code's ramp-up proportion on a shorter run: at least one epoch."""
    return max(1, round(_REFERENCE_RAMPUP[0] * (epochs - warmup_epochs) / _REFERENCE_RAMPUP[1]))


def _adjust(profile: str, dataset: str, noise: str, rate: float) -> dict:
    asym = is_asymmetric(noise)
    if profile == "reduced":
        epochs = PROFILES["reduced"].settings["epochs"]
        return {
            "augment": REDUCED_VIEWS,  # MixMatch needs two augmented views of every sample
            **REDUCED,
            "rampup_epochs": reduced_rampup(epochs, REDUCED["warmup_epochs"]),
            "lambda_u": _lambda_u(dataset, noise, rate),
            "entropy_penalty": asym,
        }
    settings: dict = {
        "batch_size": 64,  # the reference code's (the paper says 128)
        "warmup_epochs": 10 if dataset == "cifar10" else 30,
        "entropy_penalty": asym,
        "p_threshold": 0.6 if rate >= 0.9 else 0.5,
        "loss_average": 5 if rate >= 0.9 else 1,
    }
    settings["lambda_u"] = _lambda_u(dataset, noise, rate)
    return settings


def per_sample(hp: DivideMixHParams, state: dict, epochs_done: int) -> PerSample | None:
    """The last division: each network's GMM posterior that a sample's loss comes from the
    clean (low-loss) component; none before the first division, at the end of warm-up."""
    if epochs_done <= hp.warmup_epochs:
        return None
    meaning = "posterior of the low-loss component of a GMM on each network's per-sample loss"
    return PerSample(state["clean_prob"], hp.p_threshold, None, meaning)


register(
    Method(
        "dividemix",
        "co-divide with a per-sample-loss GMM, MixMatch on labelled + unlabelled parts",
        "li2020dividemix",
        DivideMixHParams,
        train_dividemix,
        selects_samples=True,
        adjust=_adjust,
        per_sample=per_sample,
    )
)
