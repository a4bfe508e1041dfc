"""Loss functions, pure functions of tensors.

Every loss takes ``logits`` (B, K) and integer ``labels`` (B,) and a ``reduction`` of
``"mean"``, ``"sum"`` or ``"none"`` (per-sample values, for methods that weight or select
samples). Values are computed in float32 even under autocast.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

REDUCTIONS = ("mean", "sum", "none")


def _reduce(values: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return values.mean()
    if reduction == "sum":
        return values.sum()
    if reduction == "none":
        return values
    raise ValueError(f"unknown reduction {reduction!r}; choose one of {', '.join(REDUCTIONS)}")


def ce(logits: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy -log p_y."""
    return _reduce(F.cross_entropy(logits.float(), labels, reduction="none"), reduction)


def gce(logits: torch.Tensor, labels: torch.Tensor, q: float = 0.7, reduction: str = "mean") -> torch.Tensor:
    """Generalized cross-entropy, the L_q loss of Zhang & Sabuncu (2018): (1 - p_y^q) / q.

    q -> 0 recovers CE; q = 1 is the MAE loss 1 - p_y.
    """
    if not 0.0 < q <= 1.0:
        raise ValueError(f"gce needs q in (0, 1], got {q}")
    p_y = F.softmax(logits.float(), dim=1).gather(1, labels[:, None]).squeeze(1)  # (B,)
    return _reduce((1.0 - p_y.clamp_min(1e-12) ** q) / q, reduction)


def rce(logits: torch.Tensor, labels: torch.Tensor, A: float = -4.0, reduction: str = "mean") -> torch.Tensor:
    """Reverse cross-entropy (Wang et al. 2019; PEMM Eq. (8)): -sum_k p_k log q_k, one-hot
    label distribution q, log 0 replaced by ``A``; equals -A (1 - p_y)."""
    if A >= 0:
        raise ValueError(f"rce needs A < 0 (it stands for log 0), got {A}")
    p = F.softmax(logits.float(), dim=1)  # (B, K)
    log_q = torch.full_like(p, A).scatter_(1, labels[:, None], 0.0)  # log of clamped one-hot
    return _reduce(-(p * log_q).sum(1), reduction)


def sce(
    logits: torch.Tensor,
    labels: torch.Tensor,
    alpha: float = 0.1,
    beta: float = 1.0,
    A: float = -4.0,
    reduction: str = "mean",
) -> torch.Tensor:
    """Symmetric cross-entropy (Wang et al. 2019): alpha * CE + beta * RCE."""
    values = alpha * ce(logits, labels, "none") + beta * rce(logits, labels, A, "none")
    return _reduce(values, reduction)


# --------------------------------------------------------------------------- PEMM (Wang et al., wang2024pemm)


def _at_least_fp32(t: torch.Tensor) -> torch.Tensor:
    return t if t.dtype == torch.float64 else t.float()


def pe_equilibrium(u: int = 3, v: int = 2, xi: float = 2.0) -> float:
    """The distance r0 where the potential of Eq. (10) is smallest: dE/dr = 0 gives
    r0 = (u / (xi v))^(1 / (u - v)); 0.75 for (3, 2, 2)."""
    _check_potential(u, v, xi)
    return (u / (xi * v)) ** (1.0 / (u - v))


def _check_potential(u: int, v: int, xi: float) -> None:
    if not (u > v > 0 and xi > 0):
        raise ValueError(
            f"the potential needs u > v > 0 and xi > 0 (a repulsive core), got u={u}, v={v}, xi={xi}"
        )


def potential_energy(r: torch.Tensor, *, u: int = 3, v: int = 2, xi: float = 2.0) -> torch.Tensor:
    """PEMM Eq. (10), elementwise: E(r) = 1 / r^u - xi / r^v for distances r > 0.

    Repulsive (+1/r^u) at short range, attractive (-xi/r^v) at long range, smallest at
    :func:`pe_equilibrium` (0.75 for the paper's u=3, v=2, xi=2).
    """
    _check_potential(u, v, xi)
    r = _at_least_fp32(r)
    return r.pow(-u) - xi * r.pow(-v)


