"""Static int8 quantization (ONNX Runtime, QDQ, per-channel weights) of an exported model.

Calibrated on real training faces drawn evenly over the sources, it keeps the metadata (and
adds "int8": true) so the quantized file is a drop-in replacement; `facegender evaluate` and
`benchmarks/int8.py` show what it costs.

Every convolution (depthwise included) and the head are int8, except the stem: the first
convolution of each pass (the graph's second, mirror-image pass has its own), which reads the
normalised pixels (3 channels, 1.5% of the multiply-adds).
Measured on the stage-6b model, 9,388 validation faces (AMD EPYC Zen 5, VNNI, 1 thread):
- the earlier rule (depthwise and 1/8-resolution convolutions float, ~39% of the
  multiply-adds) ran 1.06x float: no gain worth its file;
- everything int8: 1.53x float, and -0.50 points on SCUT (2 of 400 faces);
- everything but the stem: 1.61x float, no source below float by more than one face.

The ReLU6 after each convolution (an ONNX Clip) is quantized too: left in float, the
quantizer wrote the convolution's output at its own scale (negatives and values over 6
included) and the Clip's at another, so ONNX Runtime, after folding the Clip away, still
requantized between 66 of the 102 int8 convolutions (a DequantizeLinear -> QuantizeLinear
pair each: 40% of the int8 graph's time). With Clip quantized the quantizer drops it and the
convolution writes [0, 6] at one scale. Measured on the stage-7 model, 1 thread, batch 64
(AMD EPYC Zen 5, VNNI): 1,194 -> 2,193 faces/s, 2.8x float. Softmax stays float (an int8
probability would lose the calibration).
"""
from __future__ import annotations

import json
import random
import tempfile
from pathlib import Path

import numpy as np

QUANTIZED_OPS = ["Conv", "Gemm", "Clip"]  # Clip: the ReLU6s (see above)
FLOAT_NODES = ("stem", "none")  # what stays float: the first convolution, or nothing
CALIBRATION_IMAGES = 1024  # faces, even over sources (2,048 and 4,096 moved as many answers)


def kept_float(model, float_nodes: str = "stem") -> list[str]:
    """Names of the nodes left in float (see above)."""
    if float_nodes not in FLOAT_NODES:
        raise ValueError(f"float_nodes must be one of {FLOAT_NODES}, not {float_nodes!r}")
    if float_nodes == "none":
        return []
    import onnx

    graph = onnx.shape_inference.infer_shapes(model).graph  # a weight may come through an Identity
    channels = {i.name: i.dims[1] for i in graph.initializer if len(i.dims) == 4}
    channels |= {v.name: v.type.tensor_type.shape.dim[1].dim_value for v in graph.value_info
                 if len(v.type.tensor_type.shape.dim) == 4}
    return [n.name for n in graph.node if n.op_type == "Conv" and channels.get(n.input[1]) == 3]  # each pass's


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


def static_int8(model_in: str, model_out: Path, inputs: list[dict], ops: list[str], exclude, meta: dict,
                opset: int | None = None, symbolic_shapes: bool = True) -> dict:
    """QDQ static int8 (per-channel s8 weights, u8 activations) of `model_in`, calibrated on
    `inputs` (feeds) and written atomically to `model_out` with `meta` as its facegender
    metadata and a .sha256. `exclude(prepared onnx model)` names the nodes left float;
    `opset`: convert first (per-channel QDQ needs 13)."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from .export import write_checksum

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.feeds = iter(inputs)

        def get_next(self):
            return next(self.feeds, None)

    with tempfile.TemporaryDirectory() as tmp:
        source, prepared = model_in, str(Path(tmp) / "prepared.onnx")
        if opset:
            from onnx import version_converter
            source = str(Path(tmp) / "opset.onnx")
            onnx.save(version_converter.convert_version(onnx.load(model_in), opset), source)
        quant_pre_process(source, prepared, skip_symbolic_shape=not symbolic_shapes)
        quantize_static(prepared, str(Path(tmp) / "q.onnx"), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, op_types_to_quantize=ops,
                        nodes_to_exclude=exclude(onnx.load(prepared)))
        model = onnx.load(str(Path(tmp) / "q.onnx"))
    del model.metadata_props[:]
    entry = model.metadata_props.add()
    entry.key, entry.value = "facegender", json.dumps(meta)
    tmp_out = model_out.with_name(model_out.name + ".tmp")
    onnx.save(model, str(tmp_out))
    tmp_out.replace(model_out)
    return {**meta, "sha256": write_checksum(model_out), "bytes": model_out.stat().st_size}


def quantize(model_in: str, model_out: str, calibration_manifest: str, images: int = CALIBRATION_IMAGES, seed: int = 0,
             float_nodes: str = "stem") -> dict:
    """The int8 copy of `model_in`, with `float_nodes` (see above) left in float."""
    from .. import manifest
    from ..classifier import Classifier
    from ..manifest import load_frame

    clf = Classifier(model_in)
    rows = calibration_rows(manifest.read(calibration_manifest), images, seed)
    faces = np.stack([clf.pre.fit(load_frame(r), random.Random(i).uniform(r.min_crop, 1.0), x_stretch=r.x_stretch)
                      for i, r in enumerate(rows)])
    feeds = [{clf.input_name: clf.pre.normalize(faces[i:i + 32])} for i in range(0, len(faces), 32)]
    meta = {**clf.meta, "int8": True,
            "int8_calibration": f"{len(rows)} faces from {Path(calibration_manifest).name}, even over sources",
            "int8_float_nodes": {"stem": "the first convolution of each pass (the stem)", "none": "none"}[float_nodes]}
    return static_int8(model_in, Path(model_out), feeds, QUANTIZED_OPS, lambda m: kept_float(m, float_nodes), meta)
