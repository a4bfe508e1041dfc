"""Benchmark grids: every (method, noise setting, seed) cell of one profile in one directory.

``lnl bench`` runs a grid, ``lnl bench --table`` summarises one, ``lnl verify`` re-runs cells
of one and requires the same histories, bit for bit, on a kind of CPU that has a record of them
(:func:`verify`). The Benchmark chapter reads the grid that
is committed under ``benchmarks/results/``.

Layout of a grid directory::

    bench.json       the grid, and one entry per session that ran cells in it
                     (machine, torch threads, versions, cells run, seconds)
    <method>/<noise>-<rate>/seed<k>/
                     one run directory per cell: config.json and result.json
                     (checkpoint.pt and noisy_labels.npz only with keep_run_files;
                     error.json while the cell's last try has failed)
    replicas.json    re-runs of cells on other kinds of CPU (lnl verify
                     --record-replica)

A method in a grid is a registered name (``dividemix``) or a variant with its own settings,
``NAME+KEY=VALUE[+KEY=VALUE...]`` (``ce+augment=weak``: CE on crop + flip views). Every cell
with the same (noise, rate, seed) trains on the same noisy labels, whatever its method:
``noise.make`` depends on nothing else, and each ``result.json`` holds the labels' digest, which
:func:`summary_rows` compares across methods.

A grid is resumable: a cell with a ``result.json`` is finished and is not run again; a cell with
a checkpoint continues from it; the others start. On the CPU a cell's history depends only on
its config, the torch thread count and the kind of CPU, which ``bench.json`` records (``lnl
verify`` restores the count).

:func:`run_grid` runs the cells one after another in this process; ``lnl bench --executor ray``
(:mod:`lnl_core.bench_ray`) runs them as Ray tasks. Both do a cell's work with :func:`run_cell`,
and :func:`cell_status` says, from the files alone, where each cell of a grid stands.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .config import RunConfig
from .engine import METRICS, cpu_kind, describe_cpu_kind, same_cpu_kind, show_progress
from .errors import LNLError
from .experiment import ERROR_FILE, RUN_FILES, build_config, run_config
from .trainers import METHODS

GRID_FILE = "bench.json"
_KEPT = ("config.json", "result.json")  # what a finished cell keeps by default


@dataclass(frozen=True)
class Cell:
    method: str  # the grid's method token: a registered name or NAME+KEY=VALUE...
    noise: str
    rate: float
    seed: int

    @property
    def path(self) -> Path:
        return Path(self.method) / f"{self.noise}-{self.rate:.2f}" / f"seed{self.seed}"

    @property
    def setting(self) -> tuple[str, float]:
        return (self.noise, self.rate)


def parse_method(token: str) -> tuple[str, dict[str, str]]:
    """``"ce+augment=weak"`` -> ``("ce", {"augment": "weak"})``."""
    name, *parts = token.split("+")
    if name not in METHODS:
        raise LNLError(f"unknown method {name!r} in {token!r}; choose one of {', '.join(sorted(METHODS))}")
    sets = {}
    for part in parts:
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise LNLError(f"a method variant is NAME+KEY=VALUE[+KEY=VALUE...], got {token!r}")
        sets[key] = value
    return name, sets


def parse_setting(token: str) -> tuple[str, float]:
    """``"symmetric:0.5"`` -> ``("symmetric", 0.5)``."""
    kind, sep, rate = token.rpartition(":")
    if not sep or not kind:
        raise LNLError(f"a noise setting is KIND:RATE (e.g. symmetric:0.5), got {token!r}")
    try:
        return kind, float(rate)
    except ValueError:
        raise LNLError(f"a noise setting is KIND:RATE (e.g. symmetric:0.5), got {token!r}") from None


@dataclass(frozen=True)
class Grid:
    profile: str
    dataset: str
    methods: tuple[str, ...]
    settings: tuple[tuple[str, float], ...]
    seeds: tuple[int, ...]
    overrides: tuple[tuple[str, str], ...] = ()  # applied to every cell (--set)

    def cells(self) -> list[Cell]:
        """Seed-major, so that a grid stopped early has every method at its first seeds."""
        return [
            Cell(m, kind, rate, seed) for seed in self.seeds for kind, rate in self.settings for m in self.methods
        ]  # fmt: skip

    def config(self, cell: Cell) -> RunConfig:
        name, sets = parse_method(cell.method)
        overrides = dict(self.overrides)
        overrides.update(sets)
        return build_config(
            name, dataset=self.dataset, noise=cell.noise, rate=cell.rate, seed=cell.seed,
            profile=self.profile, overrides=overrides,
        )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "dataset": self.dataset,
            "methods": list(self.methods),
            "settings": [[k, r] for k, r in self.settings],
            "seeds": list(self.seeds),
            "overrides": dict(self.overrides),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Grid:
        return cls(
            d["profile"], d["dataset"], tuple(d["methods"]), tuple((k, float(r)) for k, r in d["settings"]),
            tuple(int(s) for s in d["seeds"]), tuple(sorted(d.get("overrides", {}).items())),
        )  # fmt: skip


def make_grid(
    *,
    methods: Sequence[str],
    settings: Sequence[str | tuple[str, float]],
    seeds: Sequence[int],
    profile: str = "reduced",
    dataset: str = "fashion_mnist",
    overrides: dict[str, str] | None = None,
) -> Grid:
    """A grid, with every cell's config built (and so checked) before anything runs."""
    if not methods or not settings or not seeds:
        raise LNLError("a grid needs at least one method, one noise setting and one seed")
    settings = tuple(parse_setting(s) if isinstance(s, str) else (s[0], float(s[1])) for s in settings)
    for name, values in (("methods", methods), ("noise settings", settings), ("seeds", seeds)):
        if len(set(values)) != len(values):
            raise LNLError(f"the grid lists {name} twice: {list(values)}")
    grid = Grid(
        profile, dataset, tuple(methods), settings, tuple(int(s) for s in seeds),
        tuple(sorted((overrides or {}).items())),
    )  # fmt: skip
    for cell in grid.cells():
        grid.config(cell)
    return grid


