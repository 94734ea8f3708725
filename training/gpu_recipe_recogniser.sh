#!/usr/bin/env bash
# Fine-tune the line recogniser, backbone and all, on one large GPU in one command, inside 10
# minutes: one training.train_recogniser --train-backbone run a seed in SEEDS, each from the
# shipped recogniser on DarkPlate's lines and the pseudo-labelled Open Images lines
# (training/labels/oid_line_labels.csv), half and half, with the anchor on; then every saved
# checkpoint of every run averaged weight by weight into $OUT/plate_rec_soup.onnx with its
# manifest (training.export_plate_recogniser). That is how the shipped recogniser was made on the
# CPU, four seeds from the file before it (model card: "A second round from the shipped
# recogniser"); from the shipped file, the default SOURCE, it is a third round.
#
#   OUT=/tmp/out bash training/gpu_recipe_recogniser.sh
#
# Knobs (environment): SEEDS ("0 1 2 3"), STEPS (200), BATCH (32), LR (3e-5), SAVE_EVERY (50),
# ANCHOR (1.0: the KL to the starting network), ANCHOR_LINES (0: generated lines a step that
# only the anchor acts on; 16 read one dev plate more and the demo's I on the CPU, at 1-3
# character edits more: model card), SYNTHETIC_SHARE (0: generated lines drew New
# York's 2 towards Z in every CPU run; the rest is DarkPlate's and the pseudo-labelled lines, half
# and half), SOURCE (the ONNX to start from, default the shipped
# reader/models/ppocr/ppocrv4_plate_rec.onnx), LINE_HEIGHT (48; 33-47 make a cheaper
# recogniser, which on the CPU read less than the source at that height untrained: model card,
# "A smaller line height"), DEVICE (cuda), WORKERS (CPU processes drawing
# batches: the machine's cores), DARKPLATE (shared/data/train_darkplate, from the checkout's
# shared/ or the one beside it; missing stops the recipe), WORK (scratch for the runs'
# checkpoints, removed at the end; default $TMPDIR or /tmp), WHEELS (a folder of wheels to
# install first, default .whl). Nothing is downloaded. The crops the pseudo-label manifest names
# must be where it says (../shared/data/real_oid_unlabelled).
# Back on the CPU, read it on the real dev set and refit the calibration for it:
#   plate-ocr eval DEV --recogniser $OUT/plate_rec_soup.onnx
set -euo pipefail
cd "$(dirname "$0")/.."
export YOLO_OFFLINE=1 PYTHONUNBUFFERED=1
OUT=${OUT:?set OUT to the folder for the results}
SEEDS=${SEEDS:-0 1 2 3}
STEPS=${STEPS:-200}
BATCH=${BATCH:-32}
LR=${LR:-3e-5}
SAVE_EVERY=${SAVE_EVERY:-50}
ANCHOR=${ANCHOR:-1.0}
ANCHOR_LINES=${ANCHOR_LINES:-0}
SYNTHETIC_SHARE=${SYNTHETIC_SHARE:-0}
SOURCE=${SOURCE:-reader/models/ppocr/ppocrv4_plate_rec.onnx}
LINE_HEIGHT=${LINE_HEIGHT:-48}
DEVICE=${DEVICE:-cuda}
WORKERS=${WORKERS:-$(nproc)}
WHEELS=${WHEELS:-.whl}
PYTHON=${PYTHON:-python3}

# shellcheck source=training/recipe_setup.sh
source training/recipe_setup.sh
require_darkplate
real_share=$("$PYTHON" -c "print((1 - float('$SYNTHETIC_SHARE')) / 2)")

start_recipe rec
for seed in $SEEDS; do
  "$PYTHON" -m training.train_recogniser --out "$WORK/seed$seed" --source "$SOURCE" \
    --train-backbone --darkplate "$DARKPLATE" --pseudo training/labels/oid_line_labels.csv \
    --synthetic-share "$SYNTHETIC_SHARE" --darkplate-share "$real_share" \
    --pseudo-share "$real_share" --anchor-weight "$ANCHOR" --anchor-lines "$ANCHOR_LINES" \
    --lr "$LR" --steps "$STEPS" --batch "$BATCH" --device "$DEVICE" --workers "$WORKERS" --seed "$seed" \
    --line-height "$LINE_HEIGHT" \
    --log-every 50 --save-every "$SAVE_EVERY" 2>&1 | tail -n 2
  echo "recipe: seed $seed trained after $(( $(date +%s) - started )) s"
done
"$PYTHON" -m training.export_plate_recogniser --source "$SOURCE" "$WORK"/seed*/step_*.pt \
  "$OUT/plate_rec_soup.onnx" \
  --selected-by "training/gpu_recipe_recogniser.sh: every saved step of seeds $SEEDS, averaged" \
  2>&1 | tail -n 1
echo "recipe: done in $(( $(date +%s) - started )) s: $OUT/plate_rec_soup.onnx"
