"""GPU check: every registered method's full profile, timed on CIFAR-shaped synthetic data.

    bash scripts/gpu_check.sh                       # CUDA GPU; writes benchmarks/results/gpu-<gpu>.json
    python benchmarks/gpu_check.py --methods ce dividemix --out check.json

For each method in ``lnl_core.METHODS`` and each of two precisions (bf16 autocast with
channels-last, and float32), the method's full CIFAR-10 profile (its network, batch sizes,
augmentations and settings; 50% symmetric noise, PEMM's exclusive kind) trains for a few
epochs on ``--train-size`` synthetic images (and a test split a fifth of that size, CIFAR's
ratio). Nothing is downloaded. Each phase (warm-up where the method has one, then the main
phase) runs one epoch more than it times: the first epoch of a phase pays for cuDNN's
algorithm choice and the allocator's growth, and is discarded.

Per method and precision it records: seconds per epoch of each phase (training, selection,
evaluation: the whole epoch), that time per image extrapolated to CIFAR's 50,000 training
images, a full-run estimate from the profile's epochs, images/s, peak GPU memory, the share of
samples the method selected as clean in the timed epoch (a DivideMix epoch's length grows
with it), and how far per-sample losses computed under bf16 autocast are from float32 ones
(the losses that feed sample selection are float32 in lnl_core; this says why).

The synthetic images are mostly a colour per class, with random pixels on top, so that the
warm-up learns the clean labels and the first division separates clean from mislabelled
samples roughly as on CIFAR (on random images the selected share, and with it a DivideMix
epoch's length, would be arbitrary). Timing does not depend on the pixels otherwise.

The JSON is written even when a measurement failed; its ``failures`` list says which and why,
``complete`` is false, and the exit status is 1. Without CUDA the check stops at once (exit
status 2) and writes nothing. ``benchmarks/README.md`` explains how to read the numbers.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import gc
import json
import math
import re
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # the checkout's lnl_core, also when run as a plain script
    sys.path.insert(0, str(ROOT))

from lnl_core import METHODS, build_config, noise  # noqa: E402
from lnl_core.cleaners import gmm_clean_probability  # noqa: E402
from lnl_core.config import RunConfig  # noqa: E402
from lnl_core.data import Dataset, synthetic  # noqa: E402
from lnl_core.engine import cpu_kind, per_sample_pass  # noqa: E402
from lnl_core.experiment import _versions, make_run  # noqa: E402

FORMAT = 1
CIFAR_TRAIN = 50_000  # CIFAR-10 and CIFAR-100 training images: the extrapolation's target
CIFAR_TEST = 10_000
# precision -> the settings a run takes for it; float32 keeps channels_last at "auto", what
# `--set precision=fp32` gives on a GPU (channels-last on CUDA)
PRECISIONS = {
    "bf16": {"precision": "bf16", "channels_last": "on"},
    "fp32": {"precision": "fp32", "channels_last": "auto"},
    "fp16": {"precision": "fp16", "channels_last": "on"},  # with the gradient scaler: auto's choice on a T4
}
DEFAULT_PRECISIONS = ("bf16", "fp32")
BUDGET_S = 540.0  # the whole check stays under 10 minutes on one GPU, start-up included
TINY = {"train_size": 80, "test_size": 16, "model": "small_cnn"}  # the CPU test's sizes


# --------------------------------------------------------------------------- pure pieces


def slug(name: str) -> str:
    """A file-name-safe form of a device name: ``NVIDIA H100 80GB HBM3`` -> ``nvidia-h100-80gb-hbm3``."""
    text = re.sub(r"\((?:r|tm)\)", "", name.lower())
    text = re.sub(r"[^a-z0-9]+", "-", text).strip("-")
    return text or "unknown"


def epoch_seconds(start: float, marks: Sequence[tuple[float, float, float]]) -> list[dict[str, float]]:
    """Per epoch, its wall seconds and the part spent evaluating, from clock readings.

    ``start``: the clock when training began. ``marks``: per epoch, (the clock when the
    trainer called ``end_epoch``, when ``end_epoch`` returned, when the check's own
    bookkeeping after it was done). An epoch runs from the previous epoch's last reading
    (``start`` for the first) to its ``end_epoch`` return; its evaluation part (test accuracy,
    memorisation pass, history) from the call to the return."""
    out, begun = [], start
    for called, ended, resumed in marks:
        if not begun <= called <= ended <= resumed:
            raise ValueError(f"clock readings out of order: {begun}, {called}, {ended}, {resumed}")
        out.append({"s": ended - begun, "eval_s": ended - called})
        begun = resumed
    return out


def phase_times(epochs: Sequence[dict[str, float]], warmup_epochs: int) -> dict[str, dict[str, Any]]:
    """Split per-epoch times into the warm-up phase (the first ``warmup_epochs``) and the main
    phase, drop the first epoch of each (autotuning, allocator growth) and average the rest.

    Returns ``{phase: {"epochs_timed": [1-based epoch numbers], "s": mean seconds,
    "eval_s": mean evaluation seconds}}`` for each phase that has an epoch left to time."""
    if not 0 <= warmup_epochs <= len(epochs):
        raise ValueError(f"warmup_epochs must be in [0, {len(epochs)}], got {warmup_epochs}")
    phases = {"warmup": range(0, warmup_epochs), "main": range(warmup_epochs, len(epochs))}
    out = {}
    for name, span in phases.items():
        timed = list(span)[1:]
        if timed:
            out[name] = {
                "epochs_timed": [e + 1 for e in timed],
                "s": sum(epochs[e]["s"] for e in timed) / len(timed),
                "eval_s": sum(epochs[e]["eval_s"] for e in timed) / len(timed),
            }
    return out


def extrapolate(seconds: float, images: int, *, to: int = CIFAR_TRAIN) -> float:
    """Seconds for ``to`` images at the rate of ``images`` in ``seconds`` (linear in the data
    set's size: the test split scales with it when it keeps CIFAR's 1:5 ratio)."""
    if images < 1 or seconds < 0:
        raise ValueError(f"need images >= 1 and seconds >= 0, got {images} and {seconds}")
    return seconds / images * to


def full_run_seconds(
    main_epoch_s: float, warmup_epoch_s: float | None, *, epochs: int, warmup_epochs: int
) -> float:
    """A whole run's seconds: ``warmup_epochs`` epochs at the warm-up rate, the rest at the
    main phase's (a method without a warm-up has ``warmup_epochs`` 0)."""
    if not 0 <= warmup_epochs <= epochs:
        raise ValueError(f"warmup_epochs must be in [0, epochs={epochs}], got {warmup_epochs}")
    if warmup_epochs and warmup_epoch_s is None:
        raise ValueError("a run with a warm-up needs the warm-up epoch's seconds")
    return (epochs - warmup_epochs) * main_epoch_s + (
        warmup_epochs * warmup_epoch_s if warmup_epochs else 0.0
    )


