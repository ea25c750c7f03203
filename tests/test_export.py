import json
import random

import numpy as np
import onnxruntime as ort
import pytest
import torch

from facegender.classifier import Classifier, ModelError
from facegender.images import load_rgb
from facegender.training import models
from facegender.training.export import WithSoftmax, export

from .conftest import real_images


def checkpoint_of(name: str, folder) -> tuple[torch.nn.Module, str]:
    """A registered model from ImageNet weights (random 2-class head), saved as train saves it."""
    torch.manual_seed(0)
    net = models.get(name).build(pretrained=True).eval()
    torch.save({"model": net.state_dict(), "model_name": name, "width": 80, "height": 96,
                "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225), "epoch": 1, "val_acc": 0.5}, folder / "c.pt")
    return net, str(folder / "c.pt")


def torch_answers(net: torch.nn.Module, clf: Classifier, faces: np.ndarray) -> np.ndarray:
    """What the PyTorch net says of `faces`, prepared as the ONNX model prepares them."""
    with torch.no_grad():
        return WithSoftmax(net.eval())(torch.from_numpy(clf.pre.normalize(faces))).numpy()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    d = tmp_path_factory.mktemp("export")
    net, checkpoint = checkpoint_of("mobilenet_v2", d)
    meta = export(checkpoint, str(d / "m.onnx"), card={"data": "test"})
    return net, d / "m.onnx", meta


def test_onnx_agrees_with_pytorch_on_real_faces(exported):
    net, path, _ = exported
    clf = Classifier(path)
    faces = np.stack([clf.pre.fit(load_rgb(p)) for p in real_images("utkface", "female", 16)])
    onnx_probs = clf.predict(faces)
    torch_probs = torch_answers(net, clf, faces)
    assert np.abs(onnx_probs - torch_probs).max() < 1e-4
    assert np.allclose(onnx_probs.sum(1), 1, atol=1e-5)


def test_efficientnet_lite0_exports_and_agrees_with_pytorch(tmp_path):
    net, checkpoint = checkpoint_of("efficientnet_lite0", tmp_path)
    export(checkpoint, str(tmp_path / "m.onnx"))
    # a tiny margin leaves the graph's mirror pass an empty batch, which the package's own head failed on
    export(checkpoint, str(tmp_path / "mirror.onnx"), mirror_margin=1e-7)
    clf = Classifier(tmp_path / "m.onnx")
    faces = np.stack([clf.pre.fit(load_rgb(p)) for p in real_images("celeba-89x109", "male", 16)])
    torch_probs = torch_answers(net, clf, faces)
    assert np.abs(clf.predict(faces) - torch_probs).max() < 1e-4
    assert np.abs(Classifier(tmp_path / "mirror.onnx").predict(faces) - torch_probs).max() < 1e-4


def test_half_weights_halve_the_file_and_keep_the_answers(exported, tmp_path):
    net, path, _ = exported
    meta = export(str(path.parent / "c.pt"), str(tmp_path / "half.onnx"), half_weights=True)
    assert meta["weights_stored_as"] == "float16"
    assert meta["bytes"] < 0.55 * path.stat().st_size
    clf = Classifier(tmp_path / "half.onnx")
    faces = np.stack([clf.pre.fit(load_rgb(p)) for p in real_images("utkface", "male", 16)])
    torch_probs = torch_answers(net, clf, faces)
    half_probs = clf.predict(faces)
    assert 0 < np.abs(half_probs - torch_probs).max() < 1e-2  # rounded weights, not float32 ones
    assert clf.session.get_inputs()[0].type == "tensor(float)"


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


@pytest.mark.parametrize("margin", [0.02, 0.6])
def test_unsure_faces_are_averaged_with_their_mirror(exported, margin, tmp_path):
    net, path, _ = exported
    meta = export(str(path.parent / "c.pt"), str(tmp_path / "m.onnx"), mirror_margin=margin)
    assert meta["mirror_margin"] == margin
    clf = Classifier(tmp_path / "m.onnx")
    faces = np.stack([clf.pre.fit(load_rgb(p)) for p in real_images("celeba-89x109", "male", 24)])
    plain, mirrored = torch_answers(net, clf, faces), torch_answers(net, clf, faces[:, :, ::-1])
    unsure = np.abs(plain[:, 1] - 0.5) < margin
    expected = np.where(unsure[:, None], (plain + mirrored) / 2, plain)
    assert np.abs(clf.predict(faces) - expected).max() < 1e-4
    if margin > 0.5:  # every face unsure: the same as averaging every face with its mirror
        assert np.abs(clf.predict(faces) - Classifier(path).predict(faces, flip=True)).max() < 1e-4
    # flip=True (detect mode) does not mirror a second time what the graph already mirrored
    assert np.abs(clf.predict(faces, flip=True) - expected).max() < 1e-4


def test_shipped_model_recovers_to_a_trainable_checkpoint(tmp_path):
    """`train --weights model.onnx`: the recovered net answers as the graph does in eval
    mode, and its re-opened BatchNorms keep it accurate in train mode (batch statistics)."""
    from facegender import manifest
    from facegender.classifier import DEFAULT_MODEL
    from facegender.training.recover import checkpoint_from_onnx

    from .conftest import SAMPLE
    rows = random.Random(0).sample(manifest.read(str(SAMPLE)), 384)  # mixed, as training draws them
    ckpt = checkpoint_from_onnx(str(DEFAULT_MODEL), rows[:256], images=256)
    net = models.get(ckpt["model_name"]).build(pretrained=False)
    net.load_state_dict(ckpt["model"])
    clf = Classifier(DEFAULT_MODEL)
    test_rows = rows[256:]
    faces = np.stack([clf.pre.fit(load_rgb(r.path), x_stretch=r.x_stretch) for r in test_rows])
    x = torch.from_numpy(clf.pre.normalize(faces))
    graph = clf.predict(faces)[:, 1]
    t = clf.meta.get("temperature") or 1.0  # the graph tempers and shifts its answers; the recovered net gives raw logits
    shift = torch.tensor([0.0, clf.meta.get("bias") or 0.0])
    with torch.no_grad():
        logits = net.eval()(x)
        untempered, recovered = torch.softmax(logits, 1)[:, 1].numpy(), torch.softmax(logits / t + shift, 1)[:, 1].numpy()
        batch_stats = torch.softmax(net.train()(x), 1)[:, 1].numpy()
    sure = np.abs(untempered - 0.5) > 0.25  # the graph re-runs unsure faces mirrored; compare the others
    assert sure.sum() > 100 and np.abs(recovered - graph)[sure].max() < 1e-4
    labels = np.array([r.label for r in test_rows])
    assert ((batch_stats > 0.5) == labels).mean() >= ((graph > 0.5) == labels).mean() - 0.03


def test_half_weight_efficientnet_export_recovers_to_a_trainable_checkpoint(tmp_path):
    """`train --weights` from a Lite0 stored as float16: its Casts are read through and each
    BatchNorm finds its convolution past the convolution's own padding module."""
    from facegender import manifest
    from facegender.training.recover import checkpoint_from_onnx

    from .conftest import SAMPLE
    _, checkpoint = checkpoint_of("efficientnet_lite0", tmp_path)
    export(checkpoint, str(tmp_path / "half.onnx"), half_weights=True)
    rows = random.Random(0).sample(manifest.read(str(SAMPLE)), 96)
    ckpt = checkpoint_from_onnx(str(tmp_path / "half.onnx"), rows[:64], images=64)
    net = models.get(ckpt["model_name"]).build(pretrained=False)
    net.load_state_dict(ckpt["model"])
    clf = Classifier(tmp_path / "half.onnx")
    faces = np.stack([clf.pre.fit(load_rgb(r.path), x_stretch=r.x_stretch) for r in rows[64:]])
    assert np.abs(torch_answers(net, clf, faces) - clf.predict(faces)).max() < 1e-4


def test_calibrated_export_fits_temperature_and_bias_and_lowers_ece(tmp_path):
    """The shipped model is under-confident (ECE 0.06): calibration sharpens it (T < 1),
    lowers the ECE, moves the decision point to the fitted threshold and nowhere else, and
    fitting again on the result finds T ~ 1 and b ~ 0."""
    from facegender import manifest
    from facegender.classifier import DEFAULT_MODEL
    from facegender.evaluate import predict_rows
    from facegender.training.export import fit_calibration
    from facegender.training.recover import checkpoint_from_onnx

    from .conftest import SAMPLE
    rows = random.Random(1).sample(manifest.read(str(SAMPLE)), 600)
    torch.save(checkpoint_from_onnx(str(DEFAULT_MODEL), rows[:256], images=256), tmp_path / "c.pt")
    manifest.write(tmp_path / "cal.csv", rows[256:])
    export(str(tmp_path / "c.pt"), str(tmp_path / "plain.onnx"), mirror_margin=0.25)
    meta = export(str(tmp_path / "c.pt"), str(tmp_path / "cal.onnx"), mirror_margin=0.25, calibrate=str(tmp_path / "cal.csv"))
    assert meta["temperature"] < 0.9
    assert meta["ece_on_calibration_set"]["after"] < meta["ece_on_calibration_set"]["before"] - 0.01
    p_plain, _ = predict_rows(rows[256:], Classifier(tmp_path / "plain.onnx"))
    p_cal, _ = predict_rows(rows[256:], Classifier(tmp_path / "cal.onnx"))
    t = meta["decision_threshold_before_calibration"]
    clear = np.abs(p_plain - t) > 1e-3  # the threshold is rounded in the card
    assert 0.2 < t < 0.8 and ((p_plain >= t) == (p_cal >= 0.5))[clear].all()
    again = fit_calibration(str(tmp_path / "cal.onnx"), str(tmp_path / "cal.csv"))
    assert abs(again["temperature"] - 1) < 0.02 and abs(again["bias"]) < 0.02


def test_normalize_gives_the_elementwise_imagenet_formula_bit_for_bit():
    """(v / 255 - mean) / std per channel, as contiguous float32 NCHW: the same float32
    operations as the formula, so inference and the int8 calibration (its file) do not move."""
    from facegender.preprocess import Preprocess
    pre = Preprocess()
    batch = np.random.default_rng(0).integers(0, 256, (3, 96, 80, 3), dtype=np.uint8)
    mean, std = np.asarray(pre.mean, np.float32), np.asarray(pre.std, np.float32)
    expected = (batch.astype(np.float32) * np.float32(1 / 255) - mean) / std
    out = pre.normalize(batch)
    assert out.dtype == np.float32 and out.flags.c_contiguous
    assert np.array_equal(out, expected.transpose(0, 3, 1, 2))


def test_calibration_keeps_the_temperature_bounded_when_answers_carry_no_signal(monkeypatch, tmp_path):
    """A barely trained model's answers can anti-correlate with the labels: the fit then keeps
    T within [1/20, 20] (a positive T) and fits the bias alone, instead of diverging."""
    from facegender import evaluate, manifest
    from facegender.manifest import Row
    from facegender.training import export as ex

    rows = [Row(path=str(tmp_path / f"{i}.jpg"), label=i % 2, source="s") for i in range(200)]
    manifest.write(tmp_path / "m.csv", rows)
    rng = np.random.default_rng(0)
    p = np.where(np.arange(200) % 2 == 1, 0.45, 0.55) + rng.normal(0, 0.001, 200)  # every answer slightly wrong
    monkeypatch.setattr("facegender.classifier.Classifier", lambda path: None)
    monkeypatch.setattr(evaluate, "predict_rows", lambda rows, clf: (p, []))
    fit = ex.fit_calibration("unused.onnx", str(tmp_path / "m.csv"))
    assert 1 / 20 <= fit["temperature"] <= 20 and np.isfinite(fit["bias"])
