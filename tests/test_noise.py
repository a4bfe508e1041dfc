import numpy as np
import pytest
import torch

from lnl_core import noise
from lnl_core.errors import LNLError

K = 10
LABELS = np.repeat(np.arange(K), 500)  # 5000 balanced labels


def test_symmetric_include_true_changes_exact_count_and_reports_actual_rate():
    nl = noise.symmetric(LABELS, 0.5, K, seed=0)
    # exactly round(rate*N) samples are redrawn; about 1/K of them land on the true class
    assert 0.45 - 0.02 < nl.actual_rate < 0.45 + 0.02
    assert nl.actual_rate < 0.5
    assert nl.is_noisy.sum() == (nl.noisy != nl.clean).sum()


def test_symmetric_exclusive_rate_is_exact():
    nl = noise.symmetric(LABELS, 0.4, K, seed=3, include_true=False)
    assert nl.is_noisy.sum() == round(0.4 * LABELS.size)
    assert nl.actual_rate == pytest.approx(0.4)
    off = nl.transition - np.diag(np.diag(nl.transition))
    assert np.allclose(off.sum(1), 0.4, atol=0.05)  # row mass off the diagonal


def test_transition_rows_sum_to_one_and_match_counts():
    nl = noise.symmetric(LABELS, 0.3, K, seed=1)
    t = nl.transition
    assert t.shape == (K, K)
    assert np.allclose(t.sum(1), 1.0)
    c = 2
    members = nl.clean == c
    assert t[c, 5] == pytest.approx(np.mean(nl.noisy[members] == 5))


def test_transition_empty_class_is_identity_row():
    nl = noise.symmetric(np.zeros(10, dtype=int), 0.0, 3, seed=0)
    assert np.allclose(nl.transition, np.eye(3))


def test_same_seed_same_labels_different_seed_differs():
    a = noise.symmetric(LABELS, 0.5, K, seed=7)
    b = noise.symmetric(LABELS, 0.5, K, seed=7)
    c = noise.symmetric(LABELS, 0.5, K, seed=8)
    assert np.array_equal(a.noisy, b.noisy)
    assert not np.array_equal(a.noisy, c.noisy)


def test_symmetric_noise_is_stable_across_versions():
    # A fixed fingerprint: if this changes, every saved experiment changes. PCG64 streams
    # are stable across numpy versions and machines.
    nl = noise.symmetric(np.arange(20) % K, 0.5, K, seed=0)
    assert nl.noisy.tolist() == [0, 1, 4, 0, 5, 5, 2, 7, 0, 9, 1, 0, 2, 4, 4, 5, 4, 7, 8, 0]


def test_cifar10_asymmetric_mapping_is_exact():
    nl = noise.asymmetric(LABELS, 0.4, dataset="cifar10", seed=0)
    moved = {9: 1, 2: 0, 4: 7, 3: 5, 5: 3}
    for c in range(K):
        members = nl.clean == c
        flipped = nl.noisy[members] != c
        if c in moved:
            assert flipped.sum() == round(0.4 * members.sum())
            assert set(nl.noisy[members][flipped]) == {moved[c]}
        else:
            assert not flipped.any()
    assert nl.actual_rate == pytest.approx(0.2)  # only half of the classes move


def test_fashion_mnist_mapping():
    nl = noise.asymmetric(LABELS, 0.4, dataset="fashion_mnist", seed=0)
    pairs = {(int(a), int(b)) for a, b in zip(nl.clean, nl.noisy) if a != b}
    assert pairs == {(0, 6), (6, 0), (2, 4), (5, 7), (9, 5)}


def test_cifar100_superclass_mapping_stays_in_superclass_and_cycles():
    coarse = noise.cifar100_coarse_of_fine()
    assert (coarse >= 0).all() and np.bincount(coarse).tolist() == [5] * 20
    mapping = noise.ASYMMETRIC_MAPPINGS["cifar100"]
    assert sorted(mapping) == list(range(100))
    assert sorted(mapping.values()) == list(range(100))  # a permutation
    for src, dst in mapping.items():
        assert coarse[src] == coarse[dst] and src != dst
    # beaver(4) -> dolphin(30) -> otter(55) -> seal(72) -> whale(95) -> beaver(4)
    assert [mapping[c] for c in (4, 30, 55, 72, 95)] == [30, 55, 72, 95, 4]


