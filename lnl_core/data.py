"""Data sets as uint8 tensors, seeded stratified subsets, and a device-resident batch loader.

Every loader returns a :class:`Dataset`: ``images`` (N, C, H, W) uint8, ``labels`` (N,)
int64 (the *clean* labels; noise is added by :mod:`lnl_core.noise`), class names and
the per-channel normalisation statistics used by the papers' code.

Where the files come from:

* Fashion-MNIST: offline from Debian's ``dataset-fashion-mnist`` package
  (``/usr/share/datasets/fashion-mnist``), from ``$LNL_DATA`` or from a torchvision root.
* CIFAR-10/100: torchvision's download (``download=True``; ``--download`` in the CLI).
  Nothing is ever downloaded unless asked for.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import DataNotFoundError, LNLError

DATASETS = ("fashion_mnist", "cifar10", "cifar100")

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")

# sha256 of the *decompressed* idx files, so that any gzip of the same bytes passes.
_FASHION_MNIST_FILES = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}

FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip

# Normalisation statistics (per channel, on the [0, 1] scale) as in the public code.
_STATS = {
    "fashion_mnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),  # DivideMix
    "cifar100": ((0.507, 0.487, 0.441), (0.267, 0.256, 0.276)),  # DivideMix
}


@dataclass(frozen=True)
class Dataset:
    """One split of a data set, held in memory.

    ``images`` (N, C, H, W) uint8, ``labels`` (N,) int64 clean labels, and for CIFAR-100
    ``coarse_labels`` (N,) int64 superclasses.
    """

    name: str
    split: str
    images: torch.Tensor  # (N, C, H, W) uint8
    labels: torch.Tensor  # (N,) int64
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    coarse_labels: torch.Tensor | None = None  # (N,) int64, CIFAR-100 only

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, indices: np.ndarray | torch.Tensor) -> Dataset:
        """The samples at ``indices``, in that order."""
        idx = torch.as_tensor(np.asarray(indices), dtype=torch.long)
        coarse = None if self.coarse_labels is None else self.coarse_labels[idx]
        return Dataset(
            self.name, self.split, self.images[idx], self.labels[idx],
            self.classes, self.mean, self.std, coarse,
        )  # fmt: skip


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The directory for downloads and user-provided files: ``root``, else ``$LNL_DATA``,
    else ``./data``."""
    if root is not None:
        return Path(root)
    env = os.environ.get("LNL_DATA")
    return Path(env) if env else Path("data")


def load(
    name: str, split: str = "train", *, root: str | os.PathLike | None = None, download: bool = False
) -> Dataset:
    """Load one split (``"train"`` or ``"test"``) of a data set by name."""
    if name not in DATASETS:
        raise LNLError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    if split not in ("train", "test"):
        raise LNLError(f"unknown split {split!r}; choose 'train' or 'test'")
    if name == "fashion_mnist":
        return fashion_mnist(split, root=root, download=download)
    if name == "cifar10":
        return cifar10(split, root=root, download=download)
    return cifar100(split, root=root, download=download)


# --------------------------------------------------------------------------- Fashion-MNIST


def _fashion_mnist_dirs(root: str | os.PathLike | None) -> list[Path]:
    base = data_root(root)
    dirs = [base, base / "fashion-mnist", base / "FashionMNIST" / "raw"]
    return dirs + [DEBIAN_FASHION_MNIST]


def _read_idx(path: Path, expected_sha256: str) -> np.ndarray:
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != expected_sha256:
        raise LNLError(
            f"{path} is corrupt or not the official Fashion-MNIST file (sha256 {digest[:12]}...); "
            "delete it, or reinstall with: sudo apt-get install --reinstall dataset-fashion-mnist"
        )
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def fashion_mnist(
    split: str = "train", *, root: str | os.PathLike | None = None, download: bool = False
) -> Dataset:
    """Fashion-MNIST (Xiao et al. 2017), 28x28 grey images, 10 classes.

    Found offline in Debian's package, ``root``/``$LNL_DATA`` or a torchvision root; with
    ``download=True`` (for Colab) torchvision fetches it into the data root when missing.
    """
    found = _find_fashion_mnist(split, root)
    if found is None and download:
        from torchvision import datasets

        datasets.FashionMNIST(str(data_root(root)), train=split == "train", download=True)
        found = _find_fashion_mnist(split, root)
    if found is None:
        raise DataNotFoundError(
            "Fashion-MNIST not found; install it with `sudo apt-get install dataset-fashion-mnist` "
            f"(files in {DEBIAN_FASHION_MNIST}), put the four idx files in $LNL_DATA, "
            "or pass download=True (CLI: --download)"
        )
    images_path, labels_path, stems = found
    images = _read_idx(images_path, _FASHION_MNIST_FILES[stems[0]])
    labels = _read_idx(labels_path, _FASHION_MNIST_FILES[stems[1]])
    mean, std = _STATS["fashion_mnist"]
    return Dataset(
        "fashion_mnist", split,
        torch.from_numpy(images.copy()).unsqueeze(1),
        torch.from_numpy(labels.astype(np.int64)),
        FASHION_MNIST_CLASSES, mean, std,
    )  # fmt: skip


