"""Static int8 copy of the SCRFD detector, calibrated on photos built from training faces.

The detector is most of detect mode's time. Its convolutions, ReLUs and FPN additions go int8
(QDQ, per-channel weights, as the classifier's); the first convolution, which reads the
normalised pixels, the Sigmoid scores and the box and landmark heads' outputs stay float (the
heads' convolutions are int8, their answers dequantized). The graph is converted to opset 13
first (per-channel QDQ needs it; the float file is opset 11).

Calibration photos, one per training face (seeded, even over sources): the face's frame at
a random scale pasted at a random place on another training image enlarged to the canvas
(250x250, 640x480 or 1280x960: faces small and large, skin, hair and clutter behind them), then
scaled to the input `process --detect` gives such a photo (faces/scrfd.py network_input).
"""
from __future__ import annotations

import random
from pathlib import Path

from PIL import Image

PHOTOS = 256  # calibration photos (`images`, as quantize's)
CANVASES = ((250, 250), (640, 480), (1280, 960))
QUANTIZED_OPS = ["Conv", "Relu", "Add"]


def calibration_photo(face: Image.Image, background: Image.Image, rng: random.Random) -> Image.Image:
    """`face` pasted at a random scale and place on `background` stretched to a random canvas."""
    w, h = rng.choice(CANVASES)
    photo = background.resize((w, h), Image.BILINEAR)
    width = int(min(w, h) * rng.uniform(0.15, 0.8))  # the frame's width; the face is about half of it
    face = face.resize((width, round(width * face.height / face.width)), Image.BILINEAR)
    photo.paste(face, (rng.randrange(max(1, w - face.width)), rng.randrange(max(1, h - face.height))))
    return photo


def quantize_detector(model_in: str, model_out: str, calibration_manifest: str, images: int = PHOTOS,
                      seed: int = 0) -> dict:
    """The int8 copy of the SCRFD graph `model_in` (see above)."""
    import onnx

    from .. import manifest
    from ..faces.detect import MIN_FACE, SCRFD_MAX_SIDE
    from ..faces.scrfd import blob, network_input
    from ..images import load_rgb
    from .quantize import calibration_rows, static_int8

    input_name = onnx.load(model_in).graph.input[0].name
    rows = calibration_rows(manifest.read(calibration_manifest), 2 * images, seed)
    rng = random.Random(seed)
    feeds = []
    for face_row, back_row in zip(rows[0::2], rows[1::2]):
        photo = calibration_photo(load_rgb(face_row.path), load_rgb(back_row.path), rng)
        feeds.append({input_name: blob(network_input(photo, MIN_FACE["scrfd"], SCRFD_MAX_SIDE)[0])})

    def stem(model) -> list[str]:
        return [next(n.name for n in model.graph.node if n.op_type == "Conv")]

    meta = {"int8": True, "detector": "scrfd-2.5g",
            "int8_calibration": f"{len(feeds)} photos built from {Path(calibration_manifest).name} faces, even over sources",
            "int8_float_nodes": "the first convolution (the stem), the score Sigmoids"}
    return static_int8(model_in, Path(model_out), feeds, QUANTIZED_OPS, stem, meta, opset=13, symbolic_shapes=False)
