"""nvidia.riva.asr.RivaSpeechRecognition over :class:`speechtao.serve.session.AudioSession`.

Status codes:

- INVALID_ARGUMENT: audio before the streaming config, a second config, an unsupported encoding, an
  unparseable WAV header, no audio, raw audio without ``sample_rate_hertz``; each message says how to fix it.
- NOT_FOUND: ``RecognitionConfig.model`` names a model the repository does not hold.
- RESOURCE_EXHAUSTED: the stream caps (:mod:`server.limits`), audio past ``--max-stream-seconds``.
- UNAVAILABLE: the server is draining; CANCELLED: the stream was idle past ``--idle-timeout``.
"""

from __future__ import annotations

import logging

import grpc
from riva.client.proto import riva_asr_pb2 as rasr
from riva.client.proto import riva_asr_pb2_grpc as rasr_grpc
from riva.client.proto import riva_audio_pb2 as raudio

from speechtao.errors import InputError, MissingDependencyError
from speechtao.serve.batching import Batcher, BatcherClosed, BatchOptions
from speechtao.serve.endpointing import EndpointConfig
from speechtao.serve.repository import ModelNotFound, ModelRepository
from speechtao.serve.session import AudioSession, SessionConfig, StreamTooLong, recognize_request

from .limits import Admission

log = logging.getLogger("speechtao.server")


def abort_for(context, exc: Exception) -> None:
    """Turn a library error into the gRPC status a client can act on (raises, as context.abort does)."""
    if isinstance(exc, ModelNotFound):
        context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
    if isinstance(exc, StreamTooLong):
        context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
    if isinstance(exc, BatcherClosed):
        context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
    if isinstance(exc, MissingDependencyError):
        context.abort(grpc.StatusCode.UNIMPLEMENTED, str(exc))
    if isinstance(exc, InputError):
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
    log.exception("internal error")
    context.abort(grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}: {exc} (see the server log)")


