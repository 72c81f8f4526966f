"""nvidia.riva.asr.RivaSpeechRecognition over :class:`speechtao.serve.session.AudioSession`.

Status codes:

- INVALID_ARGUMENT: audio before the streaming config, a second config, an unsupported encoding, an
  unparseable WAV header, no audio, raw audio without ``sample_rate_hertz``, a ``language_code`` the model does
  not speak; each message says how to fix it.
- NOT_FOUND: ``RecognitionConfig.model`` names a model the repository does not hold.
- RESOURCE_EXHAUSTED: the stream caps (:mod:`.limits`), audio past ``--max-stream-seconds``, a message's audio
  past ``--max-message-mb``.
- UNAVAILABLE: the server is draining; CANCELLED: the stream was idle past ``--idle-timeout`` (the message
  says so).

Final transcripts go through :class:`speechtao.serve.transcript.TranscriptPipeline`: inverse text normalization
unless ``verbatim_transcripts``, masking with ``profanity_filter``, then ``enable_automatic_punctuation``.

Model listing (GetRivaSpeechRecognitionConfig): every ASR model appears twice, ``type`` "offline" and "online"
(streaming), as Riva lists its models, so both of Riva's file clients list it with ``--list-models``.
"""

from __future__ import annotations

import dataclasses
import logging

import grpc
from riva.client.proto import riva_asr_pb2 as rasr
from riva.client.proto import riva_asr_pb2_grpc as rasr_grpc
from riva.client.proto import riva_audio_pb2 as raudio

from speechtao.errors import InputError, MissingDependencyError
from speechtao.lm.decode import Boost
from speechtao.serve.batching import Batcher, BatcherClosed, BatchOptions
from speechtao.serve.decoding import RequestDecoding
from speechtao.serve.endpointing import EndpointConfig
from speechtao.serve.repository import ModelNotFound, ModelRepository
from speechtao.serve.session import AudioSession, SessionConfig, StreamTooLong, recognize_request
from speechtao.serve.transcript import TranscriptPipeline, load_profanity
from speechtao.text.normalize import normalize_text

from .limits import Admission

LANGUAGE = "en-US"  # the language every served model is listed with (speechtao's recipes are English)

log = logging.getLogger("speechtao.server")


class MessageTooLarge(InputError):
    """A request message's audio passed ``--max-message-mb``."""


def abort_for(context, exc: Exception) -> None:
    """Turn a library error into the gRPC status a client can act on (raises, as context.abort does)."""
    if isinstance(exc, ModelNotFound):
        context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
    if isinstance(exc, StreamTooLong | MessageTooLarge):
        context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
    if isinstance(exc, BatcherClosed):
        context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
    if isinstance(exc, MissingDependencyError):
        context.abort(grpc.StatusCode.UNIMPLEMENTED, str(exc))
    if isinstance(exc, InputError):
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
    log.exception("internal error")
    context.abort(grpc.StatusCode.INTERNAL, f"internal error: {exc or 'no message'} (the server log has the details)")


def request_decoding(cfg: rasr.RecognitionConfig) -> RequestDecoding | None:
    """``speech_contexts`` (phrases and their boost) and ``max_alternatives`` as the decode step's request; they
    take effect with a model that has an LM (``lm/`` in the model folder), greedy decoding has one path."""
    boosts = tuple(Boost(p, c.boost) for c in cfg.speech_contexts for p in c.phrases if normalize_text(p) and c.boost)
    if not boosts and cfg.max_alternatives <= 1:
        return None
    return RequestDecoding(boosts=boosts, alternatives=max(cfg.max_alternatives, 1))


