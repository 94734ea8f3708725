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
# images/ and labels/, oversampled 4x; default: shared/data/train_darkplate, from the checkout's
# shared/ or the one beside it; a folder named that is missing stops the recipe before it
# starts; SUPPLEMENTS= (set, empty) trains on synthetic plates alone, and says so; add a
# pseudo-labelled set from training.pseudo_label here too), WORK (where a fresh scratch folder
# for the ~80 000 generated files and ultralytics' run is made and removed at the end, default
# $TMPDIR or /tmp: $OUT gets only the weights and the run's settings and results), WHEELS
# (a folder of wheels to install first, default .whl: ultralytics and what the project needs
# that the machine lacks). Trains with mixed precision (AMP) on CUDA. Nothing is downloaded.
# Back on the CPU, fit the new weights' calibration on the real dev set (it prints the detector
# alone's exact match, cross-validated, and the fused reader's), then evaluate with it:
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

# shellcheck source=training/recipe_setup.sh
source training/recipe_setup.sh
supplement_args=()
for dir in ${SUPPLEMENTS-$shared/data/train_darkplate}; do
  if [ ! -d "$dir/images" ] || [ ! -d "$dir/labels" ]; then
    echo "recipe: supplement folder $dir has no images/ and labels/: carry it, name others" \
      "in SUPPLEMENTS, or set SUPPLEMENTS= to train on synthetic plates alone" >&2
    exit 2
  fi
  supplement_args+=(--supplement "$dir")
done
if [ ${#supplement_args[@]} -eq 0 ]; then
  echo "recipe: SUPPLEMENTS is empty: training on synthetic plates alone, no real crops"
else
  echo "recipe: real supplements: ${supplement_args[*]}"
fi

start_recipe recipe
"$PYTHON" -m training.synth "$WORK/data" --count "$COUNT" --seed "$SEED" --workers "$WORKERS" \
  "${supplement_args[@]}" --supplement-repeat 4 2>&1 | tail -n 3
echo "recipe: data ready after $(( $(date +%s) - started )) s"
"$PYTHON" -m training.train --data "$WORK/data/data.yaml" --epochs "$EPOCHS" --imgsz "$IMGSZ" \
  --batch "$BATCH" --device "$DEVICE" --workers "$WORKERS" --project "$WORK/runs" --name gpu \
  --init-weights reader/models/plate_ocr_yolo11n.pt --lr0 0.0005 --close-mosaic 0 --warmup-epochs 0 \
  --amp --copy-to "$OUT/plate_ocr_yolo11n.pt" 2>&1 | tail -n 20
for kept in train_settings.json results.csv args.yaml; do
  if [ -f "$WORK/runs/gpu/$kept" ]; then cp "$WORK/runs/gpu/$kept" "$OUT/"; fi
done
echo "recipe: done in $(( $(date +%s) - started )) s: $OUT/plate_ocr_yolo11n.pt"
