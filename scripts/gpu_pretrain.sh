#!/usr/bin/env bash
# Pretrain a larger starter (QuartzNet 5x5, ~6.7M parameters, NeMo's 28 characters) on one GPU.
#
#   scripts/gpu_pretrain.sh                      # corpus (CPU, all cores) + < 10 min of training on the GPU
#
# 1. A synthetic corpus of HOURS hours from every TTS engine (CPU-bound; parallel over WORKERS processes), split
#    so that the custom-domain voices and the held-out test voices never reach train.jsonl.
# 2. Training with recipes/asr_quartznet_pretrain.yaml's augmentation and data, switched to quartznet_5x5,
#    bf16 autocast, larger batches, data loading in WORKERS processes; MAX_STEPS sized to finish within
#    TRAIN_LIMIT_S seconds. If the limit cuts it short, the newest checkpoint (every 200 steps) is resumable:
#    rerun with RESUME=1.
# 3. best.pt (lowest held-out WER) is copied to models/$NAME.pt and scored on the held-out synthetic voices and on
#    the real-speech sets (speechtao data realspeech).
#
# Smoke test on a CPU (tiny settings, checks the plumbing only):
#   HOURS=0.01 MAX_STEPS=4 BATCH=2 DEVICE=cpu PRECISION=fp32 WORKERS=1 NAME=smoke OUT=/tmp/gp scripts/gpu_pretrain.sh
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-.venv/bin/python}
HOURS=${HOURS:-4}                      # synthetic corpus size
WORKERS=${WORKERS:-$(nproc)}           # synthesis processes and data-loading workers
CORPUS=${CORPUS:-data/pretrain_gpu}
OUT=${OUT:-runs/gpu_pretrain}
NAME=${NAME:-quartznet5x5_synth_gpu}
PRESET=${PRESET:-quartznet_5x5}
BATCH=${BATCH:-32}
MAX_STEPS=${MAX_STEPS:-3000}           # ~5 steps/s with bf16 on an H100/H200-class GPU when the loader keeps up
LR=${LR:-3.0e-3}
DEVICE=${DEVICE:-cuda}
PRECISION=${PRECISION:-bf16}
TRAIN_LIMIT_S=${TRAIN_LIMIT_S:-570}    # hard stop for the training step (the newest checkpoint stays)
RESUME=${RESUME:-0}

if [ "$DEVICE" = cuda ] && ! "$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  echo "error: no CUDA device visible to torch (run on a GPU host, or DEVICE=cpu for a smoke test)" >&2
  exit 3
fi

echo "== corpus: $HOURS h into $CORPUS ($WORKERS workers)"
"$PY" -m speechtao data synth --out "$CORPUS" --hours "$HOURS" --workers "$WORKERS" \
  --sources wordnet,bible,fortunes,pydocs --seed 1
"$PY" -m speechtao data pretrain-split "$CORPUS/manifest.jsonl"

echo "== training $PRESET for at most $MAX_STEPS steps / $TRAIN_LIMIT_S s on $DEVICE ($PRECISION)"
resume_flag=()
[ "$RESUME" = 1 ] && resume_flag=(--resume)
set +e
OMP_NUM_THREADS=1 timeout --signal=INT "$TRAIN_LIMIT_S" "$PY" -m speechtao asr train \
  --spec recipes/asr_quartznet_pretrain.yaml "${resume_flag[@]}" \
  model.config=null "model.preset=$PRESET" \
  "data.train=[$CORPUS/train.jsonl]" "data.validation=[$CORPUS/test.jsonl]" \
  "data.batch_size=$BATCH" data.val_batch_size=64 "data.num_workers=$WORKERS" \
  "optim.lr=$LR" "trainer.max_steps=$MAX_STEPS" schedule.warmup_steps=300 \
  "trainer.device=$DEVICE" "trainer.precision=$PRECISION" "trainer.out_dir=$OUT" \
  trainer.val_every=500 trainer.checkpoint_every=200 trainer.log_every=50
rc=$?
set -e
if [ $rc -ne 0 ]; then
  echo "training stopped with status $rc (130/124: the time limit); newest checkpoint: $OUT/checkpoints (RESUME=1 continues)" >&2
fi

model="$OUT/best.pt"
[ -f "$model" ] || model=$(ls -t "$OUT"/checkpoints/*.pt 2>/dev/null | head -1 || true)
if [ -z "$model" ] || [ ! -f "$model" ]; then
  echo "error: no checkpoint in $OUT" >&2
  exit 1
fi
mkdir -p models
cp "$model" "models/$NAME.pt"
echo "== models/$NAME.pt ($(du -h "models/$NAME.pt" | cut -f1)) from $model"

"$PY" -m speechtao data realspeech --out data/realspeech
for set in "$CORPUS/test.jsonl" data/realspeech/pocketsphinx.jsonl data/realspeech/alsa.jsonl; do
  echo "== $set"
  "$PY" -m speechtao asr evaluate --model "models/$NAME.pt" --manifest "$set" --device "$DEVICE" --worst 0 | tail -1
done
