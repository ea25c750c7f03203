"""Static int8 quantization (ONNX Runtime, QDQ, per-channel weights) of an exported model.

Calibrated on real training faces, it keeps the metadata (and adds "int8": true) so the
quantized file is a drop-in replacement; `facegender evaluate` shows what it costs.
Depthwise convolutions and the first convolution stay float: their per-channel ranges are
where MobileNetV2 loses accuracy in int8, and they hold few of its multiply-adds.
"""
from __future__ import annotations

import json
import random
import tempfile
from pathlib import Path

import numpy as np


def kept_float(model) -> list[str]:
    """Names of the convolutions left in float: the first one and every depthwise one."""
    def group(node):
        return next((a.i for a in node.attribute if a.name == "group"), 1)
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    return [n.name for i, n in enumerate(convs) if i == 0 or group(n) > 1]


def quantize(model_in: str, model_out: str, calibration_manifest: str, images: int = 512, seed: int = 0) -> dict:
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from .. import manifest
    from ..classifier import Classifier
    from .export import write_checksum
    from ..images import load_rgb

    clf = Classifier(model_in)
    rows = random.Random(seed).sample(manifest.read(calibration_manifest), images)
    faces = np.stack([clf.pre.fit(load_rgb(r.path), random.Random(i).uniform(r.min_crop, 1.0), x_stretch=r.x_stretch)
                      for i, r in enumerate(rows)])

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{clf.input_name: clf.pre.normalize(faces[i:i + 32])} for i in range(0, len(faces), 32)])

        def get_next(self):
            return next(self.batches, None)

    with tempfile.TemporaryDirectory() as tmp:
        prepared = str(Path(tmp) / "prepared.onnx")
        quant_pre_process(model_in, prepared)
        quantize_static(prepared, str(Path(tmp) / "q.onnx"), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, op_types_to_quantize=["Conv", "Gemm"],
                        nodes_to_exclude=kept_float(onnx.load(prepared)))
        model = onnx.load(str(Path(tmp) / "q.onnx"))
    meta = {**clf.meta, "int8": True, "int8_calibration": f"{images} faces from {Path(calibration_manifest).name}"}
    del model.metadata_props[:]
    entry = model.metadata_props.add()
    entry.key, entry.value = "facegender", json.dumps(meta)
    out = Path(model_out)
    tmp_out = out.with_name(out.name + ".tmp")
    onnx.save(model, str(tmp_out))
    tmp_out.replace(out)
    meta["sha256"] = write_checksum(out)
    meta["bytes"] = out.stat().st_size
    return meta
