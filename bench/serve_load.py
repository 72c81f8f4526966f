"""Load test of `speechtao serve`: N concurrent real-time streams through Riva's protocol.

    python bench/serve_load.py [--streams 32] [--chunk-ms 160] [--seconds 6] [--model citrinet_256]
                               [--server-chunk-ms 480 --left-context-ms 960 --right-context-ms 480]
                               [--stagger random|aligned] [--rounds 3] [--final-pass utterance|chunks]

The server runs as its own process (`python -m speechtao serve`) on loopback; this process runs the clients,
one thread per concurrent stream, each sending ``--chunk-ms`` of 16-bit PCM every ``--chunk-ms`` (real time).
Each client sends ``--rounds`` streams back to back (a new StreamingRecognize as soon as the previous one's final
result arrives), so ``--streams`` streams stay open at once. ``--stagger``:

- ``random`` (default): each client starts at a random moment within one stream's duration, as independent
  callers do; streams then start and end at unrelated times. With 3 or more rounds, the figures come from the
  middle rounds only (the first ramps up, the last ramps down), where all ``--streams`` are open throughout;
- ``aligned``: all clients start within one client chunk, so every stream ends within that chunk and the
  finals of all streams are due at once (a worst case, the old behaviour of this script); each round starts
  ``--seconds`` + 1 s after the previous one, aligned again.

Measured:

- final latency: from sending a stream's last audio chunk (and closing its side) to receiving its final result;
  p50 / p95 / p99 over the measured streams;
- interim latency: from sending the audio chunk that completed a decoding window (chunk + right context, as
  given on the command line; exact when they are whole output frames) to receiving its interim result;
- server CPU: CPU seconds the server process used / wall seconds of the run (cores busy), and the CPU RTF:
  CPU seconds / seconds of audio streamed;
- server memory (peak RSS) and threads, errors (any RPC error or a stream without a final result);
- Whisper models: the final transcripts, and the CPU seconds of one final and one interim decode of the recording
  in this process after the run (what a final costs on an idle core, whatever the machine's load).

``--model`` is an ONNX/checkpoint path or a preset name (random weights: speed does not depend on them; the
preset is exported to ONNX first), or a Whisper encoder-decoder reference (``whisper:tiny.en``, ``whisper:base``;
served with ``--model``, re-decoded every ``--redecode-ms``, see docs/serving.md; its interims are timed from the
chunk that completed the audio they decoded). Audio: ``--audio FILE`` (a real recording, every stream sends it
whole; ``--seconds`` is ignored), else espeak-ng sentences when espeak-ng is installed, else noise bursts.
Figures on a shared machine are pessimistic: other processes take CPU from both server and clients.

    SPEECHTAO_THREADS=1 python bench/serve_load.py --model whisper:tiny.en --streams 1 --rounds 5 \
        --audio /usr/share/pocketsphinx/test/data/librivox/sense_and_sensibility_01_austen_64kb-0870.wav

``--sweep`` measures the chunking trade-off in this process instead, without gRPC: for each chunk / left /
right context setting, 8 streams decoded together in 160 ms pieces, reporting

- CPU RTF: CPU seconds of this process per second of audio (capacity: cores / CPU RTF real-time streams);
- interim delay: chunk + right context (audio a word waits before it is committed);
- final step CPU: CPU milliseconds of the last decoding step per stream (the work between the last chunk and
  the final result, without queueing);
- frame agreement: share of committed output frames whose best symbol equals the one-pass decoding of the whole
  stream, and the mean total-variation distance between the two frame distributions (0 = identical, 1 =
  disjoint): how much the limited context changes the model's output. With random weights this measures the
  context sensitivity of the architecture and its feature normalization, not word accuracy.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

SR = 16000


def proc_stats(pid: int) -> dict:
    """CPU seconds (user + system), RSS MiB and thread count of a process, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    status = dict(line.split(":", 1) for line in open(f"/proc/{pid}/status") if ":" in line)
    return {"cpu_s": cpu, "rss_mb": int(status["VmRSS"].split()[0]) / 1024, "threads": int(status["Threads"])}


