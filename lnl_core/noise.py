"""Label-noise generators. Every generator is a pure function of (labels, rate, seed, ...).

All randomness comes from ``numpy.random.default_rng(seed)`` (PCG64), which gives the same
stream on every machine, so identical arguments give identical noisy labels anywhere.

Conventions (see the book's "Deviations and conventions" page):

* ``symmetric``: exactly ``round(rate * N)`` samples are relabelled. With
  ``include_true=True`` (the DivideMix convention) the new label is uniform over all K
  classes, so the actual noise rate is about ``rate * (1 - 1/K)``; with
  ``include_true=False`` it is uniform over the K-1 other classes (actual rate = rate).
* ``asymmetric``: in every class that the mapping moves, exactly ``round(rate * n_c)``
  samples take the mapped label; classes outside the mapping never change, so the
  actual rate is below ``rate``.
* ``instance_dependent``: Xia et al. (2020), part-dependent noise.
* ``cifar_n``: the human labels of CIFAR-10N / CIFAR-100N (Wei et al. 2022).

The returned :class:`NoisyLabels` always reports the *actual* rate.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# the CIFAR-100 superclass table is a fact about the data (data.py); noise re-exports it, and data
# never imports noise
from .data import CIFAR100_FINE, CIFAR100_SUPERCLASSES, cifar100_coarse_of_fine, data_root  # noqa: F401
from .errors import LNLError

# --------------------------------------------------------------------------- mappings

# CIFAR-10 (Patrini et al. 2017, DivideMix): truck->automobile, bird->airplane,
# deer->horse, cat<->dog.
_CIFAR10_MAP = {9: 1, 2: 0, 4: 7, 3: 5, 5: 3}

# Fashion-MNIST (this project's choice, five moved classes as in CIFAR-10): garments that
# look alike and footwear that looks alike. T-shirt/top<->Shirt, Pullover->Coat,
# Sandal->Sneaker, Ankle boot->Sandal.
_FASHION_MNIST_MAP = {0: 6, 6: 0, 2: 4, 5: 7, 9: 5}


def _cifar100_superclass_map() -> dict[int, int]:
    # Next fine class (by index) inside the same real superclass, cyclically.
    mapping = {}
    for members in CIFAR100_SUPERCLASSES.values():
        idx = sorted(CIFAR100_FINE.index(m) for m in members.split())
        mapping.update({a: b for a, b in zip(idx, idx[1:] + idx[:1])})
    return mapping


def _cifar100_block_map() -> dict[int, int]:
    # Public UNICON/PLReMix code: blocks of five consecutive indices, cyclic.
    return {c: 5 * (c // 5) + (c + 1) % 5 for c in range(100)}


ASYMMETRIC_MAPPINGS = {
    "cifar10": _CIFAR10_MAP,
    "cifar100": _cifar100_superclass_map(),
    "cifar100-blocks": _cifar100_block_map(),
    "fashion_mnist": _FASHION_MNIST_MAP,
}
_MAPPING_CLASSES = {"cifar10": 10, "cifar100": 100, "cifar100-blocks": 100, "fashion_mnist": 10}

CIFAR_N_KINDS = {
    # kind -> (file, key)
    "aggre": ("CIFAR-10_human.pt", "aggre_label"),
    "worse": ("CIFAR-10_human.pt", "worse_label"),
    "random1": ("CIFAR-10_human.pt", "random_label1"),
    "random2": ("CIFAR-10_human.pt", "random_label2"),
    "random3": ("CIFAR-10_human.pt", "random_label3"),
    "noisy100": ("CIFAR-100_human.pt", "noisy_label"),
}

NOISE_KINDS = (
    "given",
    "none",
    "symmetric",
    "symmetric-exclusive",
    "asymmetric",
    "asymmetric-blocks",
    "instance",
) + tuple(f"cifar-n:{k}" for k in CIFAR_N_KINDS)
# ``asymmetric-blocks``: CIFAR-100 only, the public UNICON/PLReMix blocks of five consecutive
# class indices instead of the real superclasses (``asymmetric`` on CIFAR-100).
ASYMMETRIC_KINDS = {
    "asymmetric": None,
    "asymmetric-blocks": "cifar100-blocks",
}  # kind -> mapping (None: the data set's)


def is_asymmetric(kind: str) -> bool:
    """Whether a noise kind flips classes to similar ones (methods set their asymmetric-noise
    options, e.g. DivideMix's entropy penalty, from this)."""
    return kind in ASYMMETRIC_KINDS


def asymmetric_mapping(kind: str, dataset: str) -> str:
    """The mapping name (a key of ``ASYMMETRIC_MAPPINGS``) that noise ``kind`` uses on ``dataset``."""
    mapping = ASYMMETRIC_KINDS[kind] or dataset
    if kind == "asymmetric-blocks" and dataset != "cifar100":
        raise LNLError(f"asymmetric-blocks is CIFAR-100's block-wise noise; {dataset!r} has no such blocks")
    if mapping not in ASYMMETRIC_MAPPINGS:
        names = ", ".join(ASYMMETRIC_MAPPINGS)
        raise LNLError(f"no asymmetric mapping for dataset {dataset!r}; mappings exist for {names}")
    return mapping


# --------------------------------------------------------------------------- result type


@dataclass(frozen=True)
class NoisyLabels:
    """Clean and noisy labels of one training set, and how the noise was made."""

    clean: np.ndarray  # (N,) int64
    noisy: np.ndarray  # (N,) int64
    num_classes: int
    spec: dict = field(default_factory=dict)  # generator name, rate, seed, options

    @property
    def is_noisy(self) -> np.ndarray:
        """(N,) bool: the given label differs from the clean one."""
        return self.noisy != self.clean

    @property
    def clean_known(self) -> bool:
        """False for own data given without its correct labels: ``clean`` is then a copy of
        ``noisy`` and says nothing."""
        return self.spec.get("clean_known", True)

    @property
    def actual_rate(self) -> float | None:
        """Fraction of samples whose given label is wrong (``None`` if the truth is unknown)."""
        if not self.clean_known:
            return None
        return float(self.is_noisy.mean()) if self.clean.size else 0.0

    @property
    def transition(self) -> np.ndarray:
        """(K, K) empirical transition matrix: row = clean class, column = given label.

        Rows sum to 1; a class with no samples gets the identity row.
        """
        k = self.num_classes
        counts = np.bincount(self.clean * k + self.noisy, minlength=k * k).reshape(k, k)
        counts = counts.astype(np.float64)
        totals = counts.sum(1, keepdims=True)
        empty = totals[:, 0] == 0
        counts[empty] = np.eye(k)[empty]
        return counts / counts.sum(1, keepdims=True)

    def digest(self) -> str:
        """SHA-256 of the noisy labels (as little-endian int64): the same labels, the same digest."""
        return hashlib.sha256(np.ascontiguousarray(self.noisy, dtype="<i8").tobytes()).hexdigest()

    def save(self, path: str | os.PathLike) -> None:
        """Write an ``.npz`` with the labels and the generator spec."""
        with open(path, "wb") as fh:  # a file handle: numpy adds no suffix
            np.savez(
                fh, clean=self.clean, noisy=self.noisy,
                num_classes=np.int64(self.num_classes), spec=np.array(json.dumps(self.spec)),
            )  # fmt: skip

    @classmethod
    def load(cls, path: str | os.PathLike) -> NoisyLabels:
        try:
            with np.load(path, allow_pickle=False) as z:
                return cls(
                    z["clean"].astype(np.int64), z["noisy"].astype(np.int64),
                    int(z["num_classes"]), json.loads(str(z["spec"])),
                )  # fmt: skip
        except (OSError, KeyError, ValueError) as exc:
            raise LNLError(f"cannot read noisy labels from {path}: {exc}") from None


# --------------------------------------------------------------------------- validation


def _check_labels(labels, num_classes: int) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise LNLError(f"labels must be a 1-D array, got shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise LNLError(f"labels must be integers, got dtype {labels.dtype}")
    if num_classes < 1:
        raise LNLError(f"num_classes must be at least 1, got {num_classes}")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        bad = labels[(labels < 0) | (labels >= num_classes)][0]
        raise LNLError(f"labels must lie in [0, {num_classes}); found {bad}")
    return labels.astype(np.int64)


def _check_rate(rate: float) -> float:
    rate = float(rate)
    if not 0.0 <= rate < 1.0:
        raise LNLError(f"noise rate must be in [0, 1), got {rate}")
    return rate


# --------------------------------------------------------------------------- generators


def given(labels, num_classes: int, *, clean_labels=None) -> NoisyLabels:
    """Labels as they come with a user's data: they are the noisy labels. With
    ``clean_labels`` the actual rate is known; without, ``clean`` is a copy of the given labels
    and ``spec["clean_known"]`` is False, so nothing downstream reads it as the truth."""
    labels = _check_labels(labels, num_classes)
    known = clean_labels is not None
    truth = _check_labels(clean_labels, num_classes) if known else labels.copy()
    if truth.shape != labels.shape:
        raise LNLError(f"{labels.shape[0]} given labels but {truth.shape[0]} clean labels")
    return NoisyLabels(
        truth, labels.copy(), num_classes, {"kind": "given", "rate": None, "clean_known": known}
    )


def clean(labels, num_classes: int) -> NoisyLabels:
    """No noise (useful as a reference run)."""
    labels = _check_labels(labels, num_classes)
    return NoisyLabels(labels, labels.copy(), num_classes, {"kind": "none", "rate": 0.0})


def symmetric(labels, rate: float, num_classes: int, *, seed: int, include_true: bool = True) -> NoisyLabels:
    """Relabel exactly ``round(rate * N)`` random samples uniformly at random.

    ``include_true=True`` draws from all K classes (DivideMix; the true class may be drawn
    again), ``include_true=False`` from the K-1 other classes.
    """
    labels = _check_labels(labels, num_classes)
    rate = _check_rate(rate)
    if not include_true and num_classes < 2 and rate > 0:
        raise LNLError("symmetric noise without the true class needs at least 2 classes")
    rng = np.random.default_rng(seed)
    n = labels.shape[0]
    chosen = rng.permutation(n)[: int(round(rate * n))]
    noisy = labels.copy()
    if include_true:
        noisy[chosen] = rng.integers(0, num_classes, chosen.size)
    else:
        # uniform over the other K-1 classes: shift by 1..K-1 modulo K
        noisy[chosen] = (labels[chosen] + rng.integers(1, num_classes, chosen.size)) % num_classes
    spec = {"kind": "symmetric", "rate": rate, "seed": seed, "include_true": include_true}
    return NoisyLabels(labels, noisy, num_classes, spec)


def asymmetric(labels, rate: float, *, dataset: str, seed: int) -> NoisyLabels:
    """Class-conditional flips to a similar class, from the mapping named ``dataset``.

    Mappings: ``cifar10``, ``cifar100`` (next class in the real superclass),
    ``cifar100-blocks`` (blocks of 5 consecutive indices, as in public code),
    ``fashion_mnist``.
    """
    if dataset not in ASYMMETRIC_MAPPINGS:
        names = ", ".join(ASYMMETRIC_MAPPINGS)
        raise LNLError(f"no asymmetric mapping for dataset {dataset!r}; mappings exist for {names}")
    num_classes = _MAPPING_CLASSES[dataset]
    labels = _check_labels(labels, num_classes)
    rate = _check_rate(rate)
    rng = np.random.default_rng(seed)
    noisy = labels.copy()
    for src, dst in sorted(ASYMMETRIC_MAPPINGS[dataset].items()):
        members = np.flatnonzero(labels == src)
        chosen = rng.permutation(members)[: int(round(rate * members.size))]
        noisy[chosen] = dst
    spec = {"kind": "asymmetric", "rate": rate, "seed": seed, "mapping": dataset}
    return NoisyLabels(labels, noisy, num_classes, spec)


def instance_dependent(images, labels, rate: float, num_classes: int, *, seed: int) -> NoisyLabels:
    """Part-dependent, instance-dependent noise of Xia et al. (2020).

    Per sample a flip rate ``q_i ~ N(rate, 0.1^2)`` truncated to [0, 1]; per class a
    Gaussian projection ``W[k]`` (D x K); the flip distribution of sample i is
    ``q_i * softmax(x_i W[y_i])`` over the other classes and ``1 - q_i`` on its own.
    ``x_i`` is the flattened image scaled to [0, 1] (uint8 images are divided by 255).
    """
    from scipy.stats import truncnorm

    labels = _check_labels(labels, num_classes)
    rate = _check_rate(rate)
    x = np.asarray(images)
    if x.shape[0] != labels.shape[0]:
        raise LNLError(f"{x.shape[0]} images but {labels.shape[0]} labels")
    x = x.reshape(x.shape[0], -1).astype(np.float64)
    if np.asarray(images).dtype == np.uint8:
        x /= 255.0
    n, d = x.shape
    rng = np.random.default_rng(seed)
    sd = 0.1
    if rate == 0.0:
        q = np.zeros(n)
    else:
        q = truncnorm.rvs((0 - rate) / sd, (1 - rate) / sd, loc=rate, scale=sd, size=n, random_state=rng)
    probs = np.empty((n, num_classes))
    for k in range(num_classes):  # one projection per class: K matrices of D x K
        w = rng.standard_normal((d, num_classes))
        members = labels == k
        logits = x[members] @ w  # (n_k, K)
        logits[:, k] = -np.inf
        logits -= logits.max(1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(1, keepdims=True)
        p *= q[members, None]
        p[:, k] = 1.0 - q[members]
        probs[members] = p
    u = rng.random(n)
    cdf = np.cumsum(probs, axis=1)
    noisy = np.minimum((u[:, None] > cdf).sum(1), num_classes - 1).astype(np.int64)
    spec = {"kind": "instance", "rate": rate, "seed": seed}
    return NoisyLabels(labels, noisy, num_classes, spec)


def cifar_n(clean_labels, kind: str, *, root: str | os.PathLike | None = None) -> NoisyLabels:
    """Human labels of CIFAR-10N / CIFAR-100N from the official ``*_human.pt`` files.

    ``kind``: ``aggre``, ``worse``, ``random1``..``random3`` (CIFAR-10) or ``noisy100``
    (CIFAR-100). The file is looked for in ``root`` (default ``$LNL_DATA`` or ``./data``).
    The file's ``clean_label`` must equal ``clean_labels`` (same order as torchvision).
    """
    import torch

    if kind not in CIFAR_N_KINDS:
        raise LNLError(f"unknown CIFAR-N label set {kind!r}; choose one of {', '.join(CIFAR_N_KINDS)}")
    fname, key = CIFAR_N_KINDS[kind]
    path = Path(root) if root is not None and Path(root).is_file() else data_root(root) / fname
    if not path.is_file():
        raise LNLError(
            f"{fname} not found at {path}; download it from the CIFAR-N repository "
            "(UCSC-REAL/cifar-10-100n, folder data/) into $LNL_DATA"
        )
    try:
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            content = torch.load(path, weights_only=True, map_location="cpu")
        given = np.asarray(content[key]).astype(np.int64)
        reference = np.asarray(content["clean_label"]).astype(np.int64)
    except Exception as exc:  # noqa: BLE001 - any failure here means a bad file
        raise LNLError(f"cannot read CIFAR-N labels from {path}: {exc}") from None
    num_classes = 100 if kind == "noisy100" else 10
    clean_labels = _check_labels(clean_labels, num_classes)
    if reference.shape != clean_labels.shape or not np.array_equal(reference, clean_labels):
        raise LNLError(f"{path} does not match this training set's clean labels (order or size)")
    spec = {"kind": "cifar-n", "label_set": kind, "rate": None, "seed": None}
    return NoisyLabels(clean_labels, _check_labels(given, num_classes), num_classes, spec)


def _numpy_safe_globals() -> list:
    # numpy arrays inside a torch.save'd dict, loadable with weights_only=True
    objs = [np.ndarray, np.dtype]
    for mod in ("numpy._core.multiarray", "numpy.core.multiarray"):
        try:
            objs.append(__import__(mod, fromlist=["_reconstruct"])._reconstruct)
        except (ImportError, AttributeError):
            pass
    objs += [type(np.dtype(t)) for t in ("int64", "int32", "uint8", "float64", "float32")]
    return objs


def make(
    kind: str,
    labels,
    rate: float,
    num_classes: int,
    *,
    seed: int,
    dataset: str | None = None,
    images=None,
    root=None,
) -> NoisyLabels:
    """Dispatch by noise kind name (the CLI's ``--noise``; see ``NOISE_KINDS``).

    CIFAR-N label sets are named ``cifar-n:aggre``, ``cifar-n:worse``, ... (``rate`` is
    ignored for them: the humans decided the noise).
    """
    if kind == "given":
        raise LNLError(
            "noise 'given' means the labels that come with your own data (lnl_core.owndata); "
            "a built-in data set's labels are clean: use 'none', or a noise kind that corrupts them"
        )
    if kind == "none":
        return clean(labels, num_classes)
    if kind == "symmetric":
        return symmetric(labels, rate, num_classes, seed=seed, include_true=True)
    if kind == "symmetric-exclusive":
        return symmetric(labels, rate, num_classes, seed=seed, include_true=False)
    if is_asymmetric(kind):
        if dataset is None:
            raise LNLError("asymmetric noise needs a dataset name for its mapping")
        return asymmetric(labels, rate, dataset=asymmetric_mapping(kind, dataset), seed=seed)
    if kind == "instance":
        if images is None:
            raise LNLError("instance-dependent noise needs the training images")
        return instance_dependent(images, labels, rate, num_classes, seed=seed)
    if kind.startswith("cifar-n:"):
        return cifar_n(labels, kind.split(":", 1)[1], root=root)
    raise LNLError(f"unknown noise kind {kind!r}; choose one of {', '.join(NOISE_KINDS)}")
