"""``lnl bench`` and ``lnl verify``: resumable grids, a table that is what the result files say,
and re-runs that catch a number the code no longer produces."""

from __future__ import annotations

import json
import math
import statistics

import pytest

from lnl_core import LNLError, bench
from lnl_core.cli import main as cli

TINY = {"train_size": "300", "test_size": "100", "epochs": "2", "batch_size": "64"}


def _grid(**kw):
    args = dict(methods=["ce", "gce+q=0.5"], settings=["symmetric:0.5"], seeds=[0, 1], overrides=TINY)
    args.update(kw)
    return bench.make_grid(**args)


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """A grid run in one go: the reference for the resumed one."""
    out = tmp_path_factory.mktemp("grid") / "g"
    bench.run_grid(_grid(), out, quiet=True, log=lambda s: None)
    return out


def _histories(out):
    return {c: r["history"] for c, r in bench.load_results(out).items()}


def test_a_killed_grid_resumes_without_rerunning_finished_cells(tmp_path, monkeypatch, straight):
    out, calls = tmp_path / "g", []
    original = bench.run_config

    def killed_in_third_cell(cfg, **kw):
        calls.append((cfg.method, cfg.seed, kw["resume"]))
        if len(calls) == 3:  # one epoch of the third cell is written, then the process "dies"
            original(cfg, **dict(kw, stop_after=1))
            raise KeyboardInterrupt
        return original(cfg, **kw)

    monkeypatch.setattr(bench, "run_config", killed_in_third_cell)
    with pytest.raises(KeyboardInterrupt):
        bench.run_grid(_grid(), out, quiet=True, log=lambda s: None)
    assert len(bench.load_results(out)) == 2
    calls.clear()
    monkeypatch.setattr(bench, "run_config", lambda cfg, **kw: calls.append((cfg.method, cfg.seed, kw["resume"])) or original(cfg, **kw))  # fmt: skip
    bench.run_grid(None, out, quiet=True, log=lambda s: None)  # continue the grid in `out`
    assert calls == [
        ("ce", 1, True),
        ("gce", 1, False),
    ]  # the killed cell resumes, the finished ones are not rerun
    assert _histories(out) == _histories(straight)  # bit-identical to the grid run in one go
    record = json.loads((out / "bench.json").read_text())
    assert [len(s["cells_run"]) for s in record["sessions"]] == [2, 2]
    assert sorted(p.name for p in (out / "ce/symmetric-0.50/seed1").iterdir()) == [
        "config.json",
        "result.json",
    ]
    calls.clear()
    bench.run_grid(_grid(), out, quiet=True, log=lambda s: None)  # all finished: nothing runs
    assert calls == []


def test_the_table_is_what_the_result_files_say(straight):
    rows = {r["method"]: r for r in bench.summary_rows(straight)}
    assert set(rows) == {"ce", "gce+q=0.5"}
    for method, row in rows.items():
        files = [
            json.loads((straight / method / "symmetric-0.50" / f"seed{s}" / "result.json").read_text())
            for s in (0, 1)
        ]
        last = [f["final_test_acc"] for f in files]
        assert row["last"] == pytest.approx(statistics.mean(last))
        assert row["last_sd"] == pytest.approx(statistics.stdev(last))  # sample sd over seeds
        assert row["last10"] == pytest.approx(statistics.mean(f["mean_last10_test_acc"] for f in files))
        assert row["peak"] == pytest.approx(statistics.mean(f["best_test_acc"] for f in files))
        assert row["s_per_epoch"] == pytest.approx(statistics.mean(f["wall_time_s"] for f in files) / 2)
        assert row["seeds"] == [0, 1]
    text = bench.format_table(bench.summary_rows(straight))
    assert f"{rows['ce']['last']:6.2f} ± {rows['ce']['last_sd']:4.2f}" in text
    assert "same noisy labels" in text
    # the variant's hyperparameter reached its cells; the noisy labels are shared across methods
    gce = json.loads((straight / "gce+q=0.5/symmetric-0.50/seed0/result.json").read_text())
    ce = json.loads((straight / "ce/symmetric-0.50/seed0/result.json").read_text())
    assert gce["config"]["hp"]["q"] == 0.5 and gce["noisy_labels_sha256"] == ce["noisy_labels_sha256"]


def test_cells_with_different_noisy_labels_are_refused(straight, tmp_path):
    import shutil

    out = tmp_path / "g"
    shutil.copytree(straight, out)
    path = out / "gce+q=0.5/symmetric-0.50/seed1/result.json"
    r = json.loads(path.read_text())
    path.write_text(json.dumps(dict(r, noisy_labels_sha256="0" * 64)))
    with pytest.raises(LNLError, match="did not train on the same noisy labels"):
        bench.summary_rows(out)