def make_audio(seconds: float, seed: int, folder: Path) -> np.ndarray:
    """~``seconds`` of speech-like audio at 16 kHz: espeak-ng sentences with pauses, or noise bursts."""
    rng = np.random.default_rng(seed)
    if shutil.which("espeak-ng"):
        from speechtao.audio import read_audio

        words = (
            "turn the lights on in the kitchen please and then open the front door before we leave for the "
            "station at noon tomorrow"
        ).split()
        pieces, total = [], 0.0
        k = 0
        while total < seconds:
            text = " ".join(rng.choice(words, size=int(rng.integers(4, 9))))
            path = folder / f"s{seed}_{k}.wav"
            subprocess.run(["espeak-ng", "-s", str(int(rng.integers(140, 190))), "-w", str(path), text], check=True)
            x = read_audio(path, SR)
            pieces += [x, np.zeros(int(rng.uniform(0.2, 0.6) * SR), np.float32)]
            total += (len(x) + len(pieces[-1])) / SR
            k += 1
        return np.concatenate(pieces)[: int(seconds * SR)]
    n = int(seconds * SR)
    env = (np.sin(np.linspace(0, seconds * 3, n)) > 0).astype(np.float32)
    return (0.1 * rng.standard_normal(n) * env).astype(np.float32)


def is_whisper(name) -> bool:
    return str(name).startswith("whisper:")


def prepare_model(name: str, folder: Path) -> Path | str:
    p = Path(name)
    if p.exists() or is_whisper(name):
        return p if p.exists() else name
    import torch

    from speechtao.asr.checkpoint import load_model
    from speechtao.export.onnx_export import export_onnx

    out = folder / f"{name}.onnx"
    torch.manual_seed(0)  # the same random weights in every run (some draws emit only blanks: no final to time)
    export_onnx(load_model(name), out, tokens_txt=False)
    return out


def start_server(model: Path | str, folder: Path, args) -> tuple[subprocess.Popen, int]:
    if is_whisper(model):
        where = ["--model", str(model), "--redecode-ms", str(args.redecode_ms)]
        where += ["--interim-beam", str(args.interim_beam), "--max-interim-share", str(args.max_interim_share)]
        where += ["--bf16-encoder", args.bf16_encoder]
    else:
        repo = folder / "models"
        repo.mkdir(exist_ok=True)
        target = repo / model.name
        if not target.exists():
            os.symlink(model.resolve(), target)
        where = ["--models", str(repo)]
    cmd = [
        sys.executable,
        "-m",
        "speechtao",
        "serve",
        *where,
        "--port",
        "0",
        "--no-itn",  # the recognizer alone (inverse text normalization adds 30-600 ms a final)
        "--chunk-ms",
        str(args.server_chunk_ms),
        "--left-context-ms",
        str(args.left_context_ms),
        "--right-context-ms",
        str(args.right_context_ms),
        "--final-pass",
        args.final_pass,
        "--threads",
        str(args.threads),
        "--max-batch-size",
        str(args.max_batch_size),
        "--max-wait-ms",
        str(args.max_wait_ms),
        "--max-streams",
        str(max(64, args.streams)),
        "--max-streams-per-peer",
        str(max(16, args.streams)),
    ]
    root = Path(__file__).resolve().parents[1]  # the server runs this checkout's code, from any working folder
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=root,
        env=dict(os.environ, PYTHONPATH=str(root)),
    )
    line = proc.stdout.readline()
    if not line.startswith("listening on"):
        raise SystemExit(f"server did not start: {line}{proc.stderr.read()}")
    port = int(line.split()[2].split(":")[1])
    while True:
        line = proc.stdout.readline()
        if not line or line.strip() == "serving":
            break
    return proc, port


