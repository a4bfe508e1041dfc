"""Networks. Each is a backbone (images -> features), a classifier head (features ->
logits) and, optionally, an L2-normalised projection head (features -> embeddings) for
methods that need embeddings. Models compute no losses.

``model(x)`` returns logits; ``model.forward_all(x)`` returns features, logits and (when
the projection head exists) embeddings.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .errors import LNLError

MODELS = (
    "small_cnn",
    "preact_resnet18",
    "preact_resnet18_adaptive",
    "preact_resnet18_he",
    "cnn8",
    "resnet44",
)
HEADS = ("linear", "distance")

# Which square image sides each network takes (``lnl list`` prints this table). A network built
# for another side is refused before a run starts, with the alternatives named.
INPUT_SIZES = {
    "small_cnn": "any side; its dense layer grows with the side squared (28: 401k weights, 48: 1.2M)",
    "preact_resnet18": "32x32 only: the DivideMix code's fixed 4x4 average pool",
    "preact_resnet18_adaptive": "any side from 8: the same network with global average pooling (equal at 32)",
    "preact_resnet18_he": "32x32 only (fixed 4x4 average pool)",
    "cnn8": "sides divisible by 8 (three 2x2 max-pools before a dense layer)",
    "resnet44": "any side from 4 (global average pooling)",
}


def accepts(name: str, side: int) -> bool:
    """Whether network ``name`` takes ``side`` x ``side`` images (see ``INPUT_SIZES``)."""
    return {
        "preact_resnet18": side == 32,
        "preact_resnet18_he": side == 32,
        "preact_resnet18_adaptive": side >= 8,
        "cnn8": side >= 8 and side % 8 == 0,
        "resnet44": side >= 4,
    }.get(name, side >= 1)


def check_input_size(name: str, side: int) -> None:
    """Refuse a network that cannot take ``side`` x ``side`` images, naming those that can."""
    if name not in MODELS:
        raise LNLError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    if not accepts(name, side):
        takes = [m for m in MODELS if m != name and accepts(m, side)]
        raise LNLError(
            f"{name} takes {INPUT_SIZES[name]}, not {side}x{side} images; for {side}x{side} use "
            f"{' or '.join(takes)} (--set model=NAME), or resize the images"
        )


class NetOutput(NamedTuple):
    features: torch.Tensor  # (B, F)
    logits: torch.Tensor  # (B, K)
    embeddings: torch.Tensor | None  # (B, P), unit L2 norm, or None


class DistanceClassifier(nn.Module):
    """PEMM's distance-based head (Wang et al., Eq. (6)-(7)): learnable class centres C (K, D);
    the score of class k is d_k = exp(-||z - c_k||^2 / sigma^2) and p(k | x) = d_k / sum_j d_j.

    ``forward`` returns the logits log d_k = -||z - c_k||^2 / sigma^2, so that softmax gives
    Eq. (7) and every loss that takes logits (CE, RCE, SCE of Eq. (9)) consumes it unchanged.
    With ``normalize`` (the paper's setting) the features z are L2-normalised first.
    """

    def __init__(self, feature_dim: int, num_classes: int, *, sigma: float = 1.0, normalize: bool = True):
        super().__init__()
        if sigma <= 0:
            raise ValueError(f"sigma must be positive, got {sigma}")
        self.sigma = float(sigma)
        self.normalize = normalize
        bound = feature_dim**-0.5  # the scale of nn.Linear's default init
        self.centers = nn.Parameter(torch.empty(num_classes, feature_dim).uniform_(-bound, bound))  # (K, D)

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        """The z of Eq. (6): features, L2-normalised when ``normalize``. (B, D) float32."""
        z = features.float()
        return F.normalize(z, dim=1) if self.normalize else z

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        z = self.embed(features)  # (B, D)
        c = self.centers.float()  # (K, D)
        sq = (z * z).sum(1, keepdim=True) + (c * c).sum(1) - 2.0 * z @ c.T  # (B, K) ||z - c_k||^2
        return -sq.clamp_min(0.0) / self.sigma**2  # log d_{n,k}, Eq. (6)

    def probs(self, features: torch.Tensor) -> torch.Tensor:
        """p(k | x) of Eq. (7), (B, K)."""
        return F.softmax(self(features), dim=1)


class Network(nn.Module):
    """Backbone + classifier head (linear, or PEMM's :class:`DistanceClassifier`) + optional
    projection head."""

    def __init__(
        self,
        backbone: nn.Module,
        feature_dim: int,
        num_classes: int,
        proj_dim: int | None,
        classifier: nn.Module | None = None,
    ):
        super().__init__()
        self.backbone = backbone
        self.feature_dim = feature_dim
        self.num_classes = num_classes
        self.classifier = classifier if classifier is not None else nn.Linear(feature_dim, num_classes)
        self.projector = None
        if proj_dim:
            self.projector = nn.Sequential(
                nn.Linear(feature_dim, feature_dim), nn.ReLU(inplace=True), nn.Linear(feature_dim, proj_dim)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.backbone(x))

    def forward_all(self, x: torch.Tensor) -> NetOutput:
        features = self.backbone(x)
        emb = None if self.projector is None else F.normalize(self.projector(features), dim=1)
        return NetOutput(features, self.classifier(features), emb)


# --------------------------------------------------------------------------- small CNN


class SmallCNN(nn.Module):
    """Two strided conv layers and a wide fully connected layer, for 28x28 (or 32x32) inputs.

    conv5x5/2 (16) -> conv3x3/2 (32) -> FC (256). Strided convolutions instead of pooling
    keep a CPU training step cheap (about 7k images/s on two cores); the dense layer gives
    enough parameters to memorise noisy labels, which the reduced profile relies on.
    """

    def __init__(self, in_channels: int = 1, image_size: int = 28, width: int = 16, hidden: int = 256):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, width, 5, stride=2, padding=2, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(inplace=True),
        )
        side = (image_size + 3) // 4  # two stride-2 convolutions with "same" padding
        self.fc = nn.Sequential(
            nn.Flatten(), nn.Linear(2 * width * side * side, hidden), nn.ReLU(inplace=True)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x))


# --------------------------------------------------------------------------- PreAct ResNet-18


class PreActBlock(nn.Module):
    """BN-ReLU-conv3x3-BN-ReLU-conv3x3 with the DivideMix code's skip: the pre-activated input
    a = relu(bn1(x)) goes through the shortcut, which is a 1x1 convolution when the shape
    changes and the identity otherwise, so an identity block returns conv(...) + a, not + x.

    ``identity_skip=True`` gives He et al. (2016b)'s block instead, whose identity skip
    carries x itself (the 1x1 shortcut still sees a)."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1, *, identity_skip: bool = False):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.shortcut = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Conv2d(in_planes, planes, 1, stride, bias=False)
        self.identity_skip = identity_skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = F.relu(self.bn1(x))
        if self.shortcut is not None:
            skip = self.shortcut(a)
        else:
            skip = x if self.identity_skip else a
        out = self.conv2(F.relu(self.bn2(self.conv1(a))))
        return out + skip


class PreActResNet18(nn.Module):
    """PreAct ResNet-18 backbone exactly as in the DivideMix code (``PreResNet.py``), which the
    papers built on DivideMix all use: 3x3 stem convolution followed by BN and ReLU, four
    stages of two :class:`PreActBlock` (64, 128, 256, 512 channels; strides 1, 2, 2, 2), no
    final BN-ReLU, 4x4 average pool -> 512 features. 11,171,274 parameters with a linear
    head for K = 10.

    ``adaptive_pool=True`` (the name ``preact_resnet18_adaptive``) averages the final feature
    map whatever its size instead of a fixed 4x4 window, so that the network takes any side
    from 8; at 32x32 the two are the same function.

    ``he_variant=True`` is the He et al. (2016b) form: no stem BN and identity skips that
    carry the block's input (11,171,146 parameters for K = 10); the name
    ``preact_resnet18_he`` builds it.
    """

    def __init__(self, in_channels: int = 3, *, he_variant: bool = False, adaptive_pool: bool = False):
        super().__init__()
        self.adaptive_pool = adaptive_pool
        self.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
        self.bn1 = None if he_variant else nn.BatchNorm2d(64)
        stages, in_planes = [], 64
        for planes, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            for s in (stride, 1):
                stages.append(PreActBlock(in_planes, planes, s, identity_skip=he_variant))
                in_planes = planes
        self.layers = nn.Sequential(*stages)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(x)
        if self.bn1 is not None:
            out = F.relu(self.bn1(out))
        out = self.layers(out)
        if self.adaptive_pool:  # any input side: the mean over the final map (4x4 at 32)
            return F.adaptive_avg_pool2d(out, 1).flatten(1)
        return F.avg_pool2d(out, 4).flatten(1)


# --------------------------------------------------------------------------- PEMM's backbones


def _conv_bn_relu(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


class CNN8(nn.Module):
    """The 8-layer CNN of Wang et al. (2019)'s CIFAR-10 experiments, which PEMM uses: three
    blocks of two conv3x3-BN-ReLU (64, 128, 196 channels) each followed by a 2x2 max-pool, then
    FC-BN-ReLU to 256 features; the eighth layer is the classifier head."""

    def __init__(self, in_channels: int = 3, image_size: int = 32, hidden: int = 256):
        super().__init__()
        layers: list[nn.Module] = []
        for c_in, c_out in ((in_channels, 64), (64, 128), (128, 196)):
            layers += _conv_bn_relu(c_in, c_out) + _conv_bn_relu(c_out, c_out) + [nn.MaxPool2d(2)]
        self.conv = nn.Sequential(*layers)
        side = image_size // 8
        self.fc = nn.Sequential(
            nn.Flatten(), nn.Linear(196 * side * side, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x))


class _BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN + shortcut, ReLU. A shape change takes He et al.'s option A
    shortcut for CIFAR: subsample by 2 and zero-pad the new channels (no parameters)."""

    def __init__(self, in_planes: int, planes: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.pad = planes - in_planes
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        skip = x[:, :, :: self.stride, :: self.stride] if self.stride > 1 else x
        if self.pad:
            skip = F.pad(skip, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))
        return F.relu(out + skip)


class CifarResNet(nn.Module):
    """He et al. (2016)'s CIFAR ResNet-(6n+2): a 3x3 stem with 16 channels, three stages of n
    basic blocks (16, 32, 64 channels; strides 1, 2, 2), global average pool -> 64 features.
    n = 7 is ResNet-44 (PEMM's CIFAR-100 network), 0.66M parameters with a linear head."""

    def __init__(self, n: int = 7, in_channels: int = 3):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()
        )
        blocks, in_planes = [], 16
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(n):
                blocks.append(_BasicBlock(in_planes, planes, stride if i == 0 else 1))
                in_planes = planes
        self.layers = nn.Sequential(*blocks)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(self.layers(self.stem(x)), 1).flatten(1)


def build_model(
    name: str,
    *,
    num_classes: int,
    in_channels: int,
    image_size: int,
    proj_dim: int | None = None,
    head: str = "linear",
    head_options: dict | None = None,
) -> Network:
    """A :class:`Network` by name (one of ``MODELS``) with a ``linear`` or ``distance`` head
    (``head_options`` go to :class:`DistanceClassifier`: ``sigma``, ``normalize``)."""
    check_input_size(name, image_size)
    if name == "small_cnn":
        backbone, dim = SmallCNN(in_channels, image_size), 256
    elif name.startswith("preact_resnet18"):
        backbone = PreActResNet18(
            in_channels, he_variant=name.endswith("_he"), adaptive_pool=name.endswith("_adaptive")
        )
        dim = 512
    elif name == "cnn8":
        backbone, dim = CNN8(in_channels, image_size), 256
    elif name == "resnet44":
        backbone, dim = CifarResNet(7, in_channels), 64
    else:
        raise LNLError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    if head == "linear":
        if head_options:
            raise LNLError(f"the linear head takes no options, got {sorted(head_options)}")
        classifier = None
    elif head == "distance":
        classifier = DistanceClassifier(dim, num_classes, **(head_options or {}))
    else:
        raise LNLError(f"unknown head {head!r}; choose one of {', '.join(HEADS)}")
    return Network(backbone, dim, num_classes, proj_dim, classifier)
