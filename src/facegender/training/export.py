"""Export a checkpoint to ONNX with everything inference needs in its metadata.

The graph takes normalised float32 Nx3xHxW and returns class probabilities (softmax
inside); the `facegender` metadata entry (JSON) carries labels, input size, mean/std and
the model card facts. A `.sha256` file beside the model lets loading verify it.
"""
from __future__ import annotations

import datetime
import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from ..errors import InputError
from ..manifest import CLASSES
from . import models


class Tempered(torch.nn.Module):
    """Probabilities tempered by a temperature and shifted by a bias fitted on validation
    (`fit_calibration`): softmax(log p / T + (0, b)), which for a plain answer is
    softmax(logits / T) with b added to the female log-odds. T makes a probability of 0.9
    right about 9 times in 10; b moves the decision point to the one that serves every
    source alike. It works on the final answer, after any mirror pass, so which faces get a
    mirror pass stays as it was."""

    def __init__(self, answers: torch.nn.Module, temperature: float, bias: float = 0.0):
        super().__init__()
        self.answers, self.temperature = answers, temperature
        self.register_buffer("shift", torch.tensor([0.0, bias]))

    def forward(self, x):
        return torch.softmax(torch.log(self.answers(x).clamp_min(1e-12)) / self.temperature + self.shift, dim=1)


