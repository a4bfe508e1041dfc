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

MODELS = ("small_cnn", "preact_resnet18")


class NetOutput(NamedTuple):
    features: torch.Tensor  # (B, F)
    logits: torch.Tensor  # (B, K)
    embeddings: torch.Tensor | None  # (B, P), unit L2 norm, or None


class Network(nn.Module):
    """Backbone + linear classifier + optional projection head."""

    def __init__(self, backbone: nn.Module, feature_dim: int, num_classes: int, proj_dim: int | None):
        super().__init__()
        self.backbone = backbone
        self.feature_dim = feature_dim
        self.num_classes = num_classes
        self.classifier = nn.Linear(feature_dim, num_classes)
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
    """BN-ReLU-conv3x3-BN-ReLU-conv3x3; the 1x1 shortcut sees the pre-activated input."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.shortcut = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Conv2d(in_planes, planes, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        skip = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + skip


class PreActResNet18(nn.Module):
    """PreAct ResNet-18 backbone of the DivideMix code (He et al. 2016b): 3x3 stem without
    BN, four stages of two blocks, no final BN-ReLU, 4x4 average pool -> 512 features."""

    def __init__(self, in_channels: int = 3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
        stages, in_planes = [], 64
        for planes, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            stages += [PreActBlock(in_planes, planes, stride), PreActBlock(planes, planes, 1)]
            in_planes = planes
        self.layers = nn.Sequential(*stages)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(self.conv1(x))
        return F.avg_pool2d(out, 4).flatten(1)


def build_model(
    name: str, *, num_classes: int, in_channels: int, image_size: int, proj_dim: int | None = None
) -> Network:
    """A :class:`Network` by name: ``small_cnn`` or ``preact_resnet18``."""
    if name == "small_cnn":
        backbone = SmallCNN(in_channels, image_size)
        return Network(backbone, 256, num_classes, proj_dim)
    if name == "preact_resnet18":
        if image_size != 32:
            raise LNLError(f"preact_resnet18 expects 32x32 images, got {image_size}x{image_size}")
        return Network(PreActResNet18(in_channels), 512, num_classes, proj_dim)
    raise LNLError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