class ASRService(rasr_grpc.RivaSpeechRecognitionServicer):
    def __init__(self, admission: Admission, batch: BatchOptions = BatchOptions()):
        self.repo: ModelRepository | None = None  # None while the models load: RPCs answer UNAVAILABLE
        self.admission = admission
        self.batch = batch
        self.batchers: dict[str, Batcher] = {}

    def attach(self, repo: ModelRepository) -> None:
        """Serve the models of ``repo`` (called once they are loaded)."""
        self.batchers = {name: Batcher(rec, self.batch) for name, rec in repo.asr_models.items()}
        self.repo = repo

    def _ready(self, context) -> None:
        if self.repo is None:
            context.abort(
                grpc.StatusCode.UNAVAILABLE,
                "the server is still loading its models (retry shortly; "
                "grpc.health.v1 reports SERVING once they are loaded)",
            )

    def close(self) -> None:
        for b in self.batchers.values():
            b.close()

    # -- helpers ------------------------------------------------------------------------------------------

    def _session_config(self, cfg: rasr.RecognitionConfig, rec) -> SessionConfig:
        endpoint = None
        if cfg.HasField("endpointing_config"):
            try:
                endpoint = EndpointConfig.from_proto(cfg.endpointing_config, rec.options.endpoint)
            except ValueError as exc:
                raise InputError(f"endpointing_config: {exc}") from None
        encoding = (
            raudio.AudioEncoding.Name(cfg.encoding)
            if cfg.encoding in raudio.AudioEncoding.values()
            else f"AudioEncoding({cfg.encoding})"
        )
        return SessionConfig(
            encoding=encoding,
            sample_rate=cfg.sample_rate_hertz,
            channels=cfg.audio_channel_count,
            separate_channels=cfg.enable_separate_recognition_per_channel,
            endpoint=endpoint,
            max_seconds=self.admission.limits.max_stream_seconds,
        )

    def _punctuate(self, cfg: rasr.RecognitionConfig, text: str) -> str:
        if not cfg.enable_automatic_punctuation or not text or not self.repo.has_nlp("punct"):
            return text
        return self.repo.nlp("punct").punctuate([text])[0]

    def _alternative(self, cfg, r, final: bool) -> rasr.SpeechRecognitionAlternative:
        text = self._punctuate(cfg, r.text) if final else r.text
        alt = rasr.SpeechRecognitionAlternative(transcript=text, confidence=r.confidence)
        if final and cfg.enable_word_time_offsets:
            for w in r.words:
                alt.words.append(
                    rasr.WordInfo(start_time=w.start_ms, end_time=w.end_ms, word=w.word, confidence=w.confidence)
                )
        return alt

    # -- RPCs ---------------------------------------------------------------------------------------------

    def Recognize(self, request, context):
        self._ready(context)
        ticket = self.admission.enter(context)
        try:
            if not request.HasField("config"):
                raise InputError(
                    "RecognizeRequest has no config (set config, e.g. RecognitionConfig(language_code="
                    "'en-US'); encoding and sample rate may stay unset for WAV files)"
                )
            rec = self.repo.asr(request.config.model)
            if not request.audio:
                raise InputError("RecognizeRequest.audio is empty (send the audio file's bytes)")
            results = recognize_request(rec, request.audio, self._session_config(request.config, rec))
            response = rasr.RecognizeResponse()
            if request.HasField("id"):
                response.id.CopyFrom(request.id)
            for r in results:
                if r.is_final:
                    response.results.append(
                        rasr.SpeechRecognitionResult(
                            alternatives=[self._alternative(request.config, r, True)],
                            channel_tag=r.channel,
                            audio_processed=r.audio_processed_s,
                        )
                    )
            return response
        except grpc.RpcError:
            raise
        except Exception as exc:
            if not context.is_active():
                raise
            abort_for(context, exc)
        finally:
            ticket.close()

    def StreamingRecognize(self, request_iterator, context):
        self._ready(context)
        ticket = self.admission.enter(context)
        try:
            first = next(request_iterator, None)
            if first is None:
                raise InputError(
                    "the stream closed before its first request (send a StreamingRecognizeRequest "
                    "with streaming_config first)"
                )
            if first.WhichOneof("streaming_request") != "streaming_config":
                raise InputError(
                    "the first StreamingRecognizeRequest carries audio_content; send streaming_config "
                    "first, then the audio"
                )
            scfg = first.streaming_config
            cfg = scfg.config
            rec = self.repo.asr(cfg.model)
            session = AudioSession(rec, self.batchers[rec.name].decode, self._session_config(cfg, rec))
            rid = first.id if first.HasField("id") else None
            for req in request_iterator:
                ticket.touch()
                kind = req.WhichOneof("streaming_request")
                if kind == "streaming_config":
                    raise InputError(
                        "a second streaming_config in one stream; send the config once, in the first "
                        "request (open a new stream to change it)"
                    )
                if kind != "audio_content":
                    continue
                results = session.feed(req.audio_content)
                if results:
                    yield self._response(cfg, scfg.interim_results, results, rid)
            results = session.finish()
            if results or not session.streams:
                yield self._response(cfg, scfg.interim_results, results, rid)
        except grpc.RpcError:
            raise
        except Exception as exc:
            if not context.is_active():  # cancelled, deadline passed or idle-reaped: nothing to tell
                return
            abort_for(context, exc)
        finally:
            ticket.close()

    def _response(self, cfg, interim: bool, results, rid) -> rasr.StreamingRecognizeResponse:
        resp = rasr.StreamingRecognizeResponse()
        if rid is not None:
            resp.id.CopyFrom(rid)
        for r in results:
            if not r.is_final and not interim:
                continue
            resp.results.append(
                rasr.StreamingRecognitionResult(
                    alternatives=[self._alternative(cfg, r, r.is_final)],
                    is_final=r.is_final,
                    stability=r.stability,
                    channel_tag=r.channel,
                    audio_processed=r.audio_processed_s,
                )
            )
        return resp

    def GetRivaSpeechRecognitionConfig(self, request, context):
        self._ready(context)
        names = list(self.repo.asr_models)
        if request.model_name:
            if request.model_name not in self.repo.asr_models:
                context.abort(
                    grpc.StatusCode.NOT_FOUND,
                    f"ASR model {request.model_name!r} is not served here (available: {', '.join(names) or 'none'})",
                )
            names = [request.model_name]
        resp = rasr.RivaSpeechRecognitionConfigResponse()
        for name in names:
            rec = self.repo.asr_models[name]
            info = rec.backend.info(name)
            o = rec.options
            params = {
                "type": "online",
                "language_code": "en-US",
                "sample_rate": str(info.sample_rate),
                "streaming": "true",
                "offline": "true",
                "default": str(name == self.repo.default_asr).lower(),
                "provider": info.provider,
                "family": info.family,
                "chunk_ms": str(o.chunk_ms),
                "left_context_ms": str(o.left_context_ms),
                "right_context_ms": str(o.right_context_ms),
                "final_pass": o.final_pass,
                "automatic_punctuation": str(self.repo.has_nlp("punct")).lower(),
            }
            resp.model_config.append(
                rasr.RivaSpeechRecognitionConfigResponse.Config(model_name=name, parameters=params)
            )
        return resp
