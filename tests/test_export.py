import json

import numpy as np
import onnxruntime as ort
import pytest
import torch

from facegender import models
from facegender.classifier import Classifier, ModelError
from facegender.export import WithSoftmax, export
from facegender.images import load_rgb

from .conftest import real_images


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    d = tmp_path_factory.mktemp("export")
    torch.manual_seed(0)
    net = models.get("mobilenet_v2").build(pretrained=True).eval()
    torch.save({"model": net.state_dict(), "model_name": "mobilenet_v2", "width": 80, "height": 96,
                "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225), "epoch": 1, "val_acc": 0.5}, d / "c.pt")
    meta = export(str(d / "c.pt"), str(d / "m.onnx"), card={"data": "test"})
    return net, d / "m.onnx", meta


def test_onnx_agrees_with_pytorch_on_real_faces(exported):
    net, path, _ = exported
    clf = Classifier(path)
    faces = np.stack([clf.pre.fit(load_rgb(p)) for p in real_images("utkface", "female", 16)])
    onnx_probs = clf.predict(faces)
    with torch.no_grad():
        torch_probs = WithSoftmax(net)(torch.from_numpy(clf.pre.normalize(faces))).numpy()
    assert np.abs(onnx_probs - torch_probs).max() < 1e-4
    assert np.allclose(onnx_probs.sum(1), 1, atol=1e-5)


def test_metadata_carries_preprocessing_and_card(exported):
    _, path, meta = exported
    stored = json.loads(ort.InferenceSession(str(path)).get_modelmeta().custom_metadata_map["facegender"])
    assert stored["labels"] == ["male", "female"]
    assert (stored["width"], stored["height"]) == (80, 96)
    assert stored["mean"] == [0.485, 0.456, 0.406] and stored["std"] == [0.229, 0.224, 0.225]
    assert stored["data"] == "test" and stored["exported"]
    assert (path.parent / "m.onnx.sha256").read_text().split()[0] == meta["sha256"]


def test_damaged_or_missing_model_gives_one_clear_error(exported, tmp_path):
    _, path, _ = exported
    bad = tmp_path / "m.onnx"
    bad.write_bytes(path.read_bytes()[: 100000])
    (tmp_path / "m.onnx.sha256").write_text((path.parent / "m.onnx.sha256").read_text())
    with pytest.raises(ModelError, match="damaged"):
        Classifier(bad)
    (tmp_path / "m.onnx.sha256").unlink()
    with pytest.raises(ModelError, match="cannot load"):
        Classifier(bad)
    with pytest.raises(ModelError, match="not found"):
        Classifier(tmp_path / "nothing.onnx")


@pytest.fixture(scope="module")
def cascade_parts(tmp_path_factory, exported):
    d = tmp_path_factory.mktemp("cascade")
    torch.manual_seed(1)
    fast = models.get("mobilenet_v3_small").build(pretrained=False).eval()
    torch.save({"model": fast.state_dict(), "model_name": "mobilenet_v3_small", "width": 80, "height": 96,
                "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}, d / "fast.pt")
    return d, fast, exported[0], exported[1].parent / "c.pt"


@pytest.mark.parametrize("margin", [0.0, 0.05, 0.6])
def test_cascade_answers_unsure_faces_with_the_accurate_net(cascade_parts, margin):
    d, fast, accurate, accurate_checkpoint = cascade_parts
    out = d / f"c{margin}.onnx"
    meta = export(str(d / "fast.pt"), str(out), accurate=str(accurate_checkpoint), margin=margin)
    assert meta["cascade"]["margin"] == margin
    clf = Classifier(out)
    faces = np.stack([clf.pre.fit(load_rgb(p)) for p in real_images("celeba-89x109", "male", 24)])
    x = torch.from_numpy(clf.pre.normalize(faces))
    with torch.no_grad():
        p_fast, p_accurate = WithSoftmax(fast)(x).numpy(), WithSoftmax(accurate)(x).numpy()
    unsure = np.abs(p_fast[:, 1] - 0.5) < margin
    expected = np.where(unsure[:, None], p_accurate, p_fast)
    got = clf.predict(faces)
    # weights are stored as float16: probabilities move by a little, labels do not
    assert np.abs(got - expected).max() < 5e-3
    assert ((got[:, 1] > 0.5) == (expected[:, 1] > 0.5))[np.abs(expected[:, 1] - 0.5) > 0.01].all()
    assert out.stat().st_size < 0.6 * ((d / "fast.pt").stat().st_size + accurate_checkpoint.stat().st_size)
