"""Benchmark grids on a Ray cluster: ``lnl bench --executor ray``.

Every unfinished cell of a grid becomes one Ray task that runs :func:`lnl_core.bench.run_cell`,
the code the sequential executor runs, and writes the cell's run directory into the grid's
directory. On a cluster that directory must lie on a file system that every node sees at the
same path, and every node needs the same ``lnl_core`` (and data). The driver, the process that
calls :func:`run_grid_ray`, submits the tasks, shows one progress bar over cells and alone writes
``bench.json``.

What a task asks Ray for: one GPU when the driver sees CUDA (``gpus_per_cell`` overrides this, for
a driver on a node without a GPU), and ``threads`` CPUs, which is also the torch thread count the
task sets before its cell runs. A CPU cell is then bit-identical to the same cell run by
:func:`~lnl_core.bench.run_grid` with that many threads on the same kind of CPU.

Faults. A task whose worker dies (killed, out of memory, its node lost) is run again by Ray, up to
``MAX_RETRIES`` times, and :func:`~lnl_core.bench.run_cell` resumes the cell from the checkpoint
that the dead try left, so its history is the same, bit for bit. A cell that raises is not run
again in this session: the task returns its error, the cell's ``error.json`` keeps it, and the
other cells go on; the next run of the grid tries the failed cells again and skips the finished
ones.

Where cells ran. Each task returns the :func:`~lnl_core.bench.machine` that ran it and its
seconds. ``bench.json`` gets one session per distinct machine record (``"executor": "ray"``),
whose ``cells_run`` lists the cells that finished there and whose ``seconds`` adds up their
tasks' times, so :func:`~lnl_core.bench.verify` finds, for every cell, the kind of CPU and the
thread count that made it, as for a grid run sequentially.

Ray is an optional dependency (``pip install -e ".[ray]"``); importing this module does not
import it, and ``import lnl_core`` does not import this module.
"""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from . import bench
from .bench import GRID_FILE, Cell, Grid, _write_json
from .errors import LNLError

MAX_RETRIES = 3  # runs of a task after its worker died; each resumes from the cell's checkpoint
INSTALL = 'pip install -e ".[ray]" in the repository, or pip install "ray>=2.9"'


def import_ray():
    """The ``ray`` module, or an :class:`~lnl_core.errors.LNLError` that says how to install it."""
    try:
        import ray
    except ImportError:
        raise LNLError(f"--executor ray needs Ray, which is not installed: {INSTALL}") from None
    return ray


