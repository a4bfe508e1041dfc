"""One experiment end to end: config -> data -> noise -> trainer -> ``result.json``.

:func:`run_experiment` is what ``lnl run`` calls and what the notebooks call. Everything
that can be checked is checked before anything is written: a bad name, a bad rate,
missing data or an existing run directory stops the run with an :class:`LNLError` and
leaves the disk as it was.

Run directory layout (``out``): ``config.json``, ``noisy_labels.npz``, ``checkpoint.pt``
(rewritten atomically after every epoch), ``metrics.csv`` (the history so far, one row per
epoch) and, at the end, ``result.json`` and the per-sample results ``samples.csv`` /
``samples.npz`` (:mod:`lnl_core.samples`). A run on your own data (:func:`run_own`) also
writes ``data.json``: what the data is and its SHA-256, checked on resume.
"""

from __future__ import annotations

import dataclasses
import json
import math
import platform
import shutil
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import __version__, cache, data
from . import noise as noise_mod
from . import samples as samples_mod
from .config import PROFILES, RunConfig, make_config
from .engine import CHECKPOINT, METRICS, Run, choose_device, config_difference, load_checkpoint, write_metrics
from .errors import LNLError
from .models import check_input_size
from .noise import NoisyLabels
from .owndata import OwnData, check_fits
from .trainers import TrainOutput, get_method

DATA_FILE = "data.json"
ERROR_FILE = "error.json"  # written by lnl bench for a cell that raised (lnl_core.bench.run_cell)
RUN_FILES = (
    "config.json",
    "noisy_labels.npz",
    CHECKPOINT,
    CHECKPOINT + ".tmp",
    "result.json",
    "result.json.tmp",
    METRICS,
    METRICS + ".tmp",
    samples_mod.SAMPLES_CSV,
    samples_mod.SAMPLES_CSV + ".tmp",
    samples_mod.SAMPLES_NPZ,
    samples_mod.SAMPLES_NPZ + ".tmp",
    DATA_FILE,
    ERROR_FILE,
)


@dataclass
class Result:
    """What :func:`run_experiment` returns: the summary (``result.json``), the trained
    networks, the noisy labels and the config."""

    summary: dict[str, Any]
    output: TrainOutput
    noisy: NoisyLabels
    config: RunConfig
    samples: dict[str, Any] | None = (
        None  # the per-sample table (lnl_core.samples), None if the method has none
    )
    cached: bool = False  # restored from the run cache (lnl_core.cache), not trained in this call

    @property
    def history(self) -> list[dict[str, Any]]:
        return self.summary["history"]


def build_config(
    method: str,
    *,
    dataset: str = "fashion_mnist",
    noise: str = "symmetric",
    rate: float = 0.5,
    seed: int = 0,
    profile: str = "reduced",
    overrides: dict[str, Any] | None = None,
) -> RunConfig:
    """The full config of a run, without running it (``lnl run --dry-run`` shows it)."""
    m = get_method(method)
    if dataset not in data.DATASETS:
        raise LNLError(f"unknown dataset {dataset!r}; choose one of {', '.join(data.DATASETS)}")
    if noise not in noise_kinds():
        raise LNLError(f"unknown noise kind {noise!r}; choose one of {', '.join(noise_kinds())}")
    if noise == "given":
        raise LNLError(
            "noise 'given' keeps the labels of your own data (lnl run METHOD --folder DIR, or "
            "run_own); a built-in data set needs a noise kind that makes noisy labels"
        )
    if not 0.0 <= float(rate) < 1.0:
        raise LNLError(f"noise rate must be in [0, 1), got {rate}")
    if noise_mod.is_asymmetric(noise):
        noise_mod.asymmetric_mapping(noise, dataset)  # raises for a data set without that mapping
    return make_config(
        method=method, hp_type=m.hparams, dataset=dataset, noise=noise, rate=rate, seed=seed,
        profile=profile, method_overrides=m.profile_settings(profile, dataset, noise, float(rate)),
        overrides=overrides,
    )  # fmt: skip


