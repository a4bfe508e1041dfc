"""CI's store check (scripts/ci_cells.py) re-runs at least one cell per method of every committed
grid, and every noise setting and seed among them."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from lnl_core import bench

ROOT = Path(__file__).resolve().parents[1]


def _ci_cells():
    spec = importlib.util.spec_from_file_location("ci_cells", ROOT / "scripts" / "ci_cells.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.CELLS


def test_every_committed_grid_is_checked_for_every_method_setting_and_seed():
    cells = _ci_cells()
    committed = {
        str(p.parent.relative_to(ROOT)) for p in (ROOT / "benchmarks" / "results").glob("*/bench.json")
    }
    assert set(cells) == committed
    for grid_dir, paths in cells.items():
        grid, _ = bench.load_grid(ROOT / grid_dir)
        by_path = {str(c.path): c for c in grid.cells()}
        assert all(p in by_path for p in paths), [p for p in paths if p not in by_path]
        chosen = [by_path[p] for p in paths]
        assert {c.method for c in chosen} == set(grid.methods)
        assert {c.setting for c in chosen} == set(grid.settings)
        assert {c.seed for c in chosen} == set(grid.seeds)
        assert all((ROOT / grid_dir / p / "result.json").is_file() for p in paths)
