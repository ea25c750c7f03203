"""Convert facenet-pytorch's MTCNN weights (P-, R-, O-Net) to ONNX for facegender's detector.

One-off, needs `pip install torch facenet-pytorch==2.6.0` (plus `requests`, which its
package imports). Writes src/facegender/weights/mtcnn-{pnet,rnet,onet}.onnx and .sha256 files.
Inference then needs only ONNX Runtime.
"""
from pathlib import Path

import torch
from facenet_pytorch.models.mtcnn import ONet, PNet, RNet

from facegender.training.export import write_checksum

OUT = Path(__file__).resolve().parents[1] / "src" / "facegender" / "weights"


def main():
    for name, net, size, outputs in [("pnet", PNet(), 12, ["boxes", "probs"]), ("rnet", RNet(), 24, ["boxes", "probs"]),
                                     ("onet", ONet(), 48, ["boxes", "landmarks", "probs"])]:
        path = OUT / f"mtcnn-{name}.onnx"
        axes = {"image": {0: "batch", 2: "height", 3: "width"}} if name == "pnet" else {"image": {0: "batch"}}
        axes.update({o: {0: "batch"} for o in outputs})
        torch.onnx.export(net.eval(), torch.zeros(1, 3, size, size), str(path), input_names=["image"],
                          output_names=outputs, dynamic_axes=axes, opset_version=17, dynamo=False)
        print(path, path.stat().st_size, write_checksum(path))


if __name__ == "__main__":
    main()
