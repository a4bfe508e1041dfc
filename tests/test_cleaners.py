import warnings

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score
from sklearn.mixture import GaussianMixture

from lnl_core.cleaners import fit_gmm, gmm_clean_probability, selection_metrics


def _bimodal(n_clean=800, n_noisy=200, seed=0):
    rng = np.random.default_rng(seed)
    losses = np.concatenate([rng.gamma(2.0, 0.15, n_clean), rng.normal(2.5, 0.4, n_noisy).clip(0)])
    noisy = np.zeros(losses.size, bool)
    noisy[n_clean:] = True
    order = rng.permutation(losses.size)
    return losses[order], noisy[order]


@pytest.mark.parametrize("dim", [1, 2])
def test_fit_gmm_agrees_with_sklearn_from_the_same_start(dim):
    rng = np.random.default_rng(dim)
    x = np.concatenate([rng.normal(0.2, 0.1, (600, dim)), rng.normal(0.7, 0.15, (400, dim))])
    w0 = np.array([0.5, 0.5])
    m0 = np.array([[0.1] * dim, [0.9] * dim])
    c0 = np.stack([np.eye(dim) * 0.05, np.eye(dim) * 0.08])
    sk = GaussianMixture(2, max_iter=10, tol=1e-2, reg_covar=5e-4, weights_init=w0, means_init=m0,
                         precisions_init=np.linalg.inv(c0)).fit(x)  # fmt: skip
    ours = fit_gmm(
        torch.tensor(x), 2, init=(torch.tensor(w0)[None], torch.tensor(m0)[None], torch.tensor(c0)[None])
    )
    got = ours.predict_proba(torch.tensor(x)).numpy()
    assert np.abs(got - sk.predict_proba(x)).max() < 1e-4
    assert np.allclose(ours.means[0].numpy(), sk.means_, atol=1e-6)
    assert int(ours.n_iter[0]) == sk.n_iter_


def test_fit_gmm_default_init_finds_the_modes():
    losses, _ = _bimodal()
    gmm = fit_gmm(torch.tensor(losses))
    means = sorted(gmm.means[0, :, 0].tolist())
    assert means[0] < 0.6 and 2.0 < means[1] < 3.0
    sk = GaussianMixture(2, max_iter=10, tol=1e-2, reg_covar=5e-4, random_state=0).fit(losses[:, None])
    assert np.allclose(sorted(sk.means_[:, 0]), means, atol=0.05)


def test_batched_groups_equal_separate_fits():
    a, _ = _bimodal(seed=1)
    b, _ = _bimodal(600, 300, seed=2)
    x = torch.tensor(np.concatenate([a, b * 0.5]))
    groups = torch.cat([torch.zeros(a.size, dtype=torch.long), torch.ones(b.size, dtype=torch.long)])
    both = fit_gmm(x, groups=groups)
    first = fit_gmm(torch.tensor(a))
    second = fit_gmm(torch.tensor(b * 0.5))
    assert torch.allclose(both.means[0], first.means[0]) and torch.allclose(both.means[1], second.means[0])
    assert torch.allclose(both.covariances[1], second.covariances[0])
    assert both.n_iter.tolist() == [first.n_iter.item(), second.n_iter.item()]


def test_planted_noise_is_recovered():
    losses, noisy = _bimodal()
    prob = gmm_clean_probability(torch.tensor(losses))
    assert prob.shape == (losses.size,) and prob.dtype == torch.float32
    assert roc_auc_score(~noisy, prob.numpy()) > 0.95
    m = selection_metrics(prob, ~noisy)
    assert m["selection_auc"] > 0.95 and m["precision"] > 0.95 and m["recall"] > 0.9


def test_class_aware_handles_classes_on_different_scales():
    # class 1's clean losses sit where class 0's noisy ones do: one global GMM fails,
    # one GMM per class does not
    a, na = _bimodal(seed=3)
    b, nb = _bimodal(seed=4)
    losses = torch.tensor(np.concatenate([a, b + 2.5]))
    noisy = np.concatenate([na, nb])
    labels = torch.cat([torch.zeros(a.size, dtype=torch.long), torch.ones(b.size, dtype=torch.long)])
    per_class = gmm_clean_probability(losses, class_labels=labels, num_classes=3)  # class 2 empty
    pooled = gmm_clean_probability(losses)
    assert roc_auc_score(~noisy, per_class.numpy()) > 0.95
    assert roc_auc_score(~noisy, per_class.numpy()) > roc_auc_score(~noisy, pooled.numpy()) + 0.05


def test_two_dimensional_clean_component_is_smallest_norm():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0.2, 0.05, (300, 2)), rng.normal(0.8, 0.05, (100, 2))])
    prob = gmm_clean_probability(torch.tensor(x))
    assert prob[:300].min() > 0.9 and prob[300:].max() < 0.1


def test_constant_losses_and_tiny_classes_are_flagged_not_garbage():
    with pytest.warns(UserWarning, match="constant losses"):
        prob = gmm_clean_probability(torch.full((50,), 0.3))
    assert torch.equal(prob, torch.ones(50))
    losses, noisy = _bimodal()
    labels = torch.zeros(losses.size + 1, dtype=torch.long)
    labels[-1] = 1  # class 1 has a single sample
    with pytest.warns(UserWarning):
        prob = gmm_clean_probability(torch.tensor(np.append(losses, 9.0)), class_labels=labels)
    assert prob[-1] == 1.0 and roc_auc_score(~noisy, prob[:-1].numpy()) > 0.95
    assert torch.isfinite(prob).all()


def test_nan_and_inf_raise_clear_errors():
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="NaN or infinite"):
            gmm_clean_probability(torch.tensor([0.1, 0.2, bad, 0.4]))


def test_fewer_samples_than_a_batch_and_no_warning_when_fine():
    losses = torch.tensor([0.1, 0.12, 0.11, 2.0, 2.1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        prob = gmm_clean_probability(losses)
    assert prob[:3].min() > 0.5 > prob[3:].max()


def test_selection_metrics_against_sklearn_and_by_hand():
    rng = np.random.default_rng(0)
    truth = rng.random(500) < 0.6
    prob = np.clip(truth * 0.3 + rng.random(500) * 0.7, 0, 1)
    m = selection_metrics(torch.tensor(prob), torch.tensor(truth), threshold=0.5)
    assert m["selection_auc"] == pytest.approx(roc_auc_score(truth, prob))
    chosen = prob > 0.5
    precision = (chosen & truth).sum() / chosen.sum()
    recall = (chosen & truth).sum() / truth.sum()
    assert m["precision"] == pytest.approx(precision) and m["recall"] == pytest.approx(recall)
    assert m["f1"] == pytest.approx(2 * precision * recall / (precision + recall))
    assert m["labeled_fraction"] == pytest.approx(chosen.mean())


def test_selection_metrics_degenerate():
    m = selection_metrics(torch.zeros(4), torch.ones(4, dtype=torch.bool))
    assert np.isnan(m["selection_auc"]) and np.isnan(m["precision"]) and m["labeled_fraction"] == 0.0
    with pytest.raises(ValueError, match="entries"):
        selection_metrics(torch.zeros(3), torch.ones(4, dtype=torch.bool))
