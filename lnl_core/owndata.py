"""Your own data: a folder of images in class sub-folders, or images and labels in memory.

Two doors, one result, :class:`OwnData`:

* :func:`from_folder` reads the ImageFolder layout (``root/<class>/<image>``; classes are
  the sub-folder names in sorted order, images are found at any depth below them);
* :func:`from_arrays` takes uint8 images (N, H, W) or (N, C, H, W) and integer labels (N,),
  as NumPy arrays or torch tensors.

The labels that come with the data are the *given* labels: the run treats them as the noisy
labels (noise kind ``"given"``). Clean labels are optional; with them a run also reports
how many given labels are wrong and how well each method finds them, without them those
numbers are unknown and the run records none of them.

Images are decoded once and kept as uint8 (N, C, S, S), like the built-in data sets. Every
check happens before anything is decoded into memory or written to disk, and each failure is
one :class:`~lnl_core.errors.LNLError` that says what to do.
"""

from __future__ import annotations

import csv
import hashlib
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from .data import Dataset
from .errors import LNLError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm")
_GREY_MODES = {"1", "L", "LA", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"}
_WIDE_MODES = {"I", "I;16", "I;16L", "I;16B", "I;16N"}  # 16-bit (or 32-bit) integer greyscale
DEVICE_FRACTION = 0.5  # the resident images may take at most this share of the device's free memory


@dataclass(frozen=True)
class OwnData:
    """A user's data set: the training split with its given labels, optionally a test split
    with correct labels, the file names (folder input) and the clean training labels if known.

    ``train.labels`` are the given labels. ``clean`` is ``None`` when the correct labels are
    not known (the usual case)."""

    name: str
    train: Dataset
    test: Dataset | None = None
    files: tuple[str, ...] | None = None  # training images, relative to the folder
    test_files: tuple[str, ...] | None = None
    clean: np.ndarray | None = None  # (N,) int64 correct training labels, if known
    source: str = "arrays"

    @property
    def classes(self) -> tuple[str, ...]:
        return self.train.classes

    @property
    def num_classes(self) -> int:
        return self.train.num_classes

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, S, S) of every image."""
        return tuple(self.train.images.shape[1:])  # type: ignore[return-value]

    @property
    def nbytes(self) -> int:
        """Bytes the images take when resident (uint8)."""
        return sum(d.images.numel() for d in (self.train, self.test) if d is not None)

    def digest(self) -> str:
        """SHA-256 of the class names, the training images, the given labels, the clean labels
        (if known) and the test split: a run directory resumes only with the same data."""
        h = hashlib.sha256()
        h.update(repr(tuple(self.classes)).encode())
        if self.clean is None:
            h.update(b"no clean labels")
        else:
            h.update(np.ascontiguousarray(self.clean, dtype="<i8").tobytes())
        for d in (self.train, self.test):
            if d is None:
                h.update(b"no test split")
                continue
            h.update(repr(tuple(d.images.shape)).encode())
            h.update(d.images.contiguous().numpy().tobytes())
            h.update(np.ascontiguousarray(d.labels.numpy(), dtype="<i8").tobytes())
        return h.hexdigest()

    def describe(self) -> dict:
        """What ``data.json`` of a run directory records."""
        c, s, _ = self.image_shape
        return {
            "name": self.name,
            "source": self.source,
            "train_size": len(self.train),
            "test_size": None if self.test is None else len(self.test),
            "image_shape": [c, s, s],
            "classes": list(self.classes),
            "clean_labels_known": self.clean is not None,
            "mean": list(self.train.mean),
            "std": list(self.train.std),
            "sha256": self.digest(),
        }


# --------------------------------------------------------------------------- memory


def free_memory_bytes(device: torch.device | str = "cpu") -> int | None:
    """Free memory of ``device`` in bytes (host RAM for the CPU); ``None`` if unknown."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type == "cpu":
        try:
            for line in Path("/proc/meminfo").read_text().splitlines():
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        try:
            return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None
    return None


