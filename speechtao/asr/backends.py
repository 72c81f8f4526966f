"""Any form of a speech model behind one call: utterances in, transcripts (words, times, confidences) out.

:func:`open_model` opens what a user has, and ``speechtao asr evaluate`` / ``asr infer`` (and
:func:`speechtao.asr.evaluate.evaluate`) score them all with the same normalizer, WER/CER and reports:

- a speechtao checkpoint (``.pt``/``.ckpt``), a ``.nemo`` archive (imported as ``asr import-nemo`` does) or a
  preset / pretrained name: run in PyTorch;
- an ONNX file written by ``speechtao asr export`` (``model.onnx`` FP32 or ``model.int8.onnx`` INT8): run in
  ONNX Runtime, vocabulary and feature settings from its metadata (a ``tokens.txt`` beside it must agree);
- ``whisper:NAME[:beam=N][:timestamps]``: an installed Whisper encoder-decoder (:mod:`speechtao.asr.whisper_transcribe`);
  a fine-tuned one (``best.pt`` of ``asr finetune`` from ``whisper:NAME``) or its ONNX export folder, as a path or
  as ``whisper:PATH[:beam=N]``;
- a running Riva-protocol endpoint (``server="host:port"``: NVIDIA Riva or ``speechtao serve``), through
  ``riva.client``: offline ``Recognize``, or ``StreamingRecognize`` (its final results) with ``streaming``.

Models with a fixed input window (Whisper-encoder CTC: 30 s) decode longer utterances in overlapping windows
(:mod:`speechtao.asr.longform`); a server decodes long audio its own way.

Usage::

    model = open_model("exports/model.int8.onnx")     # or "best.pt", "x.nemo", server="127.0.0.1:50051"
    print(model.description)                           # onnx exports/model.int8.onnx (INT8 QDQ, ...)
    results = model.transcribe([Utterance("a.wav")])   # list[Transcript]
    model.close()
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from ..errors import CheckpointError, InputError, MissingDependencyError, SpeechtaoError
from .ctc import Word
from .infer import Transcriber, Transcript, Utterance, utterance_seconds
from .longform import DEFAULT_OVERLAP_S


class ServerError(SpeechtaoError):
    """A recognition server that cannot be reached or refuses a request (CLI exit 1)."""


@runtime_checkable
class ASRBackend(Protocol):
    """What evaluation and inference need of a model, whatever its form."""

    description: str  # what was opened: kind, path or endpoint, precision
    seconds_in_model: float  # wall seconds spent recognizing (local models: no audio reading), for RTF figures

    def transcribe(self, utts: Sequence[Utterance], batch_size: int = 16, progress: bool = False) -> list[Transcript]:
        """Transcripts of ``utts`` in input order."""
        ...

    def close(self) -> None:
        """Release connections or sessions."""
        ...


def open_model(
    source: str | Path | None = None,
    *,
    threads: int = 1,
    device: str = "cpu",
    server: str | None = None,
    streaming: bool = False,
    model_name: str = "",
    window_s: float | None = None,
    overlap_s: float = DEFAULT_OVERLAP_S,
) -> ASRBackend:
    """Open a model in any form (see the module docstring).

    Args:
        source: a checkpoint, ``.nemo``, preset name or ``.onnx`` file; None with ``server``.
        threads: ONNX Runtime intra-op threads (PyTorch threads are the caller's ``torch.set_num_threads``).
        device: "cpu" or "cuda" (PyTorch device; ONNX Runtime's CUDA provider where it has one).
        server: ``host:port`` of a Riva-protocol server; ``source`` must then be None.
        streaming: with ``server``: StreamingRecognize (finals joined) instead of offline Recognize.
        model_name: with ``server``: ``RecognitionConfig.model`` (empty: the server's default model).
        window_s: window for utterances longer than a fixed-window model takes (default 10 s; Whisper takes 30 s).
        overlap_s: seconds neighbouring long-form windows share.
    """
    if server is not None:
        if source is not None:
            raise InputError(f"model {source!r} and server {server!r}: give one of the two (--model or --server)")
        return RivaBackend(server, streaming=streaming, model_name=model_name)
    if source is None:
        raise InputError("no model: pass a checkpoint, .nemo, ONNX file or preset name (--model), or --server")
    if streaming:
        raise InputError("--streaming applies to --server endpoints only (drop it, or pass --server host:port)")
    from .whisper_transcribe import PREFIX, SeqTranscriber, is_seq_path, is_seq_ref, load_seq_ref

    if is_seq_ref(source):  # whisper:NAME[:beam=N][:timestamps], a Whisper encoder-decoder
        return SeqTranscriber(load_seq_ref(source, threads), device)
    path = Path(source)
    if is_seq_path(path):  # a fine-tuned Whisper encoder-decoder checkpoint or its ONNX export folder
        return SeqTranscriber(load_seq_ref(PREFIX + str(path), threads), device)
    if path.suffix == ".onnx":
        return _open_onnx(path, threads=threads, device=device, window_s=window_s, overlap_s=overlap_s)
    from .checkpoint import load_model

    loaded = load_model(source)
    kind = "nemo" if path.suffix == ".nemo" else ("checkpoint" if path.exists() else "preset")
    window = int(round(window_s * loaded.config.preprocessor.sample_rate)) if window_s else 0
    transcriber = Transcriber.from_loaded(loaded, device, window=window, overlap_s=overlap_s)
    transcriber.description = f"{kind} {source} ({loaded.config.family}, PyTorch {device})"
    return transcriber


def _tokens_txt(path: Path) -> list[str] | None:
    """The tokens of a ``tokens.txt`` (``<token> <id>`` lines, ``<blk>`` last, '▁' for a space), without the
    blank; None when there is none."""
    if not path.is_file():
        return None
    tokens = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            token = line.rsplit(" ", 1)[0]
            tokens.append(token)
    return tokens[:-1] if tokens and tokens[-1] == "<blk>" else tokens


def _open_onnx(path: Path, *, threads: int, device: str, window_s: float | None, overlap_s: float) -> Transcriber:
    if not path.is_file():
        raise CheckpointError(f"{path}: ONNX file not found (pass a file written by `speechtao asr export`)")
    try:
        from ..serve.backends import OnnxBackend
    except ImportError as exc:  # pragma: no cover - onnxruntime is a core dependency
        raise MissingDependencyError(f"ONNX models need onnxruntime ({exc}); pip install onnxruntime") from None
    backend = OnnxBackend(path, provider=device, threads=threads)
    vocab = backend.tokenizer.vocab
    listed = _tokens_txt(path.with_name("tokens.txt"))
    expected = ["\u2581" if t == " " else t for t in vocab]
    if listed is not None and listed != expected:
        raise CheckpointError(
            f"{path}: tokens.txt beside it lists {len(listed)} tokens that differ from the {len(vocab)} of the "
            "file's vocabulary metadata (it belongs to another export); export the model again into its own folder"
        )
    max_samples = backend.features.max_frames * backend.hop_length
    transcriber = Transcriber(
        backend,
        backend.tokenizer,
        sample_rate=backend.sample_rate,
        samples_per_frame=backend.samples_per_frame,
        max_samples=max_samples,
        window=int(round(window_s * backend.sample_rate)) if window_s else 0,
        overlap_s=overlap_s,
    )
    transcriber.description = (
        f"onnx {path} ({_precision(path)}, {backend.family}, {len(vocab)} tokens, {backend.provider})"
    )
    return transcriber


def _precision(path: Path) -> str:
    """ "INT8 <format>" for a file ``speechtao asr export --format onnx-int8`` wrote, else "FP32"."""
    from ..export.onnx_export import read_metadata

    quant = read_metadata(path).get("quantization")
    if not quant:
        return "FP32"
    try:
        return f"INT8 {json.loads(quant).get('format', '')}".strip()
    except ValueError:
        return "INT8"


class RivaBackend:
    """A Riva-protocol endpoint (``host:port``) through ``riva.client``: each utterance is sent as 16-bit PCM
    at its file's rate; offline ``Recognize``, or ``StreamingRecognize`` in ``chunk_ms`` chunks with its
    final results joined. ``verbatim`` (default) asks for the spoken form, as a local model writes it: a
    server's inverse text normalization would join letters into acronyms ("l t" -> "LT") that the scoring
    normalizer does not split again. Word times come back from the server (offset of a manifest segment added)."""

    def __init__(
        self,
        server: str,
        *,
        streaming: bool = False,
        model_name: str = "",
        chunk_ms: int = 100,
        language_code: str = "en-US",
        timeout_s: float = 600.0,
        connect_timeout_s: float = 10.0,
        verbatim: bool = True,
    ):
        try:
            import grpc
            import riva.client
            from riva.client.proto import riva_asr_pb2
        except ImportError as exc:
            raise MissingDependencyError(
                f"--server needs the Riva client ({exc}); pip install nvidia-riva-client"
            ) from None
        host, _, port = server.rpartition(":")
        if not host or not port.isdigit():
            raise InputError(f"server {server!r}: expected host:port (for example 127.0.0.1:50051)")
        self.server = server
        self.streaming = streaming
        self.model_name = model_name
        self.chunk_ms = chunk_ms
        self.timeout_s = timeout_s
        self.language_code = language_code
        self.verbatim = verbatim  # False: the server's inverse text normalization ("$25"), as Riva's default
        self._grpc = grpc
        self._riva = riva.client
        self._pb = riva_asr_pb2
        self._auth = riva.client.Auth(uri=server)
        self.service = riva.client.ASRService(self._auth)
        state = self._connect(connect_timeout_s)
        if state != grpc.ChannelConnectivity.READY:
            self.close()
            why = "refused the connection" if state == grpc.ChannelConnectivity.TRANSIENT_FAILURE else "did not answer"
            raise ServerError(
                f"server {server}: {why} (no gRPC server there within {connect_timeout_s:g} s; start one with "
                "`speechtao serve --models DIR --port PORT`, or check host and port)"
            )
        mode = "StreamingRecognize finals" if streaming else "offline Recognize"
        self.description = f"riva {server} ({mode}, model {model_name or '<server default>'})"
        self.seconds_in_model = 0.0

    def _connect(self, timeout_s: float):
        """Wait until the channel is READY, fails to connect, or ``timeout_s`` passes; returns the last state."""
        import threading

        grpc = self._grpc
        states = [grpc.ChannelConnectivity.IDLE]
        changed = threading.Event()

        def watch(state):
            states.append(state)
            if state in (grpc.ChannelConnectivity.READY, grpc.ChannelConnectivity.TRANSIENT_FAILURE):
                changed.set()

        self._auth.channel.subscribe(watch, try_to_connect=True)
        changed.wait(timeout_s)
        self._auth.channel.unsubscribe(watch)
        return states[-1]

    def close(self) -> None:
        self._auth.channel.close()

    def _config(self, sample_rate: int):
        riva = self._riva
        return riva.RecognitionConfig(
            encoding=riva.AudioEncoding.LINEAR_PCM,
            sample_rate_hertz=sample_rate,
            language_code=self.language_code,
            max_alternatives=1,
            enable_word_time_offsets=True,
            audio_channel_count=1,
            model=self.model_name,
            verbatim_transcripts=self.verbatim,
        )

    def _results(self, pcm: bytes, sample_rate: int) -> list:
        """The server's final results for one utterance's PCM bytes."""
        if not self.streaming:
            response = self.service.stub.Recognize(
                self._pb.RecognizeRequest(config=self._config(sample_rate), audio=pcm),
                metadata=self._auth.get_auth_metadata(),
                timeout=self.timeout_s,
            )
            return list(response.results)
        scfg = self._riva.StreamingRecognitionConfig(config=self._config(sample_rate), interim_results=False)
        step = 2 * (sample_rate * self.chunk_ms // 1000)
        chunks = (pcm[i : i + step] for i in range(0, len(pcm), step))
        return [
            r for resp in self.service.streaming_response_generator(chunks, scfg) for r in resp.results if r.is_final
        ]

    def transcribe_one(self, utt: Utterance) -> Transcript:
        import soundfile as sf

        from ..audio import pcm16_encode, read_audio

        # At the file's own rate: 16-bit files reach the server sample for sample, and it resamples them as
        # local evaluation does. Other files become 16-bit PCM.
        rate = int(sf.info(utt.audio_filepath).samplerate)
        audio = read_audio(utt.audio_filepath, sample_rate=rate, offset=utt.offset, duration=utt.duration)
        try:
            results = self._results(pcm16_encode(audio), rate) if len(audio) else []
        except self._grpc.RpcError as exc:
            hint = ""
            if exc.code() == self._grpc.StatusCode.RESOURCE_EXHAUSTED and not self.streaming:
                hint = "; a long recording fits a streamed request: pass --streaming"
            raise ServerError(
                f"server {self.server}: {exc.code().name} for {utt.audio_filepath} ({exc.details()}){hint}"
            ) from None
        shift_ms = int(round(utt.offset * 1000))
        texts, words, confidences = [], [], []
        for r in results:
            if not r.alternatives:
                continue
            alt = r.alternatives[0]
            if alt.transcript.strip():
                texts.append(alt.transcript.strip())
                confidences.append(alt.confidence)
            for w in alt.words:
                start_ms, end_ms = shift_ms + int(w.start_time), shift_ms + int(w.end_time)
                words.append(Word(w.word, start_ms, max(end_ms, start_ms + 1), float(w.confidence)))
        confidence = float(np.mean(confidences)) if confidences else 0.0
        return Transcript(utt.audio_filepath, " ".join(texts), words, len(audio) / rate, confidence, utt.offset)

    def transcribe(self, utts: Sequence[Utterance], batch_size: int = 16, progress: bool = False) -> list[Transcript]:
        """One request per utterance, ``batch_size`` of them in flight at once (the server batches concurrent
        requests as it batches streams); results in input order."""
        from concurrent.futures import ThreadPoolExecutor

        if batch_size < 1:
            raise InputError(f"batch size {batch_size}: must be at least 1 (pass --batch-size 1 or more)")
        for u in utts:
            utterance_seconds(u)  # a missing file fails before any request
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(utts), unit="utt", leave=False)
        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=min(batch_size, max(len(utts), 1))) as pool:
            futures = [pool.submit(self.transcribe_one, u) for u in utts]
            out = []
            for f in futures:
                out.append(f.result())
                if bar is not None:
                    bar.update(1)
        self.seconds_in_model += time.perf_counter() - start
        if bar is not None:
            bar.close()
        return out