class ASRService(rasr_grpc.RivaSpeechRecognitionServicer):
    def __init__(self, admission: Admission, batch: BatchOptions = BatchOptions()):
        self.repo: ModelRepository | None = None  # None while the models load: RPCs answer UNAVAILABLE
        self.admission = admission
        self.batch = batch
        self.batchers: dict[str, Batcher] = {}
        self.transcripts = TranscriptPipeline(None, frozenset())

    def attach(self, repo: ModelRepository, transcripts: TranscriptPipeline | None = None) -> None:
        """Serve the models of ``repo`` (called once they are loaded); ``transcripts``: the final-transcript
        steps (default: no ITN, the repository's or the default profanity list)."""
        self.batchers = {name: Batcher(rec, self.batch) for name, rec in repo.asr_models.items()}
        self.transcripts = transcripts or TranscriptPipeline(None, load_profanity(repo.profanity_list))
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

    def _check_config(self, cfg: rasr.RecognitionConfig) -> None:
        if cfg.language_code and cfg.language_code.lower() != LANGUAGE.lower():
            raise InputError(
                f"language_code {cfg.language_code!r}: the models served here speak {LANGUAGE} (send "
                f"language_code '{LANGUAGE}', or leave it empty)"
            )

    def _check_size(self, n: int, what: str) -> None:
        limit = self.admission.limits.max_message_bytes
        if n > limit:
            raise MessageTooLarge(
                f"{what} holds {n} bytes of audio, more than the server's --max-message-mb "
                f"{limit / (1 << 20):g} ({limit} bytes); stream it in smaller messages, or raise the flag"
            )

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
            decoding=request_decoding(cfg),
            encoding=encoding,
            sample_rate=cfg.sample_rate_hertz,
            channels=cfg.audio_channel_count,
            separate_channels=cfg.enable_separate_recognition_per_channel,
            endpoint=endpoint,
            max_seconds=self.admission.limits.max_stream_seconds,
        )

    def _punctuator(self, cfg: rasr.RecognitionConfig, rec):
        if not cfg.enable_automatic_punctuation or not self.repo.has_nlp("punct") or rec.written_form:
            return None
        model = self.repo.nlp("punct")
        return lambda text: model.punctuate([text])[0]

    def _alternative(self, cfg, rec, r, final: bool) -> rasr.SpeechRecognitionAlternative:
        """``rec.written_form``: the model writes case, punctuation and digits itself (Whisper): no ITN and no
        punctuation model on its finals."""
        if not final:
            text = self.transcripts.interim(r.text, profanity_filter=cfg.profanity_filter)
            return rasr.SpeechRecognitionAlternative(transcript=text, confidence=r.confidence)
        text, words = self.transcripts.final(
            r.words,
            r.text,
            verbatim=cfg.verbatim_transcripts or rec.written_form,
            profanity_filter=cfg.profanity_filter,
            punctuate=self._punctuator(cfg, rec),
        )
        alt = rasr.SpeechRecognitionAlternative(transcript=text, confidence=r.confidence)
        if cfg.enable_word_time_offsets:
            for w in words:
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
            self._check_config(request.config)
            rec = self.repo.asr(request.config.model)
            if not request.audio:
                raise InputError("RecognizeRequest.audio is empty (send the audio file's bytes)")
            self._check_size(len(request.audio), "the RecognizeRequest")
            results = recognize_request(rec, request.audio, self._session_config(request.config, rec))
            response = rasr.RecognizeResponse()
            if request.HasField("id"):
                response.id.CopyFrom(request.id)
            for r in results:
                if r.is_final:
                    response.results.append(
                        rasr.SpeechRecognitionResult(
                            alternatives=[
                                self._alternative(request.config, rec, x, True) for x in (r, *r.alternatives)
                            ],
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
            self._check_config(cfg)
            rec = self.repo.asr(cfg.model)
            config = dataclasses.replace(self._session_config(cfg, rec), interim_results=scfg.interim_results)
            session = AudioSession(rec, self.batchers[rec.name].decode, config)
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
                self._check_size(len(req.audio_content), "a StreamingRecognizeRequest")
                results = session.feed(req.audio_content)
                if results:
                    yield self._response(cfg, rec, scfg.interim_results, results, rid)
            results = session.finish()
            if results or not session.streams:
                yield self._response(cfg, rec, scfg.interim_results, results, rid)
        except grpc.RpcError:
            raise
        except Exception as exc:
            if not context.is_active():  # cancelled, deadline passed or idle-reaped: nothing to tell
                return
            abort_for(context, exc)
        finally:
            ticket.close()

    def _response(self, cfg, rec, interim: bool, results, rid) -> rasr.StreamingRecognizeResponse:
        resp = rasr.StreamingRecognizeResponse()
        if rid is not None:
            resp.id.CopyFrom(rid)
        for r in results:
            if not r.is_final and not interim:
                continue
            resp.results.append(
                rasr.StreamingRecognitionResult(
                    alternatives=[self._alternative(cfg, rec, x, r.is_final) for x in (r, *r.alternatives)],
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
            params = {
                "language_code": LANGUAGE,
                "sample_rate": str(info.sample_rate),
                "default": str(name == self.repo.default_asr).lower(),
                "provider": info.provider,
                "family": info.family,
                "precision": info.precision,
                "automatic_punctuation": str(self.repo.has_nlp("punct")).lower(),
                "inverse_text_normalization": str(self.transcripts.itn is not None).lower(),
                "profanity_filter": "true",
            }
            for kind, extra in (("offline", {}), ("online", rec.streaming_parameters())):
                resp.model_config.append(
                    rasr.RivaSpeechRecognitionConfigResponse.Config(
                        model_name=name,
                        parameters={
                            "type": kind,
                            "streaming": str(kind == "online").lower(),
                            "offline": str(kind == "offline").lower(),
                            **params,
                            **extra,
                        },
                    )
                )
        return resp