def loss_difference(losses: torch.Tensor, reference: torch.Tensor) -> dict[str, float]:
    """Largest and mean absolute difference of two (N,) per-sample loss vectors."""
    if losses.shape != reference.shape or losses.dim() != 1 or losses.numel() == 0:
        raise ValueError(
            f"need two equal non-empty (N,) tensors, got {tuple(losses.shape)}, {tuple(reference.shape)}"
        )
    diff = (losses.double() - reference.double()).abs()
    return {"max": float(diff.max()), "mean": float(diff.mean())}


def division_disagreement(losses: torch.Tensor, reference: torch.Tensor, *, threshold: float = 0.5) -> float:
    """Share of samples that DivideMix's cleaner (a 2-component GMM on min-max normalised
    losses, clean above ``threshold``) puts on the other side when fitted on ``losses``
    instead of ``reference``."""
    a = gmm_clean_probability(losses.float()) > threshold
    b = gmm_clean_probability(reference.float()) > threshold
    return float((a != b).float().mean())


def record(
    *,
    cfg: RunConfig,
    full: RunConfig,
    epochs: list[dict[str, float]],
    warmup_epochs: int,
    train_size: int,
    peak_memory_bytes: int | None,
    selected_fraction: float | None,
    losses: dict[str, Any],
    wall_s: float,
) -> dict[str, Any]:
    """One measurement's JSON record (see ``benchmarks/README.md``)."""
    phases = phase_times(epochs, warmup_epochs)
    if "main" not in phases:
        raise ValueError("no main-phase epoch was timed (each phase needs at least two epochs)")
    main = phases["main"]["s"]
    warm = phases["warmup"]["s"] if "warmup" in phases else None
    full_warmup = getattr(full.hp, "warmup_epochs", 0) if warmup_epochs else 0
    epoch_full = extrapolate(main, train_size)
    warm_full = None if warm is None else extrapolate(warm, train_size)
    return {
        "config": {
            "precision": cfg.precision,
            "channels_last": cfg.channels_last,
            "model": cfg.model,
            "batch_size": cfg.batch_size,
            "augment": cfg.augment,
            "epochs_run": cfg.epochs,
            "warmup_epochs_run": warmup_epochs,
            "profile_epochs": full.epochs,
            "profile_warmup_epochs": full_warmup,
        },
        "epochs": [{k: round(v, 4) for k, v in e.items()} for e in epochs],
        "phases": {
            name: {**p, "s": round(p["s"], 4), "eval_s": round(p["eval_s"], 4)} for name, p in phases.items()
        },
        "s_per_cifar_epoch": round(epoch_full, 2),
        "s_per_cifar_warmup_epoch": None if warm_full is None else round(warm_full, 2),
        "full_run_hours": round(
            full_run_seconds(epoch_full, warm_full, epochs=full.epochs, warmup_epochs=full_warmup) / 3600, 3
        ),
        "images_per_s": round(train_size / main, 1),
        "peak_memory_bytes": peak_memory_bytes,
        "selected_fraction": None if selected_fraction is None else round(selected_fraction, 4),
        "per_sample_losses": losses,
        "wall_s": round(wall_s, 2),
    }


