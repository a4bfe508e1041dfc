import gzip
import shutil

import numpy as np
import pytest
import torch

from lnl_core import data
from lnl_core.errors import DataNotFoundError, LNLError

SYSTEM_DIR = data.DEBIAN_FASHION_MNIST  # before any test patches it


@pytest.fixture(scope="module")
def fmnist_train():
    return data.fashion_mnist("train")


def test_fashion_mnist_from_debian_path(fmnist_train):
    ds = fmnist_train
    assert ds.images.shape == (60000, 1, 28, 28) and ds.images.dtype == torch.uint8
    assert ds.labels.dtype == torch.int64
    assert torch.bincount(ds.labels).tolist() == [6000] * 10
    assert ds.num_classes == 10 and ds.classes[9] == "Ankle boot"
    test = data.fashion_mnist("test")
    assert test.images.shape == (10000, 1, 28, 28)


def test_fashion_mnist_normalisation_stats_match_data(fmnist_train):
    x = fmnist_train.images.float() / 255
    assert x.mean().item() == pytest.approx(fmnist_train.mean[0], abs=1e-3)
    assert x.std().item() == pytest.approx(fmnist_train.std[0], abs=1e-3)


def test_missing_fashion_mnist_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST", tmp_path / "nowhere")
    monkeypatch.setenv("LNL_DATA", str(tmp_path))
    with pytest.raises(DataNotFoundError, match="apt-get install dataset-fashion-mnist"):
        data.fashion_mnist("train")


def test_fashion_mnist_from_lnl_data_and_checksum(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST", tmp_path / "nowhere")
    monkeypatch.setenv("LNL_DATA", str(tmp_path))
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(SYSTEM_DIR / name, tmp_path / name)
    # uncompressed copies are accepted too
    raw = gzip.decompress((tmp_path / "t10k-labels-idx1-ubyte.gz").read_bytes())
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(raw)
    assert len(data.fashion_mnist("test")) == 10000
    corrupt = bytearray(raw)
    corrupt[-1] ^= 1
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(bytes(corrupt))
    with pytest.raises(LNLError, match="corrupt"):
        data.fashion_mnist("test")


def test_cifar_missing_offline_names_the_download_flag(tmp_path):
    with pytest.raises(DataNotFoundError, match="download=True"):
        data.load("cifar10", root=tmp_path)
    with pytest.raises(DataNotFoundError, match="download"):
        data.load("cifar100", "test", root=tmp_path)


def test_unknown_dataset_and_split():
    with pytest.raises(LNLError, match="unknown dataset"):
        data.load("mnist")
    with pytest.raises(LNLError, match="unknown split"):
        data.load("fashion_mnist", "val")


def test_stratified_subset_keeps_proportions_and_is_seeded():
    labels = np.repeat(np.arange(4), [100, 200, 300, 400])
    idx = data.stratified_subset(labels, 100, seed=0)
    assert idx.size == 100 and np.unique(idx).size == 100
    assert np.bincount(labels[idx]).tolist() == [10, 20, 30, 40]
    assert np.array_equal(idx, data.stratified_subset(labels, 100, seed=0))
    assert not np.array_equal(idx, data.stratified_subset(labels, 100, seed=1))


def test_stratified_subset_remainders_and_bounds():
    labels = np.repeat(np.arange(3), 10)
    assert data.stratified_subset(labels, 7, seed=0).size == 7
    with pytest.raises(LNLError):
        data.stratified_subset(labels, 0, seed=0)
    with pytest.raises(LNLError):
        data.stratified_subset(labels, 31, seed=0)


def test_batch_indices_cover_everything_once():
    g = torch.Generator().manual_seed(0)
    batches = list(data.batch_indices(10, 4, generator=g))
    assert [b.numel() for b in batches] == [4, 4, 2]
    assert sorted(torch.cat(batches).tolist()) == list(range(10))


def test_device_data_normalises():
    images = torch.full((2, 1, 3, 3), 255, dtype=torch.uint8)
    d = data.DeviceData(images, torch.zeros(2, dtype=torch.long), (0.5,), (0.25,), "cpu")
    assert torch.allclose(d.normalize(d.images), torch.full((2, 1, 3, 3), 2.0))


def test_data_does_not_import_noise_and_both_import_orders_work():
    """The CIFAR-100 superclass table lives in data; noise imports it from there, never the reverse."""
    import ast
    import subprocess
    import sys
    from pathlib import Path

    tree = ast.parse(Path(data.__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert "noise" not in imported and "lnl_core.noise" not in imported
    for first, second in (("noise", "data"), ("data", "noise")):
        code = (
            f"import lnl_core.{first}, lnl_core.{second}; print(lnl_core.noise.cifar100_coarse_of_fine()[:3])"
        )
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr


def test_the_validation_split_is_held_out_of_the_training_split():
    from lnl_core import build_config
    from lnl_core.experiment import _prepare_builtin

    cfg = build_config("ce", overrides={"train_size": 500, "test_size": 200, "eval_split": "val"})
    train, val, noisy, rows = _prepare_builtin(cfg)
    full = data.fashion_mnist("train")
    assert len(val) == 200 and np.bincount(val.labels.numpy()).tolist() == [20] * 10  # stratified
    # its images are training images outside the subset, with their correct labels
    train_images = {bytes(x) for x in full.images[torch.as_tensor(rows)].numpy()}
    assert not any(bytes(x) in train_images for x in val.images.numpy())
    lookup = {bytes(x): int(y) for x, y in zip(full.images.numpy(), full.labels.numpy())}
    assert all(lookup[bytes(x)] == int(y) for x, y in zip(val.images.numpy(), val.labels.numpy()))
    test_cfg = build_config("ce", overrides={"train_size": 500, "test_size": 200})
    _, test, _, _ = _prepare_builtin(test_cfg)
    assert not torch.equal(test.images, val.images)
    with pytest.raises(LNLError, match="eval_split"):
        build_config("ce", overrides={"eval_split": "train"})
