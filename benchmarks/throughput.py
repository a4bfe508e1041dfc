"""Training throughput of a method's full-profile configuration on random CIFAR-shaped data.

    python benchmarks/throughput.py --method ce --n 50000 --epochs 3 --device cuda

Random uint8 images and random labels (``data.synthetic``) stand in for CIFAR (timing does not depend on the
pixels). Prints one JSON line per epoch and a summary with images/s and seconds per epoch
(the first epoch includes cuDNN autotuning and is reported separately).
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from lnl_core import METHODS, build_config, noise
from lnl_core.data import synthetic
from lnl_core.engine import choose_device
from lnl_core.experiment import make_run


def measure(
    method: str, *, dataset: str = "cifar10", n: int = 50000, epochs: int = 3, device="auto", overrides=None
):
    """Train ``method``'s full-profile config for ``epochs`` epochs on ``n`` random CIFAR-shaped
    images; return the per-epoch training seconds (evaluation excluded) and a summary."""
    device = choose_device(device) if isinstance(device, str) else device
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    overrides = dict(overrides or {})
    overrides.update(epochs=str(epochs), track_memorization="false")
    cfg = build_config(method, dataset=dataset, profile="full", overrides=overrides)
    train_set = synthetic(dataset, n, seed=0)
    test_set = synthetic(dataset, min(n, 10000), seed=1, split="test")
    noisy = noise.clean(train_set.labels.numpy(), train_set.num_classes)
    run = make_run(cfg, train_set, test_set, noisy, device=device)
    starts, ends = [], []  # training time of an epoch: from the end of the last evaluation
    original_end = run.end_epoch

    def sync_time() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter()

    def timed_end(record, *, models):
        ends.append(sync_time())
        out = original_end(record, models=models)
        starts.append(sync_time())
        return out

    run.end_epoch = timed_end
    starts.append(sync_time())
    METHODS[method].train(run, cfg.hp)
    times = [e - s for s, e in zip(starts, ends)]
    steady = times[1:] or times
    s_per_epoch = sum(steady) / len(steady)
    summary = {
        "method": method,
        "device": torch.cuda.get_device_name() if device.type == "cuda" else str(device),
        "torch": torch.__version__,
        "amp_dtype": str(run.amp_dtype),
        "n": n,
        "batch_size": cfg.batch_size,
        "first_epoch_s": round(times[0], 2),
        "s_per_epoch": round(s_per_epoch, 2),
        "train_images_per_s": round(n / s_per_epoch),
    }
    return times, run.history, summary


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--method", default="ce")
    p.add_argument("--dataset", default="cifar10", choices=["cifar10", "cifar100"])
    p.add_argument("--n", type=int, default=50000, help="training images")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--device", default="auto")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args()
    overrides = dict(s.split("=", 1) for s in args.sets)
    times, history, summary = measure(
        args.method,
        dataset=args.dataset,
        n=args.n,
        epochs=args.epochs,
        device=args.device,
        overrides=overrides,
    )
    for epoch, (dt, rec) in enumerate(zip(times, history), 1):
        print(json.dumps({"epoch": epoch, "train_s": round(dt, 3), "test_acc": rec["test_acc"]}))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