def report(
    results: dict[str, dict[str, dict[str, Any]]],
    failures: list[dict[str, str]],
    *,
    device: dict[str, Any],
    versions: dict[str, Any],
    settings: dict[str, Any],
    date: str,
    wall_s: float,
) -> dict[str, Any]:
    """The whole file: what ran where, the settings, one record per method and precision,
    and the failures (``complete`` is true only when there are none)."""
    return {
        "format": FORMAT,
        "what": "lnl_core GPU check: full-profile epochs timed on CIFAR-shaped synthetic data "
        "and extrapolated to 50,000 training images (benchmarks/gpu_check.py)",
        "date": date,
        "device": device,
        "versions": versions,
        "settings": settings,
        "complete": not failures,
        "failures": failures,
        "results": results,
        "wall_s": round(wall_s, 1),
    }


# --------------------------------------------------------------------------- measuring


def check_config(
    method: str, precision: str, *, timed_epochs: int = 1, model: str | None = None
) -> RunConfig:
    """The method's full CIFAR-10 profile at 50% symmetric noise, cut to the check's epochs:
    ``1 + timed_epochs`` of warm-up (where the method has one) and as many of the main phase.
    A second warm-up stage (CPC's GMM-division epochs) is set to 0: its epochs cost what the
    main phase's do (the same passes, another division)."""
    hp_names = {f.name for f in dataclasses.fields(METHODS[method].hparams)}
    per_phase = 1 + timed_epochs
    overrides: dict[str, Any] = dict(PRECISIONS[precision])
    warm = "warmup_epochs" in hp_names
    overrides["epochs"] = per_phase * (2 if warm else 1)
    if warm:
        overrides["warmup_epochs"] = per_phase
    overrides.update({k: 0 for k in hp_names if k.endswith("_warmup_epochs")})
    if model is not None:
        overrides["model"] = model
    return build_config(
        method, dataset="cifar10", noise=_noise_kind(method), rate=0.5, profile="full", overrides=overrides
    )