def machine() -> dict[str, Any]:
    """Where cells ran: what makes their timings (and, on the CPU, their bits) what they are."""
    import torchvision

    from .experiment import _versions

    return {
        "platform": platform.platform(),
        **cpu_kind(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "versions": dict(_versions(), torchvision=torchvision.__version__),
    }


def load_grid(out: str | Path) -> tuple[Grid, dict[str, Any]]:
    path = Path(out) / GRID_FILE
    try:
        record = json.loads(path.read_text())
        return Grid.from_dict(record["grid"]), record
    except FileNotFoundError:
        raise LNLError(f"{out} is not a benchmark grid: no {GRID_FILE} (start one with lnl bench)") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise LNLError(f"cannot read {path}: {exc}") from None


def find_store(name: str = "reduced") -> Path | None:
    """The committed grid ``benchmarks/results/<name>`` of a source checkout: looked for from the
    working directory upwards, then beside the package. ``None`` when there is none (a ``pip``
    install has no ``benchmarks/``; clone the repository, or run the grid with ``lnl bench``)."""
    here = Path.cwd().resolve()
    for base in (here, *here.parents, Path(__file__).resolve().parents[1]):
        path = base / "benchmarks" / "results" / name
        if (path / GRID_FILE).is_file():
            return path
    return None


def _cell_state(out: Path, cell: Cell, cfg: RunConfig) -> str:
    """'done', 'resume', 'restart' (run files of a cell killed or failed before its first epoch) or
    'new'."""
    d = out / cell.path
    if (d / "result.json").is_file():
        saved = _read_result(out, cell)["config"]
        if saved != json.loads(json.dumps(cfg.to_dict())):
            diff = sorted(k for k in set(saved) | set(cfg.to_dict()) if saved.get(k) != cfg.to_dict().get(k))
            raise LNLError(
                f"cell {cell.path} was run with another config (differs in {', '.join(diff) or 'hp'}); "
                "the code or the grid changed: start a new grid directory"
            )
        return "done"
    if (d / "checkpoint.pt").is_file():
        return "resume"
    if d.is_dir() and any(d.iterdir()):
        foreign = [p.name for p in d.iterdir() if p.name not in RUN_FILES]
        if foreign:
            raise LNLError(f"cell directory {d} holds files that no run wrote ({', '.join(foreign[:3])})")
        return "restart"
    return "new"


def _read_result(out: Path, cell: Cell) -> dict[str, Any]:
    path = out / cell.path / "result.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise LNLError(f"cannot read {path}: {exc}") from None


def prepare_grid(grid: Grid | None, out: str | Path) -> tuple[Grid, dict[str, Any], list[Cell]]:
    """Everything :func:`run_grid` checks before it writes: ``grid`` against the grid already in
    ``out`` (see there) and every cell's directory. Returns the grid to run, its ``bench.json``
    record (not yet written; no new session) and the cells still to run, in grid order."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise LNLError(f"{out} exists and is not a directory")
    old = load_grid(out) if (out / GRID_FILE).exists() else None
    if grid is None:
        if old is None:
            raise LNLError(f"{out} holds no grid to continue; give methods, noise settings and seeds")
        grid = old[0]
    elif old is not None:
        before = old[0]
        same = (before.profile, before.dataset, before.overrides) == (
            grid.profile,
            grid.dataset,
            grid.overrides,
        )
        missing = set(before.cells()) - set(grid.cells())
        if not same or missing:
            raise LNLError(
                f"{out} holds another grid ({before.profile} profile, {before.dataset}, overrides "
                f"{dict(before.overrides)}, {len(before.cells())} cells); a grid given for it must keep its "
                "profile, data set and overrides and all of its cells. Use another directory."
            )
    elif out.is_dir() and any(out.iterdir()):
        raise LNLError(f"{out} exists and is not a benchmark grid; choose a new directory")
    cells = grid.cells()
    todo = [c for c in cells if _cell_state(out, c, grid.config(c)) != "done"]
    record = old[1] if old else {"format": 1}
    record["grid"] = grid.to_dict()
    record.setdefault("sessions", [])
    return grid, record, todo


def check_threads(threads: int | None) -> None:
    if threads is not None and threads < 1:
        raise LNLError(f"threads must be at least 1, got {threads}")


def run_cell(
    out: Path,
    grid: Grid,
    cell: Cell,
    *,
    device: str = "auto",
    keep_run_files: bool = False,
    data_root=None,
    download: bool = False,
) -> None:
    """Run one cell of ``grid`` into its directory under ``out``: the work of a cell under every
    executor, with the torch thread count the caller set.

    The cell starts, resumes from its checkpoint or restarts as its directory says now, not as it
    said when the grid began: a Ray task retried after its worker died finds the checkpoint of
    the try that died and continues from it. A finished cell keeps only ``config.json`` and
    ``result.json`` unless ``keep_run_files``. A cell that raises leaves ``error.json`` (the
    exception as ``Type: message``, its traceback and when) and the exception goes on up; the
    next run of the cell removes the file and tries again, from the checkpoint if there is one
    (to start a failed cell afresh, delete its directory)."""
    d = out / cell.path
    cfg = grid.config(cell)
    state = _cell_state(out, cell, cfg)
    if state != "done":  # done: a retried task whose first try finished before its worker died
        (d / ERROR_FILE).unlink(missing_ok=True)
        try:
            run_config(
                cfg, out=d, device=device, resume=state == "resume", overwrite=state == "restart",
                quiet=True, data_root=data_root, download=download,
            )  # fmt: skip
        except Exception as exc:
            write_error(d, error_line(exc), traceback.format_exc())
            raise
    if not keep_run_files:
        for name in RUN_FILES:
            if name not in _KEPT:
                (d / name).unlink(missing_ok=True)


def error_line(exc: BaseException) -> str:
    """How a failed cell is reported: ``Type: message``, on one line."""
    message = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {message[0]}" if message else type(exc).__name__


def write_error(directory: Path, error: str, trace: str = "") -> None:
    """Record in ``directory`` that its cell failed with ``error`` (:func:`error_line`)."""
    directory.mkdir(parents=True, exist_ok=True)
    when = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    _write_json(directory / ERROR_FILE, {"error": error, "traceback": trace, "failed": when})


def run_grid(
    grid: Grid | None,
    out: str | Path,
    *,
    device: str = "auto",
    threads: int | None = None,
    keep_run_files: bool = False,
    quiet: bool = False,
    data_root=None,
    download: bool = False,
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Run every unfinished cell of ``grid`` into ``out``, one after another in this process, and
    return :func:`summary_rows`. A cell that raises stops the grid (:func:`run_cell`).

    ``grid=None`` continues the grid already in ``out``. A grid given for an existing
    directory must have the same profile, data set and overrides and contain all of its cells
    (so cells can be added, never orphaned). ``threads`` sets torch's CPU threads for the
    session (default: torch's current count); it is recorded, since CPU results depend on it.
    """
    out = Path(out)
    check_threads(threads)
    grid, record, todo = prepare_grid(grid, out)  # raises before anything is written
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _run_cells(grid, out, record, todo, device=device, keep_run_files=keep_run_files,
                          quiet=quiet, data_root=data_root, download=download, log=log)  # fmt: skip
    finally:
        torch.set_num_threads(before)  # the caller's count, whatever the grid used


def _run_cells(grid, out, record, todo, *, device, keep_run_files, quiet, data_root, download, log):
    """The part of :func:`run_grid` that writes: the session record, then every unfinished cell."""
    session = {
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "cells_run": [],
    }
    out.mkdir(parents=True, exist_ok=True)
    if todo:
        record["sessions"].append(session)
    _write_json(out / GRID_FILE, record)
    n = len(grid.cells())
    log(f"{n} cells, {n - len(todo)} finished, {len(todo)} to run in {out}")

    from tqdm.auto import tqdm

    bar = tqdm(todo, desc="cells", unit="cell", disable=not (show_progress(quiet) and todo))
    t0 = time.perf_counter()
    try:
        for cell in bar:
            bar.set_postfix_str(str(cell.path))
            run_cell(
                out, grid, cell, device=device, keep_run_files=keep_run_files, data_root=data_root,
                download=download,
            )  # fmt: skip
            session["cells_run"].append(str(cell.path))
            session["seconds"] = round(time.perf_counter() - t0, 1)
            _write_json(out / GRID_FILE, record)
    finally:
        bar.close()
    return summary_rows(out)


def cell_status(out: str | Path) -> dict[Cell, tuple[str, str]]:
    """Where each cell of the grid in ``out`` stands, from its files alone: ``(state, detail)``
    with state ``"done"`` (detail: the last-epoch test accuracy), ``"failed"`` (its error, from
    ``error.json``), ``"started"`` (run files without a result: running now, or interrupted and
    resumed by the next run; detail: the epochs done, from ``metrics.csv``) or ``"pending"``.
    Files do not say whether a process is still at work on a started cell."""
    out = Path(out)
    grid, _ = load_grid(out)
    status = {}
    for cell in grid.cells():
        d = out / cell.path
        if (d / "result.json").is_file():
            acc = _read_result(out, cell).get("final_test_acc")
            status[cell] = ("done", "no test accuracy" if acc is None else f"last epoch {acc:.2f}%")
        elif (d / ERROR_FILE).is_file():
            try:
                error = json.loads((d / ERROR_FILE).read_text())["error"]
            except (OSError, ValueError, KeyError) as exc:
                error = f"unreadable {ERROR_FILE} ({exc})"
            status[cell] = ("failed", error)
        elif d.is_dir() and any(d.iterdir()):
            metrics = d / METRICS
            epochs = len(metrics.read_text().splitlines()) - 1 if metrics.is_file() else 0
            status[cell] = ("started", f"epoch {epochs} of {grid.config(cell).epochs} done")
        else:
            status[cell] = ("pending", "")
    return status


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1) + "\n")
    tmp.replace(path)