class WithSoftmax(torch.nn.Module):
    """Probabilities out, so every runtime reads the same numbers."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x):
        return torch.softmax(self.net(x), dim=1)


class MirrorWhenUnsure(torch.nn.Module):
    """Probabilities out; faces the net is unsure of (P(female) within `margin` of 0.5) are
    answered again as their mirror image and the two answers averaged. One graph: the second
    pass runs only on the unsure rows (NonZero -> Gather -> ScatterND), about 5% of faces,
    and it gives nearly all of what averaging every face with its mirror gives."""

    def __init__(self, net: torch.nn.Module, margin: float):
        super().__init__()
        self.net, self.margin = net, margin

    def forward(self, x):
        p = torch.softmax(self.net(x), dim=1)
        unsure = ((p[:, 1] - 0.5).abs() < self.margin).nonzero()[:, 0]
        mirrored = torch.softmax(self.net(x.index_select(0, unsure).flip(3)), dim=1)
        return p.index_put((unsure,), (p.index_select(0, unsure) + mirrored) / 2)


def load_checkpoint(path: str | Path) -> tuple[torch.nn.Module, dict]:
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    net = models.get(ckpt["model_name"]).build(pretrained=False)
    net.load_state_dict(ckpt["model"])
    return net.eval(), ckpt


def write_checksum(path: Path) -> str:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    path.with_name(path.name + ".sha256").write_text(f"{digest}  {path.name}\n")
    return digest


def store_weights_as_float16(model) -> None:
    """Halve the file: each large float32 weight is stored as float16 and Cast back to float32
    at the top of the graph. ONNX Runtime folds those Casts when it loads the model, so
    inference still runs in float32 at float32 speed; only the weights are rounded (~1e-3
    relative), which moves probabilities by about 1e-3."""
    from onnx import TensorProto, helper, numpy_helper

    graph, casts = model.graph, []
    for init in graph.initializer:
        if init.data_type == TensorProto.FLOAT and np.prod(init.dims) >= 256:
            name = init.name
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), name + "_fp16"))
            casts.append(helper.make_node("Cast", [name + "_fp16"], [name], to=TensorProto.FLOAT))
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)


MAX_TEMPERATURE = 20.0  # the fitted T stays within [1/20, 20]


def fit_calibration(model_path: str, manifest_path: str) -> dict:
    """The temperature T and bias b minimising the log loss of sigmoid(z / T + b) on a
    manifest's images (z: the exported model's log-odds), every source x sex cell weighted
    alike, so the largest source does not set the decision point for all (weighted Platt
    scaling, by Newton's method). Returns T, b, the P(female) threshold b amounts to on the
    uncalibrated answers, and the ECE before and after."""
    from .. import manifest
    from ..classifier import Classifier
    from ..evaluate import predict_rows
    from ..metrics import calibration

    rows = manifest.read(manifest_path)
    p, failures = predict_rows(rows, Classifier(model_path))
    if failures:
        raise InputError(f"{len(failures)} calibration images failed, first {failures[0]}")
    y = np.array([r.label for r in rows], float)
    q = np.clip(p, 1e-7, 1 - 1e-7)
    z = np.log(q / (1 - q))
    cells = [(r.source, r.label) for r in rows]
    size = {c: cells.count(c) for c in set(cells)}
    w = np.array([1.0 / size[c] for c in cells])
    w *= len(w) / w.sum()
    theta = np.array([1.0, 0.0])  # (1/T, b)
    features = np.stack([z, np.ones_like(z)], 1)
    for _ in range(50):
        s = 1 / (1 + np.exp(-features @ theta))
        grad = features.T @ (w * (s - y))
        hess = (features * (w * s * (1 - s))[:, None]).T @ features + 1e-9 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        theta -= step
        if np.abs(step).max() < 1e-10:
            break
    a, b = theta
    if not (np.isfinite(theta).all() and 1 / MAX_TEMPERATURE <= a <= MAX_TEMPERATURE):
        # answers with little signal (a barely trained model) send 1/T off to 0, infinity or
        # below 0: keep T within bounds and fit the bias alone
        a = float(np.clip(np.nan_to_num(a, nan=1.0), 1 / MAX_TEMPERATURE, MAX_TEMPERATURE))
        b = 0.0
        for _ in range(50):
            s = 1 / (1 + np.exp(-(a * z + b)))
            step = (w * (s - y)).sum() / ((w * s * (1 - s)).sum() + 1e-9)
            b -= step
            if abs(step) < 1e-10:
                break
    after = 1 / (1 + np.exp(-(a * z + b)))
    return {"temperature": float(1 / a), "bias": float(b), "threshold_before": float(1 / (1 + np.exp(b / a))),
            "ece_before": calibration(y.astype(int), p)[0], "ece_after": calibration(y.astype(int), after)[0]}


def export(checkpoint: str, out: str, card: dict | None = None, mirror_margin: float = 0.0,
           half_weights: bool = False, calibrate: str = "") -> dict:
    """Write `out` (.onnx) and `out.sha256`; returns the metadata written. With
    `mirror_margin` > 0 the graph is `MirrorWhenUnsure`; with `half_weights` the file stores
    its weights as float16 (`store_weights_as_float16`); with `calibrate` (a manifest) the
    answers are tempered and shifted by what is fitted on its images (`Tempered`, `fit_calibration`)."""
    fit = None
    if calibrate:  # export once as is (aside), fit T and b on what that graph answers, then export with them inside
        import tempfile
        with tempfile.TemporaryDirectory() as tmp:
            plain = str(Path(tmp) / "uncalibrated.onnx")
            export(checkpoint, plain, card, mirror_margin, half_weights)
            fit = fit_calibration(plain, calibrate)
        card = {**(card or {}), "calibrated_on": str(calibrate), "calibration": "temperature and bias, every source x sex alike",
                "decision_threshold_before_calibration": round(fit["threshold_before"], 4),
                "ece_on_calibration_set": {"before": round(fit["ece_before"], 4), "after": round(fit["ece_after"], 4)}}
        print(f"temperature {fit['temperature']:.4f}, bias {fit['bias']:+.4f} (the uncalibrated answers' threshold "
              f"{fit['threshold_before']:.3f}) fitted on {calibrate}: ECE {fit['ece_before']:.4f} -> {fit['ece_after']:.4f}")
    return _export(checkpoint, out, card, mirror_margin, half_weights, fit)


def _export(checkpoint, out, card, mirror_margin, half_weights, fit) -> dict:
    import onnx

    net, ckpt = load_checkpoint(checkpoint)
    wrapped = MirrorWhenUnsure(net, mirror_margin) if mirror_margin > 0 else WithSoftmax(net)
    wrapped = (Tempered(wrapped, fit["temperature"], fit["bias"]) if fit else wrapped).eval()
    dummy = torch.zeros(1, 3, ckpt["height"], ckpt["width"])
    out_path = Path(out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".tmp")
    torch.onnx.export(wrapped, dummy, str(tmp), input_names=["image"], output_names=["probabilities"],
                      dynamic_axes={"image": {0: "batch"}, "probabilities": {0: "batch"}}, opset_version=17, dynamo=False)
    meta = {
        "labels": list(CLASSES), "width": ckpt["width"], "height": ckpt["height"],
        "mean": list(ckpt["mean"]), "std": list(ckpt["std"]), "architecture": ckpt["model_name"],
        "input": "RGB float32 Nx3xHxW, (x/255 - mean)/std; face box cut from the centre keeping aspect",
        "checkpoint_epoch": ckpt.get("epoch"), "checkpoint_val_acc": ckpt.get("val_acc"),
        "mirror_margin": mirror_margin, "temperature": fit and fit["temperature"], "bias": fit and fit["bias"],
        "weights_stored_as": "float16" if half_weights else "float32",
        "exported": datetime.date.today().isoformat(), **(card or {}),
    }
    model = onnx.load(str(tmp))
    if half_weights:
        store_weights_as_float16(model)
    onnx.checker.check_model(model)
    del model.metadata_props[:]
    entry = model.metadata_props.add()
    entry.key, entry.value = "facegender", json.dumps(meta)
    onnx.save(model, str(tmp))
    tmp.replace(out_path)
    meta["sha256"] = write_checksum(out_path)
    meta["bytes"] = out_path.stat().st_size
    return meta
