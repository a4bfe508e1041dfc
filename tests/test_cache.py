"""The run cache (``LNL_RUN_CACHE``): a cached run is the trained run, bit for bit, and any change
of config, code or thread count is another run."""

from __future__ import annotations

import json

import pytest
import torch

from lnl_core import bench, cache, run_experiment

CE = {"train_size": 300, "test_size": 100, "epochs": 3}
TINY = dict(CE, warmup_epochs=1)  # DivideMix


@pytest.fixture
def run_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


def _same_run(a, b):
    assert json.dumps(a.history) == json.dumps(b.history)  # NaN-safe
    for key in ("final_test_acc", "mean_last10_test_acc", "best_test_acc", "noisy_labels_sha256"):
        assert a.summary[key] == b.summary[key], key
    assert set(a.output.models) == set(b.output.models)
    for name, model in a.output.models.items():
        theirs = b.output.models[name].state_dict()
        assert all(torch.equal(v, theirs[k]) for k, v in model.state_dict().items()), name
    assert set(a.output.state) == set(b.output.state)
    assert all(torch.equal(v, b.output.state[k]) for k, v in a.output.state.items())


def test_a_cached_run_is_the_trained_run(run_cache, monkeypatch, capsys):
    monkeypatch.delenv(cache.ENV)
    plain = run_experiment("dividemix", overrides=TINY, quiet=True)  # no cache at all
    after_plain = torch.get_rng_state()
    monkeypatch.setenv(cache.ENV, str(run_cache))
    first = run_experiment("dividemix", overrides=TINY, quiet=True)
    assert not first.cached and "run cache" not in capsys.readouterr().out
    assert len(list(run_cache.iterdir())) == 1
    second = run_experiment("dividemix", overrides=TINY, quiet=True)
    assert second.cached
    assert "run cache: dividemix" in capsys.readouterr().out  # a hit says so, even when quiet
    assert torch.equal(torch.get_rng_state(), after_plain)  # the random state training left, too
    for other in (first, second):
        _same_run(plain, other)
    for key in ("clean_prob", "predicted_label"):
        assert plain.samples["columns"][key].tolist() == second.samples["columns"][key].tolist()
    assert (plain.samples["pred_probs"] == second.samples["pred_probs"]).all()


def test_a_hit_writes_a_complete_run_directory(run_cache, tmp_path):
    run_experiment("ce", overrides=CE, quiet=True)
    hit = run_experiment("ce", overrides=CE, quiet=True, out=tmp_path / "run")
    assert hit.cached
    names = {p.name for p in (tmp_path / "run").iterdir()}
    assert {"config.json", "noisy_labels.npz", "checkpoint.pt", "metrics.csv", "result.json"} <= names
    saved = json.loads((tmp_path / "run" / "result.json").read_text())
    assert saved["history"] == json.loads(json.dumps(hit.history))


def test_any_change_of_config_code_or_threads_misses(run_cache, monkeypatch):
    run_experiment("ce", overrides=CE, quiet=True)
    assert run_experiment("ce", overrides=CE, quiet=True).cached
    assert not run_experiment("ce", overrides=dict(CE, lr=0.04), quiet=True).cached  # config
    assert not run_experiment("ce", overrides=CE, seed=1, quiet=True).cached  # config (seed)
    before = torch.get_num_threads()
    torch.set_num_threads(1 if before != 1 else 2)
    try:
        assert not run_experiment("ce", overrides=CE, quiet=True).cached  # thread count
    finally:
        torch.set_num_threads(before)
    monkeypatch.setattr(cache, "code_version", lambda: "another version of the code")
    assert not run_experiment("ce", overrides=CE, quiet=True).cached  # code
    monkeypatch.undo()
    assert cache.code_version() != "another version of the code"


def test_the_code_version_covers_every_source_file(tmp_path):
    import shutil
    from pathlib import Path

    import lnl_core

    version = cache.code_version()
    assert len(version) == 64 and version == cache.source_digest(Path(lnl_core.__file__).parent)
    copy = tmp_path / "lnl_core"
    shutil.copytree(Path(lnl_core.__file__).parent, copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert cache.source_digest(copy) == version
    trainer = copy / "trainers" / "standard.py"
    trainer.write_text(trainer.read_text() + "\n# an edit\n")
    assert cache.source_digest(copy) != version  # a trainer's edit is another version
    trainer.rename(copy / "trainers" / "renamed.py")
    assert cache.source_digest(copy) != version


def test_partial_and_resumed_runs_are_not_cached(run_cache, tmp_path):
    run_experiment("ce", overrides=CE, quiet=True, out=tmp_path / "a", stop_after=1)
    assert not run_cache.exists() or not any(run_cache.iterdir())
    run_experiment("ce", overrides=CE, quiet=True, out=tmp_path / "a", resume=True)
    assert not run_cache.exists() or not any(run_cache.iterdir())


def test_bench_and_verify_use_the_cache(run_cache, tmp_path):
    overrides = {k: str(v) for k, v in CE.items()}
    grid = bench.make_grid(methods=["ce"], settings=["symmetric:0.5"], seeds=[0], overrides=overrides)
    bench.run_grid(grid, tmp_path / "a", quiet=True, log=lambda s: None)
    lines = []
    bench.run_grid(grid, tmp_path / "b", quiet=True, log=lines.append)
    a, b = bench.load_results(tmp_path / "a"), bench.load_results(tmp_path / "b")
    assert [{k: r[k] for k in bench.REPRODUCED} for r in a.values()] == [
        {k: r[k] for k in bench.REPRODUCED} for r in b.values()
    ]
    checks = bench.verify(tmp_path / "a", log=lines.append)
    assert [c.problem for c in checks] == [None]
    assert any("from the run cache" in line for line in lines)