def run_grid_ray(
    grid: Grid | None,
    out: str | Path,
    *,
    address: str | None = None,
    cells_at_once: int | None = None,
    device: str = "auto",
    threads: int | None = None,
    gpus_per_cell: float | None = None,
    keep_run_files: bool = False,
    quiet: bool = False,
    data_root=None,
    download: bool = False,
    log: Callable[[str], None] = print,
) -> tuple[list[dict[str, Any]], dict[Cell, str]]:
    """Run every unfinished cell of ``grid`` into ``out`` as Ray tasks; return
    :func:`~lnl_core.bench.summary_rows` of the finished cells and the error of every cell that
    failed (``{cell: "Type: message"}``).

    ``grid``, ``out``, ``device``, ``keep_run_files``, ``data_root`` and ``download`` are as in
    :func:`~lnl_core.bench.run_grid`, and so are the checks made before anything is written.
    ``address``: the cluster, ``"auto"`` or ``"HOST:PORT"``; ``None`` starts a local Ray on this
    machine and stops it at the end. A process already connected to Ray (``ray.init`` called
    before) uses that connection and keeps it. ``cells_at_once`` caps the tasks submitted at a
    time (default: all; Ray runs as many as the cluster's CPUs and GPUs take). ``threads``: torch
    threads and Ray CPUs per cell (default 1). ``gpus_per_cell``: default 1 where this process
    sees CUDA and ``device`` is not ``"cpu"``, else 0; a cell without a GPU runs on the CPU.
    """
    ray = import_ray()
    threads = 1 if threads is None else threads
    bench.check_threads(threads)
    if cells_at_once is not None and cells_at_once < 1:
        raise LNLError(f"cells at once must be at least 1, got {cells_at_once}")
    if gpus_per_cell is None:
        gpus_per_cell = 1.0 if device != "cpu" and torch.cuda.is_available() else 0.0
    elif gpus_per_cell < 0:
        raise LNLError(f"GPUs per cell must be at least 0, got {gpus_per_cell}")
    if gpus_per_cell == 0 and device == "auto":
        device = "cpu"  # a CPU task on a GPU node leaves the GPUs to the tasks that asked for them
    out = Path(out).resolve()  # the workers' working directory may differ from this one
    data_root = None if data_root is None else str(Path(data_root).resolve())
    grid, record, todo = bench.prepare_grid(grid, out)  # raises before anything is written

    started = bool(todo) and not ray.is_initialized()  # a Ray this call starts or joins, and leaves
    if started:
        try:
            if address is None:
                ray.init(address="local", include_dashboard=False)
            else:
                ray.init(address=address)
        except ConnectionError as exc:
            raise LNLError(f"cannot reach the Ray cluster at {address}: {exc}") from None
    try:
        out.mkdir(parents=True, exist_ok=True)
        _write_json(out / GRID_FILE, record)
        n = len(grid.cells())
        log(f"{n} cells, {n - len(todo)} finished, {len(todo)} to run in {out} as Ray tasks")
        task = ray.remote(_cell_task).options(
            num_cpus=threads, num_gpus=gpus_per_cell, max_retries=MAX_RETRIES, retry_exceptions=False
        )
        options = dict(
            threads=threads, device=device, keep_run_files=keep_run_files, data_root=data_root,
            download=download,
        )  # fmt: skip
        failures = _run_tasks(
            ray, lambda cell: task.remote(out, grid, cell, **options), todo, cells_at_once or len(todo),
            out=out, record=record, quiet=quiet, log=log,
        )  # fmt: skip
    finally:
        if started:
            ray.shutdown()
    return bench.summary_rows(out), {c: failures[c] for c in todo if c in failures}  # in grid order


def _cell_task(out: Path, grid: Grid, cell: Cell, *, threads: int, **options) -> dict[str, Any]:
    """One cell in a Ray worker: ``{"machine", "seconds"}``, or ``{"error"}`` if the cell raised."""
    torch.set_num_threads(threads)  # a worker runs one task after another: set it for every cell
    t0 = time.perf_counter()
    try:
        bench.run_cell(out, grid, cell, **options)
    except Exception as exc:  # the cell's own failure (error.json has its traceback): not retried
        return {"error": bench.error_line(exc)}
    return {"machine": bench.machine(), "seconds": time.perf_counter() - t0}


def _run_tasks(ray, submit, todo, at_once, *, out, record, quiet, log) -> dict[Cell, str]:
    """Submit the cells of ``todo`` (``submit(cell)``: its task), at most ``at_once`` at a time,
    and record each as its task ends: its machine in ``bench.json``, or its error. Returns the
    errors."""
    from tqdm.auto import tqdm

    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    sessions: dict[str, dict[str, Any]] = {}  # one per distinct machine record
    failures: dict[Cell, str] = {}
    waiting, running = list(todo), {}
    bar = tqdm(total=len(todo), desc="cells", unit="cell", disable=not (bench.show_progress(quiet) and todo))
    while waiting or running:
        while waiting and len(running) < at_once:
            cell = waiting.pop(0)
            running[submit(cell)] = cell
        (ref,), _ = ray.wait(list(running), num_returns=1)
        cell = running.pop(ref)
        try:
            report = ray.get(ref)
        except ray.exceptions.RayError as exc:  # its worker died more than MAX_RETRIES times
            report = {"error": bench.error_line(exc)}
            bench.write_error(out / cell.path, report["error"])
        if "error" in report:
            failures[cell] = report["error"]
            log(f"{cell.path}: {report['error']}")
        else:
            key = json.dumps(report["machine"], sort_keys=True)
            if key not in sessions:
                sessions[key] = {
                    "started": now, "executor": "ray", "machine": report["machine"], "cells_run": [],
                    "seconds": 0.0,
                }  # fmt: skip
                record["sessions"].append(sessions[key])
            session = sessions[key]
            session["cells_run"].append(str(cell.path))
            session["seconds"] = round(session["seconds"] + report["seconds"], 1)
            _write_json(out / GRID_FILE, record)
        bar.set_postfix_str(str(cell.path))
        bar.update(1)
    bar.close()
    return failures