def profile_config(method: str) -> RunConfig:
    """The method's full profile as a user runs it (for the full-run estimate)."""
    return build_config(method, dataset="cifar10", noise=_noise_kind(method), rate=0.5, profile="full")


def _noise_kind(method: str) -> str:
    return "symmetric-exclusive" if method == "pemm" else "symmetric"  # PEMM's paper flips to another class


def check_data(train_size: int, test_size: int, *, seed: int = 0) -> tuple[Dataset, Dataset]:
    """CIFAR-shaped synthetic splits whose images are 3/4 a colour per class and 1/4 random
    pixels, so that a network learns the clean labels within an epoch or two. Trained with CE
    for two epochs on 2,000 of them under 50% symmetric noise, PreAct ResNet-18 reaches 100%
    test accuracy and a GMM on its losses selects exactly the 55% correctly labelled samples
    (the small CNN: 92%, selection AUC 0.99)."""
    palette = torch.randint(0, 256, (10, 3, 1, 1), generator=torch.Generator().manual_seed(seed + 2))
    out = []
    for split, n, s in (("train", train_size, seed), ("test", test_size, seed + 1)):
        d = synthetic("cifar10", n, seed=s, split=split)
        images = (d.images.int() + 3 * palette[d.labels]) // 4
        out.append(dataclasses.replace(d, images=images.to(torch.uint8)))
    return out[0], out[1]


@contextlib.contextmanager
def strict_fp32() -> Iterator[None]:
    """float32 matmuls and convolutions without TF32 (the default lets cuDNN convolutions use it)."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def compare_losses(net, data, *, batch_size: int) -> dict[str, Any]:
    """Per-sample losses of ``net`` on ``data`` three ways: float32 without TF32 (the
    reference), as lnl_core computes them (float32, TF32 convolutions where torch allows
    them), and under bf16 autocast; each one's difference from the reference."""
    device = data.images.device
    with strict_fp32():
        ref = per_sample_pass(net, data, batch_size=batch_size)["losses"]
    engine = per_sample_pass(net, data, batch_size=batch_size)["losses"]
    with torch.autocast(device.type, dtype=torch.bfloat16):
        bf16 = per_sample_pass(net, data, batch_size=batch_size)["losses"]
    return {
        "bf16_vs_fp32": {
            **loss_difference(bf16, ref),
            "division_disagreement": division_disagreement(bf16, ref),
        },
        "lnl_core_vs_fp32": {
            **loss_difference(engine, ref),
            "division_disagreement": division_disagreement(engine, ref),
        },
        "fp32_loss_mean": float(ref.mean()),
    }


def measure(
    method: str,
    precision: str,
    *,
    device: torch.device,
    train_size: int,
    test_size: int,
    timed_epochs: int = 1,
    model: str | None = None,
) -> dict[str, Any]:
    """Train one method at one precision for the check's epochs and return its record."""
    t0 = time.perf_counter()
    cfg = check_config(method, precision, timed_epochs=timed_epochs, model=model)
    train, test = check_data(train_size, test_size)
    noisy = noise.make(cfg.noise, train.labels.numpy(), cfg.rate, train.num_classes, seed=0)
    cuda = device.type == "cuda"

    def clock() -> float:
        if cuda:
            torch.cuda.synchronize(device)
        return time.perf_counter()

    if cuda:
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    run = make_run(cfg, train, test, noisy, device=device)
    marks: list[tuple[float, float, float]] = []
    selected: list[float | None] = []
    end_epoch = run.end_epoch

    def timed_end_epoch(rec, *, models):
        called = clock()
        out = end_epoch(rec, models=models)
        ended = clock()
        selected.append(out.get("labeled_fraction"))
        marks.append((called, ended, clock()))
        return out

    run.end_epoch = timed_end_epoch
    start = clock()
    output = METHODS[method].train(run, cfg.hp)
    peak = int(torch.cuda.max_memory_allocated(device)) if cuda else None
    epochs = epoch_seconds(start, marks)
    warmup = getattr(cfg.hp, "warmup_epochs", 0)
    net = next(iter(output.models.values()))
    losses = compare_losses(net, run.train, batch_size=cfg.eval_batch_size)
    return record(
        cfg=cfg, full=profile_config(method), epochs=epochs, warmup_epochs=warmup, train_size=train_size,
        peak_memory_bytes=peak, selected_fraction=selected[-1] if selected else None, losses=losses,
        wall_s=time.perf_counter() - t0,
    )  # fmt: skip