# What "the same budget" means when a chapter compares runs: the data, the network and how long
# and on which views it trains. Learning rates and weight decay belong to a method's protocol.
BUDGET_FIELDS = (
    "dataset", "train_size", "test_size", "model", "epochs", "batch_size", "schedule", "milestones", "augment",
)  # fmt: skip


def check_equal_budgets(
    configs: dict[str, RunConfig], *, named: dict[str, tuple[str, ...]] | None = None
) -> dict[str, Any]:
    """Check that the runs of one comparison have the same budget (``BUDGET_FIELDS``)
    and return it. ``named`` lists, per run, the fields in which it differs on purpose (the
    thing being compared); a named field that does not differ is an error too, so that a
    chapter's declared differences stay true. Raises :class:`LNLError` listing every problem."""
    if not configs:
        raise LNLError("check_equal_budgets needs at least one config")
    named = dict(named or {})
    unknown = [f"{run}: {f}" for run, fs in named.items() for f in fs if f not in BUDGET_FIELDS]
    missing = [run for run in named if run not in configs]
    if unknown or missing:
        raise LNLError(
            f"check_equal_budgets: unknown runs {missing} or fields {unknown}; fields are {', '.join(BUDGET_FIELDS)}"
        )
    problems, common = [], {}
    for field in BUDGET_FIELDS:
        plain = {run: getattr(c, field) for run, c in configs.items() if field not in named.get(run, ())}
        values = sorted(set(map(repr, plain.values())))
        if len(values) > 1:
            problems.append(f"{field} differs: " + ", ".join(f"{run} {v!r}" for run, v in plain.items()))
        elif values:
            common[field] = next(iter(plain.values()))
            problems += [
                f"{run} is said to differ in {field} but has the same {common[field]!r}"
                for run, fs in named.items() if field in fs and getattr(configs[run], field) == common[field]
            ]  # fmt: skip
    if problems:
        raise LNLError("unequal budgets: " + "; ".join(problems))
    return common


def notebook_run_dir(chapter: str, name: str, profile: str) -> Path | None:
    """Where a chapter keeps one of its runs: nowhere under the reduced profile (minutes on
    a CPU), ``runs/<chapter>/<name>`` under the full profile, so that with ``resume="auto"``
    a disconnected session (Colab) continues from the last epoch instead of starting over."""
    if profile == "reduced":
        return None
    slug = "".join(ch if ch.isalnum() else "-" for ch in name.lower()).strip("-")
    return Path("runs") / chapter / slug


# Seconds per CIFAR-10 epoch of reference implementations on one RTX 3080 Ti: PMNAR's Table 6
# (300 epochs: CE 2.3 h, DivideMix 10.9 h, PMNAR 5.8 h). The basis of a chapter's run-time warning.
REFERENCE_EPOCH_SECONDS = {"ce": 2.3 * 3600 / 300, "dividemix": 10.9 * 3600 / 300, "pmnar": 5.8 * 3600 / 300}


def full_profile_warning(chapter: str, configs: dict[str, RunConfig]) -> str | None:
    """Under the full profile, warn (and return the message) before a chapter's runs start:
    how many epochs they add up to, a run-time range on one GPU from the reference
    implementations' speed (``REFERENCE_EPOCH_SECONDS``), and where the runs are kept so
    that running the cell again resumes them. Under the reduced profile: ``None``."""
    configs = {k: c for k, c in configs.items() if c.profile != "reduced"}
    if not configs:
        return None
    epochs = sum(c.epochs for c in configs.values())
    lo, hi = min(REFERENCE_EPOCH_SECONDS.values()), max(REFERENCE_EPOCH_SECONDS.values())
    message = (
        f"{chapter}: {len(configs)} full-profile runs, {epochs} epochs in all. At the reference code's "
        f"{lo:.0f}-{hi:.0f} s per CIFAR-10 epoch on one GPU (CE to DivideMix, PMNAR's Table 6) that is "
        f"{epochs * lo / 3600:.0f}-{epochs * hi / 3600:.0f} hours. Each run writes runs/{chapter}/<run>; "
        "after a disconnect, run the cell again and it resumes from the last epoch."
    )
    warnings.warn(message, stacklevel=2)
    return message


