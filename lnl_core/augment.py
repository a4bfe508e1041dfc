"""Batched augmentation on uint8 image tensors, on whatever device they live on.

* :func:`weak` is the reference transform of the DivideMix code (random crop with 4-pixel
  zero padding, then horizontal flip with probability 1/2), with a separate crop offset
  and flip for every sample.
* :func:`rand_augment` is RandAugment (Cubuk et al. 2020; 14 operations, 2 per image,
  magnitude 9 of 31 bins as in torchvision) built from ``torchvision.transforms.v2``
  functional ops. A v2 transform called on a batch would draw *one* operation for the
  whole batch; here every sample draws its own operations and the batch is processed
  group by group (one group per operation and sign), so the Python loop runs over
  operations, never over samples.
* :func:`auto_augment` is AutoAugment's CIFAR-10 policy (Cubuk et al. 2019), the strong
  augmentation of AugDesc-WS (Nishi et al. 2021) and PLReMix: every sample draws one of 25
  sub-policies, applies each of its two operations with the operation's probability and, for
  signed operations, a random sign; the batch is processed group by group as above.

Random choices come from explicit generators so that runs are reproducible and resumable:
crop offsets and flips from a generator on the images' device, RandAugment's discrete
choices from a CPU generator (grouping then needs no device-to-host sync).
"""

from __future__ import annotations

import math

import torch
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as TF

AUGMENTATIONS = ("none", "flip", "weak", "strong", "autoaugment")


def weak(
    x: torch.Tensor, *, generator: torch.Generator | None = None, padding: int = 4, flip: bool = True
) -> torch.Tensor:
    """Random crop with zero padding + horizontal flip, per sample. ``x``: (B, C, H, W)."""
    b, c, h, w = x.shape
    dev = x.device
    padded = torch.nn.functional.pad(x, (padding,) * 4)  # zeros, like RandomCrop(padding=4)
    top = torch.randint(0, 2 * padding + 1, (b,), generator=generator, device=dev)
    left = torch.randint(0, 2 * padding + 1, (b,), generator=generator, device=dev)
    rows = (top[:, None] + torch.arange(h, device=dev))[:, None, :, None]  # (B, 1, H, 1)
    cols = left[:, None] + torch.arange(w, device=dev)  # (B, W)
    if flip:
        mirrored = torch.rand(b, generator=generator, device=dev) < 0.5
        cols = torch.where(mirrored[:, None], cols.flip(1), cols)
    cols = cols[:, None, None, :]  # (B, 1, 1, W)
    batch = torch.arange(b, device=dev)[:, None, None, None]
    chan = torch.arange(c, device=dev)[None, :, None, None]
    return padded[batch, chan, rows, cols]