def run_stream(stub, audio: np.ndarray, chunk_s: float, right_s: float, out: dict) -> None:
    """One real-time stream; fills ``out`` with latency_s (final), interim_latency_s (list), finals, error."""
    import grpc
    from riva.client.proto import riva_asr_pb2 as rasr

    from speechtao.audio import pcm16_encode

    data = pcm16_encode(audio)
    step = int(round(chunk_s * SR)) * 2
    sent: list[float] = []  # send time of each audio chunk

    def requests():
        cfg = rasr.RecognitionConfig(encoding=1, sample_rate_hertz=SR, language_code="en-US")  # LINEAR_PCM
        yield rasr.StreamingRecognizeRequest(
            streaming_config=rasr.StreamingRecognitionConfig(config=cfg, interim_results=True)
        )
        t0 = time.monotonic()
        for k, i in enumerate(range(0, len(data), step)):
            wait = t0 + k * chunk_s - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            sent.append(time.monotonic())
            yield rasr.StreamingRecognizeRequest(audio_content=data[i : i + step])

    n_chunks = -(-len(data) // step)
    finals, interim_lat, last_final_t, texts = 0, [], None, []
    try:
        for resp in stub.StreamingRecognize(requests(), timeout=len(audio) / SR + 120):
            now = time.monotonic()
            timed = set()  # one figure per decoding step (a Whisper step sends its stable part and the rest)
            for r in resp.results:
                if r.is_final:
                    finals += 1
                    last_final_t = now
                    texts.append(r.alternatives[0].transcript if r.alternatives else "")
                elif r.stability < 1.0 and r.audio_processed not in timed:
                    # a window's interim: its audio ended right_s after what it committed
                    timed.add(r.audio_processed)
                    k = min(int(np.ceil((r.audio_processed + right_s) / chunk_s - 1e-6)) - 1, n_chunks - 1)
                    if 0 <= k < len(sent):
                        interim_lat.append(now - sent[k])
        out["latency_s"] = (last_final_t - sent[-1]) if (last_final_t and len(sent) == n_chunks) else None
        out["interim_latency_s"] = interim_lat
        out["finals"] = finals
        out["final_text"] = " ".join(texts)
        out["error"] = None if finals else "no final result"
    except grpc.RpcError as exc:
        out["error"] = f"{exc.code().name}: {exc.details()}"


def run_client(stub, audio: np.ndarray, args, start_delay: float, outs: list) -> None:
    """``args.rounds`` streams of ``audio`` after ``start_delay`` seconds, one dict each in outs: back to back
    (random stagger), or (aligned) round r starting ``r * (seconds + 1)`` s after the first, or at once if late."""
    t0 = time.monotonic() + start_delay
    for r in range(args.rounds):
        wait = t0 + (r * (args.seconds + 1.0) if args.stagger == "aligned" else 0.0) - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        out: dict = {}
        right_s = 0.0 if is_whisper(args.model) else args.right_context_ms / 1000
        run_stream(stub, audio, args.chunk_ms / 1000, right_s, out)
        outs.append(out)


def start_delays(n: int, args) -> list[float]:
    """When each client starts (seconds), by ``--stagger`` (see above)."""
    if args.stagger == "aligned":
        return [i * args.chunk_ms / 1000 / n for i in range(n)]
    return sorted(np.random.default_rng(args.seed).uniform(0, args.seconds, n).tolist())


def decode_cpu(model: str, audio: np.ndarray, args) -> dict:
    """CPU seconds (this thread, one PyTorch thread) of one final decode (the model's beam) and one interim
    decode (``--interim-beam``) of ``audio`` by a Whisper model, in this process: the work between a stream's last
    chunk and its final on an otherwise idle core."""
    import torch

    from speechtao.serve.repository import load_asr

    torch.set_num_threads(1)
    from speechtao.serve.seq_recognizer import SeqStreamingOptions

    rec = load_asr(model, seq_options=SeqStreamingOptions(bf16_encoder=args.bf16_encoder))
    rec._transcribe(audio[:SR], 1)  # first-call costs
    t0 = time.thread_time()
    rec._transcribe(audio, rec.backend.beam_size)
    t1 = time.thread_time()
    rec._transcribe(audio, args.interim_beam, interim=True)
    return {"final_decode_cpu_s": t1 - t0, "interim_decode_cpu_s": time.thread_time() - t1}


def percentiles(values) -> dict:
    v = np.asarray(values, dtype=np.float64) * 1000
    return {f"p{q}": (float(np.percentile(v, q)) if len(v) else None) for q in (50, 95, 99)}


def fmt(p: dict) -> str:
    return ", ".join(f"{k} {v:.0f}" for k, v in p.items()) + " ms" if p["p50"] is not None else "none"


SWEEP = [  # chunk_ms, left_context_ms, right_context_ms
    (160, 1200, 480),
    (160, 480, 160),
    (480, 960, 480),
    (480, 480, 240),
    (960, 480, 480),
    (960, 960, 960),
    (1600, 1600, 800),
]


def sweep(model: Path, audios: list, threads: int) -> list[dict]:
    import torch

    from speechtao.serve.recognizer import Recognizer, StreamingOptions

    torch.set_num_threads(1)
    rows = []
    for final_pass, norm in (("chunks", "stream"), ("chunks", "window"), ("utterance", "stream")):
        for chunk, left, right in SWEEP:
            rec = Recognizer.from_path(
                str(model),
                StreamingOptions(
                    chunk_ms=chunk,
                    left_context_ms=left,
                    right_context_ms=right,
                    final_pass=final_pass,
                    max_utterance_s=600,
                    normalization=norm,
                ),
                threads=threads,
            )
            # reference: one pass over each whole stream
            refs = []
            for x in audios:
                lp, n = rec.backend(x[None], np.array([len(x)]))
                refs.append(lp[0, : int(n[0])])
            committed: list[list[np.ndarray]] = [[] for _ in audios]
            orig_run = rec.backend

            class Recording:  # the backend, keeping each window's log-probs for the comparison
                def __init__(self, inner):
                    self.inner = inner
                    self.last = None

                def __getattr__(self, name):
                    return getattr(self.inner, name)

                def __call__(self, audio, lengths):
                    lp, n = self.inner(audio, lengths)
                    self.last = lp
                    return lp, n

                def run_features(self, feats, lengths):
                    lp, n = self.inner.run_features(feats, lengths)
                    self.last = lp
                    return lp, n

            backend = Recording(orig_run)

            orig = rec._commit

            def commit(s, j, best, prob, _orig=orig, _rec=rec, committed=committed, backend=backend):
                f0 = (j.commit_from - j.start) // _rec.samples_per_frame
                f1 = min(-(-(j.commit_to - j.start) // _rec.samples_per_frame), len(best))
                row = next(i for i, (s2, _) in enumerate(_rec._batch) if s2 is s)
                committed[s.channel].append(backend.last[row, f0:f1])
                _orig(s, j, best, prob)

            orig_batch_run = rec._run

            def run(batch, _orig=orig_batch_run, _rec=rec):
                _rec._batch = batch
                _orig(batch)

            rec.backend, rec._commit, rec._run = backend, commit, run
            streams = [rec.create_stream(channel=i) for i in range(len(audios))]
            piece = int(0.16 * SR)
            cpu0 = time.process_time()
            for pos in range(0, max(len(x) for x in audios), piece):
                for s, x in zip(streams, audios):
                    if pos < len(x):
                        s.accept_waveform(SR, x[pos : pos + piece])
                rec.decode_streams(streams)
                while any(
                    rec.is_ready(s) for s in streams if not s.finished and s.num_samples < len(audios[s.channel])
                ):
                    rec.decode_streams(streams)
            for s in streams:
                s.input_finished()
            cpu_stream = time.process_time() - cpu0
            cpu1 = time.process_time()
            while any(rec.is_ready(s) for s in streams):
                rec.decode_streams(streams)
            cpu_final = time.process_time() - cpu1
            seconds = sum(len(x) for x in audios) / SR
            agree, diff = [], []
            for c, r in zip(committed, refs):
                if c:
                    got = np.concatenate(c)[: len(r)]
                    agree.append(np.mean(got.argmax(-1) == r[: len(got)].argmax(-1)))
                    diff.append(np.mean(np.abs(np.exp(got) - np.exp(r[: len(got)])).sum(-1) / 2))
            rows.append(
                {
                    "final_pass": final_pass,
                    "normalization": norm,
                    "chunk_ms": chunk,
                    "left_ms": left,
                    "right_ms": right,
                    "cpu_rtf": (cpu_stream + cpu_final) / seconds,
                    "interim_delay_ms": chunk + right,
                    "final_step_cpu_ms": 1000 * cpu_final / len(audios),
                    "frame_agreement": float(np.mean(agree)) if agree else None,
                    "frame_tv_distance": float(np.mean(diff)) if diff else None,
                }
            )
            r = rows[-1]
            agreement = (
                f"{r['frame_agreement']:.3f}, TV {r['frame_tv_distance']:.3f}"
                if r["frame_agreement"] is not None
                else "-"
            )
            print(
                f"{final_pass:9s} {norm:6s} chunk {chunk:5d} left {left:5d} right {right:4d} ms | "
                f"CPU RTF {r['cpu_rtf']:.4f} "
                f"(~{1 / r['cpu_rtf']:.0f} streams/core) | interim delay {chunk + right:5d} ms | final step "
                f"{r['final_step_cpu_ms']:6.1f} ms CPU | frame agreement {agreement}",
                flush=True,
            )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--streams", type=int, default=32)
    ap.add_argument("--chunk-ms", type=int, default=160, help="client chunk (100-160 ms like Riva clients)")
    ap.add_argument("--seconds", type=float, default=6.0, help="audio per stream")
    ap.add_argument("--model", default="citrinet_256", help="ONNX/checkpoint path or preset (random weights)")
    ap.add_argument("--server-chunk-ms", type=int, default=480)
    ap.add_argument("--left-context-ms", type=int, default=960)
    ap.add_argument("--right-context-ms", type=int, default=480)
    ap.add_argument("--final-pass", default="utterance", choices=["utterance", "chunks"])
    ap.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads in the server")
    ap.add_argument("--max-batch-size", type=int, default=32)
    ap.add_argument("--max-wait-ms", type=float, default=20.0)
    ap.add_argument(
        "--stagger",
        default="random",
        choices=["random", "aligned"],
        help="client start times (see above; aligned: every stream ends at once, a worst case)",
    )
    ap.add_argument("--rounds", type=int, default=3, help="streams each client sends back to back")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random start times")
    ap.add_argument("--audio", help="a recording every stream sends (instead of --seconds of generated speech)")
    ap.add_argument("--redecode-ms", type=int, default=1000, help="Whisper models: the server's --redecode-ms")
    ap.add_argument("--interim-beam", type=int, default=1, help="Whisper models: the server's --interim-beam")
    ap.add_argument("--max-interim-share", type=float, default=0.5, help="Whisper: the server's --max-interim-share")
    ap.add_argument(
        "--bf16-encoder", default="interims", choices=["off", "interims", "all"], help="Whisper: the server's flag"
    )
    ap.add_argument("--json", help="also write the figures to this file")
    ap.add_argument("--sweep", action="store_true", help="measure the chunking trade-off in-process (see above)")
    args = ap.parse_args()
    if args.rounds < 1 or args.streams < 1:
        ap.error(f"--rounds ({args.rounds}) and --streams ({args.streams}) must be >= 1")

    if args.sweep and is_whisper(args.model):
        ap.error("--sweep measures CTC chunking; Whisper models are re-decoded (drop --sweep)")
    if args.audio:
        from speechtao.audio import read_audio

        recording = read_audio(args.audio, SR)
        args.seconds = len(recording) / SR
    if args.sweep:
        with tempfile.TemporaryDirectory() as tmp:
            model = prepare_model(args.model, Path(tmp))
            rows = sweep(model, [make_audio(args.seconds, seed, Path(tmp)) for seed in range(8)], args.threads)
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
        return

    import grpc
    from riva.client.proto import riva_asr_pb2_grpc

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model = prepare_model(args.model, folder)
        if args.audio:
            audios = [recording]
        else:
            audios = [make_audio(args.seconds, seed, folder) for seed in range(min(args.streams, 8))]
        proc, port = start_server(model, folder, args)
        try:
            channel = grpc.insecure_channel(f"127.0.0.1:{port}")
            stub = riva_asr_pb2_grpc.RivaSpeechRecognitionStub(channel)
            run_stream(stub, audios[0][: 2 * SR], args.chunk_ms / 1000, 0.0, {})  # load, first-call costs
            before = proc_stats(proc.pid)
            outs: list[list[dict]] = [[] for _ in range(args.streams)]
            threads = [
                threading.Thread(target=run_client, args=(stub, audios[i % len(audios)], args, delay, outs[i]))
                for i, delay in enumerate(start_delays(args.streams, args))
            ]
            peak = dict(before)
            t0 = time.monotonic()
            for t in threads:
                t.start()
            while any(t.is_alive() for t in threads):
                s = proc_stats(proc.pid)
                peak["rss_mb"], peak["threads"] = max(peak["rss_mb"], s["rss_mb"]), max(peak["threads"], s["threads"])
                time.sleep(0.2)
            wall = time.monotonic() - t0
            after = proc_stats(proc.pid)
            channel.close()
        finally:
            proc.terminate()
            proc.wait(30)
    every = [o for client in outs for o in client]
    steady = args.stagger == "random" and args.rounds >= 3  # all streams open during the middle rounds
    measured = [o for client in outs for o in (client[1:-1] if steady else client)]
    errors = [o["error"] for o in every if o.get("error")]
    final = percentiles([o["latency_s"] for o in measured if o.get("latency_s") is not None])
    interim = percentiles([x for o in measured for x in o.get("interim_latency_s", ())])
    audio_s = len(every) * args.seconds
    cpu = after["cpu_s"] - before["cpu_s"]
    res = {
        "streams": args.streams,
        "rounds": args.rounds,
        "stagger": args.stagger,
        "model": args.model,
        "audio": args.audio,
        "client_chunk_ms": args.chunk_ms,
        "server_chunk_ms": args.server_chunk_ms,
        "left_context_ms": args.left_context_ms,
        "right_context_ms": args.right_context_ms,
        "final_pass": args.final_pass,
        "audio_s_per_stream": args.seconds,
        "measured_streams": len(measured),
        **{f"latency_ms_{k}": v for k, v in final.items()},
        **{f"interim_latency_ms_{k}": v for k, v in interim.items()},
        "server_cores_busy": cpu / wall,
        "server_cpu_rtf": cpu / audio_s,
        "wall_s": wall,
        "peak_rss_mb": peak["rss_mb"],
        "peak_threads": peak["threads"],
        "errors": len(errors),
        "error_examples": errors[:3],
        "interims_per_stream": float(np.mean([len(o.get("interim_latency_s", ())) for o in measured])),
        "loadavg": open("/proc/loadavg").read().split()[:3],
        "cpus": os.cpu_count(),
        "final_latency_ms_by_client": [
            [None if o.get("latency_s") is None else round(1000 * o["latency_s"], 1) for o in client] for client in outs
        ],
    }
    if is_whisper(args.model):
        res.update(
            redecode_ms=args.redecode_ms,
            interim_beam=args.interim_beam,
            max_interim_share=args.max_interim_share,
            bf16_encoder=args.bf16_encoder,
        )
        setting = (
            f"re-decode every {args.redecode_ms} ms, interim beam {args.interim_beam}, max interim share "
            f"{args.max_interim_share:g}, bf16 encoder {args.bf16_encoder}"
        )
    else:
        setting = (
            f"server chunk {args.server_chunk_ms} / left {args.left_context_ms} / right {args.right_context_ms} ms, "
            f"final pass {args.final_pass}"
        )
    res["final_texts"] = sorted({o["final_text"] for o in every if o.get("final_text")})
    if is_whisper(args.model):
        res.update(decode_cpu(args.model, audios[0], args))
    print(
        f"{args.streams} concurrent streams x {args.rounds} rounds x {args.seconds:g} s, {args.stagger} starts "
        f"({args.model}, client chunks {args.chunk_ms} ms, {setting})"
    )
    print(f"final transcripts: {res['final_texts']}")
    which = "middle rounds" if steady else "all rounds"
    print(f"final latency after the last chunk ({len(measured)} streams, {which}): {fmt(final)}")
    print(
        f"interim latency after the window's last chunk: {fmt(interim)} "
        f"({res['interims_per_stream']:.1f} interims per stream)"
    )
    print(
        f"server: {res['server_cores_busy']:.2f} cores busy, CPU RTF {res['server_cpu_rtf']:.4f}, peak RSS "
        f"{res['peak_rss_mb']:.0f} MiB, peak threads {res['peak_threads']}; errors {len(errors)} of "
        f"{len(every)} streams" + (f" ({errors[0]})" if errors else "")
    )
    if is_whisper(args.model):
        print(
            f"one decode of the {args.seconds:g} s recording in this process, CPU seconds: final (beam) "
            f"{res['final_decode_cpu_s']:.2f}, interim (beam {args.interim_beam}) {res['interim_decode_cpu_s']:.2f}"
        )
    print(f"load average at the end of the run {res['loadavg']} on {res['cpus']} CPUs")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