def noise_kinds() -> tuple[str, ...]:
    return noise_mod.NOISE_KINDS


OWN_DATASET = "own"  # the dataset field of a run on a user's data (data.json says which data)


def protocol_like(own: OwnData | int, profile: str) -> str:
    """The built-in data set whose per-method settings a run on ``own`` (or on data with that
    many classes) takes: Fashion-MNIST's under the reduced profile, CIFAR-10's under the full
    profile, CIFAR-100's for more than 10 classes (the papers' settings differ mainly by the
    number of classes)."""
    num_classes = own if isinstance(own, int) else own.num_classes
    if num_classes > 10:
        return "cifar100"
    return "fashion_mnist" if profile == "reduced" else "cifar10"


def build_own_config(
    method: str,
    own: OwnData,
    *,
    noise: str = "given",
    rate: float = 0.0,
    seed: int = 0,
    profile: str = "reduced",
    like: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> RunConfig:
    """The config of a run on your own data: the profile, the method's settings for the data
    set ``like`` (default :func:`protocol_like`), every training and test image (no subset
    unless ``train_size`` / ``test_size`` are overridden) and the given labels as the noisy
    labels (``noise="given"``; a synthetic kind corrupts the given labels instead)."""
    if not isinstance(own, OwnData):
        raise LNLError(
            f"own data must come from lnl_core.owndata (from_folder, from_arrays), got {type(own).__name__}"
        )
    return own_config(
        method, own.num_classes, noise=noise, rate=rate, seed=seed, profile=profile, like=like,
        overrides=overrides, clean_known=own.clean is not None,
    )  # fmt: skip


def own_config(
    method: str,
    num_classes: int,
    *,
    noise: str = "given",
    rate: float = 0.0,
    seed: int = 0,
    profile: str = "reduced",
    like: str | None = None,
    overrides: dict[str, Any] | None = None,
    clean_known: bool = False,
) -> RunConfig:
    """:func:`build_own_config` from the number of classes alone (a folder's config, its
    model included, is known before its images are decoded). ``clean_known``: the data come
    with their correct labels."""
    m = get_method(method)
    if profile not in PROFILES:
        raise LNLError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    like = like or protocol_like(num_classes, profile)
    if like not in PROFILES[profile].datasets:
        raise LNLError(
            f"like={like!r}: the {profile} profile has settings for {', '.join(PROFILES[profile].datasets)}"
        )
    if noise not in noise_kinds() or noise.startswith("cifar-n") or noise_mod.is_asymmetric(noise):
        kinds = [k for k in noise_kinds() if not (k.startswith("cifar-n") or noise_mod.is_asymmetric(k))]
        raise LNLError(f"noise {noise!r} cannot be used on your own data; choose one of {', '.join(kinds)}")
    if clean_known and noise != "given":
        raise LNLError(
            f"noise {noise!r} corrupts the given labels, taking them as correct, so the clean labels "
            "supplied too would be ignored: use noise 'given', or pass the correct labels as the labels"
        )
    if noise == "given" and rate:
        raise LNLError("noise 'given' takes the labels as they are; its rate is unknown, leave it at 0")
    if not 0.0 <= float(rate) < 1.0:
        raise LNLError(f"noise rate must be in [0, 1), got {rate}")
    settings = m.profile_settings(profile, like, noise, float(rate))
    settings.update(train_size=None, test_size=None)
    cfg = make_config(
        method=method, hp_type=m.hparams, dataset=like, noise=noise, rate=rate, seed=seed, profile=profile,
        method_overrides=settings, overrides=overrides,
    )  # fmt: skip
    return dataclasses.replace(cfg, dataset=OWN_DATASET)


def prepare_own(
    cfg: RunConfig, own: OwnData
) -> tuple[data.Dataset, data.Dataset | None, NoisyLabels, np.ndarray]:
    """:func:`prepare_data` for your own data: subsets if asked, the given labels as noisy.
    The fourth value is each training row's index in ``own`` (all of them without a subset)."""
    if cfg.eval_split != "test":
        raise LNLError(
            "eval_split 'val' is for the built-in data sets; split your own data into a test folder"
        )
    train, test, clean = own.train, own.test, own.clean
    rows = np.arange(len(train))
    if cfg.train_size is not None and cfg.train_size < len(train):
        rows = data.stratified_subset(train.labels, cfg.train_size, seed=cfg.subset_seed)
        train, clean = train.subset(rows), None if clean is None else clean[rows]
    if test is not None and cfg.test_size is not None and cfg.test_size < len(test):
        test = test.subset(data.stratified_subset(test.labels, cfg.test_size, seed=cfg.subset_seed))
    given = train.labels.numpy()
    if cfg.noise == "given":
        noisy = noise_mod.given(given, train.num_classes, clean_labels=clean)
    else:  # a synthetic kind on top of the given labels, which are then taken as correct
        noisy = noise_mod.make(
            cfg.noise, given, cfg.rate, train.num_classes, seed=cfg.seed, dataset=OWN_DATASET,
            images=train.images.numpy() if cfg.noise == "instance" else None,
        )  # fmt: skip
    return train, test, noisy, rows


def prepare_data(
    cfg: RunConfig, *, root=None, download: bool = False
) -> tuple[data.Dataset, data.Dataset, NoisyLabels]:
    """Load the splits, take the profile's subsets and make the noisy labels."""
    return _prepare_builtin(cfg, root=root, download=download)[:3]


def _prepare_builtin(
    cfg: RunConfig, *, root=None, download: bool = False
) -> tuple[data.Dataset, data.Dataset, NoisyLabels, np.ndarray]:
    """:func:`prepare_data`, and each training row's index in the full training split."""
    full = data.load(cfg.dataset, "train", root=root, download=download)
    train, rows = full, np.arange(len(full))
    if cfg.train_size is not None and cfg.train_size < len(full):
        rows = data.stratified_subset(full.labels, cfg.train_size, seed=cfg.subset_seed)
        train = full.subset(rows)
    if cfg.eval_split == "val":  # held out of the training split: calibration never sees the test set
        rest = np.setdiff1d(np.arange(len(full)), rows)
        if rest.size == 0:
            raise LNLError(
                "eval_split 'val' needs training images outside the training subset (set train_size)"
            )
        size = rest.size if cfg.test_size is None else min(cfg.test_size, rest.size)
        test = full.subset(rest[data.stratified_subset(full.labels[rest], size, seed=cfg.subset_seed + 1)])
    else:
        test = data.load(cfg.dataset, "test", root=root, download=download)
        if cfg.test_size is not None and cfg.test_size < len(test):
            test = test.subset(data.stratified_subset(test.labels, cfg.test_size, seed=cfg.subset_seed))
    noisy = noise_mod.make(
        cfg.noise, train.labels.numpy(), cfg.rate, train.num_classes, seed=cfg.seed,
        dataset=cfg.dataset, images=train.images.numpy() if cfg.noise == "instance" else None, root=root,
    )  # fmt: skip
    return train, test, noisy, np.asarray(rows)


def make_run(
    cfg: RunConfig,
    train: data.Dataset,
    test: data.Dataset | None,
    noisy: NoisyLabels,
    *,
    device: torch.device,
    run_dir: Path | None = None,
    resume: bool = False,
    quiet: bool = True,
    stop_after: int | None = None,
    restore_from: Path | None = None,
) -> Run:
    """A :class:`Run` with the training split (given labels) and the test split resident on
    ``device``: what a trainer, or a loop written in a notebook, trains with. ``restore_from``:
    a checkpoint (not the run directory's) to start from, as a resumed run does."""
    return Run(
        cfg,
        data.DeviceData(train.images, torch.from_numpy(noisy.noisy), train.mean, train.std, device),
        None if test is None else data.DeviceData(test.images, test.labels, test.mean, test.std, device),
        clean_labels=torch.from_numpy(noisy.clean),
        clean_known=noisy.clean_known,
        num_classes=train.num_classes,
        device=device,
        run_dir=run_dir,
        resume=resume,
        quiet=quiet,
        stop_after=stop_after,
        restore_from=restore_from,
    )


def check_run_dir(out: Path, *, resume: bool, overwrite: bool) -> None:
    """Refuse a run directory that this run may not write: one holding a run without
    ``resume`` or ``overwrite``, nothing to resume, or files that no run wrote."""
    if resume and overwrite:
        raise LNLError("choose one of --resume and --overwrite")
    if out.exists() and not out.is_dir():
        raise LNLError(f"{out} exists and is not a directory")
    contents = list(out.iterdir()) if out.is_dir() else []
    if resume:
        if not (out / CHECKPOINT).is_file():
            raise LNLError(f"nothing to resume: no {CHECKPOINT} in {out}")
        return
    if not contents:
        return
    if not overwrite:
        raise LNLError(f"run directory {out} already exists; use --resume to continue it or --overwrite")
    foreign = [p.name for p in contents if not _is_run_file(p)]
    if foreign:
        raise LNLError(
            f"refusing to overwrite {out}: it holds files that no run wrote ({', '.join(foreign[:3])})"
        )


def _is_run_file(path: Path) -> bool:
    """A file that a run writes: one of ``RUN_FILES``, or the per-epoch export folder holding
    nothing but per-epoch exports."""
    if path.name == samples_mod.EPOCH_DIR and path.is_dir():
        return all(
            p.is_file() and p.name.startswith("epoch-") and p.suffix in (".csv", ".npz", ".tmp") for p in path.iterdir()
        )  # fmt: skip
    return path.name in RUN_FILES and path.is_file()


def _versions() -> dict[str, Any]:
    commit = None
    try:
        here = Path(__file__).resolve().parent
        commit = (
            subprocess.run(
                ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
            ).stdout.strip()
            or None
        )
    except (OSError, subprocess.SubprocessError):
        pass
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "lnl_core": __version__,
        "git_commit": commit,
    }