def describe_device(device: torch.device) -> dict[str, Any]:
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        return {
            "type": "cuda",
            "name": p.name,
            "capability": f"{p.major}.{p.minor}",
            "memory_bytes": int(p.total_memory),
            "count": torch.cuda.device_count(),
        }
    return {"type": device.type, "name": cpu_kind()["cpu"], "cpu_capability": cpu_kind()["cpu_capability"]}


def versions() -> dict[str, Any]:
    out = _versions()
    out["cuda"] = torch.version.cuda
    out["cudnn"] = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return out


def run_check(
    methods: Sequence[str],
    precisions: Sequence[str],
    *,
    device: torch.device,
    train_size: int,
    test_size: int,
    timed_epochs: int,
    model: str | None,
    budget_s: float,
    log: Callable[[str], None] = print,
) -> tuple[dict, list]:
    """Every (method, precision) measurement in turn; a failure is recorded and the check goes
    on. A measurement that would likely end past ``budget_s`` (judged by the longest so far)
    is not started and is recorded as a failure too."""
    results: dict[str, dict[str, Any]] = {}
    failures: list[dict[str, str]] = []
    t0, longest = time.perf_counter(), 0.0
    for method in methods:
        for precision in precisions:
            elapsed = time.perf_counter() - t0
            if elapsed + longest > budget_s:
                error = f"not started: {elapsed:.0f} s spent, the longest measurement took {longest:.0f} s, budget {budget_s:.0f} s"
                failures.append({"method": method, "precision": precision, "error": error})
                log(f"{method} {precision}: {error}")
                continue
            t = time.perf_counter()
            try:
                rec = measure(
                    method, precision, device=device, train_size=train_size, test_size=test_size,
                    timed_epochs=timed_epochs, model=model,
                )  # fmt: skip
            except Exception as exc:  # noqa: BLE001 - any failure is recorded, the check goes on
                failures.append(
                    {"method": method, "precision": precision, "error": f"{type(exc).__name__}: {exc}"}
                )
                print(traceback.format_exc(), file=sys.stderr, end="")
                log(f"{method} {precision}: FAILED ({type(exc).__name__}: {exc})")
            else:
                results.setdefault(method, {})[precision] = rec
                log(summary_line(method, precision, rec))
            longest = max(longest, time.perf_counter() - t)
            if device.type == "cuda":
                gc.collect()
                torch.cuda.empty_cache()
    return results, failures


def summary_line(method: str, precision: str, rec: dict[str, Any]) -> str:
    peak = rec["peak_memory_bytes"]
    warm = rec["s_per_cifar_warmup_epoch"]
    sel = rec["selected_fraction"]
    d = rec["per_sample_losses"]["bf16_vs_fp32"]
    return (
        f"{method:<13}{precision:<6}{rec['s_per_cifar_epoch']:>9.1f}{'-' if warm is None else f'{warm:.1f}':>9}"
        f"{rec['full_run_hours']:>8.2f}{rec['images_per_s']:>9.0f}{'-' if peak is None else f'{peak / 2**30:.2f}':>7}"
        f"{d['max']:>10.4f}{'-' if sel is None else f'{sel:.2f}':>6}{rec['wall_s']:>7.1f}"
    )


