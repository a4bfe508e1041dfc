import math

import numpy as np
import pytest
import torch

from lnl_core import METHODS, build_config, losses, noise, run_experiment
from lnl_core.data import synthetic
from lnl_core.engine import choose_device
from lnl_core.errors import LNLError
from lnl_core.experiment import make_run
from lnl_core.losses import pe_equilibrium, pe_regularizer, potential_energy
from lnl_core.models import DistanceClassifier, build_model
from lnl_core.trainers.pemm import pe_penalty

# --------------------------------------------------------------------------- Eq. (10)


def test_potential_has_its_minimum_at_three_quarters():
    r = torch.linspace(0.3, 3.0, 270_001, dtype=torch.float64)
    energy = potential_energy(r)
    assert abs(r[energy.argmin()].item() - 0.75) < 1e-4
    assert pe_equilibrium(3, 2, 2.0) == pytest.approx(0.75)
    r0 = torch.tensor(0.75, requires_grad=True)
    potential_energy(r0).backward()
    assert abs(r0.grad.item()) < 1e-5  # dE/dr = 0 at r0
    assert potential_energy(torch.tensor(0.75)).item() == pytest.approx(1 / 0.75**3 - 2 / 0.75**2)


@pytest.mark.parametrize("u,v,xi", [(6, 3, 1.0), (12, 6, 2.0), (4, 1, 0.5)])
def test_equilibrium_formula_for_other_powers(u, v, xi):
    r0 = pe_equilibrium(u, v, xi)
    r = torch.tensor(r0, dtype=torch.float64, requires_grad=True)
    (r.pow(-u) - xi * r.pow(-v)).backward()  # independent of potential_energy
    assert abs(r.grad.item()) < 1e-6
    left, right = potential_energy(torch.tensor([0.98 * r0, 1.02 * r0]), u=u, v=v, xi=xi)
    assert left > potential_energy(torch.tensor(r0), u=u, v=v, xi=xi) < right


def test_potential_rejects_powers_without_a_minimum():
    for u, v, xi in [(2, 3, 2.0), (3, 3, 1.0), (3, 2, 0.0), (3, 0, 1.0)]:
        with pytest.raises(ValueError, match="u > v > 0"):
            potential_energy(torch.ones(2), u=u, v=v, xi=xi)


# --------------------------------------------------------------------------- Eq. (11)-(12)


@pytest.mark.parametrize("k,d", [(1, 3), (4, 7), (10, 16)])
def test_regularizer_equals_a_brute_force_double_loop_with_the_origin(k, d):
    g = torch.Generator().manual_seed(k)
    centers = torch.randn(k, d, generator=g, dtype=torch.float64)
    points = [np.zeros(d)] + [c.numpy() for c in centers]  # c_0 = 0
    beta, expected = 0.3, 0.0
    for i in range(k):  # Eq. (11): i = 0 .. K-1, j = i+1 .. K
        for j in range(i + 1, k + 1):
            r = math.dist(points[i], points[j]) + beta
            expected += 1 / r**3 - 2 / r**2  # Eq. (12)
    assert pe_regularizer(centers, beta=beta).item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("k,extra_dims", [(2, 0), (3, 2), (9, 6)])
def test_gradient_vanishes_at_the_regular_simplex(k, extra_dims):
    beta = 0.3
    edge = pe_equilibrium() - beta
    eye = torch.eye(k + 1, dtype=torch.float64)
    layout = (eye[1:] - eye[0]) * edge / math.sqrt(2)  # vertices e_1..e_K with e_0 moved to 0
    q, _ = torch.linalg.qr(
        torch.randn(k + 1, k + 1, dtype=torch.float64, generator=torch.Generator().manual_seed(k))
    )
    centers = torch.cat([layout @ q, layout.new_zeros(k, extra_dims)], 1).requires_grad_(True)  # rotated
    dists = torch.pdist(torch.cat([centers.new_zeros(1, centers.shape[1]), centers]))
    assert torch.allclose(dists, torch.full_like(dists, edge), atol=1e-9)
    pe_regularizer(centers, beta=beta).backward()
    assert centers.grad.abs().max().item() < 1e-4
    # and it is a minimum: moving the centres in random directions raises the energy
    with torch.no_grad():
        base = pe_regularizer(centers, beta=beta)
        for seed in range(5):
            g = torch.Generator().manual_seed(seed)
            step = 1e-2 * torch.randn(centers.shape, generator=g, dtype=centers.dtype)
            assert pe_regularizer(centers + step, beta=beta) > base


