"""QA windows, span decoding, the no-answer threshold and SQuAD metrics (no training)."""

import pytest
import torch

from speechtao.errors import InputError
from speechtao.nlp.qa import span_loss
from speechtao.nlp.qa_metrics import (
    best_null_threshold,
    exact_match,
    f1_score,
    normalize_answer,
    predictions_to_answers,
    squad_metrics,
)
from speechtao.nlp.qa_windows import WindowOptions, collate_windows, decode_example, make_windows
from speechtao.nlp.squad import Answer, QAExample


@pytest.fixture(scope="module")
def tokenizer():
    from speechtao.nlp.encoder import load_tokenizer, resolve_encoder

    return load_tokenizer(resolve_encoder("minilm"))


@pytest.mark.parametrize(
    "text,norm",
    [
        ("The Eiffel Tower!", "eiffel tower"),
        ("  an   apple, a pear ", "apple pear"),
        ("Theatre of the Absurd", "theatre of absurd"),
        ("1,815", "1815"),
    ],
)
def test_normalize_answer(text, norm):
    assert normalize_answer(text) == norm


@pytest.mark.parametrize(
    "pred,gold,em,f1",
    [
        ("London", "london.", 1.0, 1.0),
        ("in London", "London", 0.0, 2 / 3),
        ("the University of Lyon", "University of Lyon", 1.0, 1.0),
        ("Paris", "London", 0.0, 0.0),
        ("", "", 1.0, 1.0),
        ("", "London", 0.0, 0.0),
        ("London", "", 0.0, 0.0),
    ],
)
def test_exact_match_and_f1(pred, gold, em, f1):
    assert exact_match(pred, gold) == em
    assert f1_score(pred, gold) == pytest.approx(f1)


def test_squad_metrics_takes_best_gold_and_scores_unanswerable():
    ctx = "Ada was born in London. Her father was Lord Byron."
    exs = [
        QAExample("a", "Where?", ctx, (Answer("London", 16), Answer("in London", 13))),
        QAExample("b", "Who?", ctx, (Answer("Lord Byron", 39),)),
        QAExample("c", "When?", ctx, (), True),
        QAExample("d", "Why?", ctx, (), True),
    ]
    m = squad_metrics(exs, {"a": "in London", "b": "Byron", "c": "", "d": "London"})
    assert m["has_ans_exact"] == 50.0 and m["has_ans_f1"] == pytest.approx(100 * (1 + 2 / 3) / 2)
    assert m["no_ans_exact"] == 50.0 and m["total"] == 4
    assert m["f1"] == pytest.approx(100 * (1 + 2 / 3 + 1 + 0) / 4)
    with pytest.raises(InputError, match="no prediction"):
        squad_metrics(exs, {"a": ""})


