#!/usr/bin/env bash
# Pretrain the GPU starter (recipes/asr_quartznet_pretrain_gpu.yaml: quartznet_small, ~2.6M parameters) in
# under 10 minutes of one GPU. Two phases, because GPU hosts seldom have TTS engines:
#
#   scripts/gpu_pretrain.sh pack     # here (TTS engines, Debian text): synthesize, split, pack as Opus
#   scripts/gpu_pretrain.sh train    # on the GPU host: unpack, measure steps/s, train within the budget
#   INIT=runs/.../best.pt LR=2e-3 STEPS=300 scripts/gpu_pretrain.sh anneal   # continue at a decaying rate
#
# pack:  ~5.8 h of synthetic speech: data/pretrain (seed 0, 2.0 h), data/pretrain_b (seed 7, 2.2 h) and
#        data/pretrain_c (seed 13, 1.6 h), each
#        split by `speechtao data pretrain-split` (custom-domain and held-out voices never in train.jsonl), then
#        packed into $PACKED (~2 KB/s Opus; scripts/pack_corpus.py).
# train: unpacks into data/pretrain_gpu/, trains PROBE_STEPS steps to measure steps/s, then the real run with
#        max_steps sized to TRAIN_S seconds (trainer.max_time_s is the backstop), and copies final.pt to
#        $MODEL_OUT. Evaluate the result anywhere: models/README.md lists the commands.
# anneal: `asr finetune` of INIT on the unpacked corpus (same augmentation) for STEPS steps from LR down a cosine,
#        into $OUT-anneal-<LR>; copies final.pt to $MODEL_OUT. Used when a time limit cut `train` short.
# On an H200 (16 cores) the data loader is the limit: ~3.7 steps/s of 400 s of audio with 14 workers; the
# unpack, the probe and start-up took ~3 minutes of a 10-minute call, so keep TRAIN_S <= 300 there.
#
# Smoke test on a CPU (checks the plumbing only):
#   DEVICE=cpu PRECISION=fp32 PROBE_STEPS=2 TRAIN_S=20 WORKERS=1 scripts/gpu_pretrain.sh train
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-.venv/bin/python}
PACKED=${PACKED:-.devcarry/corpus}
CORPUS=${CORPUS:-data/pretrain_gpu}
OUT=${OUT:-runs/asr_quartznet_pretrain_gpu}
MODEL_OUT=${MODEL_OUT:-models/quartznet_small_synth.pt}
WORKERS=${WORKERS:-$(( $(nproc) > 2 ? $(nproc) - 2 : 1 ))}
DEVICE=${DEVICE:-cuda}
PRECISION=${PRECISION:-bf16}
PROBE_STEPS=${PROBE_STEPS:-60}
TRAIN_S=${TRAIN_S:-300}                # wall-clock budget of the real run

case "${1:-}" in
pack)
  for spec in "data/pretrain 2.0 0" "data/pretrain_b 2.2 7" "data/pretrain_c 1.6 13"; do
    set -- $spec
    "$PY" -m speechtao data synth --out "$1" --hours "$2" --seed "$3" --sources wordnet,bible,fortunes,pydocs
    "$PY" -m speechtao data pretrain-split "$1/manifest.jsonl"
  done
  "$PY" scripts/pack_corpus.py pack --out "$PACKED" --name train data/pretrain/train.jsonl data/pretrain_b/train.jsonl \
    data/pretrain_c/train.jsonl
  "$PY" scripts/pack_corpus.py pack --out "$PACKED" --name test --level 0.92 data/pretrain/test.jsonl
  du -sh "$PACKED"
  ;;
train)
  if [ "$DEVICE" = cuda ] && ! "$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "error: no CUDA device visible to torch (run on a GPU host, or DEVICE=cpu for a smoke test)" >&2
    exit 3
  fi
  "$PY" scripts/pack_corpus.py unpack "$PACKED" --out "$CORPUS" --workers "$(nproc)"
  common=(--spec recipes/asr_quartznet_pretrain_gpu.yaml "data.train=[$CORPUS/train.jsonl]"
          "data.validation=[$CORPUS/test.jsonl]" "data.num_workers=$WORKERS" "trainer.device=$DEVICE"
          "trainer.precision=$PRECISION")
  probe=$(mktemp -d)
  echo "== probe: $PROBE_STEPS steps"
  "$PY" -m speechtao asr train "${common[@]}" "trainer.out_dir=$probe" "trainer.max_steps=$PROBE_STEPS" \
    trainer.val_every=0 trainer.log_every=10 trainer.max_time_s=120 | grep --line-buffered -v "^  " | tail -4
  steps=$("$PY" -c "import json,sys; m=json.load(open('$probe/metrics.json')); \
r=m['steps']/m['train_time_s']; print(f'probe: {r:.2f} steps/s, {m[\"audio_s_per_s\"]:.0f} s of audio per s', file=sys.stderr); \
print(max(10, int(r * $TRAIN_S * 0.92)))")
  rm -rf "$probe"
  echo "== training: $steps steps (budget $TRAIN_S s) on $DEVICE ($PRECISION)"
  "$PY" -m speechtao asr train "${common[@]}" "trainer.out_dir=$OUT" "trainer.max_steps=$steps" \
    "trainer.max_time_s=$TRAIN_S" | grep --line-buffered -v "^  "
  mkdir -p "$(dirname "$MODEL_OUT")"
  cp "$OUT/final.pt" "$MODEL_OUT"
  echo "== $MODEL_OUT ($(du -h "$MODEL_OUT" | cut -f1)); best.pt (lowest held-out WER) is in $OUT"
  ;;
anneal)
  : "${INIT:?set INIT to the checkpoint to continue}" "${LR:?set LR}" "${STEPS:?set STEPS}"
  [ -f "$CORPUS/train.jsonl" ] || "$PY" scripts/pack_corpus.py unpack "$PACKED" --out "$CORPUS" --workers "$(nproc)"
  "$PY" -m speechtao asr finetune --spec recipes/asr_quartznet_pretrain_continue.yaml "init_from=$INIT" \
    "data.train=[$CORPUS/train.jsonl]" "data.validation=[$CORPUS/test.jsonl]" data.batch_size=null \
    data.max_batch_seconds=400 data.val_batch_size=64 "data.num_workers=$WORKERS" "trainer.device=$DEVICE" \
    "trainer.precision=$PRECISION" "trainer.out_dir=$OUT-anneal-$LR" "optim.lr=$LR" schedule.warmup_steps=20 \
    "trainer.max_steps=$STEPS" "trainer.max_time_s=$TRAIN_S" trainer.val_every=1000 trainer.checkpoint_every=1000 \
    spec_augment.time_masks=5 spec_augment.time_width=0.05 spec_augment.freq_width=15 | grep --line-buffered -v "^  "
  mkdir -p "$(dirname "$MODEL_OUT")"
  cp "$OUT-anneal-$LR/final.pt" "$MODEL_OUT"
  echo "== $MODEL_OUT ($(du -h "$MODEL_OUT" | cut -f1))"
  ;;
*)
  echo "usage: $0 pack|train|anneal   (see the comments at the top)" >&2
  exit 2
  ;;
esac
