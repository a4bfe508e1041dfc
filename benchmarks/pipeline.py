"""Input pipeline speed: device-resident batched augmentation against the reference code's PIL pipeline.

    python benchmarks/pipeline.py --n 10000 --json benchmarks/results/pipeline-cpu.json

The reference DivideMix code (``dataloader_cifar.py``) keeps CIFAR as a NumPy array, and every
``__getitem__`` makes a PIL image and runs ``RandomCrop(32, padding=4)``, ``RandomHorizontalFlip``,
``ToTensor`` and ``Normalize`` on it twice (two views per sample in its "labeled" and
"unlabeled" modes), in a ``DataLoader`` with ``num_workers=5`` and batch 64. ``lnl_core`` keeps the
images resident as one uint8 tensor and augments whole batches (``augment.weak``, and RandAugment
and AutoAugment on top for the strong views). Both are measured here in the same process, one
after the other, on the same random CIFAR-shaped images: augmented, normalised float views per
second, two views per sample as DivideMix draws them. The reference pipeline is rebuilt for each
pass, as the reference code rebuilds its loaders every epoch; its worker start-up is part of the
cost. The strong-view reference uses torchvision's ``RandAugment`` / ``AutoAugment(CIFAR10)`` on
the PIL image after crop + flip (AugDesc-WS ships its own AutoAugment; the operations agree).

On a CUDA device the script also trains a full-profile DivideMix for two epochs on 50,000 random
CIFAR-shaped images and reports training images per second (``throughput.measure``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T

from lnl_core import __version__, augment
from lnl_core.data import DeviceData, batch_indices, synthetic
from lnl_core.engine import choose_device

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)  # the reference code's CIFAR-10 values
REFERENCE_WORKERS = 5  # Train_CIFAR.py: cifar_dataloader(..., num_workers=5)
REFERENCE_BATCH = 64  # Train_CIFAR.py's default --batch_size


class TwoViews(Dataset):
    """What the reference dataset's labelled mode returns per index: two independent views."""

    def __init__(self, images_hwc: np.ndarray, transform) -> None:
        self.images, self.transform = images_hwc, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i):
        img = Image.fromarray(self.images[i])
        return self.transform(img), self.transform(img)


def reference_transform(strong: str) -> T.Compose:
    ops = [T.RandomCrop(32, padding=4), T.RandomHorizontalFlip()]
    if strong == "strong":
        ops.append(T.RandAugment())
    elif strong == "autoaugment":
        ops.append(T.AutoAugment(T.AutoAugmentPolicy.CIFAR10))
    return T.Compose([*ops, T.ToTensor(), T.Normalize(MEAN, STD)])


def time_reference(images_hwc: np.ndarray, kind: str, workers: int, batch: int) -> float:
    """Seconds for one pass (two views of every image) through a freshly built DataLoader."""
    t = time.perf_counter()
    loader = DataLoader(
        TwoViews(images_hwc, reference_transform(kind)), batch_size=batch, shuffle=True, num_workers=workers
    )
    for _views in loader:  # (first views, second views) per batch
        pass
    return time.perf_counter() - t


def time_resident(data: DeviceData, kind: str, batch: int, device: torch.device) -> float:
    """Seconds for one pass (two views of every image) of lnl_core's resident batched pipeline."""
    gen = torch.Generator(device=device).manual_seed(0)
    cpu_gen = torch.Generator().manual_seed(0)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    t = time.perf_counter()
    for idx in batch_indices(len(data), batch, generator=gen):
        x = data.images[idx]
        v1 = data.normalize(augment.augment(x, kind, generator=gen, cpu_generator=cpu_gen))
        v2 = data.normalize(augment.augment(x, kind, generator=gen, cpu_generator=cpu_gen))
    sync()
    del v1, v2
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=10000, help="CIFAR-shaped images per pass")
    p.add_argument("--repeats", type=int, default=3, help="passes per pipeline; the median is reported")
    p.add_argument("--kinds", nargs="+", default=["weak", "strong", "autoaugment"],
                   help="weak = crop + flip; strong = + RandAugment; autoaugment = + AutoAugment (CIFAR-10)")  # fmt: skip
    p.add_argument("--workers", type=int, nargs="+", default=[REFERENCE_WORKERS],
                   help="DataLoader worker counts for the reference pipeline (the reference code uses 5)")  # fmt: skip
    p.add_argument("--batch", type=int, default=REFERENCE_BATCH)
    p.add_argument("--device", default="auto")
    p.add_argument("--gpu-epoch", action="store_true", help="also time a full-profile DivideMix epoch (CUDA)")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args(argv)
    if args.json and Path(args.json).exists():
        sys.exit(f"pipeline.py: {args.json} exists; remove it or choose another path")

    device = choose_device(args.device)
    ds = synthetic("cifar10", args.n, seed=0)
    images_hwc = ds.images.permute(0, 2, 3, 1).contiguous().numpy()  # the reference's layout
    data = DeviceData(ds.images, ds.labels, MEAN, STD, device)
    views = 2 * args.n
    rows = []
    for kind in args.kinds:
        time_resident(data, kind, args.batch, device)  # warm-up (allocator, kernels)
        res = float(np.median([time_resident(data, kind, args.batch, device) for _ in range(args.repeats)]))
        row = {"augment": kind, "resident_views_per_s": round(views / res), "reference": {}}
        for w in args.workers:
            ref = float(
                np.median([time_reference(images_hwc, kind, w, args.batch) for _ in range(args.repeats)])
            )
            row["reference"][str(w)] = round(views / ref)
        row["ratio_vs_reference"] = round(
            row["resident_views_per_s"] / row["reference"][str(args.workers[0])], 2
        )
        rows.append(row)
        refs = ", ".join(f"{v} views/s with {w} workers" for w, v in row["reference"].items())
        print(f"{kind:<12} resident {row['resident_views_per_s']:>7} views/s; reference {refs}; "
              f"ratio {row['ratio_vs_reference']:.2f}x", flush=True)  # fmt: skip

    result = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "python benchmarks/pipeline.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "device": torch.cuda.get_device_name() if device.type == "cuda" else str(device),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "versions": {
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
            "lnl_core": __version__,
        },
        "n": args.n,
        "batch": args.batch,
        "views_per_pass": views,
        "repeats": args.repeats,
        "reference_workers": args.workers,
        "rows": rows,
    }
    if args.gpu_epoch and device.type == "cuda":
        from throughput import measure  # noqa: PLC0415  (benchmarks/ is on sys.path when run as a script)

        _, _, summary = measure("dividemix", n=50000, epochs=2, device=device)
        result["dividemix_full_epoch"] = summary
        print(json.dumps(summary))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
