"""The pieces every trainer shares: seeding, device and precision, the optimiser and its
schedule, evaluation, the per-sample pass, history, progress, checkpoints and resume.

A trainer receives a :class:`Run` and writes one explicit loop with it::

    net = run.model()
    opt = run.optimizer(net.parameters())
    state = {}                                   # per-sample method state, if any
    for epoch in run.epochs({"net": net}, {"opt": opt}, state):
        run.set_lr(opt, epoch)
        for idx in run.batches():
            x, y = run.inputs(idx), run.labels[idx]
            with run.autocast():
                loss = ...
            run.step(loss, opt)
        run.end_epoch({"train_loss": ...}, models=[net])

``run.epochs`` restores a checkpoint when resuming, and ``run.end_epoch`` evaluates,
records the history and writes the checkpoint, so every trainer resumes exactly.
"""

from __future__ import annotations

import contextlib
import csv
import math
import os
import random
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import augment as aug
from .config import CHANNELS_LAST, PRECISIONS, RunConfig
from .data import DeviceData, batch_indices
from .errors import LNLError
from .models import Network, build_model

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.csv"
_FORMAT = 1

# History entries computed from the correct labels (reporting only). When they are unknown (own
# data without clean labels) a run records none of them. Names are matched after removing a
# per-network or per-variant suffix and a selection-source prefix (``gmm_f1``, ``f1_net2``).
TRUTH_METRICS = frozenset(
    "selection_auc precision recall f1 neg_precision fit_mislabelled recover_mislabelled "
    "train_acc_clean_part ar_weight_clean ar_weight_mislabelled true_label_in_complementary eps_clean "
    "eps_mislabelled refurbish_acc refurbish_acc_mislabelled transition_error transition_c_error "
    "confident_acc proto_acc proto_label_acc".split()
)
_TRUTH_SUFFIXES = ("_net1", "_net2", "_1d", "_2d")
_TRUTH_PREFIXES = ("gmm_other_", "gmm_", "cpc_")


def uses_truth(key: str) -> bool:
    """Whether a history entry is computed from the correct labels (see ``TRUTH_METRICS``)."""
    for suffix in _TRUTH_SUFFIXES:
        key = key.removesuffix(suffix)
    for prefix in _TRUTH_PREFIXES:
        if key.startswith(prefix):
            key = key[len(prefix) :]
            break
    return key in TRUTH_METRICS


# --------------------------------------------------------------------------- basics


def cpu_kind() -> dict[str, str]:
    """What decides the bits of a CPU run besides its config and the torch thread count: the
    processor model (``/proc/cpuinfo``) and the vector instruction set that torch's kernels
    dispatch to (``AVX512``, ``AVX2``, ...). Two machines of one kind give bit-identical
    histories; machines of two kinds differ from the first epoch on (an Intel Xeon and
    an AVX2 AMD EPYC end DivideMix's two reduced runs of ``tests/golden`` 3.15 and 2.25 points
    apart), because their kernels round differently and training amplifies the difference."""
    import platform

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cpu_capability": torch.backends.cpu.get_cpu_capability()}


def same_cpu_kind(recorded: dict[str, Any], here: dict[str, str] | None = None) -> bool:
    """Whether ``recorded`` (a machine record with ``cpu`` and, in newer records,
    ``cpu_capability``) is of the kind of ``here`` (default: this machine's :func:`cpu_kind`).
    A record without the instruction set matches on the processor model alone."""
    here = here or cpu_kind()
    if recorded.get("cpu") != here["cpu"]:
        return False
    capability = recorded.get("cpu_capability")
    return capability is None or capability == here["cpu_capability"]


def describe_cpu_kind(machine: dict[str, Any]) -> str:
    capability = machine.get("cpu_capability")
    return f"{machine.get('cpu')} ({capability})" if capability else f"{machine.get('cpu')}"


