"""Punctuation/capitalization data: labels from real punctuated text, NeMo's file format, strict reading."""

import re

import pytest
import torch

from speechtao.corpora import punct_gen
from speechtao.errors import DataError, ManifestError
from speechtao.nlp import punct


@pytest.mark.parametrize(
    "text,words,labels",
    [
        ("How are you? I am fine.", "how are you i am fine", "OU OO ?O OU OO .O"),
        ("Well, I'm here!", "well i'm here", ",U OU .O"),
        ('He said: "Stop; now."', "he said stop now", "OU ,O ,U .O"),
        ("The well-known man (Paris) left?!", "the well known man paris left", "OU OO OO OO OU ?O"),
        ("Python 3 is here.", "python 3 is here", "OU OO OO .O"),
        ("no marks at all", "no marks at all", "OO OO OO OO"),
    ],
)
def test_label_text(text, words, labels):
    ex = punct.label_text(text)
    assert " ".join(ex.words) == words
    assert punct.format_labels(ex) == labels


@pytest.mark.parametrize(
    "words,p,c,out",
    [
        ("how are you i am fine", [0, 0, 3, 0, 0, 2], [1, 0, 0, 1, 0, 0], "How are you? I am fine."),
        ("i'm here", [0, 1], [1, 0], "I'm here,"),
        ("", [], [], ""),
    ],
)
def test_apply_labels(words, p, c, out):
    assert punct.apply_labels(words.split(), p, c) == out


def test_write_then_read_round_trip(tmp_path):
    exs = [punct.label_text("Hello there, Sam."), punct.label_text("What now?")]
    punct.write_dataset(tmp_path, exs)
    assert (tmp_path / "text.txt").read_text() == "hello there sam\nwhat now\n"
    assert (tmp_path / "labels.txt").read_text() == "OU ,O .U\nOU ?O\n"
    back = punct.read_dataset(tmp_path)
    assert [(e.words, e.punct, e.capit) for e in back] == [(e.words, e.punct, e.capit) for e in exs]


def test_read_dataset_lists_every_defect(tmp_path):
    (tmp_path / "text.txt").write_text("a b c\n\nd e\nf\n")
    (tmp_path / "labels.txt").write_text("OO OO .U\nOO\nOO\n!O\n")
    with pytest.raises(ManifestError) as err:
        punct.read_dataset(tmp_path)
    msg = str(err.value)
    assert f"{tmp_path / 'text.txt'}:2: empty line" in msg
    assert f"{tmp_path / 'labels.txt'}:3: 1 labels for 2 words" in msg
    assert f"{tmp_path / 'labels.txt'}:4: label '!O'" in msg
    assert "defect(s)" in msg and len(err.value.defects) == 3


def test_read_dataset_missing_files_say_how_to_make_them(tmp_path):
    with pytest.raises(DataError, match="punct make-data"):
        punct.read_dataset(tmp_path)


def test_shipped_fixture_reads():
    train = punct.read_dataset("tests/fixtures/nlp/punct/train")
    assert len(train) == 90 and all(len(e.words) == len(e.punct) for e in train)
    assert {p for e in train for p in e.punct} == {0, 1, 2, 3}  # every mark occurs


# ------------------------------------------------------------------------------- class balance and weighting


def test_inverse_sqrt_weights_follow_frequency():
    import torch

    from speechtao.nlp.tagging import inverse_sqrt_weights

    labels = [0] * 64 + [1] * 16 + [2] * 16  # class 3 never occurs
    w = inverse_sqrt_weights(labels, 4)
    freq = torch.tensor([64, 16, 16, 0]) / 96
    assert torch.allclose(w[1] / w[0], torch.tensor(2.0)) and torch.allclose(w[1], w[2])
    assert torch.allclose(w[3], w[1])  # an unseen class gets the largest weight seen
    assert torch.allclose((freq * w).sum(), torch.tensor(1.0))


def test_inverse_sqrt_weights_reject_no_labels():
    from speechtao.nlp.tagging import inverse_sqrt_weights

    with pytest.raises(DataError, match="class weights"):
        inverse_sqrt_weights([], 4)


class _Fixed(torch.nn.Module):
    """A stand-in net whose two heads return fixed logits (``tagging_loss`` only needs forward + head_sizes)."""

    head_sizes = {"punct": 4, "capit": 2}

    def __init__(self, punct_logits, capit_logits):
        super().__init__()
        self.outs = (punct_logits, capit_logits)

    def forward(self, input_ids, attention_mask, token_type_ids):
        return self.outs


