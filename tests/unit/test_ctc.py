"""Greedy CTC decoding on hand-made log-probabilities, and word times through the real tokenizers."""

import pytest
import torch

from speechtao.asr.ctc import CTCHypothesis, decode_texts, greedy_decode, word_times
from speechtao.errors import DataError

V = 5  # symbols 0..4, blank = 5
B = V  # blank id
_ = B


def frames_to_log_probs(path, probs=None, vocab=V + 1):
    """(T, vocab) log-probs whose argmax per frame is ``path[t]`` with probability ``probs[t]`` (default 0.9);
    the rest of the mass is spread evenly over the other symbols."""
    probs = probs or [0.9] * len(path)
    out = torch.empty(len(path), vocab, dtype=torch.float64)
    for t, (sym, p) in enumerate(zip(path, probs)):
        out[t] = (1 - p) / (vocab - 1)
        out[t, sym] = p
    return out.log().float()


CASES = [
    # (frame path, expected token ids, expected first frames, expected last frames)
    ("plain", [0, 1, 2], [0, 1, 2], [0, 1, 2], [0, 1, 2]),
    ("repeats merge", [0, 0, 0, 1, 1], [0, 1], [0, 3], [2, 4]),
    ("blank between repeats keeps both", [0, 0, _, 0, 1, 1, _], [0, 0, 1], [0, 3, 4], [1, 3, 5]),
    ("leading and trailing blanks", [_, _, 3, _, 4, 4, _, _], [3, 4], [2, 4], [2, 5]),
    ("all blank", [_, _, _, _], [], [], []),
    ("single frame", [2], [2], [0], [0]),
    ("blank runs between different symbols", [1, _, _, 2, _, 1], [1, 2, 1], [0, 3, 5], [0, 3, 5]),
]


@pytest.mark.parametrize("name,path,ids,starts,ends", CASES, ids=[c[0] for c in CASES])
def test_greedy_decode_table(name, path, ids, starts, ends):
    lp = frames_to_log_probs(path)[None]
    (hyp,) = greedy_decode(lp, torch.tensor([len(path)]), blank_id=B)
    assert list(hyp.token_ids) == ids
    assert list(hyp.token_frames) == starts
    assert list(hyp.token_end_frames) == ends
    assert hyp.num_frames == len(path)
    assert hyp.confidence == pytest.approx(0.9, abs=1e-6)
    assert all(c == pytest.approx(0.9, abs=1e-6) for c in hyp.token_confidences)


def test_padding_beyond_length_is_ignored():
    path = [_, 0, 0, _, 1]
    pad = [2, 3, 3, 4]  # non-blank symbols in the padding must not be decoded
    lp = frames_to_log_probs(path + pad)[None]
    (hyp,) = greedy_decode(lp, torch.tensor([len(path)]), blank_id=B)
    assert list(hyp.token_ids) == [0, 1] and hyp.num_frames == 5
    (full,) = greedy_decode(lp, None, blank_id=B)
    assert list(full.token_ids) == [0, 1, 2, 3, 4]


def test_zero_length_gives_empty_hypothesis():
    lp = frames_to_log_probs([0, 1])[None]
    (hyp,) = greedy_decode(lp, torch.tensor([0]), blank_id=B)
    assert hyp == CTCHypothesis((), (), (), (), 0.0, 0)


def test_batched_equals_one_by_one():
    g = torch.Generator().manual_seed(0)
    lengths = [7, 3, 12, 0, 9]
    T = max(lengths)
    batch = torch.randn(len(lengths), T, V + 1, generator=g).mul(3).log_softmax(-1)
    batched = greedy_decode(batch, torch.tensor(lengths), blank_id=B)
    for i, n in enumerate(lengths):
        (single,) = greedy_decode(batch[i : i + 1, :n], torch.tensor([n]), blank_id=B)
        assert batched[i] == single


def test_confidences_are_means_over_runs():
    path = [0, 0, _, 1]
    probs = [0.6, 0.8, 0.5, 0.9]
    (hyp,) = greedy_decode(frames_to_log_probs(path, probs)[None], torch.tensor([4]), blank_id=B)
    assert hyp.token_confidences == pytest.approx((0.7, 0.9), abs=1e-6)
    assert hyp.confidence == pytest.approx(sum(probs) / 4, abs=1e-6)


