"""The run cache: within one session of checks (a CI run, one execution of the chapters), a run
that was already trained is loaded instead of trained again.

Chapters, ``lnl bench`` and ``lnl verify`` ask for the same baseline runs (DivideMix, CE, CE on
crop + flip at the same noise and seed) many times, with identical configs that give identical
bits on one machine. With ``LNL_RUN_CACHE=DIR`` set, :func:`~lnl_core.experiment.run_config`
looks for the run in ``DIR`` first; the first request trains and leaves its final checkpoint
there, later identical requests restore it and train zero epochs. A restored run is the trained
run: its history, networks, optimisers, per-sample state and random-generator states are those
that training left (``tests/test_cache.py`` checks it bit for bit).

A run is the same run only if everything that decides its bits is the same, so the key is the
SHA-256 of the full config, the package's source code (:func:`code_version`), the torch thread
count, the device, the kind of CPU and the torch version. Nothing is kept between sessions:
``scripts/test.sh`` empties the directory when it starts, so every number CI shows was produced
by the code under test in that CI run. Without the variable nothing is cached.

Runs on your own data, runs stopped early (``stop_after``), resumed runs and runs that export
every epoch are never cached.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch

from .config import RunConfig

ENV = "LNL_RUN_CACHE"
CHECKPOINT = "checkpoint.pt"
META = "meta.json"


def cache_dir() -> Path | None:
    """The cache directory from ``$LNL_RUN_CACHE``, or ``None`` (no caching)."""
    value = os.environ.get(ENV, "").strip()
    return Path(value) if value else None


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """SHA-256 of every Python source file of the package (paths and contents): any edit of the
    code, committed or not, is another version."""
    return source_digest(Path(__file__).resolve().parent)


def source_digest(root: Path) -> str:
    """SHA-256 of the relative paths and contents of every ``*.py`` file under ``root``."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def run_key(cfg: RunConfig, device: torch.device) -> str:
    """What decides a run's bits, hashed: config, code, thread count, device, CPU kind, torch."""
    from .engine import cpu_kind

    what = {
        "config": cfg.to_dict(),
        "code": code_version(),
        "threads": torch.get_num_threads(),
        "device": str(device),
        "cpu": cpu_kind() if device.type == "cpu" else None,
        "torch": torch.__version__,
    }
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()


def lookup(key: str) -> Path | None:
    """The cached final checkpoint of run ``key``, or ``None``."""
    root = cache_dir()
    if root is None:
        return None
    path = root / key / CHECKPOINT
    return path if path.is_file() else None


def store(key: str, cfg: RunConfig, write_checkpoint) -> None:
    """Keep run ``key``: ``write_checkpoint(path)`` writes its final checkpoint into a temporary
    directory, which is then renamed into place, so a reader never sees half an entry."""
    root = cache_dir()
    if root is None:
        return
    root.mkdir(parents=True, exist_ok=True)
    if (root / key / CHECKPOINT).is_file():
        return
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
    try:
        write_checkpoint(tmp / CHECKPOINT)
        meta = {
            "method": cfg.method,
            "noise": cfg.noise,
            "rate": cfg.rate,
            "seed": cfg.seed,
            "config": cfg.to_dict(),
        }
        (tmp / META).write_text(json.dumps(meta, indent=1, default=str) + "\n")
        os.replace(tmp, root / key)
    except OSError:  # another process stored the same run first: keep theirs
        shutil.rmtree(tmp, ignore_errors=True)


def describe(cfg: RunConfig, key: str) -> str:
    """The line a cache hit prints."""
    return (
        f"run cache: {cfg.method} ({cfg.dataset}, {cfg.noise} {cfg.rate:g}, seed {cfg.seed}) was trained "
        f"earlier in this session with the same config, code and threads; loaded, not trained again "
        f"(key {key[:12]})"
    )
