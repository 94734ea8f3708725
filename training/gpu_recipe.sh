#!/usr/bin/env bash
# Fine-tune the bundled detector on one large GPU in one command, inside 10 minutes:
# a fresh synthetic set from the state-design generator (plus the real supplements you carry),
# then YOLO11n from the shipped weights, the chosen weights copied to $OUT/plate_ocr_yolo11n.pt.
#
#   OUT=/tmp/out bash training/gpu_recipe.sh
#
# Knobs (environment): COUNT synthetic plates (40000), EPOCHS (10), IMGSZ (320), BATCH (256),
# DEVICE (0), WORKERS (CPU processes for synth and the data loader: the machine's cores),
# SEED (8), SUPPLEMENTS (space-separated folders of real crops with YOLO labels, each with
# images/ and labels/, oversampled 4x; default: those of shared/ that exist in the checkout),
# WHEELS (a folder of wheels to install first, default .whl: ultralytics and what the project
# needs that the machine lacks). Nothing is downloaded. Back on the CPU, fit the new weights'
# calibration on the real dev set (it prints the detector alone's exact match, cross-validated,
# and the fused reader's), then evaluate with it:
#   python -m training.calibrate DEV --model $OUT/plate_ocr_yolo11n.pt --out $OUT/calibration.json
#   plate-ocr eval DEV --model $OUT/plate_ocr_yolo11n.pt --calibration $OUT/calibration.json
set -euo pipefail
cd "$(dirname "$0")/.."
export YOLO_OFFLINE=1 PYTHONUNBUFFERED=1
OUT=${OUT:?set OUT to the folder for the results}
COUNT=${COUNT:-40000}
EPOCHS=${EPOCHS:-10}
IMGSZ=${IMGSZ:-320}
BATCH=${BATCH:-256}
DEVICE=${DEVICE:-0}
WORKERS=${WORKERS:-$(nproc)}
SEED=${SEED:-8}
WHEELS=${WHEELS:-.whl}
PYTHON=${PYTHON:-python3}

if [ -d "$WHEELS" ] && compgen -G "$WHEELS/*.whl" >/dev/null; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site "$WHEELS"/*.whl
  export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-}

supplement_args=()
for dir in ${SUPPLEMENTS:-shared/train_darkplate shared/oid_pseudo}; do
  [ -d "$dir/images" ] && supplement_args+=(--supplement "$dir")
done

started=$(date +%s)
mkdir -p "$OUT"
"$PYTHON" -m training.synth "$OUT/data" --count "$COUNT" --seed "$SEED" --workers "$WORKERS" \
  "${supplement_args[@]}" --supplement-repeat 4 2>&1 | tail -n 3
echo "recipe: data ready after $(( $(date +%s) - started )) s"
"$PYTHON" -m training.train --data "$OUT/data/data.yaml" --epochs "$EPOCHS" --imgsz "$IMGSZ" \
  --batch "$BATCH" --device "$DEVICE" --workers "$WORKERS" --project "$OUT/runs" --name gpu \
  --init-weights reader/models/plate_ocr_yolo11n.pt --lr0 0.0005 --close-mosaic 0 --warmup-epochs 0 \
  --copy-to "$OUT/plate_ocr_yolo11n.pt" 2>&1 | tail -n 20
cp "$OUT/runs/gpu/train_settings.json" "$OUT/" 2>/dev/null || true
rm -rf "$OUT/data"  # tens of thousands of images: nothing to bring back
echo "recipe: done in $(( $(date +%s) - started )) s: $OUT/plate_ocr_yolo11n.pt"