@pytest.mark.parametrize(
    "shape,blank,lengths",
    [((4, V + 1), B, [4]), ((1, 4, V + 1), V + 1, [4]), ((1, 4, V + 1), B, [5]), ((2, 4, V + 1), B, [4])],
)
def test_bad_inputs_raise_data_error(shape, blank, lengths):
    with pytest.raises(DataError, match="greedy_decode"):
        greedy_decode(torch.zeros(shape), torch.tensor(lengths), blank_id=blank)


# ---- word times through the real tokenizers -------------------------------------------------------------


def _path_for(ids, tokenizer, run=2, gap=1):
    """A frame path that emits ``ids`` with ``run`` frames each and ``gap`` blanks between tokens."""
    path = [tokenizer.blank_id] * 2
    for i in ids:
        path += [i] * run + [tokenizer.blank_id] * gap
    return path


def test_word_times_char_tokenizer():
    from speechtao.text.tokenizers import CharTokenizer

    tok = CharTokenizer()
    ids = tok.encode("hi there")
    path = _path_for(ids, tok)
    lp = frames_to_log_probs(path, vocab=tok.vocab_size + 1)[None]
    (hyp,) = greedy_decode(lp, torch.tensor([len(path)]), blank_id=tok.blank_id)
    assert decode_texts(lp, torch.tensor([len(path)]), tok) == ["hi there"]
    words = word_times(hyp, tok, frame_shift_s=0.02)
    assert [w.word for w in words] == ["hi", "there"]
    # token k starts at frame 2 + 3k and runs 2 frames; "hi" = tokens 0-1, "there" = tokens 3-7.
    assert (words[0].start_ms, words[0].end_ms) == (40, (2 + 3 * 1 + 2) * 20)
    assert (words[1].start_ms, words[1].end_ms) == ((2 + 3 * 3) * 20, (2 + 3 * 7 + 2) * 20)
    assert all(w.confidence == pytest.approx(0.9, abs=1e-6) for w in words)


def test_word_times_increase_and_scale_with_frame_shift():
    from speechtao.text.tokenizers import CharTokenizer

    tok = CharTokenizer()
    ids = tok.encode("one two three four")
    path = _path_for(ids, tok, run=1, gap=2)
    lp = frames_to_log_probs(path, vocab=tok.vocab_size + 1)[None]
    (hyp,) = greedy_decode(lp, torch.tensor([len(path)]), blank_id=tok.blank_id)
    w20 = word_times(hyp, tok, frame_shift_s=0.02)
    w80 = word_times(hyp, tok, frame_shift_s=0.08)
    assert [w.word for w in w20] == ["one", "two", "three", "four"]
    for a, b in zip(w20, w20[1:]):
        assert a.start_ms < a.end_ms <= b.start_ms < b.end_ms
    assert [(w.start_ms * 4, w.end_ms * 4) for w in w20] == [(w.start_ms, w.end_ms) for w in w80]
    assert all(isinstance(w.start_ms, int) and isinstance(w.end_ms, int) for w in w20)


def test_word_times_sentencepiece():
    from speechtao.text.tokenizers import WORD_START, SentencePieceTokenizer

    sentences = ["the cat sat on the mat", "a dog ran to the park", "hello there world"] * 20
    tok = SentencePieceTokenizer.train(sentences, vocab_size=40)
    assert any(p.startswith(WORD_START) and len(p) > 2 for p in tok.vocab)  # multi-letter pieces exist
    ids = tok.encode("the cat sat")
    path = _path_for(ids, tok)
    lp = frames_to_log_probs(path, vocab=tok.vocab_size + 1)[None]
    (hyp,) = greedy_decode(lp, torch.tensor([len(path)]), blank_id=tok.blank_id)
    words = word_times(hyp, tok, frame_shift_s=0.08)
    assert [w.word for w in words] == ["the", "cat", "sat"]
    assert words[0].start_ms == 2 * 80
    for a, b in zip(words, words[1:]):
        assert a.start_ms < a.end_ms <= b.start_ms < b.end_ms


def test_word_times_rejects_bad_frame_shift():
    hyp = CTCHypothesis((), (), (), (), 0.0, 0)
    with pytest.raises(DataError, match="frame_shift_s"):
        word_times(hyp, None, frame_shift_s=0.0)
