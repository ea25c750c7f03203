#!/usr/bin/env bash
# Train the default recipe's first stage (MobileNetV2 80x96 from ImageNet, 7 epochs, the
# README's "Train and reproduce" command) on one GPU, then export it as the shipped model is.
#
#   bash tools/gpu_train.sh                                          # a CUDA machine, ../shared/data beside the repo
#   FG_DEVICE=cpu FG_EPOCHS=1 FG_LIMIT=64 bash tools/gpu_train.sh    # tiny CPU rehearsal (tests/test_distributed.py)
#
# Every stage of the shipped model: `facegender train --recipe recipes/default.toml` (train's
# --device defaults to auto, so it takes the GPU too). A rerun continues from OUT/last.pt.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${FG_PYTHON:-.venv/bin/python}
DATA=${FG_DATA:-../shared/data}
MANIFESTS=${FG_MANIFESTS:-manifests/v1}
OUT=${FG_OUT:-runs/gpu-mnv2-80x96}
DEVICE=${FG_DEVICE:-cuda}
EPOCHS=${FG_EPOCHS:-7}
LIMIT=${FG_LIMIT:-0}
CORES=$(nproc)
WORKERS=${FG_WORKERS:-$(( CORES > 8 ? 8 : CORES ))}  # decoding + augmentation keep the GPU fed

if [ "$DEVICE" = cuda ]; then
  "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device visible to PyTorch')"
  "$PY" -c "import torch; print('GPU:', torch.cuda.get_device_name(0))"
fi
if [ ! -f "$MANIFESTS/train.csv" ]; then  # the split stage 1 was trained on
  "$PY" -m facegender.cli prepare "$DATA/celeba-89x109" "$DATA/celeba-64x64" "$DATA/utkface" --out "$MANIFESTS"
fi
"$PY" -m facegender.cli train --model mobilenet_v2 --device "$DEVICE" --epochs "$EPOCHS" --limit "$LIMIT" \
  --workers "$WORKERS" --train "$MANIFESTS/train.csv" --val "$MANIFESTS/val.csv" --out "$OUT" --resume \
  ${FG_BATCH:+--batch-size "$FG_BATCH"}
"$PY" -m facegender.cli export "$OUT/best.pt" --mirror-margin 0.25 --out "$OUT/model.onnx" > "$OUT/export.json"
echo "exported $OUT/model.onnx (metadata in $OUT/export.json)"
