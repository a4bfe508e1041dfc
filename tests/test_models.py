import pytest
import torch

from lnl_core.errors import LNLError
from lnl_core.models import PreActResNet18, build_model


def test_preact_resnet18_matches_reference_size_and_shapes():
    net = build_model("preact_resnet18", num_classes=10, in_channels=3, image_size=32)
    assert sum(p.numel() for p in net.parameters()) == 11_171_274  # the DivideMix PreResNet.py count
    out = net.forward_all(torch.randn(2, 3, 32, 32))
    assert out.features.shape == (2, 512) and out.logits.shape == (2, 10) and out.embeddings is None
    he = build_model("preact_resnet18_he", num_classes=10, in_channels=3, image_size=32)
    assert sum(p.numel() for p in he.parameters()) == 11_171_146  # no stem BN: 128 fewer


def test_preact_resnet18_structure():
    backbone = PreActResNet18()
    # stem conv followed by BN; no BN after the last stage; 1x1 shortcuts only where shapes change
    assert backbone.conv1.bias is None and isinstance(backbone.bn1, torch.nn.BatchNorm2d)
    shortcuts = [b.shortcut is not None for b in backbone.layers]
    assert shortcuts == [False, False, True, False, True, False, True, False]
    assert PreActResNet18(he_variant=True).bn1 is None


class _ReferencePreActResNet18(torch.nn.Module):
    """An independent PreAct ResNet-18 written from the description of the DivideMix code:
    conv-BN-ReLU stem; blocks a = relu(bn1(x)), out = conv2(relu(bn2(conv1(a)))) + skip(a) where
    skip is a 1x1 conv or the identity *on a*; 4x4 average pool; linear layer."""

    def __init__(self, k=10):
        super().__init__()
        nn = torch.nn
        self.stem_conv = nn.Conv2d(3, 64, 3, padding=1, bias=False)
        self.stem_bn = nn.BatchNorm2d(64)
        self.blocks = nn.ModuleList()
        c_in = 64
        for c_out, stride in [(64, 1), (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1)]:
            blk = nn.Module()
            blk.bn_a, blk.bn_b = nn.BatchNorm2d(c_in), nn.BatchNorm2d(c_out)
            blk.conv_a = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
            blk.conv_b = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
            blk.proj = (
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False) if (stride, c_in) != (1, c_out) else None
            )
            self.blocks.append(blk)
            c_in = c_out
        self.fc = nn.Linear(512, k)

    def forward(self, x):
        relu = torch.nn.functional.relu
        h = relu(self.stem_bn(self.stem_conv(x)))
        for blk in self.blocks:
            a = relu(blk.bn_a(h))
            skip = a if blk.proj is None else blk.proj(a)
            h = blk.conv_b(relu(blk.bn_b(blk.conv_a(a)))) + skip
        return self.fc(torch.nn.functional.avg_pool2d(h, 4).flatten(1))


def _copy_into_reference(net, ref):
    """Copy ``net``'s weights (and BN buffers) into the reference, tensor by tensor in the order
    of the forward pass; the shapes must agree one to one."""
    bb = net.backbone
    pairs = [(bb.conv1, ref.stem_conv), (bb.bn1, ref.stem_bn)]
    for ours, theirs in zip(bb.layers, ref.blocks):
        pairs += [(ours.bn1, theirs.bn_a), (ours.conv1, theirs.conv_a), (ours.bn2, theirs.bn_b)]
        pairs += [(ours.conv2, theirs.conv_b)]
        assert (ours.shortcut is None) == (theirs.proj is None)
        if ours.shortcut is not None:
            pairs.append((ours.shortcut, theirs.proj))
    pairs.append((net.classifier, ref.fc))
    for a, b in pairs:
        b.load_state_dict(a.state_dict())
    n_ref = sum(p.numel() for p in ref.parameters())
    assert n_ref == sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize("train_mode", [False, True])
def test_preact_resnet18_forward_equals_an_independent_reimplementation(train_mode):
    torch.manual_seed(0)
    net = build_model("preact_resnet18", num_classes=10, in_channels=3, image_size=32)
    with torch.no_grad():  # non-trivial BN statistics and affine parameters
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5), m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5), m.bias.uniform_(-0.2, 0.2)
    ref = _ReferencePreActResNet18()
    _copy_into_reference(net, ref)
    net.train(train_mode), ref.train(train_mode)
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours, theirs = net(x), ref(x)
    assert torch.allclose(ours, theirs, rtol=1e-4, atol=1e-5)
    # the He variant differs (identity skips carry x; no stem BN), so the test can tell them apart
    he = build_model("preact_resnet18_he", num_classes=10, in_channels=3, image_size=32)
    he.load_state_dict({k: v for k, v in net.state_dict().items() if not k.startswith("backbone.bn1")})
    he.train(train_mode)
    with torch.no_grad():
        assert not torch.allclose(he(x), theirs, rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("channels,size", [(1, 28), (3, 32)])
def test_small_cnn_shapes_and_projection(channels, size):
    net = build_model("small_cnn", num_classes=7, in_channels=channels, image_size=size, proj_dim=128)
    x = torch.randn(5, channels, size, size)
    out = net.forward_all(x)
    assert out.features.shape == (5, 256) and out.logits.shape == (5, 7)
    assert out.embeddings.shape == (5, 128)
    assert torch.allclose(out.embeddings.norm(dim=1), torch.ones(5), atol=1e-5)
    assert torch.equal(net(x), out.logits)


def test_unknown_model_and_bad_size():
    with pytest.raises(LNLError, match="unknown model"):
        build_model("resnet50", num_classes=10, in_channels=3, image_size=32)
    with pytest.raises(LNLError, match="32x32"):
        build_model("preact_resnet18", num_classes=10, in_channels=1, image_size=28)
