"""LNL-flywheel (Kim et al., kim2024flywheel): two interconnected EM cycles.

The model: a given label comes from a clean manifold (the *main* network g, with weight gamma)
or from a corruption distribution (likelihood eps_i, 1/K at first). Two networks, one cycle per
epoch after a CE warm-up, in the order of the paper's Fig. 2:

1. *main E-step*, Eq. (4): the clean posterior w_i of every given label from g, gamma, eps_i;
2. *auxiliary E-step*, Eq. (11): targets q_i = w_i e_{y_i} + (1 - w_i) f(x_i), with f(x_i) the
   *auxiliary* network's softmax averaged over two weak views; the transition matrices T (from
   q) and T_c (from the corrupted part only) in closed form;
3. *auxiliary M-step*, Eq. (13): one epoch of soft cross-entropy on q with MixUp, plus alpha
   times a SimCLR term on two strong views; then every sample is refurbished to the auxiliary
   network's argmax, and eps_i = sum_y f(x_i)_y T_c[y, y_i] (Eq. (14));
4. *main M-step*, Eq. (8)-(9): one epoch of cross-entropy on the refurbished labels plus lambda
   times the confidence regulariser; gamma = mean w (Eq. (6)).

The auxiliary network alone predicts at test time. Table 6's ablations are settings: ``lam=0``
(no CR), ``auxiliary=False`` (the main EM alone, Eq. (7)), ``update_eps=False`` (eps fixed at
1/K) and ``alpha=0`` (no contrastive term). The paper has no public code; the choices it leaves
open are on the book's Deviations page.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
from .dividemix import neg_entropy

CR_PRIORS = ("resampled", "given", "uniform")
_FLOOR = 1e-12  # g and eps in Eq. (4): equal likelihoods give w = gamma, never 0 / 0


# --------------------------------------------------------------------------- closed forms


def clean_posterior(label_prob: torch.Tensor, gamma, eps) -> torch.Tensor:
    """Eq. (4): w_i = gamma g_i / (gamma g_i + (1 - gamma) eps_i), with g_i the main network's
    probability of the given label (N,), gamma a scalar and eps a scalar or (N,)."""
    g = label_prob.double().clamp_min(_FLOOR)
    e = torch.as_tensor(eps, dtype=torch.float64, device=g.device).clamp_min(_FLOOR)
    gam = torch.as_tensor(gamma, dtype=torch.float64, device=g.device)
    clean = gam * g
    return (clean / (clean + (1 - gam) * e)).float()


def refurbish_targets(clean_prob: torch.Tensor, labels: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    """Eq. (11): q_i = w_i e_{y_i} + (1 - w_i) f(x_i). (N,), (N,), (N, K) -> (N, K)."""
    w = clean_prob.float()[:, None]
    return w * F.one_hot(labels, probs.shape[1]).float() + (1 - w) * probs.float()


def transition_estimate(weights: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """The closed-form M-step for T (after Eq. (13)): T[y, y'] = sum_{i: y_i = y'} u_i(y) /
    sum_i u_i(y), for per-sample class weights u (N, K) (q for T; the corrupted part
    (1 - w_i) f(x_i) for T_c). A row with no mass is uniform. -> (K, K), rows sum to 1."""
    if weights.dim() != 2 or weights.shape != (labels.shape[0], num_classes):
        raise ValueError(
            f"weights must be (N, K) = ({labels.shape[0]}, {num_classes}), got {tuple(weights.shape)}"
        )
    u = weights.double()
    counts = u.T @ F.one_hot(labels, num_classes).double()  # (K, K): [y, y'] = sum_{i: y_i = y'} u_i(y)
    mass = counts.sum(1, keepdim=True)
    uniform = torch.full_like(counts, 1.0 / num_classes)
    return torch.where(mass > 0, counts / mass.clamp_min(1e-300), uniform).float()


def corruption_likelihood(
    probs: torch.Tensor, transition_c: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """Eq. (14): eps_i = sum_y f(x_i)_y T_c[y, y_i]. (N, K), (K, K), (N,) -> (N,)."""
    return (probs.float() @ transition_c.float()).gather(1, labels[:, None]).squeeze(1)


def cr_limit(p_cond: torch.Tensor, prior: torch.Tensor, lam: float) -> torch.Tensor:
    """Lemma 1, generalised: the minimiser over the simplex of -sum_y a_y log u_y with
    a = p(y|x) - lam p(y), for each row of ``p_cond`` (M, K) (CE + lam * CR in the
    non-parametric limit). Rows with a positive entry: a_+ / sum a_+ (the printed loss is
    then unbounded below; this is the limit its minimising sequences reach, and the minimiser
    of the clamped loss as the clamp goes to 0); rows with none: the vertex at argmax a."""
    a = p_cond.double() - lam * prior.double()[None, :]
    pos = a.clamp_min(0)
    total = pos.sum(1, keepdim=True)
    vertex = F.one_hot(a.argmax(1), a.shape[1]).double()
    return torch.where(total > 0, pos / total.clamp_min(1e-300), vertex)


def label_prior(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """The label marginal p(y) of Eq. (9): class frequencies of ``labels`` (K,)."""
    return torch.bincount(labels, minlength=num_classes).float() / labels.numel()


def empirical_transition(clean_labels: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """T[y, y'] = share of the samples of true class y given label y' (reporting only)."""
    return transition_estimate(F.one_hot(clean_labels, num_classes).float(), labels, num_classes)


# --------------------------------------------------------------------------- hyperparameters


@dataclass(frozen=True)
class FlywheelHParams:
    warmup_epochs: int = hp_field(10, "Sec. 4.2: 10 for CIFAR-10 and CIFAR-100")
    lam: float = hp_field(3.0, "Sec. 4.1: CR coefficient lambda of Eq. (8); 0 = Table 6 'w/o CR'")
    alpha: float = hp_field(0.025, "Sec. 4.1: weight of the contrastive term; 0 = Table 6 'w/o CL'")
    temperature: float = hp_field(
        0.05, "contrastive temperature: not given; UNICON's code, whose alpha the paper uses"
    )
    proj_dim: int = hp_field(128, "projection width of the contrastive term: not given; UNICON's")
    mixup_alpha: float = hp_field(
        4.0, "MixUp Beta(m, m) with l = max(l, 1 - l): not given; DivideMix's / UNICON's"
    )
    contrastive_augment: str = hp_field(
        "strong", "Sec. 4.1 (ii): the contrastive views ('14 random transformations')"
    )
    estep_views: int = hp_field(2, "Sec. 4.1 (i): weak views averaged for f(x_i) in Eq. (11)")
    update_eps: bool = hp_field(True, "Eq. (14); False = Table 6 'eps fixed' at 1/K")
    auxiliary: bool = hp_field(True, "False = Table 6 'w/o Aux.': the main EM alone, Eq. (7)")
    cr_prior: str = hp_field(
        "resampled", "p(y) of Eq. (9): resampled (the labels of Eq. (8)), given, uniform"
    )
    cr_eps: float = hp_field(1e-8, "CR as log(softmax + cr_eps) (CORES code); 0 = the printed log-softmax")
    entropy_penalty: bool = hp_field(
        False, "warm-up negative-entropy penalty (DivideMix's, asymmetric noise); not in the paper"
    )
    threshold: float = hp_field(0.5, "reporting only: a label counts as clean when w > threshold")

    def __post_init__(self) -> None:
        if self.warmup_epochs < 0 or self.estep_views < 1:
            raise ValueError("warmup_epochs must be >= 0 and estep_views >= 1")
        if self.lam < 0 or self.alpha < 0 or self.mixup_alpha < 0 or self.cr_eps < 0:
            raise ValueError("lam, alpha, mixup_alpha and cr_eps must be non-negative")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")
        if self.alpha > 0 and self.proj_dim < 1:
            raise ValueError("the contrastive term (alpha > 0) needs proj_dim >= 1")
        if self.contrastive_augment not in AUGMENTATIONS:
            raise ValueError(f"contrastive_augment must be one of {', '.join(AUGMENTATIONS)}")
        if self.cr_prior not in CR_PRIORS:
            raise ValueError(f"cr_prior must be one of {', '.join(CR_PRIORS)}, got {self.cr_prior!r}")
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {self.threshold}")


# --------------------------------------------------------------------------- epochs


@torch.no_grad()
def view_probs(run: Run, net, kind: str, views: int) -> torch.Tensor:
    """Eval-mode softmax (N, K) float32 averaged over ``views`` augmented copies (``kind``) of
    every training image, in index order (Sec. 4.1 (i))."""
    mode = net.training
    net.eval()
    out = []
    for idx in torch.arange(len(run.train), device=run.device).split(run.config.eval_batch_size):
        out.append(sum(F.softmax(net(run.inputs(idx, kind)).float(), 1) for _ in range(views)) / views)
    net.train(mode)
    return torch.cat(out)


def _warmup_epoch(run: Run, net, opt, hp: FlywheelHParams) -> torch.Tensor:
    net.train()
    total = torch.zeros((), device=run.device)
    for idx in run.batches():
        with run.autocast():
            logits = net(run.inputs(idx))
        loss = losses.ce(logits, run.labels[idx])
        if hp.entropy_penalty:
            loss = loss + neg_entropy(logits)
        run.step(loss, opt)
        total += loss.detach() * idx.numel()
    return total / len(run.train)


def _aux_epoch(run: Run, aux, opt, targets: torch.Tensor, hp: FlywheelHParams) -> dict[str, torch.Tensor]:
    """Eq. (13) with MixUp on one weak view, plus alpha * SimCLR on two strong views."""
    aux.train()
    sums = torch.zeros(2, device=run.device)
    for idx in run.batches():
        x, q = run.inputs(idx, "weak"), targets[idx]
        lam = float(np.random.beta(hp.mixup_alpha, hp.mixup_alpha)) if hp.mixup_alpha > 0 else 1.0
        lam = max(lam, 1.0 - lam)
        perm = torch.randperm(idx.numel(), generator=run.gen, device=run.device)
        with run.autocast():
            logits = aux(lam * x + (1 - lam) * x[perm])
        loss = losses.soft_ce(logits, lam * q + (1 - lam) * q[perm])  # Eq. (13) on mixed pairs
        con = torch.zeros((), device=run.device)
        if hp.alpha > 0:
            views = torch.cat(
                [run.inputs(idx, hp.contrastive_augment), run.inputs(idx, hp.contrastive_augment)]
            )
            with run.autocast():
                emb = aux.forward_all(views).embeddings.float()
            z1, z2 = emb.chunk(2)
            con, _ = losses.contrastive_loss(
                z1, z2, losses.simclr_negatives(idx.numel(), run.device), tau=hp.temperature
            )
            loss = loss + hp.alpha * con
        run.step(loss, opt)
        sums += torch.stack([loss.detach(), con.detach()]) * idx.numel()
    total, con_total = (sums / len(run.train)).unbind()
    return {"aux": total, "con": con_total}


def _main_epoch(
    run: Run,
    main,
    opt,
    labels: torch.Tensor,
    weights: torch.Tensor | None,
    prior: torch.Tensor,
    hp: FlywheelHParams,
) -> torch.Tensor:
    """Eq. (8): CE on ``labels`` (the refurbished ones) + lam * CR (Eq. (9)); with ``weights``
    (the 'w/o Aux.' ablation) the CE is Eq. (7)'s, weighted by the clean posterior."""
    main.train()
    total = torch.zeros((), device=run.device)
    for idx in run.batches():
        with run.autocast():
            logits = main(run.inputs(idx))
        ce = losses.ce(logits, labels[idx], "none")
        if weights is not None:
            ce = weights[idx] * ce  # Eq. (7)
        loss = ce.mean()
        if hp.lam > 0:
            loss = loss + hp.lam * losses.confidence_regularizer(logits, prior, eps=hp.cr_eps)  # Eq. (8)-(9)
        run.step(loss, opt)
        total += loss.detach() * idx.numel()
    return total / len(run.train)


# --------------------------------------------------------------------------- the loop


def train_flywheel(run: Run, hp: FlywheelHParams) -> TrainOutput:
    """The two EM cycles of LNL-flywheel (Fig. 2), one cycle per epoch after warm-up."""
    n, k = len(run.train), run.num_classes
    main = run.model()
    models, optimizers = {"main": main}, {"opt_main": run.optimizer(main.parameters())}
    aux = None
    if hp.auxiliary:
        aux = run.model(proj_dim=hp.proj_dim if hp.alpha > 0 else None)
        models["aux"], optimizers["opt_aux"] = aux, run.optimizer(aux.parameters())
    infer = aux if aux is not None else main  # the network evaluated at test time
    dev = run.device
    state = {
        "gamma": torch.zeros((), device=dev),
        "eps": torch.full((n,), 1.0 / k, device=dev),
        "clean_prob": torch.ones(n, device=dev),
        "resampled": run.labels.clone(),
        "transition": torch.eye(k, device=dev),
        "transition_c": torch.full((k, k), 1.0 / k, device=dev),
        "label_prior": torch.full((k,), 1.0 / k, device=dev),
    }
    clean, noisy = ~run.is_noisy, run.is_noisy
    true_t = empirical_transition(run.clean_labels, run.labels, k)
    true_tc = empirical_transition(run.clean_labels[noisy], run.labels[noisy], k) if noisy.any() else None
    tc_rows = torch.bincount(run.clean_labels[noisy], minlength=k) > 0  # classes with mislabelled samples
    for epoch in run.epochs(models, optimizers, state):
        for opt in optimizers.values():
            run.set_lr(opt, epoch)
        if epoch < hp.warmup_epochs:
            # ---- initialisation (Sec. 4.1): CE on the given labels, each network on its own
            loss = sum(_warmup_epoch(run, models[m], optimizers[f"opt_{m}"], hp) for m in models) / len(
                models
            )
            run.end_epoch({"train_loss": loss}, models=[infer])
            continue
        if epoch == hp.warmup_epochs:  # gamma(0): the training accuracy of f against the given labels
            acc = (run.per_sample(infer)["probs"].argmax(1) == run.labels).float().mean()
            state["gamma"].copy_(acc.clamp(1e-3, 1 - 1e-3))
        record: dict[str, Any] = {}
        # ---- (1) main E-step, Eq. (4)
        g_y = run.per_sample(main)["probs"].gather(1, run.labels[:, None]).squeeze(1)  # (N,)
        w = clean_posterior(g_y, state["gamma"], state["eps"])
        gam = state["gamma"]
        loglik = torch.log(
            (gam * g_y + (1 - gam) * state["eps"]).clamp_min(_FLOOR)
        ).mean()  # Eq. (3), reporting
        if aux is not None:
            # ---- (2) auxiliary E-step, Eq. (11), and the closed-form T, T_c
            f_prev = view_probs(run, aux, "weak", hp.estep_views)  # (N, K)
            q = refurbish_targets(w, run.labels, f_prev)
            state["transition"].copy_(transition_estimate(q, run.labels, k))
            state["transition_c"].copy_(transition_estimate((1 - w)[:, None] * f_prev, run.labels, k))
            # ---- (3) auxiliary M-step, Eq. (13) + MixUp + alpha * contrastive
            aux_stats = _aux_epoch(run, aux, optimizers["opt_aux"], q, hp)
            # ---- refurbish every label, and eps_i by Eq. (14)
            f_new = run.per_sample(aux)["probs"]
            state["resampled"].copy_(f_new.argmax(1))
            if hp.update_eps:
                state["eps"].copy_(corruption_likelihood(f_new, state["transition_c"], run.labels))
            main_labels, main_weights = state["resampled"], None  # Eq. (8)
            record.update(train_loss=aux_stats["aux"], con_loss=aux_stats["con"])
        else:
            main_labels, main_weights = run.labels, w  # Eq. (7)
        if hp.cr_prior == "uniform":
            state["label_prior"].fill_(1.0 / k)
        else:
            state["label_prior"].copy_(
                label_prior(main_labels if hp.cr_prior == "resampled" else run.labels, k)
            )
        # ---- (4) main M-step, Eq. (8)-(9), and gamma by Eq. (6)
        record["main_loss"] = _main_epoch(
            run, main, optimizers["opt_main"], main_labels, main_weights, state["label_prior"], hp
        )
        if aux is None:
            record["train_loss"] = record["main_loss"]
        state["gamma"].copy_(w.mean().clamp(1e-3, 1 - 1e-3))  # Eq. (6)
        state["clean_prob"].copy_(w)
        record.update(_report(run, state, loglik, clean, noisy, true_t, true_tc, tc_rows, hp))
        if aux is not None:
            record["main_test_acc"] = run.accuracy([main])
        run.end_epoch(record, models=[infer])
    return TrainOutput(models, run.history, state)


def _report(
    run: Run, state: dict, loglik, clean, noisy, true_t, true_tc, tc_rows, hp: FlywheelHParams
) -> dict:
    """Reporting only (the clean labels never reach training). T_c is compared with the
    mislabelled part's transitions on the classes that have mislabelled samples."""
    record: dict[str, Any] = selection_metrics(state["clean_prob"], clean, hp.threshold)
    y_hat, eps = state["resampled"], state["eps"]
    nan = torch.tensor(float("nan"), device=run.device)
    stats = torch.stack(
        [
            loglik.float(),
            state["gamma"],
            (y_hat == run.clean_labels).float().mean(),
            (y_hat == run.clean_labels)[noisy].float().mean(),  # an empty part gives NaN
            (y_hat != run.labels).float().mean(),
            eps[clean].mean(),
            eps[noisy].mean(),
            (state["transition"] - true_t).abs().max(),
            (state["transition_c"] - true_tc)[tc_rows].abs().max() if true_tc is not None else nan,
        ]
    ).tolist()  # one host sync
    keys = (
        "loglik",
        "gamma",
        "refurbish_acc",
        "refurbish_acc_mislabelled",
        "relabelled_fraction",
        "eps_clean",
        "eps_mislabelled",
        "transition_error",
        "transition_c_error",
    )
    record.update(zip(keys, stats))
    return record


# --------------------------------------------------------------------------- profiles


def _adjust(profile: str, dataset: str, noise: str, rate: float) -> dict:
    if profile == "reduced":
        # the reduced profile's 30 epochs and DivideMix's calibrated warm-up (10; the paper warms up
        # as DivideMix does, 10 epochs on CIFAR), on its flip views (MixUp and the E-step need
        # augmented copies); the contrastive views are crop + flip, the stronger augmentation at
        # this scale (RandAugment on every contrastive view would dominate a CPU epoch); MixUp's
        # alpha, which the paper does not give (DivideMix's in the full profile), is DivideMix's too
        return {
            "warmup_epochs": DIVIDEMIX_REDUCED["warmup_epochs"], "augment": REDUCED_VIEWS,
            "contrastive_augment": REDUCED_STRONG_VIEWS, "mixup_alpha": DIVIDEMIX_REDUCED["alpha"],
        }  # fmt: skip
    # Sec. 4.2: PreAct ResNet-18, SGD momentum 0.9, wd 5e-4, batch 128, 300 epochs, lr 0.02 with
    # cosine annealing without restart, warm-up 10 on both data sets; lambda 3, alpha 0.025 (Sec. 4.1)
    return {
        "epochs": 300,
        "lr": 0.02,
        "schedule": "cosine",
        "milestones": (),
        "weight_decay": 5e-4,
        "momentum": 0.9,
        "batch_size": 128,
        "augment": "weak",
        "warmup_epochs": 10,
        "contrastive_augment": "strong",
    }


def per_sample(hp: FlywheelHParams, state: dict, epochs_done: int) -> PerSample | None:
    """w_i of Eq. (4), the posterior that the given label is clean, and (with the auxiliary
    network) the refurbished labels of Eq. (8); none during the initialisation epochs."""
    if epochs_done <= hp.warmup_epochs:
        return None
    refurbished = state["resampled"] if hp.auxiliary else None
    return PerSample(
        state["clean_prob"][None], hp.threshold, refurbished, "posterior w_i that the given label is clean"
    )


register(
    Method(
        "flywheel",
        "two EM cycles: a main network with a confidence regulariser, an auxiliary network refurbishing labels",
        "kim2024flywheel",
        FlywheelHParams,
        train_flywheel,
        selects_samples=True,
        adjust=_adjust,
        per_sample=per_sample,
    )
)