def test_cifar100_blocks_mapping():
    mapping = noise.ASYMMETRIC_MAPPINGS["cifar100-blocks"]
    assert [mapping[c] for c in range(10)] == [1, 2, 3, 4, 0, 6, 7, 8, 9, 5]


def test_instance_dependent_rate_and_determinism():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2000, 1, 8, 8), dtype=np.uint8)
    labels = np.arange(2000) % K
    a = noise.instance_dependent(images, labels, 0.4, K, seed=1)
    b = noise.instance_dependent(images, labels, 0.4, K, seed=1)
    assert np.array_equal(a.noisy, b.noisy)
    assert 0.36 < a.actual_rate < 0.44  # E[q] = 0.4 (truncation is symmetric here)
    assert a.spec["kind"] == "instance"
    # the flip distribution depends on the image: rows of T are not uniform off-diagonal
    off = a.transition - np.diag(np.diag(a.transition))
    assert off.max() > 2 * off[off > 0].min()


def test_instance_dependent_zero_rate_is_clean():
    images = np.zeros((50, 1, 4, 4), dtype=np.uint8)
    nl = noise.instance_dependent(images, np.arange(50) % 5, 0.0, 5, seed=0)
    assert nl.actual_rate == 0.0


def test_save_load_roundtrip(tmp_path):
    nl = noise.asymmetric(LABELS, 0.3, dataset="cifar10", seed=2)
    nl.save(tmp_path / "n.npz")
    back = noise.NoisyLabels.load(tmp_path / "n.npz")
    assert np.array_equal(back.noisy, nl.noisy) and np.array_equal(back.clean, nl.clean)
    assert back.spec == nl.spec and back.num_classes == nl.num_classes


def test_load_garbage_is_clear_error(tmp_path):
    (tmp_path / "bad.npz").write_bytes(b"not an npz")
    with pytest.raises(LNLError, match="cannot read noisy labels"):
        noise.NoisyLabels.load(tmp_path / "bad.npz")


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5])
def test_rate_out_of_range(rate):
    with pytest.raises(LNLError, match=r"\[0, 1\)"):
        noise.symmetric(LABELS, rate, K, seed=0)


def test_labels_out_of_range():
    with pytest.raises(LNLError, match="labels must lie in"):
        noise.symmetric(np.array([0, 1, 10]), 0.2, K, seed=0)


def test_unknown_mapping_and_kind():
    with pytest.raises(LNLError, match="no asymmetric mapping"):
        noise.asymmetric(LABELS, 0.2, dataset="mnist", seed=0)
    with pytest.raises(LNLError, match="unknown noise kind"):
        noise.make("pairflip", LABELS, 0.2, K, seed=0)


def _fake_cifar_n(path, clean):
    rng = np.random.default_rng(0)
    worse = np.where(rng.random(clean.size) < 0.4, rng.integers(0, 10, clean.size), clean)
    content = {"clean_label": clean, "worse_label": worse, "aggre_label": clean.copy()}
    torch.save(content, path)  # the official files are dicts of numpy arrays
    return worse


def test_cifar_n_loads_official_format(tmp_path):
    clean = np.arange(300) % 10
    worse = _fake_cifar_n(tmp_path / "CIFAR-10_human.pt", clean)
    nl = noise.cifar_n(clean, "worse", root=tmp_path)
    assert np.array_equal(nl.noisy, worse)
    assert nl.spec["label_set"] == "worse"


def test_cifar_n_mismatch_and_missing(tmp_path):
    clean = np.arange(300) % 10
    _fake_cifar_n(tmp_path / "CIFAR-10_human.pt", clean)
    with pytest.raises(LNLError, match="does not match"):
        noise.cifar_n(clean[::-1].copy(), "aggre", root=tmp_path)
    with pytest.raises(LNLError, match="CIFAR-100_human.pt not found"):
        noise.cifar_n(np.arange(100), "noisy100", root=tmp_path)