def pe_regularizer(
    centers: torch.Tensor, *, beta: float = 0.3, u: int = 3, v: int = 2, xi: float = 2.0
) -> torch.Tensor:
    """PEMM Eq. (11)-(12): the potential summed over every pair of the K + 1 points
    {c_0 = 0, c_1, ..., c_K}, on distances shifted by ``beta``: sum_{i<j} E(||c_i - c_j|| + beta).

    centers: (K, D). Its minimum puts every pair at distance r0 - beta (Eq. (15)), i.e. the
    centres and the origin on a regular simplex, which needs D >= K. Returns a scalar
    (float32, or float64 for float64 centres). Coincident centres have an undefined
    gradient: keep centres distinct (random initial centres are).
    """
    if centers.dim() != 2 or centers.shape[0] < 1:
        raise ValueError(f"centers must be (K, D) with K >= 1, got shape {tuple(centers.shape)}")
    if not 0.0 <= beta < pe_equilibrium(u, v, xi):
        raise ValueError(f"beta must be in [0, r0) = [0, {pe_equilibrium(u, v, xi):g}), got {beta}")
    c = _at_least_fp32(centers)
    points = torch.cat([c.new_zeros(1, c.shape[1]), c])  # (K + 1, D), c_0 = 0 first
    dist = torch.pdist(points)  # (K (K + 1) / 2,) the pairs i < j
    return potential_energy(dist + beta, u=u, v=v, xi=xi).sum()  # Eq. (11)


def pe_confidence_ceiling(num_classes: int, sigma: float, *, beta: float = 0.3, u: int = 3, v: int = 2,
                          xi: float = 2.0) -> float:  # fmt: skip
    """The largest probability p(k | x) that PEMM's distance head (Eq. (6)-(7), unit-norm
    features) can give any input when its centres sit at the PE's minimum.

    At the minimum the origin and the K centres form a regular simplex of edge a = r0 - beta
    (Eq. (15)): |c_k| = a and c_k . c_j = a^2 / 2. The logit gap log p_k - log p_j is
    2 z . (c_k - c_j) / sigma^2, which a unit feature z maximises for every j at once along
    c_k - m (m the mean of the other centres), where it equals 2 a sqrt(K / (2 (K - 1))) / sigma^2.
    So p_max = 1 / (1 + (K - 1) exp(-gap)). For K = 10 and the paper's sigma = 1 that is 0.18:
    no input can be predicted with more than 18% confidence.
    """
    if num_classes < 2 or sigma <= 0:
        raise ValueError(f"need num_classes >= 2 and sigma > 0, got {num_classes}, {sigma}")
    a = pe_equilibrium(u, v, xi) - beta
    gap = 2.0 * a * math.sqrt(num_classes / (2.0 * (num_classes - 1))) / sigma**2
    return 1.0 / (1.0 + (num_classes - 1) * math.exp(-gap))


def pe_sigma_for_confidence(num_classes: int, confidence: float, *, beta: float = 0.3, u: int = 3, v: int = 2,
                            xi: float = 2.0) -> float:  # fmt: skip
    """The largest sigma whose :func:`pe_confidence_ceiling` reaches ``confidence`` (in (1/K, 1))."""
    if not 1.0 / num_classes < confidence < 1.0:
        raise ValueError(f"confidence must be in (1/K, 1) = ({1.0 / num_classes:g}, 1), got {confidence}")
    a = pe_equilibrium(u, v, xi) - beta
    gap = math.log(confidence * (num_classes - 1) / (1.0 - confidence))
    return math.sqrt(2.0 * a * math.sqrt(num_classes / (2.0 * (num_classes - 1))) / gap)


# --------------------------------------------------------------------------- PMNAR (bibliography key pmnar)
#
# Negative learning on complementary labels (the classes a sample is said *not* to belong
# to), the positive-and-multi-negative loss that adds it to CE, the adaptive reweighting
# of Eq. (4) and the consistency term of Eq. (9). Every log(1 - p_k) is computed as
# logsumexp over the other classes minus logsumexp over all classes: exact, and finite for
# finite logits even where p_k rounds to 1 in float32 (where log1p(-p_k) would be -inf).


