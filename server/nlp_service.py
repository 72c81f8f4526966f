"""nvidia.riva.nlp.RivaLanguageUnderstanding over the NLP models of the repository.

RPC -> task of the model that serves it (see :mod:`speechtao.serve.nlp`): PunctuateText and TransformText ->
punct, NaturalQuery -> qa, ClassifyTokens and AnalyzeEntities -> ner (one result per entity, span end inclusive
as Riva writes it), ClassifyText -> textcls. With no model of that task in the repository the RPC answers
UNIMPLEMENTED and says which model folder to add; a named model that is not there is NOT_FOUND. AnalyzeIntent
(intent and slots) has no speechtao task: UNIMPLEMENTED.

Bounded work: the texts of one request may hold at most ``--max-text-chars`` characters together, a QA context
``--max-qa-context-chars``; longer ones get RESOURCE_EXHAUSTED naming the flag (the library processes long
inputs in windows of the model's length, so anything under the caps is answered whole). While the server drains,
new NLP RPCs get UNAVAILABLE; ``active`` counts the running ones, which the drain waits for.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

import grpc
from riva.client.proto import riva_nlp_pb2 as rnlp
from riva.client.proto import riva_nlp_pb2_grpc as rnlp_grpc

from speechtao.serve.repository import ModelNotFound, ModelRepository

from .asr_service import abort_for
from .limits import Limits


class NLPService(rnlp_grpc.RivaLanguageUnderstandingServicer):
    def __init__(self, limits: Limits | None = None):
        self.repo: ModelRepository | None = None  # None while the models load: RPCs answer UNAVAILABLE
        self.limits = limits or Limits()
        self.draining = False
        self.active = 0  # NLP RPCs running now
        self._lock = threading.Lock()

    def attach(self, repo: ModelRepository) -> None:
        self.repo = repo

    @contextmanager
    def _running(self, rpc: str, context):
        if self.draining:
            context.abort(grpc.StatusCode.UNAVAILABLE, f"{rpc}: the server is shutting down (retry on another server)")
        with self._lock:
            self.active += 1
        try:
            yield
        finally:
            with self._lock:
                self.active -= 1

    def _cap(self, rpc: str, what: str, chars: int, limit: int, flag: str, context) -> None:
        if chars > limit:
            context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"{rpc}: {what} holds {chars} characters, more than the server's {flag} {limit}; split it into "
                "several requests (or raise the flag)",
            )

    def _model(self, task: str, name: str, rpc: str, context):
        if self.repo is None:
            context.abort(grpc.StatusCode.UNAVAILABLE, f"{rpc}: the server is still loading its models (retry shortly)")
        if not self.repo.has_nlp(task):
            context.abort(
                grpc.StatusCode.UNIMPLEMENTED,
                f"{rpc}: no {task} model is served (add a `speechtao {task}` model or export folder to "
                f"the model repository {self.repo.root} and restart the server)",
            )
        try:
            return self.repo.nlp(task, name)
        except ModelNotFound as exc:
            context.abort(grpc.StatusCode.NOT_FOUND, f"{rpc}: {exc}")

    def _call(self, context, fn, *args):
        try:
            return fn(*args)
        except Exception as exc:
            abort_for(context, exc)

    def _texts(self, request, rpc: str, context) -> list[str]:
        texts = list(request.text)
        if not texts:
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"{rpc}: the request holds no text (set text to one or more strings)"
            )
        chars = sum(len(t) for t in texts)
        self._cap(rpc, "the request's text", chars, self.limits.max_text_chars, "--max-text-chars", context)
        return texts

    def _punctuate(self, request, context, rpc: str):
        m = self._model("punct", request.model.model_name, rpc, context)
        texts = self._texts(request, rpc, context)
        with self._running(rpc, context):
            resp = rnlp.TextTransformResponse(text=self._call(context, m.punctuate, texts))
        if request.HasField("id"):
            resp.id.CopyFrom(request.id)
        return resp

    def PunctuateText(self, request, context):
        return self._punctuate(request, context, "PunctuateText")

    def TransformText(self, request, context):
        return self._punctuate(request, context, "TransformText")

    def NaturalQuery(self, request, context):
        m = self._model("qa", "", "NaturalQuery", context)
        if not request.query.strip() or not request.context.strip():
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                "NaturalQuery: query and context must both be non-empty (the answer is a span of the context)",
            )
        self._cap(
            "NaturalQuery", "the query", len(request.query), self.limits.max_text_chars, "--max-text-chars", context
        )
        self._cap(
            "NaturalQuery",
            "the context",
            len(request.context),
            self.limits.max_qa_context_chars,
            "--max-qa-context-chars",
            context,
        )
        top_n = request.top_n or 1
        with self._running("NaturalQuery", context):
            answers = self._call(context, m.answer, request.query, request.context, top_n)
        resp = rnlp.NaturalQueryResponse(results=[rnlp.NaturalQueryResult(answer=a, score=s) for a, s in answers])
        if request.HasField("id"):
            resp.id.CopyFrom(request.id)
        return resp

    def _token_response(self, seqs) -> rnlp.TokenClassResponse:
        resp = rnlp.TokenClassResponse()
        for seq in seqs:
            out = rnlp.TokenClassSequence()
            for token, labels, start, end in seq:
                # Riva's spans end at the entity's last character (its NER example: "Jensen Huang ..." gives
                # span {start: 0, end: 11}); the library's end is exclusive.
                out.results.append(
                    rnlp.TokenClassValue(
                        token=token,
                        label=[rnlp.Classification(class_name=name, score=s) for name, s in labels],
                        span=[rnlp.Span(start=start, end=end - 1)],
                    )
                )
            resp.results.append(out)
        return resp

    def ClassifyTokens(self, request, context):
        m = self._model("ner", request.model.model_name, "ClassifyTokens", context)
        texts = self._texts(request, "ClassifyTokens", context)
        with self._running("ClassifyTokens", context):
            resp = self._token_response(self._call(context, m.classify_tokens, texts, request.top_n or 1))
        if request.HasField("id"):
            resp.id.CopyFrom(request.id)
        return resp

    def AnalyzeEntities(self, request, context):
        m = self._model("ner", "", "AnalyzeEntities", context)
        if not request.query.strip():
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "AnalyzeEntities: query is empty (set the text to tag)")
        limit = self.limits.max_text_chars
        self._cap("AnalyzeEntities", "the query", len(request.query), limit, "--max-text-chars", context)
        with self._running("AnalyzeEntities", context):
            resp = self._token_response(self._call(context, m.classify_tokens, [request.query], 1))
        if request.HasField("id"):
            resp.id.CopyFrom(request.id)
        return resp

    def ClassifyText(self, request, context):
        m = self._model("textcls", request.model.model_name, "ClassifyText", context)
        texts = self._texts(request, "ClassifyText", context)
        blank = [i for i, t in enumerate(texts) if not t.strip()]
        if blank:
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"ClassifyText: text[{blank[0]}] is empty (every text needs words to classify)",
            )
        with self._running("ClassifyText", context):
            results = self._call(context, m.classify, texts, request.top_n or 1)
        resp = rnlp.TextClassResponse(
            results=[
                rnlp.ClassificationResult(labels=[rnlp.Classification(class_name=name, score=s) for name, s in labels])
                for labels in results
            ]
        )
        if request.HasField("id"):
            resp.id.CopyFrom(request.id)
        return resp

    def AnalyzeIntent(self, request, context):
        context.abort(
            grpc.StatusCode.UNIMPLEMENTED,
            "AnalyzeIntent: intent and slot models are not part of "
            "speechtao (use ClassifyText with a textcls model for intents, ClassifyTokens with a ner model "
            "for slots)",
        )

    def GetRivaNLPConfig(self, request, context):
        if self.repo is None:
            context.abort(grpc.StatusCode.UNAVAILABLE, "the server is still loading its models (retry shortly)")
        resp = rnlp.RivaNLPConfigResponse()
        for task, models in self.repo.nlp_models.items():
            for name, m in models.items():
                if request.model_name and name != request.model_name:
                    continue
                # the folder's name only: the server's file layout is none of the client's business
                source = m.source.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
                resp.model_config.append(
                    rnlp.RivaNLPConfigResponse.Config(model_name=name, parameters={"task": task, "source": source})
                )
        if request.model_name and not resp.model_config:
            context.abort(grpc.StatusCode.NOT_FOUND, f"NLP model {request.model_name!r} is not served here")
        return resp
