#!/bin/bash
# Riva's own command-line clients, unchanged, against `speechtao serve` with default flags (docs/serving.md,
# "Riva's scripts against speechtao serve"). Riva's scripts are not part of this repository: clone
# https://github.com/nvidia-riva/python-clients and pass its folder.
#
#   bench/serve_riva_scripts.sh PYTHON_CLIENTS_DIR [SRC] [PORT] [OUT]
#
# SRC: the speechtao checkout to serve from (default: this one); OUT: work folder (default /tmp/riva_scripts).
# Makes a 10-minute WAV and a 20 s clip (FLAC, Ogg Opus) of espeak-ng domain sentences, exports
# models/quartznet_small_synth.pt to ONNX FP32 and INT8 (the INT8 export leaves model.int8.fp32.onnx beside it),
# serves them and runs: --list-models (offline and streaming clients), the 10-minute WAV offline, FLAC and Opus
# streamed and offline, 32 clients streaming with --simulate-realtime from this host.
set -u
CLIENTS=$(cd "$1" && pwd); HERE=$(cd "$(dirname "$0")/.." && pwd); SRC=${2:-$HERE}; PORT=${3:-50051}
OUT=${4:-/tmp/riva_scripts}; PY=${PY:-$HERE/.venv/bin/python}; R=$CLIENTS/scripts/asr
export SPEECHTAO_THREADS=1
mkdir -p "$OUT/models" "$OUT/clips" && cd "$OUT" || exit 1
if [ ! -f ten_min.wav ]; then
  PYTHONPATH=$HERE "$PY" - <<'PYEOF'
import json, subprocess
import numpy as np, soundfile as sf
from speechtao.audio import read_audio
from speechtao.corpora.domain import domain_sentence
rng = np.random.default_rng(7)
sents = [domain_sentence(rng) for _ in range(40)]
clips, rows = [], []
for i, s in enumerate(sents):
    subprocess.run(["espeak-ng", "-v", "en-us", "-w", "tmp.wav", s], check=True)
    x = read_audio("tmp.wav", sample_rate=16000)
    sf.write(f"clips/{i:02d}.wav", x, 16000, subtype="PCM_16")
    clips.append(x); rows.append({"audio_filepath": f"clips/{i:02d}.wav", "duration": len(x) / 16000, "text": s})
open("calib.jsonl", "w").write("".join(json.dumps(r) + "\n" for r in rows))
gap = np.zeros(int(0.8 * 16000), np.float32)
parts = [p for _ in range(40) for c in clips for p in (c, gap)]
sf.write("ten_min.wav", np.concatenate(parts)[: 600 * 16000], 16000, subtype="PCM_16")
sf.write("short.wav", np.concatenate([p for c in clips[:6] for p in (c, gap)]), 16000, subtype="PCM_16")
PYEOF
  sox short.wav short.flac && ffmpeg -loglevel error -y -i short.wav -c:a libopus -b:a 32k short.opus
fi
if [ ! -f models/model.int8.onnx ]; then
  M=$HERE/models/quartznet_small_synth.pt
  PYTHONPATH=$HERE "$PY" -m speechtao asr export --model "$M" --format onnx --out models/model.onnx
  PYTHONPATH=$HERE "$PY" -m speechtao asr export --model "$M" --format onnx-int8 --calib calib.jsonl \
    --out models/model.int8.onnx
fi
(cd "$SRC" && PYTHONPATH=$SRC exec "$PY" -m speechtao serve --models "$OUT/models" --port "$PORT") \
  > server.out 2> server.err &
SP=$!
for _ in $(seq 1 300); do grep -q "^serving" server.out 2>/dev/null && break; sleep 1; done
cat server.out
S="--server 127.0.0.1:$PORT"
echo "== transcribe_file_offline.py --list-models"; "$PY" "$R/transcribe_file_offline.py" $S --list-models 2>&1 | tail -1
echo "== transcribe_file.py --list-models"; "$PY" "$R/transcribe_file.py" $S --list-models 2>&1 | tail -1
echo "== transcribe_file_offline.py --input-file ten_min.wav"
/usr/bin/time -f "%e s" "$PY" "$R/transcribe_file_offline.py" $S --input-file ten_min.wav > offline10.txt 2> offline10.err
echo "results: $(grep -c '"transcript"' offline10.txt); $(grep -v '^\s*$' offline10.txt | tail -1 | cut -c1-120)"
tail -1 offline10.err
for f in short.flac short.opus; do
  "$PY" "$R/transcribe_file.py" $S --input-file "$f" > "stream_$f.txt" 2>&1
  "$PY" "$R/transcribe_file_offline.py" $S --input-file "$f" > "offline_$f.txt" 2>&1
  streamed=$(grep '^##' "stream_$f.txt" | sed 's/^## //'); offline=$(grep '^Final transcript:' "offline_$f.txt" | sed 's/^Final transcript: //')
  echo "== $f streamed: ${streamed:0:100}$( [ -n "$streamed" ] || tail -c 300 "stream_$f.txt")"
  echo "   same as offline: $( [ -n "$streamed" ] && [ "$streamed" == "$offline" ] && echo yes || echo no)"
done
echo "== riva_streaming_asr_client.py --num-clients 32 --simulate-realtime --input-file short.wav"
rm -rf c32 && mkdir c32 && (cd c32 && /usr/bin/time -f "%e s" "$PY" "$R/riva_streaming_asr_client.py" $S --num-clients 32 \
  --simulate-realtime --input-file ../short.wav > run.txt 2>&1; tail -1 run.txt
  echo "clients with a final transcript: $(grep -l Transcript output_*.txt 2>/dev/null | wc -l) of 32; refused: $(grep -c 'details = ' run.txt)")
kill -TERM $SP; wait $SP; echo "server exit $?"