def test_verify_reproduces_the_grid_and_catches_a_changed_number(straight, tmp_path):
    import shutil

    assert bench.sample_cells(bench.load_grid(straight)[0]) == [
        bench.Cell("ce", "symmetric", 0.5, 0), bench.Cell("gce+q=0.5", "symmetric", 0.5, 1)
    ]  # fmt: skip
    assert bench.verify_cells(straight, log=lambda s: None) == []
    out = tmp_path / "g"
    shutil.copytree(straight, out)
    path = out / "ce/symmetric-0.50/seed0/result.json"
    r = json.loads(path.read_text())
    r["history"][1]["test_acc"] += 0.01  # a hand-edited number
    path.write_text(json.dumps(r))
    (problem,) = bench.verify_cells(out, log=lambda s: None)
    assert problem[0].method == "ce" and "history differs from epoch 2" in problem[1]
    assert cli(["verify", str(out)]) == 1


def test_on_another_cpu_kind_verify_uses_the_seed_band_then_the_replica_it_records(
    straight, tmp_path, monkeypatch, capsys
):
    """Bits depend on the CPU kind: with no record of this kind, a re-run is held to the seed
    band (and a number edited outside it fails); --record-replica stores the re-runs, and later
    runs on that kind compare with them bit for bit."""
    import shutil

    out = tmp_path / "g"
    shutil.copytree(straight, out)
    with pytest.raises(LNLError, match="of the kind that ran these cells.*nothing to replicate"):
        bench.verify(out, record_replica=True, log=lambda s: None)  # this CPU ran the grid
    monkeypatch.setattr(bench, "cpu_kind", lambda: {"cpu": "Imaginary CPU 9000", "cpu_capability": "AVX2"})
    ce0 = bench.Cell("ce", "symmetric", 0.5, 0)
    finals = [json.loads((out / f"ce/symmetric-0.50/seed{s}/result.json").read_text())["final_test_acc"] for s in (0, 1)]  # fmt: skip
    band = bench.seed_band(out, ce0)
    assert band == pytest.approx(
        63.6567 * math.sqrt(2) * statistics.stdev(finals), rel=1e-5
    )  # t(0.995, 1 df)
    checks = bench.verify(out, log=lambda s: None)
    assert [(c.against, c.problem) for c in checks] == [("band", None), ("band", None)]
    assert f"band ±{band:.2f}" in checks[0].detail
    assert cli(["verify", str(out)]) == 0
    assert "0 of 2 cells reproduced bit for bit; 2 only within the seed band" in capsys.readouterr().out
    path = out / ce0.path / "result.json"
    original = path.read_text()
    r = json.loads(original)
    r["final_test_acc"] += band + 1.0  # a hand-edited headline, outside the band
    path.write_text(json.dumps(r))
    (check, other) = bench.verify(out, record_replica=True, log=lambda s: None)
    assert "outside ±" in check.problem and other.against == "recorded" and other.problem is None
    replica = json.loads((out / bench.REPLICA_FILE).read_text())["replicas"]
    assert [list(x["cells"]) for x in replica] == [["gce+q=0.5/symmetric-0.50/seed1"]]  # not the failed one
    assert replica[0]["machine"]["cpu"] == "Imaginary CPU 9000"
    path.write_text(original)
    checks = bench.verify(out, record_replica=True, log=lambda s: None)  # the missing cell is added
    assert [c.against for c in checks] == ["recorded", "replica"] and not any(c.problem for c in checks)
    assert [c.against for c in bench.verify(out, log=lambda s: None)] == ["replica", "replica"]
    assert cli(["verify", str(out)]) == 0
    assert "2 of 2 cells reproduced bit for bit (2 against the replica" in capsys.readouterr().out
    record = json.loads((out / bench.REPLICA_FILE).read_text())
    record["replicas"][0]["cells"][str(ce0.path)]["history"][1]["test_acc"] += 0.01
    (out / bench.REPLICA_FILE).write_text(json.dumps(record))
    (problem,) = bench.verify_cells(out, log=lambda s: None)
    assert problem[1] == "history differ from the replica of this CPU kind (history differs from epoch 2)"
    r = json.loads(original)
    r["noisy_labels_sha256"] = "0" * 64  # the same on every CPU: always exact
    path.write_text(json.dumps(r))
    monkeypatch.setattr(bench, "cpu_kind", lambda: {"cpu": "Another CPU", "cpu_capability": "AVX512"})
    (problem,) = bench.verify_cells(out, log=lambda s: None)
    assert problem[1].startswith("noisy_labels_sha256 differ from its result.json (on any CPU")


