"""Fault injection against `speechtao serve`: the server must stay up and give back what faulty clients took.

    python bench/serve_faults.py [--rounds 60] [--model PATH|preset] [--seed 0]

The server runs as its own process on loopback with small limits (idle timeout 2 s, 4 MiB messages). After a
warm-up stream, its thread count and RSS are the baseline. Then, interleaved at random:

- disconnects: a stream is cancelled after a random number of audio chunks, or its deadline expires;
- fuzzed and malformed requests: random bytes as audio under random encodings, sample rates and channel counts,
  truncated or corrupted WAV headers, audio before the config, two configs, unknown models, oversized
  messages, random protobuf fields;
- slow clients: a stream that sends one chunk and stalls past the idle timeout, or trickles bytes slowly.

Finally: health is SERVING, a normal stream still gets its final result, and within ``--settle`` seconds the
server's threads return to the baseline (+2) and its RSS to within ``--rss-slack-mb`` of it. The baseline is
taken after ``--workers`` + 2 normal streams ran at once: gRPC's RPC thread pool grows to the peak concurrency
and keeps its threads, which is not a leak. Prints one line per
check and exits 1 when a check fails. Unexpected status codes (INTERNAL, UNKNOWN) count as failures.
"""

from __future__ import annotations

import argparse
import os
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_load import SR, prepare_model, proc_stats  # noqa: E402

EXPECTED = {
    "OK",
    "INVALID_ARGUMENT",
    "NOT_FOUND",
    "RESOURCE_EXHAUSTED",
    "CANCELLED",
    "DEADLINE_EXCEEDED",
    "UNAVAILABLE",
}


def start(model: Path, folder: Path) -> tuple[subprocess.Popen, int]:
    repo = folder / "models"
    repo.mkdir(exist_ok=True)
    (repo / model.name).symlink_to(model.resolve())
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "speechtao",
            "serve",
            "--models",
            str(repo),
            "--port",
            "0",
            "--no-itn",  # the recognizer alone (inverse text normalization adds 30-600 ms a final)
            "--idle-timeout",
            "2",
            "--max-message-mb",
            "4",
            "--max-stream-seconds",
            "120",
            "--max-streams",
            "16",
            "--max-streams-per-peer",
            "16",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    line = proc.stdout.readline()
    if not line.startswith("listening on"):
        raise SystemExit(f"server did not start: {line}{proc.stderr.read()}")
    while proc.stdout.readline().strip() not in ("serving", ""):
        pass
    return proc, int(line.split()[2].split(":")[1])


def wav_header(rate: int, channels: int, bits: int = 16, tag: int = 1, size: int = 0xFFFFFFFF) -> bytes:
    fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * channels * bits // 8, channels * bits // 8, bits)
    return (
        b"RIFF" + struct.pack("<I", 36) + b"WAVEfmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", size)
    )