def summarize(cfg: RunConfig, noisy: NoisyLabels, history: list[dict], *, wall_time_s: float, device) -> dict:
    """The ``result.json`` record: the experiment, the config, the history and headlines."""
    accs = [h["test_acc"] for h in history if h.get("test_acc") is not None]
    return {
        "method": cfg.method,
        "dataset": cfg.dataset,
        "noise": cfg.noise,
        "rate": cfg.rate,
        "actual_noise_rate": noisy.actual_rate,
        "noisy_labels_sha256": noisy.digest(),
        "seed": cfg.seed,
        "profile": cfg.profile,
        "config": cfg.to_dict(),
        "history": history,
        "epochs_done": len(history),
        "final_test_acc": accs[-1] if accs else None,
        "mean_last10_test_acc": float(np.mean(accs[-10:])) if accs else None,
        "best_test_acc": max(accs) if accs else None,
        "best_test_acc_note": "peak over epochs of the test accuracy: for comparison with papers "
        "that report it, not a model-selection result",
        "wall_time_s": wall_time_s,
        "device": str(device),
        "versions": _versions(),
    }


def run_experiment(
    method: str,
    *,
    dataset: str = "fashion_mnist",
    noise: str = "symmetric",
    rate: float = 0.5,
    seed: int = 0,
    profile: str = "reduced",
    out: str | Path | None = None,
    device: str = "auto",
    resume: bool | str = False,
    overwrite: bool = False,
    overrides: dict[str, Any] | None = None,
    quiet: bool = False,
    data_root=None,
    download: bool = False,
    stop_after: int | None = None,
) -> Result:
    """Run one experiment and return its :class:`Result`.

    ``out`` is the run directory (``None``: nothing is written, no checkpoints).
    ``stop_after`` ends training after that many epochs in total, as if the process had
    been killed then (a later ``resume=True`` call finishes the run). ``resume="auto"``
    continues ``out`` if it holds a checkpoint and starts it otherwise (a notebook cell that
    is simply run again after a disconnect).
    """
    cfg = build_config(
        method, dataset=dataset, noise=noise, rate=rate, seed=seed, profile=profile, overrides=overrides
    )
    return run_config(
        cfg, out=out, device=device, resume=resume, overwrite=overwrite, quiet=quiet,
        data_root=data_root, download=download, stop_after=stop_after,
    )  # fmt: skip


