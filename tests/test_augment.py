import pytest
import torch

from lnl_core import augment


def _batch(b=16, c=3, h=8, w=8, same=False):
    g = torch.Generator().manual_seed(0)
    x = torch.randint(1, 256, (1 if same else b, c, h, w), generator=g, dtype=torch.uint8)
    return x.expand(b, c, h, w).clone() if same else x


def _crops(img, pad=4):
    """Every output the reference transform can give for one image (brute force)."""
    c, h, w = img.shape
    padded = torch.nn.functional.pad(img, (pad,) * 4)
    out = []
    for top in range(2 * pad + 1):
        for left in range(2 * pad + 1):
            crop = padded[:, top : top + h, left : left + w]
            out += [crop, crop.flip(-1)]
    return out


def test_weak_is_a_padded_crop_and_flip_of_each_sample():
    x = _batch()
    y = augment.weak(x, generator=torch.Generator().manual_seed(1))
    assert y.shape == x.shape and y.dtype == torch.uint8
    for i in range(x.shape[0]):
        assert any(torch.equal(y[i], c) for c in _crops(x[i]))


def test_weak_draws_per_sample():
    x = _batch(b=64, same=True)  # one image repeated
    y = augment.weak(x, generator=torch.Generator().manual_seed(0))
    distinct = {tuple(v.flatten().tolist()) for v in y}
    assert len(distinct) > 20  # a batch-wide draw would give 1


def test_weak_offsets_and_flips_are_uniform():
    # a single bright pixel in the centre moves by the crop offset: offsets uniform on 0..8
    x = torch.zeros(4000, 1, 9, 9, dtype=torch.uint8)
    x[:, 0, 4, 4] = 255
    y = augment.weak(x, generator=torch.Generator().manual_seed(0))
    cols = y[:, 0].amax(1).argmax(1)  # column of the pixel (or 0 if cropped away)
    visible = y.flatten(1).amax(1) > 0
    counts = torch.bincount(cols[visible], minlength=9).float()
    assert counts.min() > 0.7 * counts.mean()  # all 9 positions about equally often


def test_same_seed_same_output():
    x = _batch()
    a = augment.augment(
        x,
        "strong",
        generator=torch.Generator().manual_seed(3),
        cpu_generator=torch.Generator().manual_seed(4),
    )
    b = augment.augment(
        x,
        "strong",
        generator=torch.Generator().manual_seed(3),
        cpu_generator=torch.Generator().manual_seed(4),
    )
    assert torch.equal(a, b)


def test_none_is_identity_and_flip_only_flips():
    x = _batch()
    assert augment.augment(x, "none") is x
    y = augment.augment(x, "flip", generator=torch.Generator().manual_seed(0))
    for i in range(x.shape[0]):
        assert torch.equal(y[i], x[i]) or torch.equal(y[i], x[i].flip(-1))


@pytest.mark.parametrize("channels", [1, 3])
def test_rand_augment_shapes_and_per_sample_ops(channels):
    x = _batch(b=128, c=channels, h=16, w=16, same=True)
    y = augment.rand_augment(x, generator=torch.Generator().manual_seed(0))
    assert y.shape == x.shape and y.dtype == torch.uint8
    distinct = {tuple(v.flatten().tolist()) for v in y}
    assert len(distinct) > 30  # 14 ops x 2 signs x 2 rounds: many different results


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_rand_augment_ops_match_torchvision(sign):
    """Each of our 14 operations equals torchvision's RandAugment operation at magnitude
    bin 9 of 31 (the independent reference), for both signs."""
    from torchvision.transforms.v2 import InterpolationMode, RandAugment

    x = _batch(b=6, c=3, h=20, w=24)
    ref = RandAugment(num_ops=1, magnitude=9, num_magnitude_bins=31)
    table = augment._op_table(31, 9, 20, 24)
    for (name, signed, fn), (tv_name, (mags, tv_signed)) in zip(table, ref._AUGMENTATION_SPACE.items()):
        assert name.replace("_", "") == tv_name.lower()
        assert signed == tv_signed
        bins = mags(31, 20, 24)  # (height, width) order
        magnitude = float(bins[9]) if bins is not None and bins.ndim > 0 else 0.0
        magnitude *= sign if signed else 1.0
        expected = ref._apply_image_or_video_transform(
            x, tv_name, magnitude, interpolation=InterpolationMode.NEAREST, fill={torch.Tensor: None}
        )
        assert torch.equal(fn(x, sign), expected), name


def test_rand_augment_rejects_float():
    with pytest.raises(ValueError, match="uint8"):
        augment.rand_augment(torch.rand(2, 3, 8, 8))