class Faults:
    def __init__(self, stub, rng: np.random.Generator, speech: bytes):
        from riva.client.proto import riva_asr_pb2 as rasr

        self.rasr = rasr
        self.stub = stub
        self.rng = rng
        self.speech = speech  # a WAV file's bytes

    def config(self, **kw):
        return self.rasr.StreamingRecognizeRequest(
            streaming_config=self.rasr.StreamingRecognitionConfig(
                config=self.rasr.RecognitionConfig(**kw), interim_results=bool(self.rng.integers(2))
            )
        )

    def audio(self, data: bytes):
        return self.rasr.StreamingRecognizeRequest(audio_content=data)

    def chunks(self, data: bytes, size: int = 3200):
        return [self.audio(data[i : i + size]) for i in range(0, len(data), size)]

    def call(self, requests, timeout=30.0, cancel_after_s=None, delay=0.0) -> str:
        import grpc

        def gen():
            for r in requests:
                if delay:
                    time.sleep(delay)
                yield r

        it = self.stub.StreamingRecognize(gen(), timeout=timeout)
        timer = threading.Timer(cancel_after_s, it.cancel) if cancel_after_s is not None else None
        if timer:
            timer.start()
        try:
            for _ in it:
                pass
            return "OK"
        except grpc.RpcError as exc:
            return exc.code().name
        finally:
            if timer:
                timer.cancel()

    # -- the faults ------------------------------------------------------------------------------------------

    def disconnect(self) -> str:
        reqs = [self.config()] + self.chunks(self.speech)
        if self.rng.integers(2):
            return "disconnect:" + self.call(reqs, cancel_after_s=float(self.rng.uniform(0.05, 0.6)), delay=0.05)
        return "deadline:" + self.call(reqs, timeout=float(self.rng.uniform(0.05, 0.5)), delay=0.1)

    def fuzz(self) -> str:
        r = self.rng
        kind = int(r.integers(9))
        enc = int(r.integers(0, 7))  # includes values outside the enum
        rate = int(r.choice([0, 1, 8000, 16000, 44100, 96000, 2**31 - 1]))
        channels = int(r.integers(0, 4))
        junk = r.bytes(int(r.integers(0, 20000)))
        if kind == 0:
            reqs = [self.config(encoding=enc, sample_rate_hertz=rate, audio_channel_count=channels), self.audio(junk)]
        elif kind == 1:
            head = wav_header(
                int(r.choice([8000, 16000, 0])),
                int(r.integers(0, 3)),
                int(r.choice([8, 16, 24, 32])),
                int(r.choice([1, 3, 6, 7, 85])),
            )
            cut = int(r.integers(0, len(head) + 1))
            reqs = [self.config()] + self.chunks(head[:cut] + junk, int(r.integers(1, 5000)))
        elif kind == 2:
            reqs = [self.audio(self.speech[:3200]), self.config()]
        elif kind == 3:
            reqs = [self.config(), self.config()] + self.chunks(self.speech[:6400])
        elif kind == 4:
            reqs = [self.config(model="no-such-model")] + self.chunks(self.speech[:6400])
        elif kind == 5:
            reqs = [self.config(), self.audio(b"\0" * (5 << 20))]  # over the 4 MiB message limit
        elif kind == 6:
            reqs = [
                self.config(
                    endpointing_config=self.rasr.EndpointingConfig(
                        start_history=int(r.integers(-10, 100000)), stop_threshold=float(r.uniform(-1, 3))
                    )
                )
            ] + self.chunks(self.speech[:9600])
        elif kind == 7:
            corrupted = bytearray(self.speech[:8000])
            for i in r.integers(0, 44, size=4):
                corrupted[int(i)] = int(r.integers(256))
            reqs = [self.config()] + self.chunks(bytes(corrupted))
        else:
            reqs = [self.config(encoding=1, sample_rate_hertz=16000), self.audio(b"\0" * 3)]  # odd byte count
        return f"fuzz{kind}:" + self.call(reqs, timeout=30)

    def slow(self) -> str:
        if self.rng.integers(2):
            reqs = [self.config(), self.audio(self.speech[:3200])]
            import grpc

            release = threading.Event()

            def stall():
                yield from reqs
                release.wait(10)  # silent for longer than the 2 s idle timeout

            try:
                for _ in self.stub.StreamingRecognize(stall(), timeout=30):
                    pass
                code = "OK"
            except grpc.RpcError as exc:
                code = exc.code().name
            release.set()
            return "stall:" + code
        return "trickle:" + self.call([self.config()] + self.chunks(self.speech[:16000], 400), delay=0.01)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=60)
    ap.add_argument("--workers", type=int, default=6, help="faulty clients at a time")
    ap.add_argument("--model", default="quartznet_small", help="ONNX/checkpoint path or preset (random weights)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--settle", type=float, default=10.0, help="seconds for threads and memory to return")
    ap.add_argument("--rss-slack-mb", type=float, default=60.0)
    args = ap.parse_args()

    import grpc
    from riva.client.proto import health_pb2, health_pb2_grpc, riva_asr_pb2, riva_asr_pb2_grpc

    from speechtao.audio import write_wav

    rng = np.random.default_rng(args.seed)
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model = prepare_model(args.model, folder)
        t = np.arange(2 * SR) / SR
        write_wav(folder / "speech.wav", 0.3 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 2 * t) > 0), SR)
        speech = (folder / "speech.wav").read_bytes()
        proc, port = start(model, folder)
        try:
            channel = grpc.insecure_channel(f"127.0.0.1:{port}")
            stub = riva_asr_pb2_grpc.RivaSpeechRecognitionStub(channel)
            faults = Faults(stub, rng, speech)
            # Warm-up: as many normal streams at once as there will be faulty clients (plus two), so the server's
            # RPC thread pool (which grows to the peak concurrency and keeps its threads) is at its working size.
            warm = [
                threading.Thread(
                    target=lambda: codes_warm.append(faults.call([faults.config()] + faults.chunks(speech)))
                )
                for _ in range(args.workers + 2)
            ]
            codes_warm: list = []
            for th in warm:
                th.start()
            for th in warm:
                th.join()
            assert codes_warm == ["OK"] * len(warm), f"normal streams failed before any fault: {codes_warm}"
            time.sleep(1.0)
            base = proc_stats(proc.pid)
            print(f"baseline: {base['threads']} threads, {base['rss_mb']:.0f} MiB RSS")
            codes: Counter = Counter()
            lock = threading.Lock()
            jobs = [rng.choice(["disconnect", "fuzz", "fuzz", "slow"]) for _ in range(args.rounds)]
            peak = dict(base)

            def worker(k):
                local = Faults(stub, np.random.default_rng(args.seed * 1000 + k), speech)
                while True:
                    with lock:
                        if not jobs:
                            return
                        job = jobs.pop()
                    code = getattr(local, job)()
                    with lock:
                        codes[code] += 1

            threads = [threading.Thread(target=worker, args=(k,)) for k in range(args.workers)]
            for th in threads:
                th.start()
            while any(th.is_alive() for th in threads):
                s = proc_stats(proc.pid)
                peak = {k: max(peak[k], s[k]) for k in ("threads", "rss_mb")}
                time.sleep(0.2)
            print("outcomes: " + ", ".join(f"{k} x{v}" for k, v in sorted(codes.items())))
            print(f"peak during faults: {peak['threads']} threads, {peak['rss_mb']:.0f} MiB RSS")
            bad = {k: v for k, v in codes.items() if k.split(":")[1] not in EXPECTED}
            if bad:
                failures.append(f"unexpected status codes {bad} (see the server's stderr)")
            if proc.poll() is not None:
                failures.append(f"the server exited with {proc.returncode}")
            else:
                health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
                if health.status != health_pb2.HealthCheckResponse.SERVING:
                    failures.append(f"health is {health.status} after the faults, not SERVING")
                if faults.call([faults.config()] + faults.chunks(speech)) != "OK":
                    failures.append("a normal stream failed after the faults")
                cfg = stub.GetRivaSpeechRecognitionConfig(riva_asr_pb2.RivaSpeechRecognitionConfigRequest())
                if not cfg.model_config:
                    failures.append("GetRivaSpeechRecognitionConfig lists no model after the faults")
                end = time.monotonic() + args.settle
                while True:
                    now = proc_stats(proc.pid)
                    ok = now["threads"] <= base["threads"] + 2 and now["rss_mb"] <= base["rss_mb"] + args.rss_slack_mb
                    if ok or time.monotonic() > end:
                        break
                    time.sleep(0.5)
                print(f"after settling: {now['threads']} threads, {now['rss_mb']:.0f} MiB RSS")
                if now["threads"] > base["threads"] + 2:
                    failures.append(f"threads did not return to baseline: {now['threads']} vs {base['threads']}")
                if now["rss_mb"] > base["rss_mb"] + args.rss_slack_mb:
                    failures.append(
                        f"RSS did not return near baseline: {now['rss_mb']:.0f} vs {base['rss_mb']:.0f} MiB"
                    )
            channel.close()
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
            err = proc.stderr.read()
    internal = err.count("internal error")
    if internal:
        failures.append(f"{internal} internal error(s) logged by the server")
        print(err[-3000:])
    for f in failures:
        print("FAIL", f)
    print("PASS" if not failures else f"{len(failures)} check(s) failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
