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

import torch

from . import models
from .manifest import CLASSES


class WithSoftmax(torch.nn.Module):
    """Probabilities out, so every runtime reads the same numbers."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x):
        return torch.softmax(self.net(x), dim=1)


class Cascade(torch.nn.Module):
    """A fast net answers every face; the faces it is unsure of (P(female) within `margin`
    of 0.5) get the accurate net's answer instead, averaged with its answer for the mirror
    image when `mirror`. One graph: the accurate net runs only on the unsure rows
    (NonZero -> Gather -> ScatterND), so most faces cost only the fast net."""

    def __init__(self, fast: torch.nn.Module, accurate: torch.nn.Module, margin: float, mirror: bool = False):
        super().__init__()
        self.fast, self.accurate, self.margin, self.mirror = fast, accurate, margin, mirror

    def forward(self, x):
        p = torch.softmax(self.fast(x), dim=1)
        unsure = ((p[:, 1] - 0.5).abs() < self.margin).nonzero()[:, 0]
        xu = x.index_select(0, unsure)
        q = torch.softmax(self.accurate(xu), dim=1)
        if self.mirror:
            q = (q + torch.softmax(self.accurate(xu.flip(3)), dim=1)) / 2
        return p.index_put((unsure,), q)


def store_half(model) -> None:
    """Keep large float32 weights as float16 in the file, cast back to float32 when ONNX
    Runtime loads them: half the size, full-precision arithmetic."""
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    casts = []
    for init in graph.initializer:
        if init.data_type == TensorProto.FLOAT and len(init.raw_data) > 4096:
            half = numpy_helper.from_array(numpy_helper.to_array(init).astype("float16"), init.name + "_f16")
            casts.append(helper.make_node("Cast", [half.name], [init.name], to=TensorProto.FLOAT))
            init.CopyFrom(half)
    for node in reversed(casts):
        graph.node.insert(0, node)


def load_checkpoint(path: str | Path) -> tuple[torch.nn.Module, dict]:
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    net = models.get(ckpt["model_name"]).build(pretrained=False)
    net.load_state_dict(ckpt["model"])
    return net.eval(), ckpt


def write_checksum(path: Path) -> str:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    path.with_name(path.name + ".sha256").write_text(f"{digest}  {path.name}\n")
    return digest


def export(checkpoint: str, out: str, card: dict | None = None, accurate: str | None = None,
           margin: float = 0.0, mirror: bool = False) -> dict:
    """Write `out` (.onnx) and `out.sha256`; returns the metadata written.

    With `accurate` (a second checkpoint, same input size) the model is a `Cascade`: this
    checkpoint answers, `accurate` re-answers faces within `margin` of 0.5 (with its mirror
    image too when `mirror`); weights are
    stored as float16 to keep two nets in a few MB."""
    import onnx

    net, ckpt = load_checkpoint(checkpoint)
    wrapped = WithSoftmax(net).eval()
    cascade = {}
    if accurate:
        second, second_ckpt = load_checkpoint(accurate)
        if (second_ckpt["width"], second_ckpt["height"], second_ckpt["mean"], second_ckpt["std"]) != \
                (ckpt["width"], ckpt["height"], ckpt["mean"], ckpt["std"]):
            raise SystemExit("a cascade's two checkpoints must share input size and normalisation")
        wrapped = Cascade(net, second, margin, mirror).eval()
        cascade = {"cascade": {"fast": ckpt["model_name"], "accurate": second_ckpt["model_name"], "margin": margin, "mirror": mirror,
                               "accurate_epoch": second_ckpt.get("epoch"), "accurate_val_acc": second_ckpt.get("val_acc")}}
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
        "exported": datetime.date.today().isoformat(), **cascade, **(card or {}),
    }
    model = onnx.load(str(tmp))
    if accurate:
        store_half(model)
    onnx.checker.check_model(model)
    del model.metadata_props[:]
    entry = model.metadata_props.add()
    entry.key, entry.value = "facegender", json.dumps(meta)
    onnx.save(model, str(tmp))
    tmp.replace(out_path)
    meta["sha256"] = write_checksum(out_path)
    meta["bytes"] = out_path.stat().st_size
    return meta