def run_config(
    cfg: RunConfig,
    *,
    out: str | Path | None = None,
    device: str = "auto",
    resume: bool | str = False,
    overwrite: bool = False,
    quiet: bool = False,
    data_root=None,
    download: bool = False,
    stop_after: int | None = None,
    own: OwnData | None = None,
    export_every_epoch: bool = False,
) -> Result:
    """:func:`run_experiment` for a config made by :func:`build_config` (a chapter builds
    its configs first, checks their budgets, then runs them), or by :func:`build_own_config`
    with its ``own`` data. ``export_every_epoch`` writes the per-sample results after every
    epoch with a selection too (``samples/epoch-NNNN.csv`` / ``.npz``; needs ``out``)."""
    if not isinstance(cfg, RunConfig):
        raise LNLError(f"run_config needs a RunConfig from build_config, got {type(cfg).__name__}")
    if (own is not None) != (cfg.dataset == OWN_DATASET):
        raise LNLError("own data needs a config from build_own_config, and such a config needs its own data")
    m = get_method(cfg.method)
    if resume == "auto":
        resume = out is not None and (Path(out) / CHECKPOINT).is_file()
    elif not isinstance(resume, bool):
        raise LNLError(f"resume must be True, False or 'auto', got {resume!r}")
    dev = choose_device(device)
    out_dir = Path(out) if out is not None else None
    if out_dir is None and resume:
        raise LNLError("resume needs a run directory (out)")
    if export_every_epoch and out_dir is None:
        raise LNLError("export_every_epoch writes into the run directory: give out")
    if out_dir is not None:
        check_run_dir(out_dir, resume=resume, overwrite=overwrite)
        if resume:
            saved = load_checkpoint(out_dir / CHECKPOINT)
            diff = config_difference(saved["config"], cfg.to_dict())
            if diff:
                raise LNLError(
                    f"cannot resume {out_dir}: the config differs from the checkpoint's in {', '.join(diff)}"
                )
    if own is not None:
        train, test, noisy, rows = prepare_own(cfg, own)
        check_input_size(cfg.model, train.images.shape[-1])
        if dev.type != "cpu":  # on the CPU the images are resident already (checked when read)
            check_fits(sum(d.images.numel() for d in (train, test) if d is not None), dev)
        described = own.describe()
        if out_dir is not None and resume:
            try:
                before = json.loads((out_dir / DATA_FILE).read_text())["sha256"]
            except (OSError, ValueError, KeyError):
                before = None
            if before != described["sha256"]:
                raise LNLError(f"cannot resume {out_dir}: it was started on other data (see its {DATA_FILE})")
    else:
        train, test, noisy, rows = _prepare_builtin(cfg, root=data_root, download=download)
    # the run cache (LNL_RUN_CACHE): a finished run of this exact config, code and thread count
    cacheable = (
        cache.cache_dir() is not None and own is None and not resume and stop_after is None
        and not export_every_epoch
    )  # fmt: skip
    key = cache.run_key(cfg, dev) if cacheable else None
    hit = cache.lookup(key) if key is not None else None

    # Everything is checked: from here on the run directory is written.
    if out_dir is not None:
        if overwrite:
            for name in RUN_FILES:
                (out_dir / name).unlink(missing_ok=True)
            shutil.rmtree(out_dir / samples_mod.EPOCH_DIR, ignore_errors=True)
        out_dir.mkdir(parents=True, exist_ok=True)
        if not resume:
            (out_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2, sort_keys=True) + "\n")
            noisy.save(out_dir / "noisy_labels.npz")
            if own is not None:
                (out_dir / DATA_FILE).write_text(json.dumps(described, indent=1) + "\n")
        elif not np.array_equal(NoisyLabels.load(out_dir / "noisy_labels.npz").noisy, noisy.noisy):
            raise LNLError(f"cannot resume {out_dir}: its noisy labels differ from this config's")

    if hit is not None:
        print(cache.describe(cfg, key), flush=True)
        if out_dir is not None:  # the run directory holds the finished run's checkpoint, as after training
            shutil.copyfile(hit, out_dir / CHECKPOINT)
    run = make_run(
        cfg,
        train,
        test,
        noisy,
        device=dev,
        run_dir=out_dir,
        resume=resume,
        quiet=quiet or hit is not None,
        stop_after=stop_after,
        restore_from=hit,
    )
    files = None if own is None or own.files is None else [own.files[i] for i in rows]
    truth = noisy.clean if noisy.clean_known else None
    if export_every_epoch:
        run.epoch_hooks.append(lambda r: _export_epoch(r, train.classes, files, truth, rows))
    output = m.train(run, cfg.hp)
    if key is not None and hit is None and len(output.history) == cfg.epochs:
        cache.store(key, cfg, run.save_checkpoint)
    if hit is not None and out_dir is not None:
        write_metrics(output.history, out_dir / METRICS)
    summary = summarize(cfg, noisy, output.history, wall_time_s=run.elapsed(), device=dev)
    if own is not None:
        summary["data"] = described
    table = None
    try:
        table = samples_mod.sample_table(
            run, output.state, classes=train.classes, files=files, clean=truth, index=rows
        )
    except LNLError as exc:
        summary["samples"] = {"written": False, "reason": str(exc)}
    if out_dir is not None and len(output.history) == cfg.epochs:
        if table is not None:
            samples_mod.write(table, out_dir / samples_mod.SAMPLES_CSV, out_dir / samples_mod.SAMPLES_NPZ)
            summary["samples"] = samples_mod.summary(table)
        tmp = out_dir / "result.json.tmp"
        tmp.write_text(json.dumps(_finite(summary), indent=1, allow_nan=False) + "\n")
        tmp.replace(out_dir / "result.json")
    elif table is not None:
        summary["samples"] = {**samples_mod.summary(table), "written": False, "files": []}
    return Result(summary, output, noisy, cfg, table, cached=hit is not None)


