"""The Riva NLP RPCs over loopback with riva.client, against the library on the same untrained models: ner
(ClassifyTokens, AnalyzeEntities), textcls (ClassifyText), punct (TransformText), and GetRivaNLPConfig. One server
serves a model repository folder holding one model of each task, loaded as `speechtao serve --models` loads it."""

import pytest
import torch

grpc = pytest.importorskip("grpc")
riva_client = pytest.importorskip("riva.client")
from riva.client.proto import riva_nlp_pb2 as rnlp  # noqa: E402

from speechtao.serve.repository import ModelRepository  # noqa: E402
from speechtao_server.app import ServerOptions, start_server  # noqa: E402
from tests.e2e import nlp_models  # noqa: E402
from tests.e2e.test_server_ops import punct_folder, qa_folder  # noqa: E402,F401  (module fixtures)

TEXTS = ["Maria Lopez flew to Lisbon on 3 May 2004 .", "  ada  lovelace met charles babbage in london"]
# 48 words: more word pieces than the models' max_length (32), so the server tags it in windows
LONG = " ".join(["the", "river", "Thames", "flows", "through", "Oxford", "and", "London"] * 6)


@pytest.fixture(scope="module")
def repo_dir(tmp_path_factory, punct_folder, qa_folder):  # noqa: F811
    root = tmp_path_factory.mktemp("nlp_repo")
    nlp_models.ner_folder(root / "ner")
    nlp_models.textcls_folder(root / "textcls")
    (root / "punct").symlink_to(punct_folder, target_is_directory=True)
    (root / "qa").symlink_to(qa_folder, target_is_directory=True)
    return root


@pytest.fixture(scope="module")
def nlp(repo_dir):
    running = start_server(ModelRepository.load(repo_dir), ServerOptions(port=0))
    auth = riva_client.Auth(uri=f"127.0.0.1:{running.port}")
    yield riva_client.NLPService(auth)
    auth.channel.close()
    running.stop(grace=0.5)


def rpc_error(call) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as err:
        call()
    return err.value


def word_offsets(text: str, words: list[str]) -> list[tuple[int, int]]:
    """[start, end) of each word, found left to right."""
    out, pos = [], 0
    for w in words:
        start = text.index(w, pos)
        pos = start + len(w)
        out.append((start, pos))
    return out


def first_piece_probabilities(model, words: list[str]) -> torch.Tensor:
    """(words, labels) softmax at each word's first piece, straight from the tokenizer and the net (one window)."""
    enc = model.tokenizer(words, is_split_into_words=True, return_tensors="pt")
    firsts = [i for i, w in enumerate(enc.word_ids()) if w is not None and w != enc.word_ids()[i - 1]]
    assert len(firsts) == len(words)
    with torch.no_grad():
        logits = model.net(enc["input_ids"], enc["attention_mask"], enc["token_type_ids"])[0][0]
    return torch.softmax(logits, -1)[firsts]


def library_entities(model, texts: list[str]) -> list[list[tuple[str, str, int, int]]]:
    """Per text: (entity text, type, first char, last char) from `ner.predict` and `ner.entities`."""
    from speechtao.nlp import ner

    out = []
    for text, tags in zip(texts, ner.predict(model, [t.split() for t in texts])):
        spans = word_offsets(text, text.split())
        out.append(
            [
                (text[spans[a][0] : spans[b - 1][1]], kind, spans[a][0], spans[b - 1][1] - 1)
                for a, b, kind in sorted(ner.entities(tags))
            ]
        )
    return out


def entries(resp) -> list[list[tuple[str, str, int, int]]]:
    return [
        [(v.token, v.label[0].class_name, v.span[0].start, v.span[0].end) for v in seq.results] for seq in resp.results
    ]