def test_tagging_loss_class_weights_scale_the_rare_class():
    from speechtao.nlp.tagging import IGNORE_INDEX, tagging_loss

    torch.manual_seed(0)
    p, c = torch.randn(2, 3, 4), torch.randn(2, 3, 2)
    ids = torch.zeros(2, 3, dtype=torch.long)
    batch = {
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "token_type_ids": ids,
        "punct": torch.tensor([[IGNORE_INDEX, 0, 3], [0, 0, IGNORE_INDEX]]),
        "capit": torch.tensor([[IGNORE_INDEX, 1, 0], [0, 1, IGNORE_INDEX]]),
    }
    net = _Fixed(p, c)
    cw = torch.tensor([1.0, 2.0, 2.0, 5.0])
    got = tagging_loss(net, batch, {"capit": 0.5}, {"punct": cw})
    # by hand: weighted mean over the four labelled punctuation words + half the plain capitalization mean
    rows = [(0, 1, 0), (0, 2, 3), (1, 0, 0), (1, 1, 0)]
    nll = [-torch.log_softmax(p[b, t], -1)[y] for b, t, y in rows]
    want_p = sum(cw[y] * n for (_, _, y), n in zip(rows, nll)) / sum(cw[y] for _, _, y in rows)
    cap = [(0, 1, 1), (0, 2, 0), (1, 0, 0), (1, 1, 1)]
    want_c = sum(-torch.log_softmax(c[b, t], -1)[y] for b, t, y in cap) / 4
    assert torch.allclose(got, want_p + 0.5 * want_c, atol=1e-6)
    plain = tagging_loss(net, batch, {"capit": 0.5})
    assert not torch.allclose(plain, got)  # the weights change the loss (the '?' word counts 5x)


def test_class_weight_settings():
    exs = [punct.label_text("How are you? I am fine, thanks.")]
    assert punct.class_weights("punct", "none", exs) is None
    auto = punct.class_weights("punct", "auto", exs)
    assert auto.shape == (4,) and auto[0] < auto[1] and torch.allclose(auto[1], auto[3])  # 4 O, 1 each of , . ?
    capit = punct.class_weights("capit", "auto", exs)  # 2 U of 7 words
    assert torch.allclose(capit[1] / capit[0], torch.tensor((5 / 2) ** 0.5))
    assert punct.class_weights("punct", [1, 2, 3, 4], exs).tolist() == [1.0, 2.0, 3.0, 4.0]
    with pytest.raises(ValueError, match="one per class"):
        punct.class_weights("capit", [1, 2, 3], exs)


def test_spec_rejects_bad_class_weights():
    from speechtao.errors import SpecError
    from speechtao.spec import load_spec

    ok = load_spec(
        punct.PunctFinetuneSpec,
        "recipes/punct_finetune.yaml",
        ["punct_class_weights=[1,2,2,8]", "capit_class_weights=[1,3]"],
    )
    assert ok.punct_class_weights == (1.0, 2.0, 2.0, 8.0) and ok.capit_class_weights == (1.0, 3.0)
    for bad in (
        "punct_class_weights=[1,2]",
        "punct_class_weights=sqrt",
        "punct_class_weights=[1,0,2,3]",
        "capit_class_weights=[1,2,3,4]",
        "capit_class_weights=[1,-1]",
    ):
        with pytest.raises(SpecError, match=bad.split("=")[0]):
            load_spec(punct.PunctFinetuneSpec, "recipes/punct_finetune.yaml", [bad])


# ---------------------------------------------------------------------------------- make-data: questions


def _fake_documents(source, doc_sentences):
    """Forty documents of eight sentences; every third sentence is a question; the text names its place."""
    return [
        [f"This is {source} document {d} sentence {s}{'?' if s % 3 == 0 else '.'}" for s in range(8)] for d in range(40)
    ]


def test_make_data_question_lines_leave_dev_and_test_untouched(tmp_path, monkeypatch):
    monkeypatch.setattr(punct_gen, "source_documents", _fake_documents)
    base = punct_gen.MakeDataOptions(
        sources=("a", "b"), lines_per_source=30, eval_fraction=0.15, question_lines=0, question_copies=1
    )
    plain = punct_gen.make_data(tmp_path / "plain", base)
    more = punct_gen.make_data(
        tmp_path / "more", punct_gen.MakeDataOptions(**{**base.__dict__, "question_lines": 5, "question_copies": 3})
    )
    for split in ("dev", "test"):
        for name in (punct.TEXT_FILE, punct.LABELS_FILE):
            assert (tmp_path / "plain" / split / name).read_bytes() == (tmp_path / "more" / split / name).read_bytes()
    assert more["question_lines"] == 10  # 5 per source, as asked
    train = punct.read_dataset(tmp_path / "more" / "train")
    held_out = {" ".join(e.words) for s in ("dev", "test") for e in punct.read_dataset(tmp_path / "plain" / s)}
    assert not held_out.intersection(" ".join(e.words) for e in train)
    q = [e for e in train if 3 in e.punct]
    q_plain = [e for e in punct.read_dataset(tmp_path / "plain" / "train") if 3 in e.punct]
    assert len(q) == 3 * (len(q_plain) + 10)  # every question line written three times
    assert more["question_copies_added"] == 2 * (len(q_plain) + 10)
    assert plain["question_lines"] == 0 and plain["question_copies_added"] == 0