def _find_fashion_mnist(split: str, root) -> tuple[Path, Path, tuple[str, str]] | None:
    prefix = "train" if split == "train" else "t10k"
    stems = (f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte")
    for directory in _fashion_mnist_dirs(root):
        found = []
        for stem in stems:
            candidates = [directory / (stem + ".gz"), directory / stem]
            found.append(next((p for p in candidates if p.is_file()), None))
        if all(found):
            return found[0], found[1], stems
    return None


# --------------------------------------------------------------------------- CIFAR


def _cifar(name: str, split: str, root, download: bool) -> tuple[dict, Path]:
    from torchvision import datasets  # imported lazily: only CIFAR needs it

    base = data_root(root)
    cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
    probe = cls.__new__(cls)
    probe.root = str(base)
    if not download and not probe._check_integrity():  # checks every file's md5
        flag = "`download=True` (CLI: --download)"
        raise DataNotFoundError(
            f"{name} not found or incomplete in {base}; download it with {flag} "
            f"or point $LNL_DATA at a directory holding {cls.base_folder}/"
        )
    ds = cls(str(base), train=split == "train", download=download)
    files = ds.train_list if split == "train" else ds.test_list
    entries = []
    for fname, _md5 in files:
        with open(base / cls.base_folder / fname, "rb") as fh:
            entries.append(pickle.load(fh, encoding="latin1"))
    merged: dict = {}
    for key in entries[0]:
        if key in ("data", "labels", "fine_labels", "coarse_labels"):
            merged[key] = np.concatenate([np.asarray(e[key]) for e in entries])
    meta = base / cls.base_folder / cls.meta["filename"]
    return merged, meta


def _cifar_names(meta: Path, key: str) -> tuple[str, ...]:
    with open(meta, "rb") as fh:
        return tuple(pickle.load(fh, encoding="latin1")[key])


def cifar10(split: str = "train", *, root=None, download: bool = False) -> Dataset:
    """CIFAR-10 (Krizhevsky 2009) via torchvision; 32x32 colour, 10 classes."""
    d, _ = _cifar("cifar10", split, root, download)
    images = torch.from_numpy(d["data"].reshape(-1, 3, 32, 32).copy())
    mean, std = _STATS["cifar10"]
    labels = torch.from_numpy(d["labels"].astype(np.int64))
    return Dataset("cifar10", split, images, labels, CIFAR10_CLASSES, mean, std)


# CIFAR-100 fine labels (alphabetical, as in the data set's meta file) by superclass.
CIFAR100_FINE = (
    "apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus "
    "butterfly camel can castle caterpillar cattle chair chimpanzee clock cloud cockroach "
    "couch crab crocodile cup dinosaur dolphin elephant flatfish forest fox girl hamster "
    "house kangaroo keyboard lamp lawn_mower leopard lion lizard lobster man maple_tree "
    "motorcycle mountain mouse mushroom oak_tree orange orchid otter palm_tree pear "
    "pickup_truck pine_tree plain plate poppy porcupine possum rabbit raccoon ray road "
    "rocket rose sea seal shark shrew skunk skyscraper snail snake spider squirrel "
    "streetcar sunflower sweet_pepper table tank telephone television tiger tractor train "
    "trout tulip turtle wardrobe whale willow_tree wolf woman worm"
).split()
CIFAR100_SUPERCLASSES = {
    "aquatic_mammals": "beaver dolphin otter seal whale",
    "fish": "aquarium_fish flatfish ray shark trout",
    "flowers": "orchid poppy rose sunflower tulip",
    "food_containers": "bottle bowl can cup plate",
    "fruit_and_vegetables": "apple mushroom orange pear sweet_pepper",
    "household_electrical_devices": "clock keyboard lamp telephone television",
    "household_furniture": "bed chair couch table wardrobe",
    "insects": "bee beetle butterfly caterpillar cockroach",
    "large_carnivores": "bear leopard lion tiger wolf",
    "large_man-made_outdoor_things": "bridge castle house road skyscraper",
    "large_natural_outdoor_scenes": "cloud forest mountain plain sea",
    "large_omnivores_and_herbivores": "camel cattle chimpanzee elephant kangaroo",
    "medium_mammals": "fox porcupine possum raccoon skunk",
    "non-insect_invertebrates": "crab lobster snail spider worm",
    "people": "baby boy girl man woman",
    "reptiles": "crocodile dinosaur lizard snake turtle",
    "small_mammals": "hamster mouse rabbit shrew squirrel",
    "trees": "maple_tree oak_tree palm_tree pine_tree willow_tree",
    "vehicles_1": "bicycle bus motorcycle pickup_truck train",
    "vehicles_2": "lawn_mower rocket streetcar tank tractor",
}


def cifar100_coarse_of_fine() -> np.ndarray:
    """(100,) superclass index of every fine class (superclasses in alphabetical order)."""
    coarse = np.full(100, -1, dtype=np.int64)
    for c, members in enumerate(CIFAR100_SUPERCLASSES.values()):
        for name in members.split():
            coarse[CIFAR100_FINE.index(name)] = c
    return coarse


def cifar100(split: str = "train", *, root=None, download: bool = False) -> Dataset:
    """CIFAR-100 via torchvision, with its 20 superclasses in ``coarse_labels``."""
    d, meta = _cifar("cifar100", split, root, download)
    # the superclass table used by asymmetric noise must match the data set's own
    if not np.array_equal(cifar100_coarse_of_fine()[d["fine_labels"]], d["coarse_labels"]):
        raise LNLError("CIFAR-100 coarse labels disagree with lnl_core's superclass table")
    images = torch.from_numpy(d["data"].reshape(-1, 3, 32, 32).copy())
    mean, std = _STATS["cifar100"]
    return Dataset(
        "cifar100", split, images,
        torch.from_numpy(d["fine_labels"].astype(np.int64)),
        _cifar_names(meta, "fine_label_names"), mean, std,
        torch.from_numpy(d["coarse_labels"].astype(np.int64)),
    )  # fmt: skip


def synthetic(name: str, n: int, *, seed: int = 0, split: str = "train") -> Dataset:
    """Random uint8 images and labels shaped like data set ``name``: for timing and smoke
    tests of the full-profile pipeline without downloading anything."""
    shapes = {"fashion_mnist": (1, 28, 28), "cifar10": (3, 32, 32), "cifar100": (3, 32, 32)}
    if name not in shapes:
        raise LNLError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    k = 100 if name == "cifar100" else 10
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, *shapes[name]), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, k, (n,), generator=g)
    classes = tuple(f"class{i}" for i in range(k))
    mean, std = _STATS[name]
    return Dataset(name, split, images, labels, classes, mean, std)


