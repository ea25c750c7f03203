"""Static int8 quantization (ONNX Runtime, QDQ, per-channel weights) of an exported model.

Calibrated on real training faces, it keeps the metadata (and adds "int8": true) so the
quantized file is a drop-in replacement; `facegender evaluate` shows what it costs.
Left float: every depthwise convolution, and every convolution at 1/8 of the input's
resolution or finer (the stem and MobileNetV2's first six blocks). There int8 moved the most
answers. In exact int8 arithmetic (as VNNI computes it), of 8,614 validation faces:
- 47 changed side with only the first and the depthwise convolutions float (512 calibration faces);
- 17 with blocks 0-3 also float, 7 with blocks 0-6;
- 5 with this rule and 1,024 calibration faces (`benchmarks/int8.py`).
The float part is ~39% of the multiply-adds.
"""
from __future__ import annotations

import json
import random
import tempfile
from pathlib import Path

import numpy as np


FLOAT_FROM = 8  # convolutions at 1/8 of the input's resolution or finer stay float


def kept_float(model, everything: bool = False) -> list[str]:
    """Names of the convolutions left in float (see above); none with `everything`."""
    import onnx

    if everything:
        return []
    graph = onnx.shape_inference.infer_shapes(model).graph
    height = graph.input[0].type.tensor_type.shape.dim[2].dim_value  # exported models have a fixed input size
    heights = {v.name: v.type.tensor_type.shape.dim[2].dim_value for v in graph.value_info if len(v.type.tensor_type.shape.dim) == 4}

    def group(node):
        return next((a.i for a in node.attribute if a.name == "group"), 1)
    return [n.name for n in graph.node
            if n.op_type == "Conv" and (group(n) > 1 or heights.get(n.output[0], 0) * FLOAT_FROM >= height)]


def calibration_rows(rows, images: int, seed: int = 0):
    """`images` rows drawn evenly over the sources (as many of each as it has, up to its
    share), so the activation ranges are those of every kind of face, not CelebA's alone."""
    rng = random.Random(seed)
    by_source: dict = {}
    for r in rows:
        by_source.setdefault(r.source, []).append(r)
    picked, left = [], images
    for i, (_, members) in enumerate(sorted(by_source.items(), key=lambda kv: len(kv[1]))):
        take = min(len(members), left // (len(by_source) - i))
        picked += rng.sample(members, take)
        left -= take
    return picked


def quantize(model_in: str, model_out: str, calibration_manifest: str, images: int = 1024, seed: int = 0,
             everything: bool = False) -> dict:
    """The int8 copy of `model_in`; `everything`: every convolution int8, depthwise and the
    fine-resolution ones too (faster; `evaluate` shows what it costs)."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from .. import manifest
    from ..classifier import Classifier
    from .export import write_checksum
    from ..manifest import load_frame

    clf = Classifier(model_in)
    rows = calibration_rows(manifest.read(calibration_manifest), images, seed)
    faces = np.stack([clf.pre.fit(load_frame(r), random.Random(i).uniform(r.min_crop, 1.0), x_stretch=r.x_stretch)
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
                        nodes_to_exclude=kept_float(onnx.load(prepared), everything))
        model = onnx.load(str(Path(tmp) / "q.onnx"))
    meta = {**clf.meta, "int8": True, "int8_calibration": f"{len(rows)} faces from {Path(calibration_manifest).name}, even over sources",
            "int8_float_nodes": "none" if everything else "depthwise convolutions and those at 1/8 of the input resolution or finer"}
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