def test_make_data_extra_lines_add_unseen_training_text_only(tmp_path, monkeypatch):
    monkeypatch.setattr(punct_gen, "source_documents", _fake_documents)
    base = punct_gen.MakeDataOptions(
        sources=("a", "b"), lines_per_source=30, eval_fraction=0.15, question_lines=4, question_copies=1
    )
    plain = punct_gen.make_data(tmp_path / "plain", base)
    more = punct_gen.make_data(tmp_path / "more", punct_gen.MakeDataOptions(**{**base.__dict__, "extra_lines": 25}))
    for split in ("dev", "test"):
        for name in (punct.TEXT_FILE, punct.LABELS_FILE):
            assert (tmp_path / "plain" / split / name).read_bytes() == (tmp_path / "more" / split / name).read_bytes()
    assert plain["extra_lines"] == 0 and more["extra_lines"] == 50  # 25 per source, as asked
    assert more["question_lines"] == plain["question_lines"] == 8

    def lines(run):
        return [" ".join(e.words) for e in punct.read_dataset(tmp_path / run / "train")]

    train, train_plain = lines("more"), lines("plain")
    assert len(train) == len(train_plain) + 50
    assert len(set(train) - set(train_plain)) == 50  # new text, not copies

    def sentences(text):
        return set(re.split(r"(?<=\d) (?=this is)", text))

    seen = [s for t in train for s in sentences(t)]
    assert len(seen) == len(set(seen))  # no sentence twice: extras come from documents no other stream used
    held_out = {
        s
        for split in ("dev", "test")
        for e in punct.read_dataset(tmp_path / "plain" / split)
        for s in sentences(" ".join(e.words))
    }
    assert not held_out.intersection(seen)


def test_make_data_options_validate():
    with pytest.raises(ValueError, match="extra_lines"):
        punct_gen.MakeDataOptions(extra_lines=-1)
    with pytest.raises(ValueError, match="question_copies"):
        punct_gen.MakeDataOptions(question_copies=0)
    with pytest.raises(ValueError, match="question_lines"):
        punct_gen.MakeDataOptions(question_lines=-1)


def _heads(stop_after, p_upper):
    """One line's head probabilities: P(.) after each word (the rest O), P(U) of each word."""
    pp = torch.tensor([[1 - s, 0.0, s, 0.0] for s in stop_after])
    pc = torch.tensor([[1 - u, u] for u in p_upper])
    return [pp, pc]


class _Model:
    task, extra = "punct", {}


def test_capitalization_decoding_default_is_argmax_and_stop_weight_adds_the_previous_sentence_end(monkeypatch):
    lines = [_heads([0.9, 0.0, 0.0], [0.7, 0.3, 0.45])]
    monkeypatch.setattr(punct, "head_probabilities", lambda model, words, batch_size=32: lines)
    model = _Model()
    assert punct.predict(model, [["a", "b", "c"]]) == [([2, 0, 0], [1, 0, 0])]  # plain argmax
    model.extra = {"punct": {"capit_decoding": {"stop_weight": 0.3, "threshold": 0.55}}}
    # word 2 follows a likely sentence end: 0.3 + 0.3 * 0.9 = 0.57 >= 0.55; word 3 does not: 0.45 + 0
    assert punct.predict(model, [["a", "b", "c"]]) == [([2, 0, 0], [1, 1, 0])]


def test_calibration_picks_the_stop_weight_on_validation_data_and_keeps_argmax_when_nothing_beats_it(monkeypatch):
    # capitals after a sentence end that the capitalization head alone is unsure of, and a lone false alarm
    lines = [_heads([0.95, 0.0, 0.0, 0.9, 0.0], [0.8, 0.35, 0.1, 0.1, 0.4]), _heads([0.0, 0.0], [0.9, 0.52])]
    gold = [
        punct.PunctExample(list("abcde"), [2, 0, 0, 2, 0], [1, 1, 0, 0, 1]),
        punct.PunctExample(list("fg"), [0, 0], [1, 0]),
    ]
    monkeypatch.setattr(punct, "head_probabilities", lambda model, words, batch_size=32: lines)
    cal = punct.calibrate_capitalization(_Model(), gold)
    assert cal["f1_argmax"] == pytest.approx(2 * 2 / (3 + 4))  # argmax: a, g capitalized; gold a, b, e, f
    assert cal["f1"] == 1.0 and cal["stop_weight"] > 0 and cal["words"] == 7
    model = _Model()
    model.extra = {"punct": {"capit_decoding": {k: cal[k] for k in ("stop_weight", "threshold")}}}
    assert punct.evaluate(model, gold)["capit_f1"] == 1.0  # the stored decoding reproduces the calibrated F1
    perfect = [punct.PunctExample(list("fg"), [0, 0], [1, 1])]
    monkeypatch.setattr(punct, "head_probabilities", lambda model, words, batch_size=32: [lines[1]])
    cal = punct.calibrate_capitalization(_Model(), perfect)
    assert (cal["stop_weight"], cal["threshold"], cal["f1"]) == (0.0, 0.5, 1.0)  # argmax already perfect: kept
    with pytest.raises(DataError, match="validation set is empty"):
        monkeypatch.setattr(punct, "head_probabilities", lambda model, words, batch_size=32: [])
        punct.calibrate_capitalization(_Model(), [])
