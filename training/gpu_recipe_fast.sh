#!/usr/bin/env bash
# Train the fast reader (`--reader fast`) on one large GPU in one command, inside 10 minutes:
# a fresh synthetic set, then training.train_fast from scratch on it, DarkPlate's crops and the
# fused reader's confident readings of the Open Images crops (training/labels/oid_fast_labels.csv),
# the last checkpoint exported to $OUT/fast_plate_reader.onnx with its manifest.
#
#   OUT=/tmp/out bash training/gpu_recipe_fast.sh
#
# Knobs (environment): COUNT synthetic plates (40000), STEPS (6000), BATCH (512), DEVICE (cuda),
# WORKERS (CPU processes for synth and the data loader: the machine's cores; the data loader,
# not the GPU, sets the pace of this small network), SEED (7), DARKPLATE (shared/data/
# train_darkplate, from the checkout's shared/ or the one beside it; missing stops the recipe),
# DISTILLED (the teacher's readings, training/labels/oid_fast_labels.csv, what the shipped fast
# reader learnt from; training/labels/oid_fast_labels_edd7ec89.csv is the teacher that ships now:
# 81.9% alone in one CPU run, not taken: the model card's "A better teacher"), WORK (scratch for
# the generated files, removed at the end; default $TMPDIR or /tmp), WHEELS (a folder of wheels
# to install first, default .whl). Nothing is downloaded. The images the
# distilled manifest names must be where it says (../shared/data/real_oid_unlabelled).
# Back on the CPU, evaluate and fit its calibration on the real dev set:
#   plate-ocr eval DEV --reader fast --fast-reader $OUT/fast_plate_reader.onnx
set -euo pipefail
cd "$(dirname "$0")/.."
export YOLO_OFFLINE=1 PYTHONUNBUFFERED=1
OUT=${OUT:?set OUT to the folder for the results}
COUNT=${COUNT:-40000}
STEPS=${STEPS:-6000}
BATCH=${BATCH:-512}
DEVICE=${DEVICE:-cuda}
WORKERS=${WORKERS:-$(nproc)}
SEED=${SEED:-7}
DISTILLED=${DISTILLED:-training/labels/oid_fast_labels.csv}
WHEELS=${WHEELS:-.whl}
PYTHON=${PYTHON:-python3}

# shellcheck source=training/recipe_setup.sh
source training/recipe_setup.sh
require_darkplate

start_recipe fast
"$PYTHON" -m training.synth "$WORK/synth" --count "$COUNT" --seed "$SEED" --workers "$WORKERS" \
  --val-fraction 0 2>&1 | tail -n 1
echo "recipe: data ready after $(( $(date +%s) - started )) s"
"$PYTHON" -m training.train_fast --out "$WORK/run" --synthetic "$WORK/synth" \
  --darkplate "$DARKPLATE" --distilled "$DISTILLED" \
  --steps "$STEPS" --batch "$BATCH" --device "$DEVICE" --workers "$WORKERS" \
  --log-every 100 --save-every "$STEPS" 2>&1 | tail -n 5
"$PYTHON" -m training.export_fast_reader "$WORK/run/last.pt" "$OUT/fast_plate_reader.onnx" \
  --selected-by "the last step of training/gpu_recipe_fast.sh" 2>&1 | tail -n 1
cp "$WORK/run/train_settings.json" "$OUT/"
echo "recipe: done in $(( $(date +%s) - started )) s: $OUT/fast_plate_reader.onnx"