def show_progress(quiet: bool = False) -> bool:
    """Whether a progress bar is drawn: never when ``quiet``; in a Jupyter kernel (tqdm's
    widget there, as before) and in a terminal, yes; not when stderr goes to a file or a pipe,
    so that a log holds lines, not a bar redrawn with carriage returns."""
    if quiet:
        return False
    get_ipython = getattr(sys.modules.get("IPython"), "get_ipython", None)
    if getattr(get_ipython() if get_ipython else None, "kernel", None) is not None:
        return True  # a Jupyter (or Colab) kernel's shell has a kernel; a terminal IPython has none
    stream = sys.stderr
    return stream is not None and hasattr(stream, "isatty") and stream.isatty()


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def choose_device(name: str = "auto") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; a named device must be available."""
    has_mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if has_mps else torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise LNLError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise LNLError("device cuda requested but no CUDA GPU is available; use --device cpu")
    if device.type == "mps" and not has_mps:
        raise LNLError("device mps requested but MPS is not available; use --device cpu")
    if device.type not in ("cpu", "cuda", "mps"):
        raise LNLError(f"unsupported device {name!r}; use auto, cpu, cuda or mps")
    return device


_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def amp_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """The autocast dtype of a precision setting; ``None`` means float32 throughout.

    ``auto``: bf16 on CUDA GPUs that support it natively, fp16 (with a gradient scaler) on
    other CUDA GPUs, float32 elsewhere. ``fp32``, ``bf16`` and ``fp16`` force that choice on
    any device (the tests force bf16 and fp16 autocast on the CPU to exercise the GPU path).
    """
    if precision not in PRECISIONS:
        raise LNLError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        return _DTYPES[precision]
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported(including_emulation=False) else torch.float16


def use_channels_last(device: torch.device, setting: str = "auto") -> bool:
    """``auto``: channels-last memory format on CUDA (faster convolutions with AMP), not on
    other devices; ``on`` / ``off`` force it."""
    if setting not in CHANNELS_LAST:
        raise LNLError(f"unknown channels_last {setting!r}; choose one of {', '.join(CHANNELS_LAST)}")
    return setting == "on" or (setting == "auto" and device.type == "cuda")


def lr_at(epoch: int, cfg: RunConfig) -> float:
    """Learning rate of (0-based) ``epoch`` under the config's schedule."""
    if cfg.schedule == "constant":
        return cfg.lr
    if cfg.schedule == "multistep":
        return cfg.lr * cfg.lr_gamma ** sum(epoch >= m for m in cfg.milestones)
    # cosine annealing from lr to 0 over the run, per epoch
    return 0.5 * cfg.lr * (1.0 + math.cos(math.pi * epoch / cfg.epochs))


def make_optimizer(params, cfg: RunConfig, device: torch.device) -> torch.optim.SGD:
    """SGD with momentum and weight decay (the optimiser of all five papers)."""
    kwargs: dict[str, Any] = dict(
        lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=cfg.nesterov
    )
    if device.type == "cuda":
        kwargs["fused"] = True
    return torch.optim.SGD(params, **kwargs)


# --------------------------------------------------------------------------- passes