def _export_epoch(run: Run, classes, files, truth, rows) -> None:
    """The per-epoch export (``export_every_epoch``): nothing for an epoch without a selection."""
    cfg = run.config
    if samples_mod.unavailable(cfg.method, cfg.hp, len(run.history)):
        return
    table = samples_mod.sample_table(run, run.state, classes=classes, files=files, clean=truth, index=rows)
    csv_path, npz_path = samples_mod.epoch_paths(run.run_dir, len(run.history))
    csv_path.parent.mkdir(exist_ok=True)
    samples_mod.write(table, csv_path, npz_path)


def run_own(
    method: str,
    own: OwnData,
    *,
    profile: str = "reduced",
    seed: int = 0,
    noise: str = "given",
    rate: float = 0.0,
    like: str | None = None,
    overrides: dict[str, Any] | None = None,
    out: str | Path | None = None,
    device: str = "auto",
    resume: bool | str = False,
    overwrite: bool = False,
    quiet: bool = False,
    export_every_epoch: bool = False,
    stop_after: int | None = None,
) -> Result:
    """Train ``method`` on your own data (from :func:`lnl_core.owndata.from_folder` or
    :func:`~lnl_core.owndata.from_arrays`) and return its :class:`Result`; with ``out``, the
    run directory gets the per-sample results (``samples.csv``, ``samples.npz``) at the end.
    Everything is checked before anything is written (the model against the image size, the
    images against the device's free memory, the run directory)."""
    cfg = build_own_config(
        method, own, noise=noise, rate=rate, seed=seed, profile=profile, like=like, overrides=overrides
    )
    return run_config(
        cfg, out=out, device=device, resume=resume, overwrite=overwrite, quiet=quiet, own=own,
        export_every_epoch=export_every_epoch, stop_after=stop_after,
    )  # fmt: skip


def _finite(obj):
    """NaN (e.g. a rate on an empty part of the data) becomes null: strict JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj
