import pytest
import torch

from lnl_core.errors import LNLError
from lnl_core.models import PreActResNet18, build_model


def test_preact_resnet18_matches_reference_size_and_shapes():
    net = build_model("preact_resnet18", num_classes=10, in_channels=3, image_size=32)
    assert sum(p.numel() for p in net.parameters()) == 11_171_146  # 11.17M, as the reference
    out = net.forward_all(torch.randn(2, 3, 32, 32))
    assert out.features.shape == (2, 512) and out.logits.shape == (2, 10) and out.embeddings is None


def test_preact_resnet18_structure():
    backbone = PreActResNet18()
    # stem conv without BN; no BN after the last stage; shortcuts only where shapes change
    assert backbone.conv1.bias is None
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in list(backbone.children())[:1])
    shortcuts = [b.shortcut is not None for b in backbone.layers]
    assert shortcuts == [False, False, True, False, True, False, True, False]


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
