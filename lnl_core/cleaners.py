"""Cleaners: per-sample quantities in, clean probabilities out.

A sample-selection step has two halves. A pass over the training set computes per-sample
quantities (``engine.per_sample_pass``: losses, probabilities, features); a cleaner, a pure
function here, turns them into ``clean_prob`` (N,), the probability that each given label is
correct. The DivideMix trainer's extension point (``Extension.select``) is where a method
replaces or refines the division.

* :func:`fit_gmm`: a Gaussian mixture with full covariances fitted by EM in torch (float64
  on any device), step for step the algorithm of ``sklearn.mixture.GaussianMixture``; one
  call can fit many independent mixtures at once (``groups``).
* :func:`normalize_losses`: min-max normalisation, globally or within each class.
* :func:`gmm_clean_probability`: DivideMix's cleaner (min-max normalised losses, two
  components, clean = the component with the smaller mean), optionally one mixture per class.
* :func:`selection_metrics`: how good a selection is, against the known clean labels.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch

_EPS = 10 * torch.finfo(torch.float64).eps  # sklearn adds this to component counts


@dataclass
class GMM:
    """Fitted mixture(s). With ``G`` groups, ``C`` components and ``D`` dimensions:
    ``weights`` (G, C), ``means`` (G, C, D), ``covariances`` (G, C, D, D); a single mixture
    has G = 1. ``converged`` (G,) and ``n_iter`` (G,) report the EM run of each group."""

    weights: torch.Tensor
    means: torch.Tensor
    covariances: torch.Tensor
    converged: torch.Tensor
    n_iter: torch.Tensor

    def predict_proba(self, x: torch.Tensor, groups: torch.Tensor | None = None) -> torch.Tensor:
        """(N, C) posterior responsibilities of ``x`` ((N,) or (N, D)); ``groups`` (N,)
        names the mixture of each sample when several were fitted."""
        x = _as_2d(x).to(self.means)
        g = torch.zeros(x.shape[0], dtype=torch.long, device=x.device) if groups is None else groups
        log_resp, _ = _e_step(x, g, self.weights, self.means, _precision_cholesky(self.covariances))
        return log_resp.exp()


def _as_2d(x: torch.Tensor) -> torch.Tensor:
    x = torch.as_tensor(x)
    return x[:, None] if x.dim() == 1 else x


def _precision_cholesky(cov: torch.Tensor) -> torch.Tensor:
    """Upper-triangular U with U U^T = Sigma^{-1} (sklearn's precisions_cholesky_)."""
    chol = torch.linalg.cholesky(cov)  # lower L, Sigma = L L^T
    eye = torch.eye(cov.shape[-1], dtype=cov.dtype, device=cov.device).expand_as(cov)
    return torch.linalg.solve_triangular(chol, eye, upper=False).transpose(-1, -2)


def _e_step(x, groups, weights, means, prec_chol):
    """log responsibilities (N, C) and per-sample log-likelihood (N,)."""
    d = x.shape[1]
    mu = means[groups]  # (N, C, D)
    u = prec_chol[groups]  # (N, C, D, D)
    y = torch.einsum("nd,ncde->nce", x, u) - torch.einsum("ncd,ncde->nce", mu, u)
    log_det = torch.log(torch.diagonal(prec_chol, dim1=-2, dim2=-1)).sum(-1)  # (G, C)
    log_gauss = -0.5 * (d * math.log(2 * math.pi) + (y**2).sum(-1)) + log_det[groups]
    weighted = log_gauss + torch.log(weights[groups])  # (N, C)
    log_norm = torch.logsumexp(weighted, dim=1)
    return weighted - log_norm[:, None], log_norm


def _m_step(x, groups, resp, n_groups, reg_covar):
    """weights (G, C), means (G, C, D), covariances (G, C, D, D) from responsibilities."""
    n, d = x.shape
    c = resp.shape[1]
    nk = torch.zeros(n_groups, c, dtype=x.dtype, device=x.device).index_add_(0, groups, resp) + _EPS
    sums = torch.zeros(n_groups, c, d, dtype=x.dtype, device=x.device)
    sums.index_add_(0, groups, resp[:, :, None] * x[:, None, :])
    means = sums / nk[:, :, None]
    diff = x[:, None, :] - means[groups]  # (N, C, D)
    outer = resp[:, :, None, None] * diff[:, :, :, None] * diff[:, :, None, :]
    cov = torch.zeros(n_groups, c, d, d, dtype=x.dtype, device=x.device).index_add_(0, groups, outer)
    cov = cov / nk[:, :, None, None] + reg_covar * torch.eye(d, dtype=x.dtype, device=x.device)
    counts = torch.bincount(groups, minlength=n_groups).to(x.dtype)[:, None]
    return nk / counts.clamp_min(1), means, cov


def _group_range(x: torch.Tensor, groups: torch.Tensor, n_groups: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-group, per-column minimum and maximum of x (N, D): two (G, D) tensors."""
    big = torch.finfo(x.dtype).max
    idx = groups[:, None].expand_as(x)
    lo = torch.full((n_groups, x.shape[1]), big, dtype=x.dtype, device=x.device)
    hi = torch.full((n_groups, x.shape[1]), -big, dtype=x.dtype, device=x.device)
    return lo.scatter_reduce(0, idx, x, reduce="amin"), hi.scatter_reduce(0, idx, x, reduce="amax")


def _kmeans_resp(x, groups, n_groups, c, n_iter=10):
    """Hard responsibilities (N, C) from batched k-means in every group.

    Deterministic start: centres evenly spaced on the diagonal of each group's bounding box
    (for 1-D losses, at the 1/4 and 3/4 points of the range), then Lloyd steps.
    """
    d = x.shape[1]
    lo, hi = _group_range(x, groups, n_groups)  # (G, D) each
    frac = (torch.arange(c, dtype=x.dtype, device=x.device) + 0.5) / c
    centres = lo[:, None, :] + frac[None, :, None] * (hi - lo)[:, None, :]  # (G, C, D)
    for _ in range(n_iter + 1):
        label = ((x[:, None, :] - centres[groups]) ** 2).sum(-1).argmin(1)  # (N,)
        onehot = torch.nn.functional.one_hot(label, c).to(x.dtype)  # (N, C)
        sums = torch.zeros(n_groups, c, d, dtype=x.dtype, device=x.device)
        sums.index_add_(0, groups, onehot[:, :, None] * x[:, None, :])
        cnt = torch.zeros(n_groups, c, dtype=x.dtype, device=x.device).index_add_(0, groups, onehot)
        centres = torch.where(cnt[:, :, None] > 0, sums / cnt.clamp_min(1)[:, :, None], centres)
    return onehot


def fit_gmm(
    x: torch.Tensor,
    n_components: int = 2,
    *,
    max_iter: int = 10,
    tol: float = 1e-2,
    reg_covar: float = 5e-4,
    seed: int = 0,
    groups: torch.Tensor | None = None,
    init: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
) -> GMM:
    """Fit a Gaussian mixture with full covariances by EM, in float64 on ``x``'s device.

    ``x``: (N,) or (N, D). ``groups`` (N,) int64 in [0, G) fits G independent mixtures in
    one batched EM (each stops when its own log-likelihood gain falls below ``tol``).
    ``init`` = (weights (G, C), means (G, C, D), covariances (G, C, D, D)) starts EM from
    given parameters (as sklearn's ``weights_init``/``means_init``/``precisions_init``);
    otherwise batched k-means gives the initial responsibilities, as in sklearn (whose
    k-means is seeded; ours starts from evenly spaced centres and is deterministic, so
    ``seed`` is accepted for API stability and changes nothing).

    The EM steps, the ``reg_covar`` added to each covariance, the ``10 * eps`` added to
    component counts and the stopping rule (change of the mean log-likelihood below
    ``tol``, at most ``max_iter`` iterations) are those of sklearn.
    """
    x = _as_2d(x).to(torch.float64)
    if x.shape[0] == 0:
        raise ValueError("fit_gmm needs at least one sample")
    if not torch.isfinite(x).all():
        raise ValueError("fit_gmm got NaN or infinite values")
    g = torch.zeros(x.shape[0], dtype=torch.long, device=x.device) if groups is None else groups.to(x.device)
    n_groups = int(g.max().item()) + 1
    if init is None:
        resp = _kmeans_resp(x, g, n_groups, n_components)
        weights, means, cov = _m_step(x, g, resp, n_groups, reg_covar)
    else:
        weights, means, cov = (t.to(x) for t in init)
    prec = _precision_cholesky(cov)
    lower = torch.full((n_groups,), -math.inf, dtype=x.dtype, device=x.device)
    active = torch.ones(n_groups, dtype=torch.bool, device=x.device)
    n_iter = torch.zeros(n_groups, dtype=torch.long, device=x.device)
    counts = torch.bincount(g, minlength=n_groups).to(x.dtype).clamp_min(1)
    for _ in range(max_iter):
        log_resp, log_norm = _e_step(x, g, weights, means, prec)
        new_w, new_m, new_c = _m_step(x, g, log_resp.exp(), n_groups, reg_covar)
        bound = torch.zeros(n_groups, dtype=x.dtype, device=x.device).index_add_(0, g, log_norm) / counts
        # groups that already converged keep their parameters (as if EM had stopped there)
        weights = torch.where(active[:, None], new_w, weights)
        means = torch.where(active[:, None, None], new_m, means)
        cov = torch.where(active[:, None, None, None], new_c, cov)
        prec = _precision_cholesky(cov)
        n_iter = n_iter + active.long()
        done = (bound - lower).abs() < tol
        lower = torch.where(active, bound, lower)
        active = active & ~done
        if not active.any():  # one sync per EM iteration, not per sample
            break
    return GMM(weights, means, cov, ~active, n_iter)


def _min_max(x: torch.Tensor, groups: torch.Tensor, n_groups: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Min-max normalise each column within each group; also return which groups are constant."""
    lo, hi = _group_range(x, groups, n_groups)
    span = hi - lo
    constant = (span <= 0).all(1)  # (G,)
    return (x - lo[groups]) / span.clamp_min(torch.finfo(x.dtype).tiny)[groups], constant


def _groups(class_labels, num_classes, n: int, device) -> tuple[torch.Tensor, int]:
    """(N,) group index of every sample and the number of groups: one group, or one per class."""
    if class_labels is None:
        return torch.zeros(n, dtype=torch.long, device=device), 1
    groups = torch.as_tensor(class_labels, device=device).long()
    if groups.shape != (n,):
        raise ValueError(f"class_labels must have shape ({n},), got {tuple(groups.shape)}")
    n_groups = int(num_classes) if num_classes is not None else int(groups.max()) + 1
    if groups.min() < 0 or groups.max() >= n_groups:
        raise ValueError(f"class_labels must lie in [0, {n_groups})")
    return groups, n_groups


def normalize_losses(
    losses: torch.Tensor, *, class_labels: torch.Tensor | None = None, num_classes: int | None = None
) -> torch.Tensor:
    """Min-max normalise per-sample losses to [0, 1]: (N,) or (N, D), each column separately.

    With ``class_labels`` (N,) every class is normalised on its own (its smallest loss -> 0, its
    largest -> 1), as a class-aware cleaner needs: one mixture per class then sees the whole
    [0, 1] range whatever the class's typical loss. A constant group maps to 0. Keeps the dtype
    and device of ``losses``.
    """
    x = torch.as_tensor(losses)
    if x.dim() not in (1, 2) or x.shape[0] == 0:
        raise ValueError(f"losses must be a non-empty (N,) or (N, D) tensor, got shape {tuple(x.shape)}")
    groups, n_groups = _groups(class_labels, num_classes, x.shape[0], x.device)
    scaled, _ = _min_max(_as_2d(x), groups, n_groups)
    return scaled.reshape(x.shape)


def gmm_clean_probability(
    losses: torch.Tensor,
    *,
    class_labels: torch.Tensor | None = None,
    num_classes: int | None = None,
    n_components: int = 2,
    normalize: bool = True,
    **gmm_kwargs,
) -> torch.Tensor:
    """DivideMix's cleaner: (N,) probability that each sample is clean.

    ``losses``: (N,) per-sample losses, or (N, D) per-sample quantities (a 2-D GMM as in
    PLReMix). Each column is min-max normalised to [0, 1] (``normalize=False`` for values
    that are normalised already, e.g. averages of normalised losses), a ``n_components`` Gaussian
    mixture is fitted, and the clean probability is the posterior of the component with the
    smallest mean (smallest mean norm in D > 1 dimensions).

    With ``class_labels`` (N,) (and ``num_classes``), one mixture per class is fitted, all in
    one batched EM, each on its own class's normalised losses. A class (or the whole set)
    whose losses are all equal, or that has a single sample, carries no evidence about
    noise: its samples get clean probability 1, with a warning.
    Returns float32 on ``losses``' device. ``gmm_kwargs`` go to :func:`fit_gmm`.
    """
    x = _as_2d(torch.as_tensor(losses)).to(torch.float64)
    if x.dim() != 2:
        raise ValueError(f"losses must be (N,) or (N, D), got shape {tuple(losses.shape)}")
    n = x.shape[0]
    if n == 0:
        raise ValueError("gmm_clean_probability got no samples")
    if not torch.isfinite(x).all():
        bad = int((~torch.isfinite(x)).any(1).sum())
        raise ValueError(f"gmm_clean_probability got {bad} NaN or infinite losses; check the per-sample pass")
    groups, n_groups = _groups(class_labels, num_classes, n, x.device)
    counts = torch.bincount(groups, minlength=n_groups)
    scaled, constant = _min_max(x, groups, n_groups)
    if normalize:
        x = scaled
    uninformative = constant | (counts < 2)  # (G,) includes empty groups
    informative = ~uninformative[groups]  # (N,)
    prob = torch.ones(n, dtype=torch.float64, device=x.device)
    if uninformative[counts > 0].any():
        which = torch.nonzero(uninformative & (counts > 0)).squeeze(1).tolist()
        warnings.warn(
            f"gmm_clean_probability: group(s) {which} have constant losses or a single sample; "
            "their samples get clean probability 1",
            stacklevel=2,
        )
    if informative.any():
        keep = torch.nonzero(informative).squeeze(1)
        # renumber the informative groups 0..G'-1 for the batched fit
        present = torch.zeros(n_groups, dtype=torch.long, device=x.device)
        present[groups[keep]] = 1
        new_id = torch.cumsum(present, 0) - 1
        sub_groups = new_id[groups[keep]]
        gmm = fit_gmm(x[keep], n_components, groups=sub_groups, **gmm_kwargs)
        post = gmm.predict_proba(x[keep], sub_groups)  # (N', C)
        clean_comp = gmm.means.norm(dim=-1).argmin(1)  # (G',) smallest mean (norm)
        prob[keep] = post.gather(1, clean_comp[sub_groups][:, None]).squeeze(1)
    return prob.float()


def _auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with average ranks for ties)."""
    from scipy.stats import rankdata

    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def selection_metrics(clean_prob, is_clean, threshold: float = 0.5) -> dict[str, float]:
    """Quality of a selection against the truth (reporting only).

    ``clean_prob`` (N,) from a cleaner; ``is_clean`` (N,) bool, the given label is correct.
    Samples with ``clean_prob > threshold`` form the labelled (clean) set. Returns
    ``selection_auc`` (ranking quality of ``clean_prob``; NaN if every sample is clean or
    every one noisy), ``precision`` and ``recall`` of the labelled set as a detector of clean
    samples, their ``f1``, and ``labeled_fraction``. Precision is NaN for an empty set.
    """
    p = torch.as_tensor(clean_prob).detach().double().cpu().numpy().reshape(-1)
    truth = torch.as_tensor(is_clean).detach().cpu().numpy().reshape(-1).astype(bool)
    if p.shape != truth.shape:
        raise ValueError(f"clean_prob has {p.size} entries but is_clean has {truth.size}")
    if not np.isfinite(p).all():
        raise ValueError("clean_prob contains NaN or infinite values")
    chosen = p > threshold
    tp = int((chosen & truth).sum())
    precision = tp / chosen.sum() if chosen.any() else float("nan")
    recall = tp / truth.sum() if truth.any() else float("nan")
    f1 = 2 * precision * recall / (precision + recall) if tp else 0.0
    return {
        "selection_auc": _auc(p, truth),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "labeled_fraction": float(chosen.mean()),
    }
