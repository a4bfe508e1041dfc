"""The GPU check's CPU-side logic (benchmarks/gpu_check.py): clock readings to epoch times,
phases, the extrapolation to CIFAR, the JSON record, failures and the time budget; its clear
stop without CUDA; and one end-to-end run on the CPU with the hidden ``--tiny`` sizes."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check)


def _marks(durations, evals, start=100.0, gap=0.5):
    """Clock readings for epochs of the given seconds (evaluation last), ``gap`` of the check's
    own bookkeeping after each."""
    marks, t = [], start
    for d, e in zip(durations, evals):
        marks.append((t + d - e, t + d, t + d + gap))
        t += d + gap
    return marks


def test_slug_makes_file_names_from_device_names():
    assert check.slug("NVIDIA H100 80GB HBM3") == "nvidia-h100-80gb-hbm3"
    assert check.slug("Tesla T4") == "tesla-t4"
    assert check.slug("NVIDIA A100-SXM4-40GB") == "nvidia-a100-sxm4-40gb"
    assert check.slug("Intel(R) Xeon(R) Processor") == "intel-xeon-processor"
    assert check.slug("  ") == "unknown"


def test_epoch_seconds_leave_out_the_checks_own_bookkeeping():
    epochs = check.epoch_seconds(100.0, _marks([3.0, 2.0, 2.5], [0.5, 0.4, 0.3]))
    assert [e["s"] for e in epochs] == pytest.approx([3.0, 2.0, 2.5])
    assert [e["eval_s"] for e in epochs] == pytest.approx([0.5, 0.4, 0.3])
    with pytest.raises(ValueError, match="out of order"):
        check.epoch_seconds(100.0, [(99.0, 101.0, 101.0)])


def test_phase_times_drop_the_first_epoch_of_each_phase():
    epochs = [{"s": s, "eval_s": 0.1} for s in (9.0, 1.0, 30.0, 4.0, 6.0)]
    phases = check.phase_times(epochs, warmup_epochs=2)
    assert phases["warmup"] == {"epochs_timed": [2], "s": 1.0, "eval_s": pytest.approx(0.1)}
    assert phases["main"]["epochs_timed"] == [4, 5] and phases["main"]["s"] == pytest.approx(5.0)
    assert set(check.phase_times(epochs, warmup_epochs=0)) == {"main"}
    assert check.phase_times(epochs[:3], warmup_epochs=1) == {
        "main": {"epochs_timed": [3], "s": 30.0, "eval_s": pytest.approx(0.1)}
    }  # a one-epoch warm-up is all untimed
    with pytest.raises(ValueError):
        check.phase_times(epochs, warmup_epochs=6)


def test_extrapolation_and_full_run_estimate():
    assert check.extrapolate(2.0, 5000) == pytest.approx(20.0)
    assert check.extrapolate(1.5, 1000, to=10000) == pytest.approx(15.0)
    assert check.full_run_seconds(20.0, 5.0, epochs=300, warmup_epochs=10) == pytest.approx(290 * 20 + 10 * 5)
    assert check.full_run_seconds(8.0, None, epochs=300, warmup_epochs=0) == pytest.approx(2400.0)
    with pytest.raises(ValueError):
        check.extrapolate(1.0, 0)
    with pytest.raises(ValueError):
        check.full_run_seconds(1.0, None, epochs=300, warmup_epochs=10)


def test_loss_difference_and_division_disagreement():
    ref = torch.cat([torch.full((50,), 0.1), torch.full((50,), 2.0)]) + torch.linspace(0, 0.01, 100)
    assert check.loss_difference(ref, ref) == {"max": 0.0, "mean": 0.0}
    shifted = ref.clone()
    shifted[3] += 0.25
    d = check.loss_difference(shifted, ref)
    assert d["max"] == pytest.approx(0.25) and d["mean"] == pytest.approx(0.0025)
    assert check.division_disagreement(ref, ref) == 0.0
    with pytest.raises(ValueError):
        check.loss_difference(ref, ref[:10])


def _record(method="dividemix", train_size=5000):
    cfg = check.check_config(method, "bf16")
    full = check.profile_config(method)
    warm = getattr(cfg.hp, "warmup_epochs", 0)
    seconds = [3.0, 1.0, 9.0, 2.0][: cfg.epochs] if warm else [5.0, 0.8]
    epochs = [{"s": s, "eval_s": 0.1} for s in seconds]
    losses = {"bf16_vs_fp32": {"max": 0.01, "mean": 0.001, "division_disagreement": 0.0}}
    return check.record(
        cfg=cfg, full=full, epochs=epochs, warmup_epochs=warm, train_size=train_size,
        peak_memory_bytes=2**30, selected_fraction=0.55, losses=losses, wall_s=12.0,
    )  # fmt: skip


def test_record_extrapolates_the_timed_epochs_to_cifar():
    rec = _record("dividemix")
    assert rec["config"]["epochs_run"] == 4 and rec["config"]["warmup_epochs_run"] == 2
    assert rec["config"]["profile_epochs"] == 300 and rec["config"]["profile_warmup_epochs"] == 10
    assert rec["s_per_cifar_epoch"] == pytest.approx(2.0 * 10)  # epoch 4: 2 s for 5,000 images
    assert rec["s_per_cifar_warmup_epoch"] == pytest.approx(1.0 * 10)  # epoch 2
    assert rec["full_run_hours"] == pytest.approx((290 * 20 + 10 * 10) / 3600, abs=1e-3)
    assert rec["images_per_s"] == pytest.approx(2500.0)
    plain = _record("ce")
    assert plain["config"]["epochs_run"] == 2 and plain["s_per_cifar_warmup_epoch"] is None
    assert plain["full_run_hours"] == pytest.approx(300 * 8.0 / 3600, abs=1e-3)
    cpc = check.check_config("cpc", "fp32")
    assert cpc.hp.cpc_warmup_epochs == 0 and cpc.precision == "fp32" and cpc.epochs == 4
    assert check.check_config("pemm", "bf16").noise == "symmetric-exclusive"


def test_run_check_records_failures_and_keeps_to_the_budget(monkeypatch):
    def fake(method, precision, **kw):
        if method == "gce":
            raise RuntimeError("CUDA out of memory")
        return _record("ce")

    monkeypatch.setattr(check, "measure", fake)
    lines = []
    results, failures = check.run_check(
        ["ce", "gce"], ["bf16", "fp32"], device=torch.device("cpu"), train_size=5000, test_size=1000,
        timed_epochs=1, model=None, budget_s=1e6, log=lines.append,
    )  # fmt: skip
    assert set(results) == {"ce"} and set(results["ce"]) == {"bf16", "fp32"}
    assert [(f["method"], f["precision"]) for f in failures] == [("gce", "bf16"), ("gce", "fp32")]
    assert failures[0]["error"] == "RuntimeError: CUDA out of memory"
    assert any("FAILED" in line for line in lines)

    def slow(method, precision, **kw):
        import time

        time.sleep(0.2)
        return _record("ce")

    monkeypatch.setattr(check, "measure", slow)
    results, failures = check.run_check(
        ["ce"], ["bf16", "fp32"], device=torch.device("cpu"), train_size=5000, test_size=1000,
        timed_epochs=1, model=None, budget_s=0.3, log=lines.append,
    )  # fmt: skip
    assert set(results["ce"]) == {"bf16"}
    assert failures[0]["precision"] == "fp32" and failures[0]["error"].startswith("not started")


def test_without_cuda_it_stops_with_one_line_and_writes_nothing(tmp_path):
    out = tmp_path / "gpu.json"
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "gpu_check.sh"), "--out", str(out)],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "no CUDA GPU" in proc.stderr
    assert proc.stdout == "" and not out.exists() and not list(tmp_path.iterdir())


def test_tiny_run_on_the_cpu_writes_a_self_describing_json(tmp_path, capsys):
    out = tmp_path / "check.json"
    rc = check.main(["--device", "cpu", "--tiny", "--methods", "ce", "dividemix", "--out", str(out)])
    assert rc == 0
    doc = json.loads(out.read_text())
    assert doc["complete"] is True and doc["failures"] == []
    assert {"python", "torch", "lnl_core", "git_commit", "cuda", "cudnn"} <= set(doc["versions"])
    assert doc["device"]["type"] == "cpu" and isinstance(doc["date"], str)
    s = doc["settings"]
    assert s["train_images"] == check.TINY["train_size"] and s["extrapolated_to_train_images"] == 50000
    assert set(doc["results"]) == {"ce", "dividemix"}
    for by_precision in doc["results"].values():
        assert set(by_precision) == {"bf16", "fp32"}
        for precision, rec in by_precision.items():
            assert rec["config"]["precision"] == precision
            assert rec["s_per_cifar_epoch"] > 0 and rec["images_per_s"] > 0 and rec["full_run_hours"] > 0
            assert rec["peak_memory_bytes"] is None  # CPU: no CUDA allocator
            diff = rec["per_sample_losses"]["bf16_vs_fp32"]
            assert 0 <= diff["mean"] <= diff["max"] < 1.0 and 0 <= diff["division_disagreement"] <= 1
            assert len(rec["epochs"]) == rec["config"]["epochs_run"]
    assert doc["results"]["ce"]["bf16"]["s_per_cifar_warmup_epoch"] is None
    dm = doc["results"]["dividemix"]["bf16"]
    assert dm["phases"]["warmup"]["epochs_timed"] == [2] and dm["phases"]["main"]["epochs_timed"] == [4]
    assert 0.0 <= dm["selected_fraction"] <= 1.0
    assert "wrote" in capsys.readouterr().out


def test_a_failed_measurement_is_in_the_json_and_the_exit_status(tmp_path, monkeypatch, capsys):
    real = check.measure

    def failing(method, precision, **kw):
        if precision == "fp32":
            raise RuntimeError("boom")
        return real(method, precision, **kw)

    monkeypatch.setattr(check, "measure", failing)
    out = tmp_path / "check.json"
    assert check.main(["--device", "cpu", "--tiny", "--methods", "ce", "--out", str(out)]) == 1
    doc = json.loads(out.read_text())
    assert doc["complete"] is False and set(doc["results"]["ce"]) == {"bf16"}
    assert doc["failures"] == [{"method": "ce", "precision": "fp32", "error": "RuntimeError: boom"}]
    assert "1 measurement(s) failed" in capsys.readouterr().err