def _in_order(n: int, batch_size: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    return torch.arange(n, device=device).split(batch_size)


@torch.no_grad()
def predict_logits(
    models: nn.Module | list[nn.Module], data: DeviceData, *, batch_size: int = 1024, dtype=None
) -> torch.Tensor:
    """(N, K) float32 logits, summed over ``models`` (the two-network ensemble)."""
    models = models if isinstance(models, (list, tuple)) else [models]
    modes = [m.training for m in models]
    for m in models:
        m.eval()
    out = []
    for idx in _in_order(len(data), batch_size, data.images.device):
        x = data.normalize(data.images[idx])
        with torch.autocast(x.device.type, dtype=dtype, enabled=dtype is not None):
            out.append(sum(m(x).float() for m in models))
    for m, mode in zip(models, modes):
        m.train(mode)
    return torch.cat(out)


def accuracy(models, data: DeviceData, *, batch_size: int = 1024, dtype=None) -> float:
    """Accuracy (%) of the summed logits of ``models`` on ``data``."""
    logits = predict_logits(models, data, batch_size=batch_size, dtype=dtype)
    return 100.0 * (logits.argmax(1) == data.labels).float().mean().item()


@torch.no_grad()
def per_sample_pass(
    model: Network,
    data: DeviceData,
    *,
    batch_size: int = 1024,
    features: bool = False,
    embeddings: bool = False,
) -> dict[str, torch.Tensor]:
    """One pass over a split in eval mode and float32 (no autocast).

    Returns ``losses`` (N,) cross-entropy against ``data.labels`` (the given labels),
    ``probs`` (N, K) softmax and, if asked, ``features`` (N, F) and the projection head's
    unit-norm ``embeddings`` (N, P). These feed sample selection (GMMs, prototypes), so they
    are kept in full precision.
    """
    if embeddings and model.projector is None:
        raise ValueError("embeddings need a network with a projection head (build it with proj_dim)")
    mode = model.training
    model.eval()
    losses, probs, feats, embs = [], [], [], []
    for idx in _in_order(len(data), batch_size, data.images.device):
        out = model.forward_all(data.normalize(data.images[idx]))
        logits = out.logits.float()
        losses.append(F.cross_entropy(logits, data.labels[idx], reduction="none"))
        probs.append(logits.softmax(1))
        if features:
            feats.append(out.features.float())
        if embeddings:
            embs.append(out.embeddings.float())
    model.train(mode)
    result = {"losses": torch.cat(losses), "probs": torch.cat(probs)}
    if features:
        result["features"] = torch.cat(feats)
    if embeddings:
        result["embeddings"] = torch.cat(embs)
    return result


# --------------------------------------------------------------------------- checkpoints


def _rng_state(gen: torch.Generator, cpu_gen: torch.Generator) -> dict[str, Any]:
    np_state = np.random.get_state()
    return {
        "gen": gen.get_state(),
        "cpu_gen": cpu_gen.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": random.getstate(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].copy()), *np_state[2:]],
    }


def _set_rng_state(state: dict[str, Any], gen: torch.Generator, cpu_gen: torch.Generator) -> None:
    gen.set_state(state["gen"].cpu())
    cpu_gen.set_state(state["cpu_gen"].cpu())
    torch.set_rng_state(state["torch"].cpu())
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    npv = state["numpy"]
    np.random.set_state((npv[0], npv[1].numpy(), *npv[2:]))


def save_atomic(obj: Any, path: Path) -> None:
    """torch.save to a temporary file, then rename: a crash never leaves half a file."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def write_metrics(history: list[dict[str, Any]], path: Path) -> None:
    """The history as CSV, one row per epoch: columns in order of first appearance (methods
    add entries after their warm-up), an empty cell where an epoch has no value or NaN.
    Written to a temporary file and renamed, so a reader never sees half a file."""
    columns: dict[str, None] = {}
    for record in history:
        columns.update(dict.fromkeys(record))
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        for record in history:
            row = []
            for key in columns:
                v = record.get(key)
                missing = v is None or (isinstance(v, float) and not math.isfinite(v))
                row.append("" if missing else repr(v) if isinstance(v, float) else v)
            writer.writerow(row)
    os.replace(tmp, path)


def load_checkpoint(path: Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    """Load an ``lnl_core`` checkpoint with ``weights_only=True``; clear error if it is not one."""
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise LNLError(f"no checkpoint at {path}") from None
    except Exception as exc:  # noqa: BLE001 - unpickling errors have many types
        raise LNLError(f"checkpoint {path} is corrupt or not an lnl_core checkpoint ({exc})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != _FORMAT:
        raise LNLError(f"checkpoint {path} is not an lnl_core checkpoint (format {_FORMAT})")
    return ckpt


def config_difference(saved: dict, current: dict) -> list[str]:
    """Keys whose values differ between two config dicts (nested ``hp`` flattened)."""

    def flat(d):
        out = {k: v for k, v in d.items() if k != "hp"}
        out.update({f"hp.{k}": v for k, v in d.get("hp", {}).items()})
        return out

    a, b = flat(saved), flat(current)
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


# --------------------------------------------------------------------------- the run


class Run:
    """Config, resident data, RNGs, precision, history and checkpointing of one training run.

    ``labels`` are the *given* (noisy) training labels on the device; ``clean_labels`` are
    used only for reporting (selection metrics, memorisation curves), never for training.
    With ``clean_known=False`` (own data without its correct labels) ``clean_labels`` are a
    copy of the given ones and the history keeps no entry computed from them (``uses_truth``).
    ``test`` may be ``None`` (own data without a test split): ``test_acc`` is then ``None``.

    With a run directory, every epoch rewrites ``metrics.csv`` (one row per epoch, the
    history's entries as columns) for dashboards; ``epoch_hooks`` are called with the run
    after every epoch (the per-epoch export of per-sample results uses one).
    """

    def __init__(
        self,
        config: RunConfig,
        train: DeviceData,
        test: DeviceData | None,
        *,
        clean_labels: torch.Tensor,
        clean_known: bool = True,
        num_classes: int,
        device: torch.device,
        run_dir: Path | None = None,
        resume: bool = False,
        quiet: bool = False,
        stop_after: int | None = None,
        restore_from: Path | None = None,
    ) -> None:
        self.config = config
        self.train, self.test = train, test
        self.labels = train.labels  # (N,) given labels
        self.clean_labels = clean_labels.to(device)  # (N,)
        self.is_noisy = self.labels != self.clean_labels  # (N,) bool, reporting only
        self.clean_known = clean_known
        self.eval_models: list[nn.Module] = []  # the networks evaluated at the last end_epoch
        self._eval_names: list[str] | None = None  # their names among the tracked models
        self.epoch_hooks: list[Any] = []
        self.num_classes = num_classes
        self.device = device
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.resume = resume
        self.restore_from = Path(restore_from) if restore_from is not None else None  # a checkpoint elsewhere
        self.quiet = quiet
        self.stop_after = stop_after
        self.history: list[dict[str, Any]] = []
        self.amp_dtype = amp_dtype(device, config.precision)
        self.channels_last = use_channels_last(device, config.channels_last)
        use_scaler = self.amp_dtype == torch.float16
        self.scaler = torch.amp.GradScaler(device.type, enabled=use_scaler) if use_scaler else None
        seed_everything(config.seed)
        self.gen = torch.Generator(device=device).manual_seed(config.seed)  # shuffles, crops
        self.cpu_gen = torch.Generator().manual_seed(config.seed + 1)  # RandAugment choices
        self._elapsed = 0.0
        self._t0 = time.perf_counter()
        self._epoch = 0
        self._bar = None
        self._tracked: dict[str, Any] = {}

    # ---- building blocks
    def model(
        self, *, proj_dim: int | None = None, head: str = "linear", head_options: dict | None = None
    ) -> Network:
        c, h = self.train.images.shape[1], self.train.images.shape[2]
        net = build_model(
            self.config.model,
            num_classes=self.num_classes,
            in_channels=c,
            image_size=h,
            proj_dim=proj_dim,
            head=head,
            head_options=head_options,
        ).to(self.device)
        if self.channels_last:
            net = net.to(memory_format=torch.channels_last)
        return net

    def optimizer(self, params) -> torch.optim.SGD:
        return make_optimizer(params, self.config, self.device)

    def set_lr(self, optimizer: torch.optim.Optimizer, epoch: int, *, scale: float = 1.0) -> float:
        """Set the epoch's learning rate; a parameter group with an ``lr_scale`` entry gets
        that multiple of it. Returns the base learning rate."""
        lr = lr_at(epoch, self.config) * scale
        for group in optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        return lr

    def batches(self, n: int | None = None, batch_size: int | None = None) -> Iterator[torch.Tensor]:
        """Shuffled index batches over the training set (or over ``range(n)``)."""
        n = len(self.train) if n is None else n
        yield from batch_indices(n, batch_size or self.config.batch_size, generator=self.gen)

    def inputs(self, idx: torch.Tensor, kind: str | None = None) -> torch.Tensor:
        """Augmented (``kind``, default the config's) and normalised training images at ``idx``."""
        x = aug.augment(
            self.train.images[idx],
            kind or self.config.augment,
            generator=self.gen,
            cpu_generator=self.cpu_gen,
        )
        x = self.train.normalize(x)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        """Backward (through the GradScaler under fp16), optimiser step, zero grads."""
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(optimizer)
            self.scaler.update()
        else:
            loss.backward()
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def accuracy(self, models) -> float | None:
        """Test accuracy (%) of the summed logits of ``models``; ``None`` without a test split."""
        if self.test is None:
            return None
        return accuracy(models, self.test, batch_size=self.config.eval_batch_size, dtype=self.amp_dtype)

    def per_sample(
        self, model: Network, *, features: bool = False, embeddings: bool = False
    ) -> dict[str, torch.Tensor]:
        return per_sample_pass(
            model,
            self.train,
            batch_size=self.config.eval_batch_size,
            features=features,
            embeddings=embeddings,
        )

    def memorization(self, models) -> dict[str, float]:
        """How the training set is fitted: accuracy on the correctly labelled part, and on
        the mislabelled part the share predicted as the given (wrong) label and as the
        true label. Reporting only."""
        pred = predict_logits(models, self.train, batch_size=self.config.eval_batch_size).argmax(1)
        clean, noisy = ~self.is_noisy, self.is_noisy
        stats = torch.stack(
            [
                (pred == self.labels)[clean].float().mean(),
                (pred == self.labels)[noisy].float().mean(),
                (pred == self.clean_labels)[noisy].float().mean(),
            ]
        )
        a, b, c = (100.0 * stats).tolist()
        none = float("nan")
        return {
            "train_acc_clean_part": a,
            "fit_mislabelled": b if noisy.any() else none,
            "recover_mislabelled": c if noisy.any() else none,
        }

    # ---- the epoch loop
    def epochs(
        self,
        models: dict[str, nn.Module],
        optimizers: dict[str, torch.optim.Optimizer],
        state: dict[str, torch.Tensor] | None = None,
    ) -> Iterator[int]:
        """Yield the epochs still to run (0-based), restoring a checkpoint first when resuming.

        ``state`` is the method's per-sample state (a dict of tensors), saved in every
        checkpoint and restored in place. Call :meth:`end_epoch` last in the loop body:
        the checkpoint it writes holds the RNG states at that point.
        """
        self._tracked = {
            "models": models,
            "optimizers": optimizers,
            "state": state if state is not None else {},
        }
        start = self._restore() if self.resume or self.restore_from is not None else 0
        self._t0 = time.perf_counter()
        last = self.config.epochs if self.stop_after is None else min(self.config.epochs, self.stop_after)
        if show_progress(self.quiet):
            from tqdm.auto import tqdm

            self._bar = tqdm(total=self.config.epochs, initial=start, desc=self.config.method, unit="epoch")
        try:
            for epoch in range(start, last):
                self._epoch = epoch
                yield epoch
        finally:
            if self._bar is not None:
                self._bar.close()
                self._bar = None

    def end_epoch(self, record: dict[str, Any], *, models: list[nn.Module]) -> dict[str, Any]:
        """Evaluate ``models`` (their summed logits) on the test set, append the epoch's
        record to the history, write the checkpoint. Returns the record."""
        full = {"epoch": self._epoch + 1, "lr": self._current_lr()}
        full.update({k: (v.item() if torch.is_tensor(v) else v) for k, v in record.items()})
        full["test_acc"] = self.accuracy(models)
        if self.config.track_memorization and self.clean_known:
            full.update(self.memorization(models))
        if not self.clean_known:
            full = {k: v for k, v in full.items() if not uses_truth(k)}
        self.history.append(full)
        self.eval_models = list(models)
        tracked = self._tracked.get("models", {})
        names = [next((k for k, m in tracked.items() if m is model), None) for model in models]
        self._eval_names = None if None in names else names
        if self._bar is not None:
            acc = full["test_acc"]
            self._bar.set_postfix(
                test_acc="-" if acc is None else f"{acc:.2f}", loss=f"{full.get('train_loss', 0.0):.3f}"
            )
            self._bar.update(1)
        if self.run_dir is not None:
            self._save(self._epoch + 1)
            write_metrics(self.history, self.run_dir / METRICS)
        for hook in self.epoch_hooks:
            hook(self)
        return full

    @property
    def state(self) -> dict[str, Any]:
        """The method's per-sample state as passed to :meth:`epochs` (empty before)."""
        return self._tracked.get("state", {})

    def elapsed(self) -> float:
        """Training seconds so far, summed over resumed sessions."""
        return self._elapsed + time.perf_counter() - self._t0

    def _current_lr(self) -> float:
        opts = list(self._tracked.get("optimizers", {}).values())
        return float(opts[0].param_groups[0]["lr"]) if opts else float("nan")

    def _save(self, epochs_done: int) -> None:
        save_atomic(self._checkpoint(epochs_done), self.run_dir / CHECKPOINT)

    def save_checkpoint(self, path: Path) -> None:
        """Write the checkpoint of the run as it stands (every epoch so far) to ``path``: what a
        run directory would hold after the last epoch (the run cache keeps finished runs so)."""
        save_atomic(self._checkpoint(len(self.history)), Path(path))

    def _checkpoint(self, epochs_done: int) -> dict[str, Any]:
        t = self._tracked
        return {
            "format": _FORMAT,
            "config": self.config.to_dict(),
            "epoch": epochs_done,
            "models": {k: m.state_dict() for k, m in t["models"].items()},
            "optimizers": {k: o.state_dict() for k, o in t["optimizers"].items()},
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "rng": _rng_state(self.gen, self.cpu_gen),
            "state": dict(t["state"]),
            "history": self.history,
            "elapsed": self.elapsed(),
            "eval_models": self._eval_names,
        }

    def _restore(self) -> int:
        if self.restore_from is None and self.run_dir is None:
            raise LNLError("resume needs a run directory")
        path = self.restore_from if self.restore_from is not None else self.run_dir / CHECKPOINT
        ckpt = load_checkpoint(path, self.device)
        diff = config_difference(ckpt["config"], self.config.to_dict())
        if diff:
            raise LNLError(f"cannot resume: the config differs from the checkpoint's in {', '.join(diff)}")
        t = self._tracked
        try:
            if set(ckpt["models"]) != set(t["models"]) or set(ckpt["optimizers"]) != set(t["optimizers"]):
                raise KeyError("model or optimizer names differ")
            for k, m in t["models"].items():
                m.load_state_dict(ckpt["models"][k])
            for k, o in t["optimizers"].items():
                o.load_state_dict(ckpt["optimizers"][k])
            if self.scaler is not None and ckpt["scaler"] is not None:
                self.scaler.load_state_dict(ckpt["scaler"])
            if set(ckpt["state"]) != set(t["state"]):
                raise KeyError("per-sample method state names differ")
            for k, v in ckpt["state"].items():
                t["state"][k].copy_(v)  # in place: the trainer holds these tensors
            _set_rng_state(ckpt["rng"], self.gen, self.cpu_gen)
        except (KeyError, RuntimeError, ValueError, TypeError) as exc:
            raise LNLError(f"checkpoint {path} does not match this run: {exc}") from None
        self.history = list(ckpt["history"])
        self._elapsed = float(ckpt["elapsed"])
        # the networks the last epoch evaluated, so that a resumed run with no epoch left can
        # still export its per-sample results (checkpoints before this key: none)
        names = ckpt.get("eval_models")
        if names and all(k in t["models"] for k in names):
            self._eval_names = list(names)
            self.eval_models = [t["models"][k] for k in names]
        return int(ckpt["epoch"])
