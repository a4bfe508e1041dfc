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

Random choices come from explicit generators so that runs are reproducible and resumable:
crop offsets and flips from a generator on the images' device, RandAugment's discrete
choices from a CPU generator (grouping then needs no device-to-host sync).
"""

from __future__ import annotations

import math

import torch
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as TF

AUGMENTATIONS = ("none", "flip", "weak", "strong")


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


def _op_table(num_bins: int, magnitude: int, height: int, width: int) -> list:
    """(name, signed, fn(x, sign)) for the 14 RandAugment operations at one magnitude."""

    def lin(lo: float, hi: float) -> float:  # bin `magnitude` of a float32 linspace, as torchvision
        return float(torch.linspace(lo, hi, num_bins)[magnitude])

    shear = math.degrees(math.atan(lin(0.0, 0.3)))
    tx, ty = int(lin(0.0, 150.0 / 331.0 * width)), int(lin(0.0, 150.0 / 331.0 * height))
    rot, enh = lin(0.0, 30.0), lin(0.0, 0.9)
    bits = 8 - int(round(magnitude / ((num_bins - 1) / 4)))
    thresh = 255.0 * lin(1.0, 0.0)
    return [
        ("identity", False, lambda x, s: x),
        ("shear_x", True, lambda x, s: _affine(x, shear=(s * shear, 0.0), center=[0, 0])),
        ("shear_y", True, lambda x, s: _affine(x, shear=(0.0, s * shear), center=[0, 0])),
        ("translate_x", True, lambda x, s: _affine(x, translate=(s * tx, 0))),
        ("translate_y", True, lambda x, s: _affine(x, translate=(0, s * ty))),
        ("rotate", True, lambda x, s: TF.rotate(x, s * rot, interpolation=_NEAREST)),
        ("brightness", True, lambda x, s: TF.adjust_brightness(x, 1.0 + s * enh)),
        ("color", True, lambda x, s: TF.adjust_saturation(x, 1.0 + s * enh)),
        ("contrast", True, lambda x, s: TF.adjust_contrast(x, 1.0 + s * enh)),
        ("sharpness", True, lambda x, s: TF.adjust_sharpness(x, 1.0 + s * enh)),
        ("posterize", False, lambda x, s: TF.posterize(x, bits)),
        ("solarize", False, lambda x, s: TF.solarize(x, thresh)),
        ("autocontrast", False, lambda x, s: TF.autocontrast(x)),
        ("equalize", False, lambda x, s: TF.equalize(x)),
    ]


RAND_AUGMENT_OPS = tuple(name for name, _, _ in _op_table(31, 9, 32, 32))


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


def augment(
    x: torch.Tensor,
    kind: str,
    *,
    generator: torch.Generator | None = None,
    cpu_generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Apply a named augmentation to a uint8 batch: ``none``, ``flip``, ``weak`` or
    ``strong`` (weak, then RandAugment)."""
    if kind == "none":
        return x
    if kind == "flip":
        return flip_only(x, generator=generator)
    if kind == "weak":
        return weak(x, generator=generator)
    if kind == "strong":
        return rand_augment(weak(x, generator=generator), generator=cpu_generator)
    raise ValueError(f"unknown augmentation {kind!r}; choose one of {', '.join(AUGMENTATIONS)}")