def _log_one_minus_softmax(logits: torch.Tensor) -> torch.Tensor:
    """(B, K) log(1 - p_k) = log sum_{j != k} e^{z_j} - log sum_j e^{z_j}, in float32.

    Builds a (B, K, K) intermediate (row k drops class k): 5 MB for B = 128, K = 100.
    With K = 1 there is no other class and every entry is -inf.
    """
    z = logits.float()
    k = z.shape[1]
    if k == 1:
        return torch.full_like(z, float("-inf"))
    drop_self = torch.zeros(k, k, device=z.device).fill_diagonal_(float("-inf"))  # (K, K)
    others = torch.logsumexp(z[:, None, :] + drop_self, dim=2)  # (B, K)
    return others - torch.logsumexp(z, dim=1, keepdim=True)


def random_complementary(
    labels: torch.Tensor,
    num_classes: int,
    generator: torch.Generator | None = None,
    *,
    allowed: torch.Tensor | None = None,
) -> torch.Tensor:
    """One complementary label per sample, uniform over the classes other than its label.

    labels: (B,) int. Drawn afresh at every call (NL draws one per sample per iteration),
    on ``labels``' device, with ``generator`` (which must live on that device).
    ``allowed`` (B, K) bool restricts the draw to a (pruned) complementary set: uniform over
    the allowed classes other than the label. A row with no such class gets its own label
    back, so the caller must mask those rows out (``allowed.any(1)``).
    """
    if num_classes < 2:
        raise ValueError(f"a complementary label needs at least 2 classes, got {num_classes}")
    if allowed is None:
        # label + an offset uniform in 1..K-1, modulo K: uniform over the K-1 other classes
        offset = torch.randint(1, num_classes, labels.shape, generator=generator, device=labels.device)
        return (labels + offset) % num_classes
    if allowed.shape != (labels.shape[0], num_classes):
        raise ValueError(
            f"allowed must be (B, K) = ({labels.shape[0]}, {num_classes}), got {tuple(allowed.shape)}"
        )
    allowed = allowed & ~F.one_hot(labels, num_classes).bool()  # (B, K)
    scores = torch.rand(allowed.shape, generator=generator, device=labels.device)  # (B, K)
    drawn = scores.masked_fill(~allowed, -1.0).argmax(1)  # argmax of iid uniforms: uniform
    return torch.where(allowed.any(1), drawn, labels)