def check_fits(nbytes: int, device: torch.device | str = "cpu", *, what: str = "the images") -> None:
    """Refuse data whose resident images would take more than ``DEVICE_FRACTION`` of the
    device's free memory (the rest is for the networks and their activations)."""
    free = free_memory_bytes(device)
    if free is None or nbytes <= DEVICE_FRACTION * free:
        return
    gib = 2**30
    raise LNLError(
        f"{what} take {nbytes / gib:.2f} GiB as uint8, more than {DEVICE_FRACTION:.0%} of the "
        f"{free / gib:.2f} GiB free on {torch.device(device)}; resize them (resize=SIDE, CLI --resize SIDE) "
        "or train on a subset (--set train_size=N)"
    )


# --------------------------------------------------------------------------- helpers


def _stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation on the [0, 1] scale, in float64, by chunks."""
    c = images.shape[1]
    s1 = torch.zeros(c, dtype=torch.float64)
    s2 = torch.zeros(c, dtype=torch.float64)
    for chunk in images.split(4096):
        x = chunk.to(torch.float64) / 255.0
        s1 += x.sum((0, 2, 3))
        s2 += (x * x).sum((0, 2, 3))
    n = images.shape[0] * images.shape[2] * images.shape[3]
    mean = s1 / n
    std = (s2 / n - mean * mean).clamp_min(0).sqrt().clamp_min(1e-3)  # a constant channel: no division by 0
    return tuple(mean.tolist()), tuple(std.tolist())


def _as_numpy(x, what: str) -> np.ndarray:
    if torch.is_tensor(x):
        return x.detach().cpu().numpy()
    try:
        return np.asarray(x)
    except Exception as exc:  # noqa: BLE001 - anything that is not array-like
        raise LNLError(f"{what} must be an array or a tensor: {exc}") from None


def _check_images(images, what: str = "images") -> torch.Tensor:
    x = _as_numpy(images, what)
    if x.dtype != np.uint8:
        raise LNLError(
            f"{what} must be uint8 (0-255), got {x.dtype}; from floats in [0, 1] use "
            "(x * 255).round().astype(np.uint8)"
        )
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4:
        raise LNLError(f"{what} must be N x H x W or N x C x H x W, got shape {x.shape}")
    if x.shape[1] not in (1, 3, 4) and x.shape[3] in (1, 3, 4):
        raise LNLError(
            f"{what} of shape {x.shape} look channels-last (N x H x W x C); pass x.transpose(0, 3, 1, 2)"
        )
    if x.shape[0] == 0:
        raise LNLError(f"{what}: no images (N = 0)")
    if x.shape[2] != x.shape[3]:
        raise LNLError(
            f"{what} are {x.shape[2]}x{x.shape[3]}; the models take square images, so resize or crop them first"
        )
    return torch.from_numpy(np.ascontiguousarray(x))


def _check_labels(labels, n: int, num_classes: int, what: str) -> torch.Tensor:
    y = _as_numpy(labels, what)
    if y.ndim != 1:
        raise LNLError(f"{what} must be 1-D, got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise LNLError(f"{what} must be integers, got dtype {y.dtype}")
    if y.shape[0] != n:
        raise LNLError(f"{n} images but {y.shape[0]} {what}")
    bad = (y < 0) | (y >= num_classes)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise LNLError(
            f"{what} out of range: {what}[{i}] = {int(y[i])}, but there are {num_classes} classes "
            f"(labels 0 to {num_classes - 1}); pass classes= or num_classes= if there are more"
        )
    return torch.from_numpy(y.astype(np.int64))


# --------------------------------------------------------------------------- arrays


def from_arrays(
    images,
    labels,
    *,
    clean_labels=None,
    classes: tuple[str, ...] | list[str] | None = None,
    num_classes: int | None = None,
    test_images=None,
    test_labels=None,
    name: str = "arrays",
) -> OwnData:
    """Own data from memory: ``images`` uint8 (N, H, W) or (N, C, H, W), ``labels`` (N,) the
    given labels in [0, K). K is ``len(classes)``, else ``num_classes``, else the largest label
    + 1. ``clean_labels`` (N,) are the correct labels if known; ``test_images`` /
    ``test_labels`` a test split with correct labels (optional)."""
    x = _check_images(images)
    if classes is not None:
        classes = tuple(str(c) for c in classes)
        if num_classes is not None and num_classes != len(classes):
            raise LNLError(f"{len(classes)} class names but num_classes={num_classes}")
        k = len(classes)
    elif num_classes is not None:
        k = int(num_classes)
    else:  # the largest label + 1, once the labels are known to be integers
        y = _check_labels(labels, x.shape[0], 2**62, "labels").numpy()
        k = int(y.max()) + 1
    if k < 2:
        raise LNLError(f"a classification data set needs at least 2 classes, got {k}")
    classes = classes or tuple(str(i) for i in range(k))
    y = _check_labels(labels, x.shape[0], k, "labels")
    clean = None
    if clean_labels is not None:
        clean = _check_labels(clean_labels, x.shape[0], k, "clean_labels").numpy()
    test = None
    if (test_images is None) != (test_labels is None):
        raise LNLError("a test split needs both test_images and test_labels")
    if test_images is not None:
        tx = _check_images(test_images, "test_images")
        if tx.shape[1:] != x.shape[1:]:
            raise LNLError(f"test images are {tuple(tx.shape[1:])} but training images {tuple(x.shape[1:])}")
        ty = _check_labels(test_labels, tx.shape[0], k, "test_labels")
    mean, std = _stats(x)
    train = Dataset(name, "train", x, y, classes, mean, std)
    if test_images is not None:
        test = Dataset(name, "test", tx, ty, classes, mean, std)
    return OwnData(name, train, test, clean=clean, source="arrays")


# --------------------------------------------------------------------------- folders


def _scan(root: Path, what: str) -> tuple[list[str], list[tuple[Path, str]]]:
    """Class names (sorted sub-folders) and (file, class) pairs in sorted order."""
    if not root.exists():
        raise LNLError(f"{what} {root} does not exist")
    if not root.is_dir():
        raise LNLError(f"{what} {root} is not a folder (expected {root}/<class>/<image>)")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise LNLError(f"{what} {root} has no class sub-folders; expected the layout {root}/<class>/<image>")
    items = []
    for c in classes:
        for dirpath, dirnames, filenames in os.walk(root / c):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for f in sorted(filenames):
                if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS):
                    items.append((Path(dirpath) / f, c))
    if not items:
        raise LNLError(
            f"{what} {root} holds no images in its class sub-folders ({', '.join(classes[:5])}); "
            f"image files end in {', '.join(IMAGE_EXTENSIONS)}"
        )
    return classes, items


def _headers(items: list[tuple[Path, str]], root: Path) -> list[tuple[tuple[int, int], str]]:
    """(width, height) and mode of every image from its header; one error lists the unreadable."""
    from PIL import Image, UnidentifiedImageError

    heads, bad = [], []
    for path, _ in items:
        try:
            with Image.open(path) as im:
                heads.append((im.size, im.mode))
        except (
            OSError,
            UnidentifiedImageError,
            ValueError,
            SyntaxError,
            Image.DecompressionBombError,
        ) as exc:
            bad.append(f"{path.relative_to(root)} ({type(exc).__name__})")
    if bad:
        raise LNLError(
            f"{len(bad)} of {len(items)} files in {root} cannot be read as images: {', '.join(bad[:3])}"
            + (" ..." if len(bad) > 3 else "")
            + "; delete or fix them"
        )
    return heads


def _to_8bit(im, path: Path, root: Path):
    """A 16-bit greyscale image scaled to 8 bits (0-65535 to 0-255; ``convert`` would clip
    every value above 255 to white); 32-bit integer images are taken as 16-bit when their
    values fit. (Floating-point images are refused from their headers.)"""
    from PIL import Image

    if im.mode not in _WIDE_MODES:
        return im
    a = np.asarray(im).astype(np.int64)
    if a.size and (a.min() < 0 or a.max() > 65535):
        raise LNLError(
            f"{path.relative_to(root)} is a 32-bit image with values outside 0-65535; "
            "convert the folder to 8-bit images first"
        )
    return Image.fromarray(((a * 255 + 32767) // 65535).astype(np.uint8), mode="L")  # rounded


def _decode(items, root: Path, mode: str, resize: int | None, side: int) -> torch.Tensor:
    from PIL import Image, ImageOps

    channels = 1 if mode == "L" else 3
    out = torch.empty((len(items), channels, side, side), dtype=torch.uint8)
    bad = []
    for i, (path, _) in enumerate(items):
        try:
            with Image.open(path) as im:
                im = _to_8bit(im, path, root).convert(mode)
                if resize is not None:
                    im = ImageOps.fit(
                        im, (side, side), method=Image.BILINEAR
                    )  # shorter side to SIDE, centre crop
                arr = np.asarray(im, dtype=np.uint8)
        except LNLError:
            raise
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            bad.append(f"{path.relative_to(root)} ({type(exc).__name__})")
            continue
        out[i] = torch.from_numpy(arr.reshape(side, side, channels).transpose(2, 0, 1).copy())
    if bad:
        raise LNLError(
            f"{len(bad)} images in {root} fail to decode: {', '.join(bad[:3])}; delete or fix them"
        )
    return out


def _plan_folder(root: Path, what: str, resize: int | None, mode: str | None, max_bytes: int | None):
    """Everything about a folder that its files' headers tell, checked: classes, (file, class)
    pairs, the side and the colour mode the images will be decoded to. Nothing is decoded."""
    classes, items = _scan(root, what)
    heads = _headers(items, root)
    floats = [p for (p, _), (_, m) in zip(items, heads) if m == "F"]
    if floats:
        raise LNLError(
            f"{len(floats)} images in {root} are floating-point (mode F, e.g. {floats[0].relative_to(root)}), "
            "whose value range is not known; convert them to 8-bit or 16-bit images first"
        )
    sizes = Counter(size for size, _ in heads)
    if resize is not None:
        side = int(resize)
    else:
        if len(sizes) > 1:
            common = ", ".join(f"{w}x{h}: {n}" for (w, h), n in sizes.most_common(3))
            odd = next(p for (p, _), (s, _) in zip(items, heads) if s != sizes.most_common(1)[0][0])
            raise LNLError(
                f"the images in {root} have {len(sizes)} different sizes ({common}; e.g. "
                f"{odd.relative_to(root)}); pass resize=SIDE (CLI --resize SIDE) to bring them all to SIDE x SIDE"
            )
        (w, h) = next(iter(sizes))
        if w != h:
            raise LNLError(
                f"the images in {root} are {w}x{h}; the models take square images: pass resize=SIDE "
                "(CLI --resize SIDE; the shorter side is scaled to SIDE and the centre cropped)"
            )
        side = w
    if mode is None:
        mode = "L" if all(m in _GREY_MODES for _, m in heads) else "RGB"
    channels = 1 if mode == "L" else 3
    nbytes = len(items) * channels * side * side
    if max_bytes is not None and nbytes > max_bytes:
        raise LNLError(f"the images in {root} would take {nbytes} bytes, more than the {max_bytes} allowed")
    return classes, items, side, mode, nbytes


class FolderInfo(NamedTuple):
    """What :func:`inspect_folder` finds from file names and image headers alone."""

    classes: tuple[str, ...]
    size: int  # number of images
    side: int  # the side every image will have
    channels: int  # 1 (greyscale) or 3


def inspect_folder(
    root: str | os.PathLike, *, resize: int | None = None, grey: bool | None = None
) -> FolderInfo:
    """The classes, the number of images, their side and channels that :func:`from_folder`
    would give, checked from the file names and the image headers without decoding any image
    (seconds where decoding takes minutes): a caller checks its model against the side first."""
    _check_resize(resize)
    mode = None if grey is None else ("L" if grey else "RGB")
    classes, items, side, mode, _ = _plan_folder(Path(root), "training folder", resize, mode, None)
    return FolderInfo(tuple(classes), len(items), side, 1 if mode == "L" else 3)


def _check_resize(resize) -> None:
    if resize is not None and (not isinstance(resize, int) or isinstance(resize, bool) or resize < 4):
        raise LNLError(f"resize must be an image side of at least 4 pixels, got {resize!r}")


def read_label_file(path: str | os.PathLike) -> dict[str, str]:
    """A CSV file with the columns ``file`` (relative to the training folder) and ``label``
    (a class name): the correct labels of (some or all) training images."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:  # a spreadsheet's byte-order mark too
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise LNLError(f"cannot read clean labels from {path}: {exc}") from None
    if not rows or not {"file", "label"} <= set(rows[0]):
        raise LNLError(f"{path} must be a CSV file with the columns file and label (a class name)")
    return {r["file"]: r["label"] for r in rows}


