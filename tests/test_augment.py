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