def _mean_sd(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof 1; NaN for one value)."""
    a = np.asarray(values, dtype=float)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else math.nan


def load_results(out: str | Path, *, finished_only: bool = True) -> dict[Cell, dict[str, Any]]:
    """``result.json`` of every finished cell of the grid in ``out``."""
    out = Path(out)
    grid, _ = load_grid(out)
    return {c: _read_result(out, c) for c in grid.cells() if (out / c.path / "result.json").is_file()}


SELECTION_KEYS = ("selection_auc", "precision", "recall", "f1", "labeled_fraction")


def summary_rows(out: str | Path) -> list[dict[str, Any]]:
    """One row per (method, noise setting) over the finished seeds: mean and sample standard
    deviation of the last-epoch, last-10 and peak test accuracy, the mean seconds per epoch and
    per run, and (for methods that select) the last epoch's selection metrics. Raises if two
    cells of one (noise, rate, seed) saw different noisy labels."""
    out = Path(out)
    grid, _ = load_grid(out)
    results = load_results(out)
    digests: dict[tuple, dict[str, str]] = {}
    for c, r in results.items():
        digests.setdefault((c.noise, c.rate, c.seed), {})[c.method] = r.get("noisy_labels_sha256")
    for key, by_method in digests.items():
        if len(set(by_method.values())) > 1 or None in by_method.values():
            raise LNLError(f"cells of {key} did not train on the same noisy labels: {by_method}")
    rows = []
    for kind, rate in grid.settings:
        for m in grid.methods:
            rs = [
                results[c]
                for c in grid.cells()
                if c.method == m and c.setting == (kind, rate) and c in results
            ]
            if not rs:
                continue
            row: dict[str, Any] = {
                "method": m, "noise": kind, "rate": rate, "seeds": [r["seed"] for r in rs],
                "actual_noise_rate": float(np.mean([r["actual_noise_rate"] for r in rs])),
                "epochs": rs[0]["epochs_done"],
            }  # fmt: skip
            for key, name in (
                ("final_test_acc", "last"),
                ("mean_last10_test_acc", "last10"),
                ("best_test_acc", "peak"),
            ):
                row[name], row[name + "_sd"] = _mean_sd([r[key] for r in rs])
            row["s_per_run"] = float(np.mean([r["wall_time_s"] for r in rs]))
            row["s_per_epoch"] = row["s_per_run"] / row["epochs"]
            last = [r["history"][-1] for r in rs]
            for key in SELECTION_KEYS:
                if all(h.get(key) is not None for h in last):
                    row[key], row[key + "_sd"] = _mean_sd([h[key] for h in last])
            rows.append(row)
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    """The summary as text (``lnl bench`` prints it)."""

    def ms(row, key):
        sd = row[key + "_sd"]
        return f"{row[key]:6.2f} ± {sd:4.2f}" if not math.isnan(sd) else f"{row[key]:6.2f}       "

    width = max([len(r["method"]) for r in rows] + [6]) + 2
    head = (
        f"{'method':<{width}}{'noise':<14}{'rate':>5}{'actual':>8}{'seeds':>6}   {'last':<16}{'last10':<16}"
        f"{'peak*':<16}{'s/epoch':>8}{'x CE':>6}"
    )
    lines = [head, "-" * len(head)]
    ce = {(r["noise"], r["rate"]): r["s_per_epoch"] for r in rows if r["method"] == "ce"}
    for r in rows:
        rel = r["s_per_epoch"] / ce[(r["noise"], r["rate"])] if (r["noise"], r["rate"]) in ce else math.nan
        lines.append(
            f"{r['method']:<{width}}{r['noise']:<14}{r['rate']:>5.2f}{100 * r['actual_noise_rate']:>7.1f}%"
            f"{len(r['seeds']):>6}   {ms(r, 'last'):<16}{ms(r, 'last10'):<16}{ms(r, 'peak'):<16}"
            f"{r['s_per_epoch']:>8.2f}{rel:>6.1f}"
        )
    lines.append(
        "test accuracy in %, mean ± sample sd over seeds; last = last epoch (the headline), last10 = mean of "
        "the last 10 epochs; *peak = best epoch on the test set, for comparison with papers only. Every "
        "method saw the same noisy labels for a given (noise, rate, seed) (checked by digest)."
    )
    return "\n".join(lines)


# --------------------------------------------------------------------------- verification


def sample_cells(grid: Grid) -> list[Cell]:
    """One cell per method, cycling through the noise settings and then the seeds, so that a
    sample of a 3-seed, 2-setting grid covers every setting and every seed."""
    n = len(grid.settings)
    return [
        Cell(m, *grid.settings[i % n], grid.seeds[(i // n) % len(grid.seeds)]) for i, m in enumerate(grid.methods)
    ]  # fmt: skip


def _json_round(obj: Any) -> Any:
    from .experiment import _finite

    return json.loads(json.dumps(_finite(obj), allow_nan=False))


REPLICA_FILE = "replicas.json"
# What a re-run must reproduce. The last two depend on the noise generator alone, not on the CPU.
REPRODUCED = (
    "history", "final_test_acc", "mean_last10_test_acc", "best_test_acc", "actual_noise_rate",
    "noisy_labels_sha256",
)  # fmt: skip
_CPU_FREE = ("actual_noise_rate", "noisy_labels_sha256")
BAND_LEVEL = 0.99  # the seed band's coverage (seed_band)


@dataclass(frozen=True)
class Check:
    """One re-run cell of :func:`verify`: what it was compared with, and why it failed.

    ``against`` is ``"store"`` (bit for bit with the cell's ``result.json``: this CPU is of the
    kind that ran the cell), ``"replica"`` (bit for bit with the re-run recorded on this CPU kind
    in ``replicas.json``), ``"band"`` (no record of this CPU kind: the CPU-independent entries
    exactly, the last-epoch and last-10 accuracy within the seed band of :func:`seed_band`) or
    ``"recorded"`` (in the band, and written to ``replicas.json`` for this CPU kind)."""

    cell: Cell
    against: str
    problem: str | None
    detail: str = ""


def load_replicas(out: str | Path) -> dict[str, Any]:
    """``replicas.json`` of a grid: re-runs of its cells on other CPU kinds than the one that
    ran them (:func:`verify` with ``record_replica``), one entry per CPU kind."""
    path = Path(out) / REPLICA_FILE
    if not path.is_file():
        return {"format": 1, "replicas": []}
    try:
        record = json.loads(path.read_text())
        if not isinstance(record.get("replicas"), list):
            raise ValueError("no list of replicas")
        return record
    except (OSError, ValueError) as exc:
        raise LNLError(f"cannot read {path}: {exc}") from None


def seed_band(
    out: str | Path, cell: Cell, key: str = "final_test_acc", value: float | None = None
) -> float | None:
    """How far a re-run of ``cell`` on a CPU kind with nothing on record may land from the stored
    value of ``key``: a two-sided ``BAND_LEVEL`` prediction interval for the difference of two
    runs that differ as two seeds do, ``t(df) * sqrt(2) * sd``. ``sd`` is the sample standard
    deviation of ``key`` over the grid's finished seeds of the cell's method and noise setting,
    with ``value`` (the re-run's) in place of the cell's own, so that the number under test
    cannot widen its own band; ``t`` is Student's quantile with ``seeds - 1`` degrees of freedom.

    Another CPU kind moves a run about as much as another seed does (the replica of this
    project's store on an AVX2 AMD EPYC is 0.3 to 10 points from the Intel Xeon that
    made it), and three seeds estimate a spread poorly, so the band is wide (about 14 standard
    deviations with three seeds): it catches a broken method or a number edited by many points,
    nothing finer. ``None`` with fewer than two seeds."""
    from scipy import stats

    results = load_results(out)
    values = [
        value if (c == cell and value is not None) else r[key]
        for c, r in results.items() if c.method == cell.method and c.setting == cell.setting
    ]  # fmt: skip
    if len(values) < 2:
        return None
    t = float(stats.t.ppf(0.5 + BAND_LEVEL / 2, len(values) - 1))
    return t * math.sqrt(2.0) * _mean_sd(values)[1]


def verify(
    out: str | Path,
    cells: Sequence[Cell] | None = None,
    *,
    record_replica: bool = False,
    data_root=None,
    log: Callable[[str], None] = print,
) -> list[Check]:
    """Re-run ``cells`` of the grid in ``out`` (default :func:`sample_cells`) on the CPU with the
    thread count of the session that ran each, in memory, and compare them with what was
    recorded. The config must come out of the code and the grid unchanged. Then, by what this
    CPU's kind (:func:`~lnl_core.engine.cpu_kind`) has on record:

    * the kind that ran the cell: every entry of ``REPRODUCED`` identical to ``result.json``;
    * a replica of this kind in ``replicas.json``: every entry identical to the replica;
    * neither: the CPU-independent entries identical, the last-epoch and last-10 accuracy
      within :func:`seed_band` of ``result.json``. With ``record_replica`` a cell that passes
      this is written to the replica of this kind, and later runs compare with it bit for bit.

    Returns one :class:`Check` per cell; a cell with a ``problem`` failed."""
    out = Path(out)
    grid, record = load_grid(out)
    cells = list(cells) if cells is not None else sample_cells(grid)
    machine_of = {
        path: s["machine"] for s in record.get("sessions", []) for path in s.get("cells_run", [])
    }  # fmt: skip
    here = cpu_kind()
    replicas = load_replicas(out)
    mine = next((r for r in replicas["replicas"] if same_cpu_kind(r["machine"], here)), None)
    known = set(grid.cells())
    for cell in cells:
        if cell not in known:
            raise LNLError(f"{cell.path} is not a cell of the grid in {out}")
    if record_replica and all(same_cpu_kind(machine_of.get(str(c.path), here), here) for c in cells):
        raise LNLError(
            f"this CPU ({describe_cpu_kind(here)}) is of the kind that ran these cells: lnl verify "
            "compares with their result.json bit for bit, there is nothing to replicate"
        )
    before = torch.get_num_threads()
    checks: list[Check] = []
    try:
        for cell in cells:
            stored = _read_result(out, cell)
            if stored.get("device") != "cpu":
                checks.append(
                    Check(cell, "store", f"it ran on {stored.get('device')}; re-runs are bit-identical on the CPU only")
                )  # fmt: skip
                continue
            ran_on = machine_of.get(str(cell.path), here)  # a cell without a session: as before, this kind
            if same_cpu_kind(ran_on, here):
                against, reference = "store", stored
            elif mine is not None and str(cell.path) in mine["cells"]:
                against, reference = "replica", mine["cells"][str(cell.path)]
            else:
                against, reference = ("recorded" if record_replica else "band"), stored
            cfg = grid.config(cell)
            threads = ran_on.get("torch_threads", before)
            torch.set_num_threads(threads)
            t = time.perf_counter()
            if _json_round(cfg.to_dict()) != stored["config"]:
                checks.append(Check(cell, against, "its config no longer comes out of the code and the grid"))
                log(f"{cell.path}: config differs")
                continue
            res = run_config(cfg, device="cpu", quiet=True, data_root=data_root)
            new = _json_round(res.summary)
            if against in ("store", "replica"):
                check = _exact(cell, against, new, reference, ran_on, stored)
            else:
                check = _in_band(out, cell, against, new, stored, ran_on, here)
                if check.problem is None and against == "recorded":
                    mine = _record(out, replicas, mine, here, cell, new)
            checks.append(check)
            source = "from the run cache" if res.cached else f"{time.perf_counter() - t:.0f} s"
            log(f"{cell.path}: {check.problem or check.detail} ({source}, {threads} threads)")
    finally:
        torch.set_num_threads(before)
    return checks


def _exact(cell, against, new, reference, ran_on, stored) -> Check:
    bad = [k for k in REPRODUCED if new[k] != reference.get(k)]
    where = "its result.json" if against == "store" else "the replica of this CPU kind"
    if bad:
        epochs = [i + 1 for i, (a, b) in enumerate(zip(new["history"], reference["history"])) if a != b]
        since = f" (history differs from epoch {epochs[0]})" if epochs else ""
        return Check(cell, against, f"{', '.join(bad)} differ from {where}{since}")
    detail = f"identical to {where}"
    if against == "replica":
        detail += (
            f"; last epoch {new['final_test_acc']:.2f} here, {stored['final_test_acc']:.2f} in result.json "
            f"({describe_cpu_kind(ran_on)})"
        )
    return Check(cell, against, None, detail)


def _in_band(out, cell, against, new, stored, ran_on, here) -> Check:
    bad = [k for k in _CPU_FREE if new[k] != stored.get(k)]
    if len(new["history"]) != len(stored["history"]):
        bad.append("number of epochs")
    if bad:
        return Check(
            cell, against, f"{', '.join(bad)} differ from its result.json (on any CPU they must not)"
        )
    parts, problems = [], []
    for key, name in (("final_test_acc", "last epoch"), ("mean_last10_test_acc", "mean of the last 10")):
        band = seed_band(out, cell, key, new[key])
        if band is None:
            return Check(
                cell, against,
                f"ran on {describe_cpu_kind(ran_on)}, this CPU is {describe_cpu_kind(here)}, no replica of this "
                "kind is recorded, and the grid has too few seeds for a band",
            )  # fmt: skip
        delta = new[key] - stored[key]
        parts.append(f"{name} {new[key]:.2f} vs {stored[key]:.2f} ({delta:+.2f}, band ±{band:.2f})")
        if abs(delta) > band:
            problems.append(
                f"{name} {new[key]:.2f} is {abs(delta):.2f} from {stored[key]:.2f}, outside ±{band:.2f}"
            )
    kind = f"another CPU kind ({describe_cpu_kind(ran_on)} ran it), compared in the seed band"
    if problems:
        return Check(cell, against, f"{kind}: {'; '.join(problems)}")
    return Check(cell, against, None, f"{kind}: {', '.join(parts)}")


def _record(out: Path, replicas: dict, mine: dict | None, here: dict, cell: Cell, new: dict) -> dict:
    """Add ``cell``'s re-run to the replica of this CPU kind (written at once)."""
    if mine is None:
        mine = {
            "machine": machine(),
            "recorded": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "cells": {},
        }
        replicas["replicas"].append(mine)
    mine["cells"][str(cell.path)] = {k: new[k] for k in REPRODUCED}
    _write_json(out / REPLICA_FILE, replicas)
    return mine


def verify_cells(
    out: str | Path,
    cells: Sequence[Cell] | None = None,
    *,
    data_root=None,
    log: Callable[[str], None] = print,
) -> list[tuple[Cell, str]]:
    """:func:`verify`, as ``(cell, problem)`` pairs of the cells that failed; an empty list
    means every cell reproduced."""
    return [(c.cell, c.problem) for c in verify(out, cells, data_root=data_root, log=log) if c.problem]