def test_unknown_augmentation():
    with pytest.raises(ValueError, match="unknown augmentation"):
        augment.augment(_batch(), "cutout")


# --------------------------------------------------------------------------- AutoAugment


def _tv_name(name):
    return {"autocontrast": "AutoContrast"}.get(name, "".join(p.capitalize() for p in name.split("_")))


def test_auto_augment_policy_is_torchvisions_cifar10_policy():
    from torchvision.transforms.v2 import AutoAugment, AutoAugmentPolicy

    tv = AutoAugment(AutoAugmentPolicy.CIFAR10)._policies
    ours = [tuple((_tv_name(n), p, m) for n, p, m in sub) for sub in augment.AUTO_AUGMENT_CIFAR10]
    assert ours == [tuple(sub) for sub in tv]


def _tv_apply(x, name, magnitude_bin, sign):
    """torchvision's AutoAugment operation (the independent reference) at a magnitude bin of 10."""
    from torchvision.transforms.v2 import AutoAugment, InterpolationMode

    ref = AutoAugment()
    fn, signed = ref._AUGMENTATION_SPACE[_tv_name(name)]
    bins = fn(10, x.shape[-2], x.shape[-1])
    magnitude = float(bins[magnitude_bin]) * (sign if signed else 1.0) if bins is not None else 0.0
    return ref._apply_image_or_video_transform(
        x, _tv_name(name), magnitude, interpolation=InterpolationMode.NEAREST, fill={torch.Tensor: None}
    )


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_auto_augment_ops_match_torchvision(sign):
    """Every (operation, magnitude) that the CIFAR-10 policy uses, for both signs where the
    operation is signed, equals torchvision's operation on a batch of random images."""
    x = _batch(b=6, c=3, h=20, w=24)
    steps = {(n, m) for sub in augment.AUTO_AUGMENT_CIFAR10 for n, _, m in sub}
    assert len(steps) > 20
    for name, m in sorted(steps, key=str):
        signed, fn = augment._operations(10, m or 0, 20, 24)[name]
        from torchvision.transforms.v2 import AutoAugment

        assert signed == AutoAugment._AUGMENTATION_SPACE[_tv_name(name)][1], name
        assert torch.equal(fn(x, sign), _tv_apply(x, name, m or 0, sign)), (name, m, sign)


def test_auto_augment_plan_follows_the_policy_probabilities():
    b = 40000
    policy, applied, negated = augment.auto_augment_plan(b, generator=torch.Generator().manual_seed(0))
    counts = torch.bincount(policy, minlength=25).float()
    assert counts.min() > 0.85 * b / 25 and counts.max() < 1.15 * b / 25  # uniform over 25 sub-policies
    for k, sub in enumerate(augment.AUTO_AUGMENT_CIFAR10):
        members = policy == k
        for step, (_, p, _) in enumerate(sub):
            rate = applied[step][members].float().mean().item()
            assert abs(rate - p) < 0.05, (k, step, rate, p)
    assert abs(negated.float().mean().item() - 0.5) < 0.01


def test_auto_augment_batch_equals_a_per_sample_reference():
    """The grouped batch transform gives, for every sample, torchvision's two operations of
    that sample's sub-policy applied in order (with the plan's coin flips and signs)."""
    x = _batch(b=300, c=3, h=16, w=16)
    plan = augment.auto_augment_plan(300, generator=torch.Generator().manual_seed(5))
    y = augment.auto_augment(x, plan=plan)
    policy, applied, negated = plan
    for i in range(300):
        ref = x[i : i + 1]
        for step, (name, _, m) in enumerate(augment.AUTO_AUGMENT_CIFAR10[int(policy[i])]):
            if applied[step, i]:
                ref = _tv_apply(ref, name, m or 0, -1.0 if negated[step, i] else 1.0)
        assert torch.equal(y[i : i + 1], ref), i
    assert (y != x).flatten(1).any(1).float().mean() > 0.5  # most samples change


def test_auto_augment_kind_is_weak_then_autoaugment_and_reproducible():
    x = _batch(b=32, c=3, h=32, w=32)
    gens = lambda: dict(
        generator=torch.Generator().manual_seed(3), cpu_generator=torch.Generator().manual_seed(4)
    )  # noqa: E731
    a, b = augment.augment(x, "autoaugment", **gens()), augment.augment(x, "autoaugment", **gens())
    assert torch.equal(a, b) and a.dtype == torch.uint8 and a.shape == x.shape
    g = gens()
    expected = augment.auto_augment(augment.weak(x, generator=g["generator"]), generator=g["cpu_generator"])
    assert torch.equal(a, expected)
    with pytest.raises(ValueError, match="uint8"):
        augment.auto_augment(torch.rand(2, 3, 8, 8))