def flip_only(x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Horizontal flip with probability 1/2, per sample."""
    mirrored = torch.rand(x.shape[0], generator=generator, device=x.device) < 0.5
    return torch.where(mirrored[:, None, None, None], x.flip(-1), x)


# --------------------------------------------------------------------------- RandAugment

_NEAREST = InterpolationMode.NEAREST


def _affine(x, *, translate=(0, 0), shear=(0.0, 0.0), center=None):
    return TF.affine(
        x, angle=0.0, translate=list(translate), scale=1.0, shear=list(shear),
        interpolation=_NEAREST, fill=None, center=center,
    )  # fmt: skip


def _operations(num_bins: int, magnitude: int, height: int, width: int) -> dict:
    """name -> (signed, fn(x, sign)) for every operation at bin ``magnitude`` of ``num_bins``
    (torchvision's magnitude ranges)."""

    def lin(lo: float, hi: float) -> float:  # bin `magnitude` of a float32 linspace, as torchvision
        return float(torch.linspace(lo, hi, num_bins)[magnitude])

    shear = math.degrees(math.atan(lin(0.0, 0.3)))
    tx, ty = int(lin(0.0, 150.0 / 331.0 * width)), int(lin(0.0, 150.0 / 331.0 * height))
    rot, enh = lin(0.0, 30.0), lin(0.0, 0.9)
    bits = 8 - int(round(magnitude / ((num_bins - 1) / 4)))
    thresh = 255.0 * lin(1.0, 0.0)
    return {
        "identity": (False, lambda x, s: x),
        "shear_x": (True, lambda x, s: _affine(x, shear=(s * shear, 0.0), center=[0, 0])),
        "shear_y": (True, lambda x, s: _affine(x, shear=(0.0, s * shear), center=[0, 0])),
        "translate_x": (True, lambda x, s: _affine(x, translate=(s * tx, 0))),
        "translate_y": (True, lambda x, s: _affine(x, translate=(0, s * ty))),
        "rotate": (True, lambda x, s: TF.rotate(x, s * rot, interpolation=_NEAREST)),
        "brightness": (True, lambda x, s: TF.adjust_brightness(x, 1.0 + s * enh)),
        "color": (True, lambda x, s: TF.adjust_saturation(x, 1.0 + s * enh)),
        "contrast": (True, lambda x, s: TF.adjust_contrast(x, 1.0 + s * enh)),
        "sharpness": (True, lambda x, s: TF.adjust_sharpness(x, 1.0 + s * enh)),
        "posterize": (False, lambda x, s: TF.posterize(x, bits)),
        "solarize": (False, lambda x, s: TF.solarize(x, thresh)),
        "autocontrast": (False, lambda x, s: TF.autocontrast(x)),
        "equalize": (False, lambda x, s: TF.equalize(x)),
        "invert": (False, lambda x, s: TF.invert(x)),
    }


RAND_AUGMENT_OPS = (
    "identity", "shear_x", "shear_y", "translate_x", "translate_y", "rotate", "brightness", "color",
    "contrast", "sharpness", "posterize", "solarize", "autocontrast", "equalize",
)  # fmt: skip


def _op_table(num_bins: int, magnitude: int, height: int, width: int) -> list:
    """(name, signed, fn(x, sign)) for the 14 RandAugment operations at one magnitude."""
    ops = _operations(num_bins, magnitude, height, width)
    return [(name, *ops[name]) for name in RAND_AUGMENT_OPS]


def rand_augment(
    x: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    num_ops: int = 2,
    magnitude: int = 9,
    num_bins: int = 31,
) -> torch.Tensor:
    """RandAugment with per-sample operations. ``x``: (B, C, H, W) uint8.

    ``generator`` must be a CPU generator (or ``None``): the choices are drawn on the host
    so that grouping the batch by operation costs no device synchronisation.
    """
    if x.dtype != torch.uint8:
        raise ValueError(f"rand_augment expects uint8 images, got {x.dtype}")
    table = _op_table(num_bins, magnitude, x.shape[-2], x.shape[-1])
    b = x.shape[0]
    ops = torch.randint(len(table), (num_ops, b), generator=generator)  # CPU
    signs = torch.randint(2, (num_ops, b), generator=generator)  # 0: +, 1: -
    for r in range(num_ops):
        group = ops[r] * 2 + signs[r]  # (B,) one group per (operation, sign)
        order = torch.argsort(group, stable=True)
        counts = torch.bincount(group, minlength=2 * len(table)).tolist()
        out = torch.empty_like(x)
        start = 0
        for g, count in enumerate(counts):
            if count == 0:
                continue
            idx = order[start : start + count].to(x.device, non_blocking=True)
            start += count
            _, signed, fn = table[g // 2]
            sign = -1.0 if (signed and g % 2) else 1.0
            out[idx] = fn(x.index_select(0, idx), sign)
        x = out
    return x


# --------------------------------------------------------------------------- AutoAugment

# AutoAugment's CIFAR-10 policy (Cubuk et al. 2019, Table 9 of its appendix, as torchvision's
# AutoAugmentPolicy.CIFAR10): 25 sub-policies of two (operation, probability, magnitude bin of
# 10) steps; operations without a magnitude have bin None.
AUTO_AUGMENT_CIFAR10 = (
    (("invert", 0.1, None), ("contrast", 0.2, 6)),
    (("rotate", 0.7, 2), ("translate_x", 0.3, 9)),
    (("sharpness", 0.8, 1), ("sharpness", 0.9, 3)),
    (("shear_y", 0.5, 8), ("translate_y", 0.7, 9)),
    (("autocontrast", 0.5, None), ("equalize", 0.9, None)),
    (("shear_y", 0.2, 7), ("posterize", 0.3, 7)),
    (("color", 0.4, 3), ("brightness", 0.6, 7)),
    (("sharpness", 0.3, 9), ("brightness", 0.7, 9)),
    (("equalize", 0.6, None), ("equalize", 0.5, None)),
    (("contrast", 0.6, 7), ("sharpness", 0.6, 5)),
    (("color", 0.7, 7), ("translate_x", 0.5, 8)),
    (("equalize", 0.3, None), ("autocontrast", 0.4, None)),
    (("translate_y", 0.4, 3), ("sharpness", 0.2, 6)),
    (("brightness", 0.9, 6), ("color", 0.2, 8)),
    (("solarize", 0.5, 2), ("invert", 0.0, None)),
    (("equalize", 0.2, None), ("autocontrast", 0.6, None)),
    (("equalize", 0.2, None), ("equalize", 0.6, None)),
    (("color", 0.9, 9), ("equalize", 0.6, None)),
    (("autocontrast", 0.8, None), ("solarize", 0.2, 8)),
    (("brightness", 0.1, 3), ("color", 0.7, 0)),
    (("solarize", 0.4, 5), ("autocontrast", 0.9, None)),
    (("translate_y", 0.9, 9), ("translate_y", 0.7, 9)),
    (("autocontrast", 0.9, None), ("solarize", 0.8, 3)),
    (("equalize", 0.8, None), ("invert", 0.1, None)),
    (("translate_y", 0.7, 9), ("autocontrast", 0.9, None)),
)
_AUTO_AUGMENT_BINS = 10


def auto_augment_plan(
    batch_size: int, *, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-sample random choices of AutoAugment (CPU): the sub-policy (B,), whether each of its
    two steps is applied (2, B) bool (uniform draw <= the step's probability, as torchvision),
    and whether a signed step is negated (2, B) bool (probability 1/2)."""
    policy = torch.randint(len(AUTO_AUGMENT_CIFAR10), (batch_size,), generator=generator)
    draws = torch.rand(2, 2, batch_size, generator=generator)
    prob = torch.tensor([[step[1] for step in sub] for sub in AUTO_AUGMENT_CIFAR10]).T  # (2, 25)
    applied = draws[0] <= prob[:, policy]
    negated = draws[1] <= 0.5
    return policy, applied, negated


def auto_augment(
    x: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    plan: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """AutoAugment (CIFAR-10 policy) with per-sample sub-policies. ``x``: (B, C, H, W) uint8.

    ``generator`` must be a CPU generator (or ``None``), as for :func:`rand_augment`; ``plan``
    (from :func:`auto_augment_plan`) fixes the random choices instead.
    """
    if x.dtype != torch.uint8:
        raise ValueError(f"auto_augment expects uint8 images, got {x.dtype}")
    policy, applied, negated = (
        plan if plan is not None else auto_augment_plan(x.shape[0], generator=generator)
    )
    h, w = x.shape[-2:]
    n_sub = len(AUTO_AUGMENT_CIFAR10)
    for step in range(2):
        group = torch.where(applied[step], policy * 2 + negated[step].long(), 2 * n_sub)  # (B,) last: skipped
        order = torch.argsort(group, stable=True)
        counts = torch.bincount(group, minlength=2 * n_sub + 1).tolist()
        out = x.clone()
        start = 0
        for g, count in enumerate(counts[:-1]):
            if count == 0:
                continue
            idx = order[start : start + count].to(x.device, non_blocking=True)
            start += count
            name, _, magnitude = AUTO_AUGMENT_CIFAR10[g // 2][step]
            signed, fn = _operations(_AUTO_AUGMENT_BINS, magnitude or 0, h, w)[name]
            sign = -1.0 if (signed and g % 2) else 1.0
            out[idx] = fn(x.index_select(0, idx), sign)
        x = out
    return x


def augment(
    x: torch.Tensor,
    kind: str,
    *,
    generator: torch.Generator | None = None,
    cpu_generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Apply a named augmentation to a uint8 batch: ``none``, ``flip``, ``weak``, ``strong``
    (weak, then RandAugment) or ``autoaugment`` (weak, then AutoAugment's CIFAR-10 policy)."""
    if kind == "none":
        return x
    if kind == "flip":
        return flip_only(x, generator=generator)
    if kind == "weak":
        return weak(x, generator=generator)
    if kind == "strong":
        return rand_augment(weak(x, generator=generator), generator=cpu_generator)
    if kind == "autoaugment":
        return auto_augment(weak(x, generator=generator), generator=cpu_generator)
    raise ValueError(f"unknown augmentation {kind!r}; choose one of {', '.join(AUGMENTATIONS)}")
