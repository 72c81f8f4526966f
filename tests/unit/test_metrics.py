"""WER/CER and their alignments: hand-made cases, replay of the operations, a cross-check against jiwer."""

import random

import pytest

from speechtao.asr.metrics import align_chars, align_words, cer, edit_ops, utterance_report, wer
from speechtao.errors import DataError

CASES = [
    # ref, hyp, (hits, substitutions, deletions, insertions)
    ("a b c", "a b c", (3, 0, 0, 0)),
    ("a b c", "a x c", (2, 1, 0, 0)),
    ("a b c", "a c", (2, 0, 1, 0)),
    ("a b c", "a b c d", (3, 0, 0, 1)),
    ("a b c", "", (0, 0, 3, 0)),
    ("", "a b", (0, 0, 0, 2)),
    ("", "", (0, 0, 0, 0)),
    ("the cat sat on the mat", "the cat sat on mat", (5, 0, 1, 0)),
    ("a a a", "a a", (2, 0, 1, 0)),
    ("x y", "y x", (0, 2, 0, 0)),  # 2 substitutions tie with match+del+ins; ties prefer substitutions
]


def replay(ops):
    """The reference and hypothesis token lists that a sequence of ops spells."""
    ref = [o.ref for o in ops if o.op != "ins"]
    hyp = [o.hyp for o in ops if o.op != "del"]
    return ref, hyp


@pytest.mark.parametrize("ref,hyp,counts", CASES)
def test_word_alignment_table(ref, hyp, counts):
    a = align_words(ref, hyp, normalize=False)
    assert (a.hits, a.substitutions, a.deletions, a.insertions) == counts
    assert a.errors == sum(counts[1:])
    assert replay(a.ops) == (ref.split(), hyp.split())
    assert all((o.op == "ok") == (o.ref == o.hyp) for o in a.ops)


def test_empty_reference_convention():
    # An empty reference counts as a denominator of 1: empty/empty is 0, n inserted words score n.
    assert wer([""], [""]) == 0.0
    assert wer([""], ["a b"]) == 2.0
    # In a corpus, its insertions join the numerator and nothing joins the denominator.
    assert wer(["", "one two three four"], ["extra", "one two three four"]) == pytest.approx(0.25)


def test_corpus_rate_sums_counts_not_rates():
    refs = ["a", "b c d e f g h i j"]  # 1 + 9 words
    hyps = ["x", "b c d e f g h i j"]  # 1 error in the short one
    assert wer(refs, hyps, normalize=False) == pytest.approx(0.1)


def test_normalization_applies_to_both_sides():
    assert wer("Hello, World!", "hello world") == 0.0
    assert cer(["The  CAT."], ["the cat"]) == 0.0
    assert wer("Hello, World!", "hello world", normalize=False) == 1.0


def test_cer_counts_spaces_between_words():
    a = align_chars("ab cd", "abcd", normalize=False)
    assert (a.ref_len, a.errors, a.deletions) == (5, 1, 1)
    assert cer("ab cd", "ab  cd", normalize=False) == 0.0  # runs of whitespace are one space


def test_mismatched_lengths_raise():
    with pytest.raises(DataError, match="2 references but 1 hypotheses"):
        wer(["a", "b"], ["a"])


def test_utterance_report_is_consistent():
    r = utterance_report("The cat sat on the mat.", "the cat sat on a mat mat")
    assert r["ref"] == "the cat sat on the mat" and r["ref_words"] == 6
    c = r["counts"]
    assert r["errors"] == c["substitutions"] + c["deletions"] + c["insertions"] == 2
    assert r["wer"] == pytest.approx(2 / 6)
    assert sum(o["op"] != "ok" for o in r["ops"]) == r["errors"]
    assert [o["ref"] for o in r["ops"] if o["op"] != "ins"] == r["ref"].split()
    assert [o["hyp"] for o in r["ops"] if o["op"] != "del"] == r["hyp"].split()
    assert r["cer"] == pytest.approx(r["char_errors"] / r["ref_chars"])


def test_matches_jiwer_on_random_pairs():
    jiwer = pytest.importorskip("jiwer")
    rnd = random.Random(0)
    words = ["a", "an", "the", "cat", "hat", "sat", "on", "mat", "ran", "far"]
    refs, hyps = [], []
    for _ in range(40):
        ref = [rnd.choice(words) for _ in range(rnd.randint(1, 12))]
        hyp = list(ref)
        for _ in range(rnd.randint(0, 6)):  # random edits
            k = rnd.randrange(3)
            if k == 0 and hyp:
                hyp[rnd.randrange(len(hyp))] = rnd.choice(words)
            elif k == 1 and hyp:
                del hyp[rnd.randrange(len(hyp))]
            else:
                hyp.insert(rnd.randint(0, len(hyp)), rnd.choice(words))
        refs.append(" ".join(ref))
        hyps.append(" ".join(hyp))
    for r, h in zip(refs, hyps):
        a = align_words(r, h, normalize=False)
        assert a.rate == pytest.approx(jiwer.wer(r, h)), (r, h)
        if h:  # jiwer's cer needs a non-empty hypothesis string
            assert align_chars(r, h, normalize=False).rate == pytest.approx(jiwer.cer(r, h)), (r, h)
        assert replay(a.ops) == (r.split(), h.split())
    assert wer(refs, hyps, normalize=False) == pytest.approx(jiwer.wer(refs, hyps))
    nonempty = [(r, h) for r, h in zip(refs, hyps) if h]
    assert cer(*zip(*nonempty), normalize=False) == pytest.approx(jiwer.cer(*map(list, zip(*nonempty))))


def test_edit_ops_on_long_sequences_is_exact():
    # 300 tokens with every 10th substituted and 5 deleted: the distance is known exactly.
    ref = [str(i) for i in range(300)]
    hyp = [("x" if i % 10 == 0 else t) for i, t in enumerate(ref)]
    del hyp[5:10]
    a = edit_ops(ref, hyp)
    assert a.errors == 30 + 5 and (a.substitutions, a.deletions, a.insertions) == (30, 5, 0)


def test_docstring_examples_hold():
    import doctest

    import speechtao.asr.metrics as metrics

    assert doctest.testmod(metrics).failed == 0