def test_windows_cover_a_long_context_with_doc_stride(tokenizer):
    context = " ".join(f"Sentence number {i} mentions the word w{i}." for i in range(40))
    target = "w31"
    start = context.index(target)
    ex = QAExample("x", "Which word does sentence thirty one mention? " * 5, context, (Answer(target, start),))
    opts = WindowOptions(max_seq_length=64, doc_stride=20, max_query_length=12)
    wins = make_windows(tokenizer, [ex], opts)
    assert len(wins) > 5
    for w in wins:
        assert len(w.input_ids) <= 64
        q_tokens = w.token_type_ids.count(0) - 2  # [CLS] question [SEP]
        assert q_tokens == 12  # the question was cut to max_query_length
    firsts = [next(i for i, o in enumerate(w.offsets) if o is not None) for w in wins]
    ctx_tokens = tokenizer(context, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    first_chars = [w.offsets[f][0] for w, f in zip(wins, firsts)]
    token_index = [next(i for i, o in enumerate(ctx_tokens) if o[0] == c) for c in first_chars]
    assert token_index == [20 * k for k in range(len(wins))]  # windows start doc_stride tokens apart
    labelled = [w for w in wins if w.start]
    assert labelled, "some window holds the answer"
    for w in labelled:
        assert context[w.offsets[w.start][0] : w.offsets[w.end][1]] == target
    for w in wins:
        if not w.start:
            assert w.end == 0  # [CLS]
    assert len(labelled) < len(wins)


def test_unanswerable_windows_point_at_cls(tokenizer):
    ex = QAExample("x", "Who?", "Nobody is named here.", (), True)
    (w,) = make_windows(tokenizer, [ex], WindowOptions(max_seq_length=32, max_query_length=8))
    assert (w.start, w.end) == (0, 0)
    batch = collate_windows([w, w], tokenizer.pad_token_id)
    assert batch["input_ids"].shape == (2, len(w.input_ids))


def test_options_are_checked():
    with pytest.raises(ValueError, match="max_query_length"):
        WindowOptions(max_seq_length=32, max_query_length=30)
    with pytest.raises(ValueError, match="doc_stride"):
        WindowOptions(doc_stride=0)


def _logits(n, start=None, end=None, null=0.0):
    s = [-5.0] * n
    e = [-5.0] * n
    s[0] = e[0] = null / 2
    if start is not None:
        s[start] = 5.0
        e[end] = 5.0
    return s, e


def test_decode_picks_the_best_valid_span_across_windows():
    context = "alpha beta gamma delta"
    #            0     6    11    17
    offsets = [None, None, (0, 5), (6, 10), (11, 16), (17, 22), None]  # [CLS] q [SEP]? -> simplified layout
    opts = WindowOptions(max_seq_length=32, max_query_length=8, max_answer_length=2, n_best=5)
    s1, e1 = _logits(7, 3, 4)  # "beta gamma"
    s2, e2 = _logits(7, 2, 2)
    s2[2] = e2[2] = 6.0  # "alpha", higher score in the second window
    pred = decode_example(context, [(s1, e1, offsets), (s2, e2, offsets)], opts, None)
    assert (pred.text, pred.start, pred.end) == ("alpha", 0, 5)
    assert pred.candidates[1].text == "beta gamma"
    # an end before the start, question tokens and over-long spans are never candidates
    s3, e3 = _logits(7)
    s3[5], e3[2] = 9.0, 9.0  # end before start
    s3[1], e3[1] = 8.0, 8.0  # a question token
    s3[2], e3[5] = 7.0, 7.0  # 4 tokens > max_answer_length
    pred = decode_example(context, [(s3, e3, offsets)], opts, None)
    for c in pred.candidates:
        assert c.end > c.start and len(c.text.split()) <= 2


def test_null_threshold_decides_no_answer():
    context = "alpha beta"
    offsets = [None, (0, 5), (6, 10)]
    opts = WindowOptions(max_seq_length=32, max_query_length=8)
    s, e = _logits(3, 1, 1, null=12.0)  # null 12 vs best span 10: diff 2
    assert decode_example(context, [(s, e, offsets)], opts, None).text == "alpha"  # SQuAD 1.1: always answer
    pred = decode_example(context, [(s, e, offsets)], opts, 0.0)
    assert pred.text == "" and pred.null_score_diff == pytest.approx(2.0)
    assert decode_example(context, [(s, e, offsets)], opts, 3.0).text == "alpha"


def test_best_null_threshold_separates_answerable_from_unanswerable():
    context = "alpha beta"
    offsets = [None, (0, 5), (6, 10)]
    opts = WindowOptions(max_seq_length=32, max_query_length=8)
    exs, preds = [], {}
    for i, (null, impossible) in enumerate([(4.0, False), (6.0, False), (14.0, True), (16.0, True)]):
        s, e = _logits(3, 1, 1, null=null)  # best span "alpha" scores 10: diffs -6, -4, 4, 6
        ex = QAExample(str(i), "q", context, () if impossible else (Answer("alpha", 0),), impossible)
        exs.append(ex)
        preds[ex.id] = decode_example(context, [(s, e, offsets)], opts, None)
    t, f1 = best_null_threshold(exs, preds)
    assert -4.0 < t < 4.0 and f1 == 100.0
    assert squad_metrics(exs, predictions_to_answers(exs, preds, t))["f1"] == 100.0
    assert squad_metrics(exs, predictions_to_answers(exs, preds, None))["f1"] == 50.0


def test_span_loss_ignores_padding():
    start = torch.tensor([[0.0, 2.0, 0.0, 50.0]])
    end = torch.tensor([[0.0, 0.0, 2.0, 50.0]])
    mask = torch.tensor([[1, 1, 1, 0]])
    loss = span_loss(start, end, mask, torch.tensor([1]), torch.tensor([2]))
    expected = -torch.log_softmax(torch.tensor([0.0, 2.0, 0.0]), 0)[1]
    assert float(loss) == pytest.approx(float(expected), rel=1e-5)


def test_recipe_loads_strictly():
    from pathlib import Path

    from speechtao.errors import SpecError
    from speechtao.nlp.qa import QAFinetuneSpec
    from speechtao.spec import load_spec

    recipe = Path(__file__).resolve().parents[2] / "recipes" / "qa_finetune.yaml"
    spec = load_spec(QAFinetuneSpec, recipe, ["qa.doc_stride=64"])
    assert spec.qa.doc_stride == 64 and spec.trainer.monitor == "f1" and spec.trainer.monitor_mode == "max"
    with pytest.raises(SpecError, match="qa.doc_strid: unknown key"):
        load_spec(QAFinetuneSpec, recipe, ["qa.doc_strid=64"])
    with pytest.raises(SpecError, match="null_score_diff_threshold needs version_2_with_negative"):
        load_spec(QAFinetuneSpec, recipe, ["qa.version_2_with_negative=false", "qa.null_score_diff_threshold=1.0"])


def test_qa_options_of_a_model_name_an_unknown_key_and_a_bad_value():
    from speechtao.nlp.qa import QAOptions

    with pytest.raises(InputError, match=r"m/model.pt: unknown QA option\(s\) 'doc_strid'"):
        QAOptions.from_dict({"doc_strid": 64, "n_best": 5}, "m/model.pt")
    with pytest.raises(InputError, match="doc_stride must be >= 1"):
        QAOptions.from_dict({"doc_stride": 0}, "m/model.pt")
    opts = QAOptions.from_dict({"doc_stride": 64, "null_score_diff_threshold": 1.5}, "m/model.pt")
    assert opts.doc_stride == 64 and opts.threshold == 1.5
    assert QAOptions.from_dict({}, "m").threshold == 0.0  # SQuAD 2.0, threshold not chosen yet
    assert QAOptions.from_dict({"version_2_with_negative": False}, "m").threshold is None