def test_descent_from_random_positions_reaches_equal_edges():
    """Eq. (15): 3 centres and the origin in 3-D settle on a regular tetrahedron with edge r0 - beta."""
    beta = 0.3
    centers = (0.5 * torch.randn(3, 3, generator=torch.Generator().manual_seed(0))).requires_grad_(True)
    opt = torch.optim.SGD([centers], lr=0.01, momentum=0.9)
    for _ in range(3000):
        opt.zero_grad()
        pe_regularizer(centers, beta=beta).backward()
        opt.step()
    dists = torch.pdist(torch.cat([torch.zeros(1, 3), centers.detach()]))
    assert torch.allclose(dists, torch.full_like(dists, pe_equilibrium() - beta), atol=1e-3)
    total = dists.sum().item()  # Eq. (15) with K = 3: K (K+1) / 2 (r0 - beta)
    assert total == pytest.approx(6 * (0.75 - beta), abs=5e-3)


def test_regularizer_rejects_bad_input():
    with pytest.raises(ValueError, match=r"beta must be in \[0, r0\)"):
        pe_regularizer(torch.randn(3, 4), beta=0.8)
    with pytest.raises(ValueError, match="centers must be"):
        pe_regularizer(torch.randn(4))


# --------------------------------------------------------------------------- Eq. (6)-(7)


@pytest.mark.parametrize("normalize,sigma", [(True, 1.0), (True, 0.5), (False, 2.0)])
def test_distance_classifier_matches_eq_6_7_by_hand(normalize, sigma):
    head = DistanceClassifier(5, 4, sigma=sigma, normalize=normalize)
    features = torch.randn(6, 5, generator=torch.Generator().manual_seed(1))
    probs = head.probs(features)
    assert torch.allclose(probs.sum(1), torch.ones(6))
    c = head.centers.detach().numpy().astype(np.float64)
    for n, f in enumerate(features.numpy().astype(np.float64)):
        z = f / np.linalg.norm(f) if normalize else f
        d = np.array([math.exp(-np.sum((z - c[k]) ** 2) / sigma**2) for k in range(4)])  # Eq. (6)
        assert np.allclose(probs[n].detach().numpy(), d / d.sum(), atol=1e-6)  # Eq. (7)
    assert torch.allclose(torch.log_softmax(head(features), 1), probs.log(), atol=1e-5)


def test_distance_head_gives_centres_a_gradient_and_rejects_bad_sigma():
    net = build_model("small_cnn", num_classes=10, in_channels=1, image_size=28, head="distance")
    net(torch.randn(4, 1, 28, 28)).logsumexp(1).sum().backward()
    assert net.classifier.centers.grad is not None and net.classifier.centers.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="sigma"):
        DistanceClassifier(4, 3, sigma=0.0)
    with pytest.raises(LNLError, match="unknown head"):
        build_model("small_cnn", num_classes=10, in_channels=1, image_size=28, head="cosine")
    with pytest.raises(TypeError, match="DistanceClassifier"):
        pe_penalty(build_model("small_cnn", num_classes=10, in_channels=1, image_size=28))


# --------------------------------------------------------------------------- trainer and profiles


