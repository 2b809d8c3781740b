"""Model registry. Every model takes float images in [0, 1] and normalises inside, so
adversarial perturbations and triggers live in plain pixel space."""

from __future__ import annotations

import torch
from torch import nn

from .registry import Registry

MODELS: Registry = Registry("model")


class Classifier(nn.Module):
    """`features` then a linear `head`; identify/inspect use the penultimate features."""

    def __init__(self, features: nn.Module, width: int, num_classes: int, channels: int):
        super().__init__()
        self.register_buffer("mean", torch.full((1, channels, 1, 1), 0.5))
        self.register_buffer("std", torch.full((1, channels, 1, 1), 0.25))
        self.features = features
        self.head = nn.Linear(width, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.features((x - self.mean) / self.std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


def _conv_block(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


@MODELS.register("small_cnn")
def small_cnn(channels: int, num_classes: int, height: int, width: int) -> Classifier:
    """Two narrow conv stages and a hidden layer: the CPU default for 28x28 inputs, sized so a
    whole Fashion-MNIST pipeline fits in minutes on two cores (~12 s an epoch)."""
    features = nn.Sequential(
        *_conv_block(channels, 16),
        nn.MaxPool2d(2),
        *_conv_block(16, 32),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * (height // 4) * (width // 4), 128),
        nn.ReLU(inplace=True),
    )
    return Classifier(features, 128, num_classes, channels)


@MODELS.register("resnet18")
def resnet18(channels: int, num_classes: int, height: int, width: int) -> Classifier:
    """torchvision's ResNet-18 with the usual CIFAR stem: 3x3 stride-1 conv, no max-pool."""
    from torchvision.models import resnet18 as tv_resnet18

    net = tv_resnet18(num_classes=num_classes)
    net.conv1 = nn.Conv2d(channels, 64, 3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    net.fc = nn.Identity()
    return Classifier(net, 512, num_classes, channels)


def resolve_arch(arch: str, image_shape: tuple[int, int, int]) -> str:
    if arch != "auto":
        MODELS.get(arch)  # fail early on an unknown name
        return arch
    channels, height, _ = image_shape
    return "small_cnn" if channels == 1 and height <= 28 else "resnet18"


def build_model(arch: str, image_shape: tuple[int, int, int], num_classes: int) -> Classifier:
    return MODELS.get(resolve_arch(arch, image_shape))(*image_shape[:1], num_classes, *image_shape[1:])
