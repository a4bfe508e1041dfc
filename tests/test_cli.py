import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from lnl_core.cli import main

TINY = ["--set", "train_size=400", "--set", "test_size=200", "--set", "epochs=2", "--quiet"]


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_shows_methods_noise_and_profiles(capsys):
    code, out, _ = _run(capsys, "list")
    assert code == 0
    for word in (
        "ce",
        "gce",
        "sce",
        "symmetric",
        "asymmetric",
        "instance",
        "cifar-n:worse",
        "reduced",
        "full",
    ):
        assert word in out
    assert "epochs = 30" in out and "epochs = 300" in out


@pytest.mark.parametrize(
    "argv,message",
    [
        (["run", "nosuch"], "unknown method 'nosuch'"),
        (["run", "ce", "--dataset", "mnist"], "unknown dataset"),
        (["run", "ce", "--noise", "pairflip"], "unknown noise kind"),
        (["run", "ce", "--rate", "1.0"], "[0, 1)"),
        (["run", "ce", "--rate", "-0.2"], "[0, 1)"),
        (["run", "ce", "--rate", "half"], "invalid float value"),
        (["run", "ce", "--profile", "huge"], "unknown profile"),
        (["run", "ce", "--set", "lrate=0.1"], "unknown setting 'lrate'"),
        (["run", "ce", "--set", "epochs=ten"], "epochs=ten"),
        (["run", "ce", "--set", "epochs"], "KEY=VALUE"),
        (["run", "ce", "--profile", "full", "--dataset", "fashion_mnist"], "full profile is defined for"),
        (["run", "ce", "--dataset", "cifar10", "--data-root", "/nonexistent"], "--download"),
        (["run", "ce", "--device", "tpu"], "device"),
        (["run", "ce", "--set", "precision=fp8"], "unknown precision 'fp8'"),
        (["run", "ce", "--set", "channels_last=yes"], "unknown channels_last"),
        (["run", "dividemix", "--set", "mix_augment=cutmix"], "mix_augment"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line_exit_2(capsys, tmp_path, argv, message):
    code, out, err = _run(capsys, *argv, *(["--out", str(tmp_path / "r")] if argv[0] == "run" else []))
    assert code == 2
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "r").exists()  # nothing written


def test_existing_run_dir_is_never_overwritten_silently(capsys, tmp_path):
    out = tmp_path / "run"
    assert _run(capsys, "run", "ce", "--out", str(out), *TINY)[0] == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    code, _, err = _run(capsys, "run", "ce", "--out", str(out), *TINY)
    assert code == 2 and "already exists" in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    # --overwrite replaces it; a directory with foreign files is refused even then
    assert _run(capsys, "run", "ce", "--out", str(out), "--overwrite", *TINY)[0] == 0
    (out / "notes.txt").write_text("mine")
    code, _, err = _run(capsys, "run", "ce", "--out", str(out), "--overwrite", *TINY)
    assert code == 2 and "notes.txt" in err and (out / "notes.txt").read_text() == "mine"


def test_corrupt_checkpoint_on_resume(capsys, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "checkpoint.pt").write_bytes(b"garbage")
    code, _, err = _run(capsys, "run", "ce", "--out", str(out), "--resume", *TINY)
    assert code == 2 and "corrupt" in err
    assert (out / "checkpoint.pt").read_bytes() == b"garbage"


def test_result_json_fields(capsys, tmp_path):
    out = tmp_path / "run"
    code, stdout, _ = _run(capsys, "run", "sce", "--out", str(out), "--rate", "0.4", "--seed", "3", *TINY)
    assert code == 0 and "last-epoch test acc" in stdout
    res = json.loads((out / "result.json").read_text())
    for key in ("method", "dataset", "noise", "rate", "actual_noise_rate", "seed", "profile", "config",
                "history", "final_test_acc", "mean_last10_test_acc", "best_test_acc", "wall_time_s",
                "device", "versions"):  # fmt: skip
        assert key in res
    assert res["seed"] == 3 and res["config"]["hp"]["alpha"] == 0.01  # SCE's MNIST setting
    assert res["final_test_acc"] == res["history"][-1]["test_acc"]
    assert {"epoch", "test_acc", "train_loss"} <= set(res["history"][0])
    assert 0.3 < res["actual_noise_rate"] < 0.4  # 40% nominal, true class included
    assert (out / "noisy_labels.npz").exists() and (out / "config.json").exists()
    assert res["versions"]["torch"] == torch.__version__


def test_table(capsys, tmp_path):
    out = tmp_path / "run"
    _run(capsys, "run", "ce", "--out", str(out), *TINY)
    code, stdout, _ = _run(capsys, "table", str(out))
    assert code == 0 and "ce" in stdout and "last10" in stdout
    code, _, err = _run(capsys, "table", str(tmp_path / "missing"))
    assert code == 2 and "cannot read" in err


def test_dry_run_prints_full_profile(capsys):
    code, out, _ = _run(capsys, "run", "ce", "--profile", "full", "--dataset", "cifar10", "--dry-run")
    cfg = json.loads(out)
    assert code == 0 and cfg["model"] == "preact_resnet18" and cfg["epochs"] == 300 and cfg["lr"] == 0.02


def test_python_m_entry_point():
    proc = subprocess.run([sys.executable, "-m", "lnl_core", "run", "nosuch"], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.strip().startswith("lnl: error: unknown method")


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_result(tmp_path):
    """SIGKILL a real `lnl run` after its first checkpoint, resume, compare with a clean run."""
    args = ["run", "ce", "--set", "train_size=2000", "--set", "test_size=500", "--set", "epochs=6", "--quiet"]
    cmd = [sys.executable, "-m", "lnl_core", *args]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    subprocess.run([*cmd, "--out", str(tmp_path / "clean")], check=True, env=env, capture_output=True)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        [*cmd, "--out", str(killed)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 120
    while not (killed / "checkpoint.pt").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "result.json").exists(), "the run finished before it could be killed"
    subprocess.run([*cmd, "--out", str(killed), "--resume"], check=True, env=env, capture_output=True)

    a = json.loads((tmp_path / "clean" / "result.json").read_text())
    b = json.loads((killed / "result.json").read_text())
    for key in (
        "history",
        "final_test_acc",
        "mean_last10_test_acc",
        "best_test_acc",
        "actual_noise_rate",
        "config",
    ):
        assert a[key] == b[key], key


def test_block_wise_cifar100_noise_is_listed_and_runs(capsys, tmp_path, monkeypatch):
    """``asymmetric-blocks`` (the UNICON/PLReMix blocks of five consecutive CIFAR-100 indices)
    from `lnl list` to `lnl run`, on CIFAR-100-shaped synthetic data standing in for the download."""
    import numpy as np

    from lnl_core import data, noise

    code, out, _ = _run(capsys, "list")
    assert code == 0 and "asymmetric-blocks" in out
    fake = {"train": data.synthetic("cifar100", 500, seed=0), "test": data.synthetic("cifar100", 100, seed=1)}
    monkeypatch.setattr(data, "load", lambda name, split="train", **kw: fake[split])
    run_dir = tmp_path / "blocks"
    code, _, err = _run(capsys, "run", "ce", "--dataset", "cifar100", "--noise", "asymmetric-blocks",
                        "--rate", "0.4", "--out", str(run_dir), "--set", "epochs=1", "--quiet")  # fmt: skip
    assert code == 0, err
    result = json.loads((run_dir / "result.json").read_text())
    labels = np.load(run_dir / "noisy_labels.npz")
    clean, noisy = labels["clean"], labels["noisy"]
    flipped = noisy != clean
    assert (
        result["actual_noise_rate"] == pytest.approx(flipped.mean()) and 0.35 < flipped.mean() < 0.45
    )  # per-class rounding
    assert np.array_equal(noisy[flipped], 5 * (clean[flipped] // 5) + (clean[flipped] + 1) % 5)
    superclass = noise.cifar100_coarse_of_fine()
    assert (superclass[noisy[flipped]] != superclass[clean[flipped]]).any()  # not the real superclasses
    code, _, err = _run(
        capsys, "run", "ce", "--dataset", "cifar10", "--noise", "asymmetric-blocks", "--dry-run"
    )
    assert code == 2 and "CIFAR-100" in err