def test_full_profile_follows_section_6_2():
    c10 = build_config("pemm", dataset="cifar10", noise="symmetric-exclusive", rate=0.4, profile="full")
    assert (c10.model, c10.epochs, c10.milestones, c10.lr, c10.weight_decay) == (
        "cnn8",
        80,
        (20, 50),
        0.1,
        5e-3,
    )
    c100 = build_config("pemm", dataset="cifar100", noise="symmetric-exclusive", rate=0.4, profile="full")
    assert (c100.model, c100.epochs, c100.milestones) == ("resnet44", 150, (80, 120))
    hp = c10.hp
    assert (hp.alpha, hp.beta, hp.lam, hp.sigma, hp.u, hp.v, hp.xi) == (0.1, 0.3, 1.0, 1.0, 3, 2, 2.0)
    assert hp.normalize and hp.loss == "sce" and hp.recon == 0.0
    assert c10.lr * c10.hp.center_lr_scale == pytest.approx(0.01)
    assert c100.lr * c100.hp.center_lr_scale == pytest.approx(0.002)


def _largest_hessian_eigenvalue(k: int, beta: float = 0.3) -> float:
    """Power iteration with Hessian-vector products of Eq. (11) at the regular simplex."""
    eye = torch.eye(k + 1, dtype=torch.float64)
    centers = ((eye[1:] - eye[0]) * (pe_equilibrium() - beta) / math.sqrt(2)).requires_grad_(True)
    (grad,) = torch.autograd.grad(pe_regularizer(centers, beta=beta), centers, create_graph=True)
    v = torch.randn(centers.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for _ in range(200):
        v = v / v.norm()
        (hv,) = torch.autograd.grad(grad, centers, v, retain_graph=True)
        eig, v = (hv * v).sum().item(), hv
    return eig


@pytest.mark.parametrize(
    "profile,dataset", [("reduced", "fashion_mnist"), ("full", "cifar10"), ("full", "cifar100")]
)
def test_centre_learning_rate_is_below_the_stability_bound(profile, dataset):
    cfg = build_config("pemm", dataset=dataset, noise="symmetric-exclusive", rate=0.4, profile=profile)
    k = 100 if dataset == "cifar100" else 10
    lam_max = cfg.hp.lam * _largest_hessian_eigenvalue(k)
    bound = 2 * (1 + cfg.momentum) / lam_max  # heavy-ball SGD on a quadratic
    assert cfg.lr * cfg.hp.center_lr_scale < bound
    assert cfg.lr > bound  # the paper's single learning rate would be above it


def test_power_iteration_matches_the_dense_hessian():
    k = 10
    eye = torch.eye(k + 1, dtype=torch.float64)
    centers = (eye[1:] - eye[0]) * 0.45 / math.sqrt(2)
    dense = torch.autograd.functional.hessian(lambda x: pe_regularizer(x.view(k, k + 1)), centers.reshape(-1))
    assert _largest_hessian_eigenvalue(k) == pytest.approx(
        torch.linalg.eigvalsh(dense).max().item(), rel=1e-3
    )


def test_paper_backbones_have_the_published_sizes():
    resnet44 = build_model("resnet44", num_classes=10, in_channels=3, image_size=32)
    assert sum(p.numel() for p in resnet44.parameters()) == 658_586  # He et al. (2016): 0.66M
    cnn8 = build_model("cnn8", num_classes=10, in_channels=3, image_size=32)
    convs = [m for m in cnn8.modules() if isinstance(m, torch.nn.Conv2d)]
    fcs = [m for m in cnn8.modules() if isinstance(m, torch.nn.Linear)]
    assert len(convs) == 6 and len(fcs) == 2 and fcs[0].in_features == 196 * 4 * 4
    assert cnn8(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_bad_hyperparameters_get_one_clear_message():
    with pytest.raises(LNLError, match="beta must be in"):
        build_config("pemm", overrides={"beta": "0.9"})
    with pytest.raises(LNLError, match="loss must be one of"):
        build_config("pemm", overrides={"loss": "mse"})
    with pytest.raises(LNLError, match="unknown setting 'pe_lambda'"):
        build_config("dividemix", overrides={"pe_lambda": "1"})  # the out-of-box method is dividemix-pe
    with pytest.raises(LNLError, match="pe_beta must be in"):
        build_config("dividemix-pe", overrides={"pe_beta": "0.8"})


def _tiny(**kw):
    return dict({"train_size": 400, "test_size": 200, "epochs": 3}, **kw)


def test_pemm_trains_and_records_the_centre_geometry(tmp_path):
    res = run_experiment("pemm", overrides=_tiny(batch_size=16), quiet=True, out=tmp_path / "r")
    for record in res.history:
        assert np.isfinite(record["pe_loss"]) and record["center_dist"] > 0 and record["center_dist_cv"] >= 0
    # with a stable centre learning rate the centres reach the co-stable layout: edges r0 - beta
    head = res.output.models["net"].classifier
    assert isinstance(head, DistanceClassifier)
    last = res.history[-1]
    assert last["center_dist_cv"] < 0.05 and abs(last["center_dist"] - 0.45) < 0.02


def test_ablations_and_the_out_of_box_option_run(tmp_path):
    for i, overrides in enumerate([{"loss": "ce"}, {"lam": 0.0}, {"alpha": 0.0}, {"recon": 1.0}]):
        res = run_experiment(
            "pemm", overrides=_tiny(epochs=1, **overrides), quiet=True, out=tmp_path / str(i)
        )
        assert np.isfinite(res.history[-1]["train_loss"])
    res = run_experiment(
        "dividemix-pe", overrides=_tiny(epochs=2, warmup_epochs=1), quiet=True, out=tmp_path / "dm"
    )
    nets = res.output.models
    assert isinstance(nets["net1"].classifier, DistanceClassifier)
    assert all(np.isfinite(h["train_pe"]) for h in res.history)  # recorded in warm-up and MixMatch
    assert "selection_auc" in res.history[-1]


def test_out_of_box_adds_exactly_the_potential_energy(tmp_path):
    """DivideMix + PE with pe_lambda = 0 is DivideMix with distance heads; with pe_lambda > 0
    each batch's loss differs from it by exactly lambda * PE of the centres (checked on one
    MixMatch batch against the library's potential energy, computed independently here)."""
    from lnl_core.trainers.dividemix import draw_batch, mixmatch_batch
    from lnl_core.trainers.pemm import PotentialEnergyExtension

    cfg = build_config("dividemix-pe", overrides=_tiny(pe_lambda=0.5))
    train_set, test_set = synthetic("fashion_mnist", 64, seed=0), synthetic("fashion_mnist", 16, seed=1)
    noisy = noise.make("symmetric", train_set.labels.numpy(), 0.4, 10, seed=0)
    run = make_run(cfg, train_set, test_set, noisy, device=choose_device("cpu"))
    ext = PotentialEnergyExtension(cfg.hp)
    nets = [run.model(**ext.network_options()) for _ in range(2)]
    batch = draw_batch(run, cfg.hp, torch.arange(8), torch.arange(8, 16))
    out = mixmatch_batch(run, nets[0], nets[1], batch, torch.full((64,), 0.7), cfg.hp, lambda_u=2.0,
                         extension=ext)  # fmt: skip
    c = nets[0].classifier.centers.double()
    points = torch.cat([torch.zeros(1, c.shape[1], dtype=torch.float64), c])
    r = torch.pdist(points) + 0.3  # every pair of {0, c_1..c_K} once, shifted by beta (Eq. (12))
    pe = (1 / r**3 - 2 / r**2).sum()
    assert out["terms"]["pe"].item() == pytest.approx(0.5 * pe.item(), rel=1e-5)
    assert (out["loss"] - out["sst"]).item() == pytest.approx(0.5 * pe.item(), rel=1e-4)


def test_resume_is_exact(tmp_path):
    straight = run_experiment("pemm", overrides=_tiny(), quiet=True, out=tmp_path / "a")
    run_experiment("pemm", overrides=_tiny(), quiet=True, out=tmp_path / "b", stop_after=2)
    resumed = run_experiment("pemm", overrides=_tiny(), quiet=True, out=tmp_path / "b", resume=True)
    assert resumed.history == straight.history
    a, b = straight.output.models["net"].state_dict(), resumed.output.models["net"].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["cifar10", "cifar100"])
def test_full_profile_smoke_on_cifar_shaped_data(dataset):
    cfg = build_config("pemm", dataset=dataset, profile="full", noise="symmetric-exclusive", rate=0.4,
                       overrides={"epochs": 1, "batch_size": 8, "eval_batch_size": 64})  # fmt: skip
    k = 10 if dataset == "cifar10" else 100
    train_set, test_set = synthetic(dataset, 24, seed=0), synthetic(dataset, 16, seed=1, split="test")
    noisy = noise.make("symmetric-exclusive", train_set.labels.numpy(), 0.4, k, seed=0)
    run = make_run(cfg, train_set, test_set, noisy, device=choose_device("cpu"))
    out = METHODS["pemm"].train(run, cfg.hp)
    assert np.isfinite(out.history[-1]["train_loss"])
    assert out.models["net"].classifier.centers.shape[0] == k


@pytest.mark.parametrize("k", [1, 4, 10])
def test_every_pair_is_counted_once(k):
    """At the regular simplex every one of the K (K + 1) / 2 pairs (Eq. (15)) sits at r0, so the
    sum is exactly that many times E(r0): a missed or double-counted pair changes it."""
    eye = torch.eye(k + 1, dtype=torch.float64)
    centers = (eye[1:] - eye[0]) * (pe_equilibrium() - 0.3) / math.sqrt(2)
    expected = k * (k + 1) / 2 * (-32 / 27)  # E(0.75) = 1/0.75^3 - 2/0.75^2 = -32/27
    assert pe_regularizer(centers, beta=0.3).item() == pytest.approx(expected, rel=1e-12)


def test_the_confidence_ceiling_of_the_distance_head_at_the_pe_minimum():
    """The closed form against a direct maximisation over unit features, with the centres and the
    origin on the PE's minimum (a regular simplex of edge r0 - beta)."""
    torch.manual_seed(0)
    k, d, a = 10, 16, losses.pe_equilibrium() - 0.3
    gram = torch.full((k, k), a * a / 2, dtype=torch.float64).fill_diagonal_(a * a)
    centers = torch.zeros(k, d, dtype=torch.float64)
    centers[:, :k] = torch.linalg.cholesky(gram)
    assert torch.pdist(torch.cat([centers.new_zeros(1, d), centers])).sub(a).abs().max() < 1e-12
    for sigma in (1.0, 0.5, 0.3):
        z = torch.randn(256, d, dtype=torch.float64, requires_grad=True)
        opt = torch.optim.Adam([z], lr=0.05)
        for _ in range(300):
            unit = z / z.norm(dim=1, keepdim=True)
            p = (-(torch.cdist(unit, centers) ** 2) / sigma**2).softmax(1)[:, 0]
            opt.zero_grad()
            (-p.sum()).backward()
            opt.step()
        assert p.max().item() == pytest.approx(losses.pe_confidence_ceiling(k, sigma), abs=2e-3)
    assert losses.pe_confidence_ceiling(10, 1.0) == pytest.approx(0.179, abs=1e-3)  # the paper's sigma
    sigma = losses.pe_sigma_for_confidence(10, 0.99)
    assert losses.pe_confidence_ceiling(10, sigma) == pytest.approx(0.99, abs=1e-12)


def test_dividemix_pe_takes_the_sigma_at_which_its_head_can_be_confident():
    for dataset, profile, k in (("fashion_mnist", "reduced", 10), ("cifar100", "full", 100)):
        hp = build_config("dividemix-pe", dataset=dataset, profile=profile).hp
        assert hp.sigma == round(losses.pe_sigma_for_confidence(k, 0.99), 4)
        assert losses.pe_confidence_ceiling(k, hp.sigma) == pytest.approx(0.99, abs=1e-3)
    assert build_config("pemm").hp.sigma == 1.0  # PEMM itself keeps the paper's sigma