def test_bad_grids_fail_before_anything_is_written(straight, tmp_path, capsys):
    before = (straight / "bench.json").read_text()
    with pytest.raises(LNLError, match="holds another grid"):
        bench.run_grid(
            _grid(profile="reduced", seeds=[0]), straight, quiet=True, log=lambda s: None
        )  # drops cells
    with pytest.raises(LNLError, match="holds another grid"):
        bench.run_grid(_grid(overrides=dict(TINY, lr="0.01")), straight, quiet=True, log=lambda s: None)
    assert (straight / "bench.json").read_text() == before
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(LNLError, match="not a benchmark grid"):
        bench.run_grid(_grid(), tmp_path / "other", quiet=True, log=lambda s: None)
    for kw, message in (
        (dict(methods=["ce", "nope"]), "unknown method 'nope'"),
        (dict(methods=["ce+lr"]), "NAME\\+KEY=VALUE"),
        (dict(settings=["symmetric"]), "KIND:RATE"),
        (dict(settings=["symmetric:1.5"]), "noise rate must be in"),
        (dict(seeds=[0, 0]), "lists seeds twice"),
    ):
        with pytest.raises(LNLError, match=message):
            _grid(**kw)
    assert cli(["bench", "--out", str(tmp_path / "new"), "--methods", "ce"]) == 2
    assert "needs --methods, --noise and --seeds" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()
    assert cli(["bench", "--out", str(tmp_path / "none"), "--table"]) == 2
    assert cli(["bench", "--out", str(straight), "--table"]) == 0
    assert "gce+q=0.5" in capsys.readouterr().out


def test_sample_cells_cover_every_method_setting_and_seed():
    grid = bench.Grid(
        "reduced", "fashion_mnist", tuple("abcdef"), (("symmetric", 0.5), ("asymmetric", 0.4)), (0, 1, 2)
    )
    cells = bench.sample_cells(grid)
    assert [c.method for c in cells] == list("abcdef")
    assert {c.setting for c in cells} == set(grid.settings) and {c.seed for c in cells} == {0, 1, 2}
    assert math.isnan(bench._mean_sd([1.0])[1])


def test_the_instructor_guide_assignments_are_valid_grids():
    """Every `lnl bench` command of book/instructor-guide.md builds its grid (no typo in a method,
    variant key or noise setting), and every chapter has exactly one graded assignment."""
    import re
    import shlex
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    guide = (root / "book" / "instructor-guide.md").read_text()
    commands = re.findall(r"`(lnl bench [^`]+)`", guide.replace("\n  ", " "))
    grids = 0
    for command in commands:
        args = shlex.split(command)
        if "--methods" not in args:
            continue
        parts, key = {}, None
        for a in args[2:]:
            if a.startswith("--"):
                key = a[2:]
                parts[key] = []
            elif key:
                parts[key].append(a)
        bench.make_grid(
            methods=parts["methods"], settings=parts["noise"], seeds=[int(s) for s in parts["seeds"]]
        )
        grids += 1
    chapters = sorted(p.stem for p in (root / "notebooks").glob("*.ipynb"))
    assert grids >= len(chapters) - 1  # chapter 8's assignment builds its grid in the chapter's code
    assert guide.count("* **Assignment:**") == len(chapters)
    assert all(f"{{doc}}`../notebooks/{c}`" in guide for c in chapters)


def test_run_grid_records_its_thread_count_and_restores_the_callers(tmp_path):
    import torch

    before = torch.get_num_threads()
    grid = _grid(methods=["ce"], seeds=[0], overrides=dict(TINY, epochs="1"))
    bench.run_grid(grid, tmp_path / "g", threads=1, quiet=True, log=lambda s: None)
    assert torch.get_num_threads() == before
    record = json.loads((tmp_path / "g" / "bench.json").read_text())
    assert record["sessions"][0]["machine"]["torch_threads"] == 1


def test_verify_chosen_cells(straight, capsys):
    assert cli(["verify", str(straight), "--cells", "ce/symmetric-0.50/seed1"]) == 0
    assert "1 of 1 cells reproduced bit for bit" in capsys.readouterr().out
    assert cli(["verify", str(straight), "--cells", "ce/symmetric-0.50/seed7"]) == 2
    assert "not cells of the grid" in capsys.readouterr().err
    assert cli(["verify", str(straight), "--all", "--cells", "ce/symmetric-0.50/seed1"]) == 2