def test_classify_tokens_and_analyze_entities_match_the_library(nlp, repo_dir):
    from speechtao.nlp import ner

    model = ner.load(repo_dir / "ner")
    texts = TEXTS + [LONG]
    resp = nlp.classify_tokens(texts, "ner")
    expected = library_entities(model, texts)
    assert entries(resp) == expected
    tags = [t for line in ner.predict(model, [t.split() for t in TEXTS]) for t in line]
    assert sum(map(len, expected[:2])) >= 3 and "O" in tags and len(expected[2]) >= 2, (
        "the untrained tagger should find several entities and leave some words out (change the seed)"
    )
    assert all(len(v.span) == 1 and len(v.label) == 1 for seq in resp.results for v in seq.results)

    # scores: mean over the entity's words of P(B-type) + P(I-type), from the net itself
    names = model.labels["ner"]
    for text, seq in zip(TEXTS, resp.results):
        probs = first_piece_probabilities(model, text.split())
        offsets = word_offsets(text, text.split())
        for v in seq.results:
            inside = [i for i, (a, _) in enumerate(offsets) if v.span[0].start <= a <= v.span[0].end]
            cols = [names.index(f"{x}-{v.label[0].class_name}") for x in "BI"]
            assert v.label[0].score == pytest.approx(float(probs[inside][:, cols].sum(-1).mean()), abs=1e-5)

    # top_n (the riva.client helper does not set it): the entity's type first, then the other type
    full = nlp.stub.ClassifyTokens(
        rnlp.TokenClassRequest(text=TEXTS, top_n=5, model=rnlp.NLPModelParams(model_name="ner"))
    )
    assert entries(full) == expected[:2]
    assert all(sorted(c.class_name for c in v.label) == ["LOC", "PER"] for seq in full.results for v in seq.results)

    # a text without words has no entities; the others are unchanged
    assert entries(nlp.classify_tokens(["", " ", TEXTS[0]], "")) == [[], [], expected[0]]
    assert entries(nlp.analyze_entities(TEXTS[1])) == [expected[1]]

    err = rpc_error(lambda: nlp.classify_tokens([], "ner"))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "ClassifyTokens" in err.details()
    err = rpc_error(lambda: nlp.analyze_entities("   "))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "query is empty" in err.details()
    err = rpc_error(lambda: nlp.classify_tokens(TEXTS, "nope"))
    assert err.code() == grpc.StatusCode.NOT_FOUND and "'nope'" in err.details() and "ner" in err.details()


def test_classify_text_matches_the_library(nlp, repo_dir):
    from speechtao.nlp import textcls
    from speechtao.nlp.model_io import load_model

    model = load_model(repo_dir / "textcls", "textcls")
    texts = ["And God said, Let there be light.", "The value of the function is cached.", LONG]
    names = model.labels["label"]
    probs = textcls.predict_proba(model, texts)

    top1 = nlp.classify_text(texts, "textcls").results
    assert [(r.labels[0].class_name, len(r.labels)) for r in top1] == [
        (lab, 1) for lab, _ in textcls.predict(model, texts)
    ]
    assert [r.labels[0].score for r in top1] == pytest.approx([p for _, p in textcls.predict(model, texts)], abs=1e-5)

    for top_n in (3, 10):  # 10 is capped at the 4 labels
        resp = nlp.stub.ClassifyText(
            rnlp.TextClassRequest(text=texts, top_n=top_n, model=rnlp.NLPModelParams(model_name="textcls"))
        )
        for r, p in zip(resp.results, probs):
            order = sorted(range(len(names)), key=lambda i: -float(p[i]))[: min(top_n, len(names))]
            assert [c.class_name for c in r.labels] == [names[i] for i in order]
            assert [c.score for c in r.labels] == pytest.approx([float(p[i]) for i in order], abs=1e-5)
    assert all(sum(c.score for c in r.labels) == pytest.approx(1.0, abs=1e-4) for r in resp.results)

    err = rpc_error(lambda: nlp.classify_text([], "textcls"))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "no text" in err.details()
    err = rpc_error(lambda: nlp.classify_text(["fine", "  "], "textcls"))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "text[1] is empty" in err.details()
    err = rpc_error(lambda: nlp.classify_text(texts, "nope"))
    assert err.code() == grpc.StatusCode.NOT_FOUND and "'nope'" in err.details()


def test_transform_text_runs_the_punct_model(nlp, repo_dir):
    from speechtao.nlp.punct import PunctCapModel

    texts = ["turn left at the next corner please", "", "is it raining in paris"]
    expected = PunctCapModel.load(repo_dir / "punct").punctuate(texts)
    assert list(nlp.transform_text(texts, "punct").text) == expected
    assert list(nlp.transform_text(texts, "").text) == expected == list(nlp.punctuate_text(texts).text)
    err = rpc_error(lambda: nlp.transform_text([], "punct"))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "TransformText" in err.details()
    err = rpc_error(lambda: nlp.transform_text(texts, "nope"))
    assert err.code() == grpc.StatusCode.NOT_FOUND and "TransformText" in err.details() and "'nope'" in err.details()


def test_config_lists_every_task(nlp):
    config = nlp.stub.GetRivaNLPConfig(rnlp.RivaNLPConfigRequest())
    assert {c.model_name: c.parameters["task"] for c in config.model_config} == {
        "ner": "ner",
        "punct": "punct",
        "qa": "qa",
        "textcls": "textcls",
    }
    one = nlp.stub.GetRivaNLPConfig(rnlp.RivaNLPConfigRequest(model_name="textcls"))
    assert [(c.model_name, c.parameters["task"]) for c in one.model_config] == [("textcls", "textcls")]
    err = rpc_error(lambda: nlp.stub.GetRivaNLPConfig(rnlp.RivaNLPConfigRequest(model_name="nope")))
    assert err.code() == grpc.StatusCode.NOT_FOUND