# --------------------------------------------------------------------------- subsets


def stratified_subset(labels: np.ndarray | torch.Tensor, size: int, *, seed: int) -> np.ndarray:
    """``size`` indices drawn without replacement, class proportions kept.

    Each class gets ``floor(size * n_c / N)`` samples and the remainder goes to the
    classes with the largest fractional parts (ties by class index). Sorted indices.
    """
    labels = np.asarray(labels)
    n = labels.shape[0]
    if not 0 < size <= n:
        raise LNLError(f"subset size must be in [1, {n}], got {size}")
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    exact = size * counts / n
    take = np.floor(exact).astype(int)
    order = np.argsort(-(exact - take), kind="stable")
    take[order[: size - take.sum()]] += 1
    picked = [rng.choice(np.flatnonzero(labels == c), t, replace=False) for c, t in zip(classes, take)]
    return np.sort(np.concatenate(picked))


# --------------------------------------------------------------------------- device loader


def batch_indices(
    n: int, batch_size: int, *, generator: torch.Generator | None = None, shuffle: bool = True
) -> Iterator[torch.Tensor]:
    """Index batches over ``range(n)``, on the generator's device; the last one may be short.

    Methods keep per-sample state, so batches are indices into the resident split
    rather than copies of the data.
    """
    device = generator.device if generator is not None else torch.device("cpu")
    if shuffle:
        order = torch.randperm(n, generator=generator, device=device)
    else:
        order = torch.arange(n, device=device)
    yield from order.split(batch_size)


class DeviceData:
    """A split resident on the training device: uint8 images, labels, normalisation.

    ``x = data.normalize(augment(data.images[idx], generator))`` is the whole input
    pipeline; no DataLoader workers, no PIL.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, mean, std, device) -> None:
        self.images = images.to(device)  # (N, C, H, W) uint8
        self.labels = labels.to(device)  # (N,) int64
        shape = (1, -1, 1, 1)
        self.mean = torch.tensor(mean, device=device).view(shape) * 255.0
        self.std = torch.tensor(std, device=device).view(shape) * 255.0

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 (B, C, H, W) -> float32, standardised per channel."""
        return (x.float() - self.mean) / self.std