def from_folder(
    root: str | os.PathLike,
    *,
    test: str | os.PathLike | None = None,
    clean_labels: str | os.PathLike | dict[str, str] | None = None,
    resize: int | None = None,
    grey: bool | None = None,
    name: str | None = None,
    max_bytes: int | None = None,
) -> OwnData:
    """Own data from a folder in the ImageFolder layout, ``root/<class>/<image>``.

    The sub-folder an image lies in is its given label; classes are the sub-folder names in
    sorted order. ``test`` is a second folder of the same layout with correct labels (its
    classes must be among the training classes). ``clean_labels`` maps training files
    (relative to ``root``, with ``/``) to their correct class names, as a dict or a CSV file
    with the columns ``file`` and ``label``; it must cover every training image.

    Every image must have the same square size unless ``resize=SIDE`` is given (the shorter
    side is scaled to SIDE and the centre cropped). ``grey=None`` keeps one channel when every
    image is greyscale and converts to RGB otherwise; ``True`` / ``False`` force it.
    """
    root = Path(root)
    _check_resize(resize)
    mode = None if grey is None else ("L" if grey else "RGB")
    # every check that the file names and image headers allow comes before any decoding
    classes, items, side, mode, nbytes = _plan_folder(root, "training folder", resize, mode, max_bytes)
    if len(classes) < 2:
        raise LNLError(f"the training folder {root} has one class ({classes[0]}); it needs at least 2")
    index = {c: i for i, c in enumerate(classes)}
    empty = sorted(set(classes) - {c for _, c in items})
    if empty:
        raise LNLError(
            f"class folders without images in {root}: {', '.join(empty[:5])}; remove them or add images"
        )
    files = tuple(p.relative_to(root).as_posix() for p, _ in items)
    clean = None
    if clean_labels is not None:
        given = clean_labels if isinstance(clean_labels, dict) else read_label_file(clean_labels)
        missing = [f for f in files if f not in given]
        unknown = sorted({v for v in given.values() if v not in index})
        if missing or unknown:
            raise LNLError(
                f"clean labels: {len(missing)} training images have none (e.g. {', '.join(missing[:2])})"
                if missing
                else f"clean labels name classes that are not folders of {root}: {', '.join(unknown[:5])}"
            )
        clean = np.array([index[given[f]] for f in files], dtype=np.int64)
    t_plan = None
    if test is not None:
        t_plan = _plan_folder(Path(test), "test folder", resize, mode, max_bytes)
        t_classes, _, t_side, _, t_nbytes = t_plan
        if t_side != side:
            raise LNLError(
                f"test images are {t_side}x{t_side} but training images {side}x{side}; "
                "pass resize=SIDE to bring both to one size"
            )
        foreign = [c for c in t_classes if c not in index]
        if foreign:
            raise LNLError(
                f"the test folder {test} has classes that training does not: {', '.join(foreign[:5])}"
            )
        nbytes += t_nbytes
    check_fits(nbytes, "cpu", what=f"the images in {root}" + ("" if test is None else f" and {test}"))

    images = _decode(items, root, mode, resize, side)
    labels = torch.tensor([index[c] for _, c in items], dtype=torch.int64)
    mean, std = _stats(images)
    label = name or root.resolve().name
    train = Dataset(label, "train", images, labels, tuple(classes), mean, std)
    test_ds, test_files = None, None
    if t_plan is not None:
        _, t_items, _, _, _ = t_plan
        t_images = _decode(t_items, Path(test), mode, resize, side)
        t_labels = torch.tensor([index[c] for _, c in t_items], dtype=torch.int64)
        test_ds = Dataset(label, "test", t_images, t_labels, tuple(classes), mean, std)
        test_files = tuple(p.relative_to(Path(test)).as_posix() for p, _ in t_items)
    return OwnData(label, train, test_ds, files, test_files, clean, source=str(root))
