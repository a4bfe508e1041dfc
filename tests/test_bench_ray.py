"""``lnl bench --executor ray``: cells as Ray tasks on one local cluster (per module), bit-identical
to the sequential executor; a killed worker's cell resumes from its checkpoint; a failing cell is
reported while the others finish; ``lnl bench --status`` from the files alone.

Select with ``pytest -m ray``. The tests that need Ray skip when it is not installed; the others
(the failure record, the status, the message without Ray) run with or without it."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from lnl_core import bench
from lnl_core.cli import main as cli

pytestmark = pytest.mark.ray
needs_ray = pytest.mark.skipif(
    importlib.util.find_spec("ray") is None, reason="ray is not installed (pip install -e '.[ray]')"
)

TINY = {"train_size": "200", "test_size": "100", "epochs": "2"}
PAUSE = "LNL_TEST_PAUSE"  # the folder through which a test asks a worker to pause (_pause_hook)


def _grid(methods=("ce", "sce"), seeds=(0, 1)):
    return bench.make_grid(methods=methods, settings=["symmetric:0.5"], seeds=seeds, overrides=TINY)


def _pause_hook():
    """Set-up of every Ray worker of this module's cluster: when the folder ``$LNL_TEST_PAUSE``
    holds a file ``target`` naming a cell, the first worker that runs that cell writes its PID
    to ``pid`` after the cell's first epoch (its checkpoint written) and sleeps, to be killed.
    Every epoch of that cell is logged as ``pid resumed epoch``."""
    from lnl_core.engine import Run

    folder = Path(os.environ[PAUSE])
    original = Run.end_epoch

    def end_epoch(self, record, *, models):
        full = original(self, record, models=models)
        target = folder / "target"
        if target.is_file() and self.run_dir is not None and str(self.run_dir).endswith(target.read_text()):
            with open(folder / "log", "a") as f:
                f.write(f"{os.getpid()} {self.resume} {full['epoch']}\n")
            if not (folder / "pid").exists():
                (folder / "pid.tmp").write_text(str(os.getpid()))
                (folder / "pid.tmp").replace(folder / "pid")
                time.sleep(300)
        return full

    Run.end_epoch = end_epoch


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """One small local Ray for the module (2 CPUs, no dashboard); yields the pause folder."""
    import ray

    folder = tmp_path_factory.mktemp("pause")
    path = os.pathsep.join(p for p in (str(Path(__file__).parent), os.environ.get("PYTHONPATH")) if p)
    ray.init(
        num_cpus=2, include_dashboard=False, log_to_driver=False,
        runtime_env={
            "env_vars": {"PYTHONPATH": path, PAUSE: str(folder)},
            "worker_process_setup_hook": f"{Path(__file__).stem}._pause_hook",
        },
    )  # fmt: skip
    yield folder
    ray.shutdown()


@pytest.fixture(scope="module")
def sequential(tmp_path_factory):
    """The grid run by the sequential executor with one torch thread: the reference."""
    out = tmp_path_factory.mktemp("sequential") / "g"
    before = torch.get_num_threads()
    try:
        bench.run_grid(_grid(), out, threads=1, quiet=True, log=lambda s: None)
    finally:
        torch.set_num_threads(before)
    return out


def _assert_same_results(out, reference):
    """Every cell's config, history and headline numbers identical, bit for bit."""
    ours, theirs = bench.load_results(out), bench.load_results(reference)
    assert set(ours) == set(theirs) == set(_grid().cells())
    for cell, r in ours.items():
        for key in ("config", *bench.REPRODUCED):
            assert r[key] == theirs[cell][key], f"{cell.path}: {key} differs"


def _run_ray(out, **kw):
    from lnl_core.bench_ray import run_grid_ray

    return run_grid_ray(_grid(), out, threads=1, quiet=True, log=lambda s: None, **kw)


@needs_ray
def test_a_grid_on_ray_is_bit_identical_to_the_sequential_one(cluster, sequential, tmp_path):
    out = tmp_path / "g"
    rows, failures = _run_ray(out, cells_at_once=2)
    assert failures == {} and [r["method"] for r in rows] == ["ce", "sce"]
    _assert_same_results(out, sequential)
    for cell in _grid().cells():
        assert sorted(p.name for p in (out / cell.path).iterdir()) == ["config.json", "result.json"]
    # every cell is in the cells_run of one session, whose machine ran it with one thread
    sessions = json.loads((out / bench.GRID_FILE).read_text())["sessions"]
    ran = [path for s in sessions for path in s["cells_run"]]
    assert sorted(ran) == sorted(str(c.path) for c in _grid().cells())
    assert all(s["executor"] == "ray" and s["machine"]["torch_threads"] == 1 for s in sessions)
    (check,) = bench.verify(out, [bench.Cell("sce", "symmetric", 0.5, 1)], log=lambda s: None)
    assert (check.against, check.problem) == ("store", None)  # lnl verify finds the machine of the cell
    assert _run_ray(out) == (rows, {})  # all finished: nothing runs