def nl_loss(logits: torch.Tensor, complementary: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Negative learning (Kim et al. 2019; PMNAR Eq. (5)): -log(1 - p_cbar) for one
    complementary label ``complementary`` (B,) per sample; needs K >= 2.

    Computed stably as logsumexp(z) - logsumexp(z without class cbar): finite when p_cbar -> 1.
    """
    z = logits.float()
    if z.shape[1] < 2:
        raise ValueError("nl_loss needs at least 2 classes (a complementary label)")
    others = z.scatter(1, complementary[:, None], float("-inf")).logsumexp(1)  # (B,)
    return _reduce(torch.logsumexp(z, dim=1) - others, reduction)  # Eq. (5)


def ml_loss(logits: torch.Tensor, complementary_mask: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Multi-negative learning (PMNAR Eq. (6)): -sum over the complementary set of
    log(1 - p_k). ``complementary_mask`` (B, K) bool marks each sample's set (in Eq. (6) all
    classes but the given label; PMNAR prunes it during training). An empty set gives 0."""
    if complementary_mask.shape != logits.shape:
        raise ValueError(
            f"complementary_mask must have the logits' shape {tuple(logits.shape)}, got {tuple(complementary_mask.shape)}"
        )
    log_rest = _log_one_minus_softmax(logits)  # (B, K)
    return _reduce(-torch.where(complementary_mask, log_rest, 0.0).sum(1), reduction)  # Eq. (6)


def pm_loss(
    logits: torch.Tensor, labels: torch.Tensor, complementary_mask: torch.Tensor, reduction: str = "mean"
) -> torch.Tensor:
    """Positive and multi-negative learning (PMNAR Eq. (7)): CE on the given label plus
    :func:`ml_loss` on its complementary set (which should not contain the label)."""
    values = ce(logits, labels, "none") + ml_loss(logits, complementary_mask, "none")  # Eq. (7)
    return _reduce(values, reduction)


def ar_weights(label_probs: torch.Tensor) -> torch.Tensor:
    """Adaptive reweighting (PMNAR Eq. (4)): w = f_y(x) - f_min, with f_min = min over the
    whole training set of f_y(x).

    ``label_probs`` (N,) holds f_y(x) (softmax probability of the given label) for *every*
    training sample: the PMNAR trainer gets it once per epoch after warm-up from an
    eval-mode, un-augmented float32 pass over the training set, and with two networks
    weights each network by its peer's probabilities (Eq. (8)). Returns (N,) float32 in
    [0, 1]: the least confident sample gets 0; 1 only if f_y reaches exactly 1 while f_min
    is exactly 0.

    If every f_y is equal (f_max == f_min, e.g. a network with uniform output) the weights
    carry no information and would all be 0, stopping learning: we return all ones
    instead, the unweighted loss of warm-up. Decided on the device, without a host sync.
    """
    if label_probs.dim() != 1 or label_probs.numel() == 0:
        raise ValueError(f"label_probs must be a non-empty (N,) tensor, got shape {tuple(label_probs.shape)}")
    p = label_probs.float()
    f_min, f_max = p.min(), p.max()
    return torch.where(f_max > f_min, p - f_min, torch.ones_like(p))  # Eq. (4)


def consistency_kl(target_probs: torch.Tensor, logits: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """KL(target || softmax(logits)) per sample (PMNAR Eq. (9)): the target is the ensemble
    prediction on x, the logits are a network's output on Aug(x). target_probs (B, K) is
    used as given: detach it when it must not receive gradients. 0 log 0 is taken as 0."""
    t = target_probs.float()
    log_q = F.log_softmax(logits.float(), dim=1)  # (B, K)
    return _reduce((torch.xlogy(t, t) - t * log_q).sum(1), reduction)  # Eq. (9)


# --------------------------------------------------------------------------- contrastive (PLReMix, liu2024plremix)


def simclr_negatives(b: int, device=None) -> torch.Tensor:
    """SimCLR's negative set for :func:`contrastive_loss`: every other sample of the batch.
    (B, B) bool."""
    return ~torch.eye(b, dtype=torch.bool, device=device)


def contrastive_loss(
    z1: torch.Tensor,
    z2: torch.Tensor,
    negatives: torch.Tensor,
    *,
    tau: float = 1.0,
    flat: bool = False,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """InfoNCE over an arbitrary negative set (PLReMix Eq. (5) and (9)), or its FlatNCE form.

    ``z1``, ``z2`` (B, D): unit-norm embeddings of two views of B samples. The M = 2B views are
    the anchors; the positive of view v of sample i is its other view; its negatives are both
    views of every j with ``negatives[i, j]`` ((B, B) bool; the diagonal is ignored). With
    every off-diagonal pair a negative this is SimCLR's NT-Xent; PLReMix passes its relaxed set.

    Per anchor a, with cosines s and v_a = log sum_{b in A_a} exp((s_ab - s_a,a+) / tau):
    InfoNCE's term is softplus(v_a) (= -log of the positive's softmax share); an anchor with no
    negative contributes 0 and stays in the mean over all M anchors. FlatNCE (Chen et al. 2021)
    is the mean over anchors *with* negatives of exp(v_a - sg(v_a)): its value is always 1 and
    its gradient is that of mean v_a, InfoNCE's gradient without the per-anchor factor
    sigmoid(v_a) that vanishes when negatives are few. No anchor with a negative: 0.

    Returns the loss (float32, float64 for float64 inputs) and ``info``: ``info_nce`` (InfoNCE's value, detached, whichever
    form is returned) and ``anchors`` (anchors with at least one negative).
    """
    if z1.dim() != 2 or z1.shape != z2.shape:
        raise ValueError(
            f"z1 and z2 must be (B, D) of one shape, got {tuple(z1.shape)} and {tuple(z2.shape)}"
        )
    b = z1.shape[0]
    if negatives.shape != (b, b) or negatives.dtype != torch.bool:
        raise ValueError(
            f"negatives must be a ({b}, {b}) bool mask, got {tuple(negatives.shape)} {negatives.dtype}"
        )
    if tau <= 0:
        raise ValueError(f"tau must be positive, got {tau}")
    q = _at_least_fp32(torch.cat([z1, z2]))  # (M, D), view v of sample i at row v * B + i
    m = 2 * b
    sim = q @ q.T / tau  # (M, M)
    positive = torch.arange(m, device=q.device).roll(b)  # a+ = (a + B) mod M
    eye = torch.eye(b, dtype=torch.bool, device=q.device)
    neg = (negatives & ~eye).repeat(2, 2)  # (M, M): both views of each negative sample
    has = neg.any(1)  # (M,)
    rel = (sim - sim.gather(1, positive[:, None])).masked_fill(~neg, float("-inf"))
    v = torch.logsumexp(torch.where(has[:, None], rel, 0.0), dim=1)  # (M,) finite on every row
    info_nce = torch.where(has, F.softplus(v), 0.0).mean()  # Eq. (9) (Eq. (5) with all negatives)
    anchors = has.sum()
    if flat:
        loss = torch.where(has, torch.exp(v - v.detach()), 0.0).sum() / anchors.clamp_min(1)
    else:
        loss = info_nce
    return loss, {"info_nce": info_nce.detach(), "anchors": anchors}


def gradient_entanglement(g1: torch.Tensor, g2: torch.Tensor) -> tuple[float, float]:
    """PLReMix Sec. 4.4: the entanglement E = g1 . g2 / ||g2||^2 of gradient ``g1`` (a
    contrastive loss's) with ``g2`` (the supervised loss's), and the magnitude ratio
    R = ||g1|| / ||g2||. E < 0: a step on loss 1 undoes part of a step on loss 2. Flat vectors."""
    g1, g2 = g1.double().flatten(), g2.double().flatten()
    sq = (g2 * g2).sum()
    if sq == 0:
        raise ValueError("the reference gradient g2 is zero")
    return float((g1 * g2).sum() / sq), float(g1.norm() / sq.sqrt())


# --------------------------------------------------------------------------- LNL-flywheel (kim2024flywheel)


def soft_ce(logits: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy against soft targets, -sum_y t_y log softmax(z)_y (LNL-flywheel Eq. (13)).
    logits, targets (B, K); targets rows on the simplex, used as given (detach them)."""
    if targets.shape != logits.shape:
        raise ValueError(
            f"targets must have the logits' shape {tuple(logits.shape)}, got {tuple(targets.shape)}"
        )
    return _reduce(-(targets.float() * F.log_softmax(logits.float(), dim=1)).sum(1), reduction)


def confidence_regularizer(
    logits: torch.Tensor, prior: torch.Tensor, *, eps: float = 1e-8, reduction: str = "mean"
) -> torch.Tensor:
    """The confidence regulariser of CORES (cheng2021cores; LNL-flywheel Eq. (9)), per sample:
    sum_k prior_k log(softmax(z)_k + eps) <= 0. Minimising lambda times it pushes each prediction
    away from the label marginal ``prior`` (K,), towards confident outputs.

    ``eps`` = 1e-8 is the CORES code's clamp (the loss is then bounded below); ``eps`` = 0 is
    the formula as printed, computed with log-softmax. For eps = 0 its gradient in the logits is
    softmax(z) * sum(prior) - prior."""
    if prior.dim() != 1 or prior.shape[0] != logits.shape[1]:
        raise ValueError(f"prior must be ({logits.shape[1]},), got {tuple(prior.shape)}")
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    z = _at_least_fp32(logits)
    logp = F.log_softmax(z, dim=1) if eps == 0 else torch.log(F.softmax(z, dim=1) + eps)
    return _reduce((logp * prior.to(logp)).sum(1), reduction)  # Eq. (9), one sample
