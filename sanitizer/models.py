"""Model registry. Every model takes float images in [0, 1] and normalises inside, so
adversarial perturbations and triggers live in plain pixel space."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .errors import SanitizerError
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

    # Convolutions in channels-last layout run ~1.6x faster on this CPU (fast_cnn) and use
    # the tensor cores on a GPU; new_model converts the weights, embed the inputs.
    channels_last = False

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features, in float32. On a GPU the convolutions run in bfloat16 (autocast):
        the tensor cores' fast path; on a CPU bfloat16 is ~10x slower, so they stay float32.
        The head, the logits and every loss and score built on them stay float32."""
        x = (x - self.mean) / self.std
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=x.is_cuda):
            return self.features(x).float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))

    @torch.no_grad()
    def prepare(self, x: torch.Tensor) -> None:
        """Data-dependent initialisation from a sample of float training images, before the
        first step; a model that has one (fast_cnn's whitening) does it only once."""
        for module in self.features.modules():
            if isinstance(module, PatchWhitening):
                module.fit((x - self.mean) / self.std)


class MaxPool2x2(nn.Module):
    """2x2 max pooling, stride 2. Without autograd it is the maximum of the input's four
    strided quarters: torch's CPU max_pool2d over channels-first maps is the slower of the
    two by several times (small_cnn predicting 60,000 images: 3.8 -> 2.0 s on two cores).
    With autograd it is max_pool2d itself: its backward pass is as fast, and it sends a tie's
    gradient to the window's first maximum (ties fill an image's flat background), as the
    models have always been trained. Both give the same values, so every model and manifest
    stays bit-identical."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and x.requires_grad:
            return F.max_pool2d(x, 2)
        h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2  # an odd last row or column is dropped, as max_pool2d does
        q = [x[..., i:h:2, j:w:2] for i in (0, 1) for j in (0, 1)]
        return torch.maximum(torch.maximum(q[0], q[1]), torch.maximum(q[2], q[3]))


def _conv_block(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


@MODELS.register("small_cnn")
def small_cnn(channels: int, num_classes: int, height: int, width: int) -> Classifier:
    """Two narrow conv stages and a hidden layer: the CPU default for 28x28 inputs, sized so a
    whole Fashion-MNIST pipeline fits in minutes on two cores (~12 s an epoch)."""
    features = nn.Sequential(
        *_conv_block(channels, 16),
        MaxPool2x2(),
        *_conv_block(16, 32),
        MaxPool2x2(),
        nn.Flatten(),
        nn.Linear(32 * (height // 4) * (width // 4), 128),
        nn.ReLU(inplace=True),
    )
    return Classifier(features, 128, num_classes, channels)


class PatchWhitening(nn.Module):
    """A frozen 2x2 convolution that whitens image patches: its filters are the eigenvectors of
    the patch covariance of the training images, scaled by 1/sqrt(eigenvalue), with their
    negatives (so a ReLU-like activation after it keeps both signs). Decorrelating the input
    is what lets a small net learn CIFAR in a few epochs: the first layer need not be learnt."""

    def __init__(self, channels: int, eps: float = 5e-4):
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.zeros(8 * channels, channels, 2, 2))
        self.register_buffer("ready", torch.zeros((), dtype=torch.bool))
        self.bias = nn.Parameter(torch.zeros(8 * channels))

    def fit(self, x: torch.Tensor) -> None:
        if self.ready:
            return
        c = x.shape[1]
        patches = x.unfold(2, 2, 1).unfold(3, 2, 1).permute(0, 2, 3, 1, 4, 5).reshape(-1, 4 * c)
        eigenvalues, vectors = torch.linalg.eigh(torch.cov(patches.T.double()))
        filters = (vectors.T / torch.sqrt(eigenvalues.clamp(min=0) + self.eps)[:, None]).float().view(4 * c, c, 2, 2)
        self.weight.copy_(torch.cat([filters, -filters]))
        self.ready.fill_(True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight, self.bias)


class _PooledBlock(nn.Sequential):
    def __init__(self, cin: int, cout: int):
        super().__init__(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False),
            nn.MaxPool2d(2),
            _frozen_scale(nn.BatchNorm2d(cout, momentum=0.4)),
            nn.GELU(),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False),
            _frozen_scale(nn.BatchNorm2d(cout, momentum=0.4)),
            nn.GELU(),
        )


def _frozen_scale(bn: nn.BatchNorm2d) -> nn.BatchNorm2d:
    # Only the shift is learnt: with the scale fixed at 1 the high learning rate stays stable.
    bn.weight.requires_grad_(False)
    return bn


class _Scaled(nn.Linear):
    """A bias-free head whose logits are divided by 9 (as in airbench): small logits at the
    start of training at a high learning rate."""

    def __init__(self, width: int, num_classes: int):
        super().__init__(width, num_classes, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) / 9


@MODELS.register("fast_cnn")
def fast_cnn(channels: int, num_classes: int, height: int, width: int, widths=(24, 96, 96)) -> Classifier:
    """The CPU default for colour images: a frozen patch-whitening stem and three pooled conv
    blocks, after the fast-CIFAR-training networks (Page's ResNet-9 line, Jordan's airbench).
    At widths 24/96/96 its recipe (RECIPES) learns CIFAR-10 to 85.15 % test accuracy in 11
    epochs, ~530 s on two cores (benchmarks/results/cifar10-recipe.md); ResNet-18 needs a GPU
    for that."""
    features = nn.Sequential(
        PatchWhitening(channels),
        nn.GELU(),
        _PooledBlock(8 * channels, widths[0]),
        _PooledBlock(widths[0], widths[1]),
        _PooledBlock(widths[1], widths[2]),
        nn.AdaptiveMaxPool2d(1),
        nn.Flatten(),
    )
    model = Classifier(features, widths[2], num_classes, channels)
    model.head = _Scaled(widths[2], num_classes)
    model.channels_last = True
    return model


@MODELS.register("resnet18")
def resnet18(channels: int, num_classes: int, height: int, width: int) -> Classifier:
    """torchvision's ResNet-18 with the usual CIFAR stem: 3x3 stride-1 conv, no max-pool."""
    from torchvision.models import resnet18 as tv_resnet18

    net = tv_resnet18(num_classes=num_classes)
    net.conv1 = nn.Conv2d(channels, 64, 3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    net.fc = nn.Identity()
    model = Classifier(net, 512, num_classes, channels)
    model.channels_last = True
    return model


@dataclass(frozen=True)
class Recipe:
    """How a model trains when params.yaml's train section leaves a value null. The recipe
    belongs to the architecture: fast_cnn's learning rate is 20x small_cnn's."""

    epochs: int
    batch_size: int
    lr: float
    momentum: float
    weight_decay: float
    augment: bool  # per-sample horizontal flip and a shift of up to `shift` pixels
    # The rate the methods fine-tune a trained model at (enhance, purify, relabel; PBE and PUD
    # a tenth of it), where their sections leave lr null: a fifth of the peak training rate,
    # the ratio the Fashion-MNIST defaults were tuned at (0.01 against small_cnn's 0.05).
    tune_lr: float
    # Epochs of AdvrBD's per-round clean reference C on D_s, where enhance.clean_epochs is null.
    # small_cnn: 2, the Fashion-MNIST default. fast_cnn: 7; with 2 (about 40 steps of batch 512
    # on CIFAR-10's 20 % seed) C reached 33-40 % test accuracy and AdvrBD flagged 56 % of the
    # clean samples on BadNets; with 7, 21 % (benchmarks/results/cifar10-badnets-reference-epochs-7.json).
    reference_epochs: int
    label_smoothing: float = 0.0
    shift: int = 2
    schedule: str = "cosine"  # training.SCHEDULES


RECIPES: dict[str, Recipe] = {
    # Measured on Fashion-MNIST: 91 % test accuracy in 3 epochs (~12 s each on two cores).
    "small_cnn": Recipe(epochs=3, batch_size=128, lr=0.05, momentum=0.9, weight_decay=5e-4, augment=False, tune_lr=0.01, reference_epochs=2),
    # Measured on CIFAR-10, all 50,000 images: see benchmarks/results/cifar10-recipe.md.
    "fast_cnn": Recipe(epochs=11, batch_size=512, lr=1.0, momentum=0.85, weight_decay=3e-6, augment=True, tune_lr=0.2, reference_epochs=7, label_smoothing=0.2, schedule="triangle"),
    # The GPU benchmark's recipe (benchmarks/gpu.sh): 89.46 % on one H200 in ~35 s, short of
    # the 93 % goal (benchmarks/results/gpu.md); reference_epochs is a guess, two thirds of its
    # training, like fast_cnn's.
    "resnet18": Recipe(epochs=30, batch_size=512, lr=0.2, momentum=0.9, weight_decay=5e-4, augment=True, tune_lr=0.04, reference_epochs=20, shift=4),
}


def recipe_of(model, param: str) -> Recipe:
    """The model's recipe, for a params.yaml value `param` left null."""
    recipe = getattr(model, "recipe", None)
    if recipe is None:
        raise SanitizerError(f"params.yaml {param} is null and this model has no recipe in sanitizer/models.py RECIPES: set it")
    return recipe


def resolve_arch(arch: str, image_shape: tuple[int, int, int], cuda: bool | None = None) -> str:
    """`auto`: small_cnn for greyscale images up to 28 px; otherwise ResNet-18 on a GPU and
    fast_cnn on a CPU, where ResNet-18 trains ~5x slower (issue 17: ~200 against ~1,000 img/s)."""
    if arch != "auto":
        MODELS.get(arch)  # fail early on an unknown name
        return arch
    channels, height, _ = image_shape
    if channels == 1 and height <= 28:
        return "small_cnn"
    return "resnet18" if (torch.cuda.is_available() if cuda is None else cuda) else "fast_cnn"


def build_model(arch: str, image_shape: tuple[int, int, int], num_classes: int) -> Classifier:
    name = resolve_arch(arch, image_shape)
    model = MODELS.get(name)(*image_shape[:1], num_classes, *image_shape[1:])
    model.recipe = RECIPES.get(name)
    return model