@needs_ray
def test_a_cell_whose_worker_is_killed_resumes_from_its_checkpoint(cluster, sequential, tmp_path):
    out, target = tmp_path / "g", bench.Cell("sce", "symmetric", 0.5, 1).path
    seen = {}

    def kill_when_paused():
        deadline = time.monotonic() + 120
        while not (cluster / "pid").is_file() and time.monotonic() < deadline:
            time.sleep(0.05)
        seen["checkpoint"] = (out / target / "checkpoint.pt").is_file()
        seen["pid"] = int((cluster / "pid").read_text())
        os.kill(seen["pid"], signal.SIGKILL)

    (cluster / "target").write_text(str(target))
    killer = threading.Thread(target=kill_when_paused, daemon=True)
    killer.start()
    try:
        _, failures = _run_ray(out, cells_at_once=2)
    finally:
        (cluster / "target").unlink()
    killer.join(timeout=10)
    assert seen["checkpoint"] and failures == {}
    # the killed worker ran epoch 1; the retried task, in another worker, resumed at epoch 2
    killed = str(seen["pid"])
    log = [line.split() for line in (cluster / "log").read_text().splitlines()]
    assert log == [[killed, "False", "1"], [log[1][0], "True", "2"]] and log[1][0] != killed
    _assert_same_results(out, sequential)


@needs_ray
def test_a_failing_cell_is_reported_and_the_others_finish(cluster, tmp_path, capsys):
    out = tmp_path / "g"
    sets = [a for k, v in TINY.items() for a in ("--set", f"{k}={v}")]
    grid_args = ["--methods", "ce", "gce+q=0", "--noise", "symmetric:0.5", "--seeds", "0", *sets]
    ray_args = ["--executor", "ray", "--threads", "1", "--cells-at-once", "2", "--quiet"]
    assert cli(["bench", "--out", str(out), *grid_args, *ray_args]) == 1
    captured = capsys.readouterr()
    message = "gce+q=0/symmetric-0.50/seed0: ValueError: gce needs q in (0, 1], got 0.0"
    assert message in captured.out and f"lnl bench: {message}" in captured.err
    assert "ce      symmetric" in captured.out  # the summary of the finished cell
    error = json.loads((out / "gce+q=0/symmetric-0.50/seed0" / "error.json").read_text())
    assert message.endswith(error["error"]) and "Traceback" in error["traceback"]
    done = out / "ce/symmetric-0.50/seed0/result.json"
    stamp = done.stat().st_mtime_ns
    assert cli(["bench", "--out", str(out), *ray_args]) == 1  # continued: the failed cell is tried again
    assert message in capsys.readouterr().err
    assert done.stat().st_mtime_ns == stamp  # the finished cell was not run again


def test_a_failed_cell_is_tried_again_from_its_checkpoint_and_its_error_file_goes(tmp_path, monkeypatch):
    out, cell = tmp_path / "g", bench.Cell("ce", "symmetric", 0.5, 0)
    original, calls = bench.run_config, []

    def full_disk_after_one_epoch(cfg, **kw):
        original(cfg, **dict(kw, stop_after=1))
        raise OSError("No space left on device")

    monkeypatch.setattr(bench, "run_config", full_disk_after_one_epoch)
    with pytest.raises(OSError):
        bench.run_grid(_grid(methods=["ce"], seeds=[0]), out, quiet=True, log=lambda s: None)
    assert bench.cell_status(out)[cell] == ("failed", "OSError: No space left on device")
    spy = lambda cfg, **kw: calls.append(kw["resume"]) or original(cfg, **kw)
    monkeypatch.setattr(bench, "run_config", spy)
    bench.run_grid(None, out, quiet=True, log=lambda s: None)
    assert calls == [True]  # resumed from the failed try's checkpoint
    assert sorted(p.name for p in (out / cell.path).iterdir()) == ["config.json", "result.json"]
    assert bench.cell_status(out)[cell][0] == "done"


def test_status_shows_done_started_failed_and_pending_cells(tmp_path, capsys):
    out = tmp_path / "g"
    grid = _grid(methods=["ce", "gce+q=0"], seeds=[0, 1, 2])
    with pytest.raises(ValueError, match="gce needs q"):  # the sequential executor stops at a failure
        bench.run_grid(grid, out, quiet=True, log=lambda s: None)
    started = bench.Cell("ce", "symmetric", 0.5, 1)
    bench.run_config(grid.config(started), out=out / started.path, quiet=True, stop_after=1)  # then killed
    assert cli(["bench", "--status", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in lines[:6]] == [
        ["ce/symmetric-0.50/seed0", "done"],
        ["gce+q=0/symmetric-0.50/seed0", "failed"],
        ["ce/symmetric-0.50/seed1", "started"],
        ["gce+q=0/symmetric-0.50/seed1", "pending"],
        ["ce/symmetric-0.50/seed2", "pending"],
        ["gce+q=0/symmetric-0.50/seed2", "pending"],
    ]
    assert lines[1].endswith("ValueError: gce needs q in (0, 1], got 0.0")
    assert lines[2].endswith("epoch 1 of 2 done") and "last epoch" in lines[0]
    assert lines[6] == "6 cells: 1 done, 1 started, 1 failed, 3 pending"
    assert cli(["bench", "--status", str(out), "--out", str(out)]) == 2


def test_without_ray_the_ray_executor_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    out = tmp_path / "g"
    args = ["bench", "--out", str(out), "--methods", "ce", "--noise", "symmetric:0.5", "--seeds", "0"]
    assert cli([*args, "--executor", "ray"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and 'pip install -e ".[ray]"' in err
    assert not out.exists()
    assert cli([*args, "--address", "auto"]) == 2  # a Ray option without the Ray executor
    assert "belong to --executor ray" in capsys.readouterr().err and not out.exists()


def test_importing_lnl_core_does_not_import_ray():
    code = "import sys, lnl_core, lnl_core.cli, lnl_core.bench_ray; print('ray' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