HEADER = (
    f"{'method':<13}{'prec':<6}{'s/epoch':>9}{'warm-up':>9}{'run h':>8}{'img/s':>9}{'GiB':>7}"
    f"{'max|dL|':>10}{'sel':>6}{'wall s':>7}"
)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--methods", nargs="+", default=None, metavar="METHOD", help="default: every registered method"
    )
    p.add_argument("--precisions", nargs="+", default=list(DEFAULT_PRECISIONS), choices=list(PRECISIONS))
    p.add_argument("--device", default="cuda", help="a CUDA device (cuda, cuda:N)")
    p.add_argument("--train-size", type=int, default=5000, help="synthetic training images (test: a fifth)")
    p.add_argument("--timed-epochs", type=int, default=1, help="timed epochs per phase, after one untimed")
    p.add_argument(
        "--budget-s", type=float, default=BUDGET_S, help="start no measurement likely to end later"
    )
    p.add_argument(
        "--cudnn-benchmark", action="store_true", help="let cuDNN time its algorithms (lnl run does not)"
    )
    p.add_argument("--out", type=Path, default=None, help="default: benchmarks/results/gpu-<gpu name>.json")
    p.add_argument(
        "--tiny", action="store_true", help=argparse.SUPPRESS
    )  # tests: a few images, the small CNN
    args = p.parse_args(argv)

    methods = args.methods or sorted(METHODS)
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        p.error(f"unknown methods {', '.join(unknown)}; choose from {', '.join(sorted(METHODS))}")
    if args.train_size < 10 or args.timed_epochs < 1:
        p.error("--train-size must be at least 10 and --timed-epochs at least 1")
    try:
        device = torch.device(args.device)
    except RuntimeError:
        p.error(f"unknown device {args.device!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        print(
            "gpu_check: no CUDA GPU is available (torch sees none); nothing was measured or written",
            file=sys.stderr,
        )
        return 2
    if device.type != "cuda" and not args.tiny:
        p.error("the GPU check runs on a CUDA device (--device cuda)")
    train_size, test_size, model = args.train_size, max(1, args.train_size // 5), None
    if args.tiny:
        train_size, test_size, model = TINY["train_size"], TINY["test_size"], TINY["model"]
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = args.cudnn_benchmark

    info = describe_device(device)
    out = (
        args.out
        or ROOT
        / "benchmarks"
        / "results"
        / f"{'gpu' if device.type == 'cuda' else device.type}-{slug(info['name'])}.json"
    )
    date = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    print(
        f"gpu_check on {info['name']}: {len(methods)} methods x {len(args.precisions)} precisions, "
        f"{train_size} training images, {args.timed_epochs} timed epoch(s) per phase; budget {args.budget_s:.0f} s"
    )
    print(HEADER)
    t0 = time.perf_counter()
    results, failures = run_check(
        methods, args.precisions, device=device, train_size=train_size, test_size=test_size,
        timed_epochs=args.timed_epochs, model=model, budget_s=args.budget_s,
    )  # fmt: skip
    settings = {
        "dataset": "cifar10 shape, synthetic (3/4 a colour per class, 1/4 random pixels)",
        "noise": "symmetric 0.5 (pemm: symmetric-exclusive 0.5)",
        "profile": "full",
        "train_images": train_size,
        "test_images": test_size,
        "timed_epochs_per_phase": args.timed_epochs,
        "untimed_epochs_per_phase": 1,
        "extrapolated_to_train_images": CIFAR_TRAIN,
        "extrapolated_to_test_images": CIFAR_TEST,
        "precisions": {k: PRECISIONS[k] for k in args.precisions},
        "model_override": model,
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        "tf32": {
            "matmul": bool(torch.backends.cuda.matmul.allow_tf32),
            "cudnn": bool(torch.backends.cudnn.allow_tf32),
        },
        "budget_s": args.budget_s,
    }
    doc = report(
        results, failures, device=info, versions=versions(), settings=settings, date=date,
        wall_s=time.perf_counter() - t0,
    )  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(_finite(doc), indent=1, allow_nan=False) + "\n")
    tmp.replace(out)
    print(f"wrote {out} ({time.perf_counter() - t0:.0f} s)")
    if failures:
        listed = "; ".join(f"{f['method']} {f['precision']}: {f['error']}" for f in failures)
        print(f"gpu_check: {len(failures)} measurement(s) failed or were not run: {listed}", file=sys.stderr)
        return 1
    return 0


def _finite(obj):
    """NaN (an empty selection's loss, say) becomes null: strict JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


if __name__ == "__main__":
    sys.exit(main())
