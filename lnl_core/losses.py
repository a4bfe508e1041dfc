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
