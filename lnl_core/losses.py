"""Loss functions, pure functions of tensors.

Every loss takes ``logits`` (B, K) and integer ``labels`` (B,) and a ``reduction`` of
``"mean"``, ``"sum"`` or ``"none"`` (per-sample values, for methods that weight or select
samples). Values are computed in float32 even under autocast.
"""

from __future__ import annotations

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
