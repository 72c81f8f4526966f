"""speechtao.lm: the pure-Python ARPA writer, LM folders, beam search with the LM, boosting and N-best.

The decoding tests use hand-made CTC emissions over NeMo's 28 characters: each spoken character holds two
frames followed by a blank frame, and chosen characters are "misheard" (a wrong character wins the frame)
so that greedy decoding misspells them and only the LM can recover the word.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from speechtao.asr.ctc import greedy_decode, word_times
from speechtao.errors import InputError, MissingDependencyError
from speechtao.lm.arpa import count_ngrams, write_arpa
from speechtao.lm.build import LMBuildOptions, build_lm, read_card, split_sentences
from speechtao.lm.decode import Boost, DecodingSpec, LMDecoder
from speechtao.text.tokenizers import CharTokenizer, SentencePieceTokenizer

pytest.importorskip("flashlight.lib.text", reason="flashlight-text is a core dependency: pip install -e .")

TEXT = [
    "Turn on the light in the kitchen.",
    "Turn off the light in the hall. Dim the light in the kitchen!",
    "Call Mary at home",
    "turn on the fan in the hall",
    "call the kitchen",
    "dim the fan",
]
TOK = CharTokenizer()
V = TOK.vocab_size  # blank = V
FLOOR = 1e-4  # what the other symbols of a frame get (real CTC outputs are this peaky)


def emissions(spoken: str, misheard: dict[int, str] | None = None, sure: float = 0.7) -> np.ndarray:
    """(T, V+1) log-probs: per character two frames (the character at ``sure``, or at 0.35 behind a wrong
    one at 0.5 where ``misheard`` says), then one blank frame; blanks around the utterance."""
    misheard = misheard or {}
    rows = [np.full(V + 1, FLOOR)]
    rows[0][V] = 1.0
    for i, ch in enumerate(spoken):
        for _ in range(2):
            p = np.full(V + 1, FLOOR)
            if i in misheard:
                p[TOK.encode(misheard[i])[0]] = 0.5
                p[TOK.encode(ch)[0]] = 0.35
            else:
                p[TOK.encode(ch)[0]] = sure
            rows.append(p)
        b = np.full(V + 1, FLOOR)
        b[V] = 0.9
        rows.append(b)
    rows.append(rows[0].copy())
    m = np.stack(rows)
    return np.log(m / m.sum(1, keepdims=True)).astype(np.float32)


def greedy_text(lp: np.ndarray) -> str:
    import torch

    return TOK.decode(list(greedy_decode(torch.from_numpy(lp)[None], None, V)[0].token_ids))


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("lm")
    text = d / "corpus.txt"
    text.write_text("\n".join(TEXT) + "\n", encoding="utf-8")
    build_lm(
        LMBuildOptions(out=d / "lm", texts=[text], order=3, backend="python", token_order=5, license_notes=["test"])
    )
    return d / "lm"


# --- ARPA writer ---------------------------------------------------------------------------------------------


def test_counts_are_continuations_below_the_top_order():
    counts = count_ngrams(["a b", "c b"], order=2)
    assert counts[1][("a", "b")] == 1 and counts[1][("<s>", "a")] == 1
    assert counts[0][("b",)] == 2  # preceded by two distinct words
    assert counts[0][("</s>",)] == 1  # only ever after "b"


def _arpa_probs(path) -> dict:
    """(n-gram tuple) -> (log10 p, log10 backoff) from an ARPA file."""
    out, n = {}, 0
    for line in open(path, encoding="utf-8"):
        line = line.rstrip("\n")
        if line.startswith("\\") and line.endswith("-grams:"):
            n = int(line[1])
        elif n and line and not line.startswith("\\"):
            parts = line.split("\t")
            out[tuple(parts[1].split())] = (float(parts[0]), float(parts[2]) if len(parts) > 2 else 0.0)
    return out


def _prob(arpa: dict, ctx: tuple, w: str) -> float:
    weight = 0.0
    while True:
        if ctx + (w,) in arpa:
            return 10 ** (weight + arpa[ctx + (w,)][0])
        if not ctx:
            return 10 ** (weight + arpa[("<unk>",)][0])
        weight += arpa.get(ctx, (0.0, 0.0))[1]
        ctx = ctx[1:]


@pytest.mark.parametrize("ctx", [(), ("the",), ("in", "the"), ("zebra", "the"), ("<s>",), ("<s>", "turn")])
def test_arpa_distributions_sum_to_one(tmp_path, ctx):
    sentences = [" ".join(s.lower().strip(".!").split()) for t in TEXT for s in split_sentences(t)] * 3
    write_arpa(sentences, tmp_path / "lm.arpa", order=3)
    arpa = _arpa_probs(tmp_path / "lm.arpa")
    vocab = [g[0] for g in arpa if len(g) == 1 and g[0] != "<s>"]
    total = sum(_prob(arpa, ctx, w) for w in vocab)
    assert total == pytest.approx(1.0, abs=1e-4)


def test_arpa_loads_in_kenlm_and_prefers_seen_text(lm_dir):
    from flashlight.lib.text.decoder.kenlm import KenLM
    from flashlight.lib.text.dictionary import Dictionary

    words = (lm_dir / "words.txt").read_text().split()
    lm = KenLM(str(lm_dir / "lm.arpa"), Dictionary([*words, "<unk>"]))

    def score(sentence: str) -> float:
        state, total = lm.start(False), 0.0
        for w in sentence.split():
            state, s = lm.score(state, words.index(w))
            total += s
        return total + lm.finish(state)[1]

    assert score("turn on the light in the kitchen") > score("kitchen the in light the on turn") + 3


# --- LM folders ------------------------------------------------------------------------------------------------


def test_build_writes_card_words_and_lexicon(lm_dir):
    card = read_card(lm_dir)
    assert card["lm"] == "lm.arpa" and card["order"] == 3 and card["backend"].startswith("speechtao.lm.arpa")
    assert card["sentences"] == 7  # the second line holds two sentences
    assert card["sources"][0]["sentences"] == 7 and len(card["sources"][0]["sha256"]) == 64
    assert card["license_notes"] == ["test"] and card["token_lm"]["order"] == 5
    words = (lm_dir / "words.txt").read_text().split()
    assert "kitchen" in words and "Kitchen" not in words and "kitchen." not in words
    assert "kitchen\tk i t c h e n" in (lm_dir / "lexicon.txt").read_text().splitlines()


def test_lexicon_in_sentencepiece_pieces(tmp_path):
    sp = SentencePieceTokenizer.train([t.lower() for t in TEXT] * 5, vocab_size=40)
    build_lm(LMBuildOptions(out=tmp_path, sentences=TEXT, order=2, backend="python", tokenizer=sp))
    lexicon = dict(line.split("\t") for line in (tmp_path / "lexicon.txt").read_text().splitlines())
    pieces = lexicon["kitchen"].split()
    assert pieces[0].startswith("\u2581") and "".join(pieces).replace("\u2581", "") == "kitchen"
    assert read_card(tmp_path)["tokenizer"]["type"] == "sentencepiece"


def test_missing_kenlm_tool_names_the_make_target(tmp_path, monkeypatch):
    monkeypatch.setenv("SPEECHTAO_KENLM_BIN", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr("speechtao.lm.build._REPO_ROOT", tmp_path)
    with pytest.raises(MissingDependencyError, match="make lm-tools"):
        build_lm(LMBuildOptions(out=tmp_path / "lm", sentences=["a b"], backend="kenlm"))


def test_build_refuses_empty_text_and_bad_order(tmp_path):
    with pytest.raises(InputError, match="no sentences"):
        build_lm(LMBuildOptions(out=tmp_path, sentences=["...", "  "], backend="python"))
    with pytest.raises(InputError, match="--order 9"):
        build_lm(LMBuildOptions(out=tmp_path, sentences=["a b"], order=9))
    with pytest.raises(InputError, match="no lm.json"):
        read_card(tmp_path)


# --- decoding ------------------------------------------------------------------------------------------------


def test_lm_fixes_a_misheard_word_that_greedy_misspells(lm_dir):
    spoken = "turn on the light"
    lp = emissions(spoken, misheard={13: "i", 15: "d"})  # "turn on the lihgd"-ish
    assert greedy_text(lp) != spoken
    decoder = LMDecoder(lm_dir, TOK, DecodingSpec(alpha=0.5, beta=0.0, beam_size=16))
    best = decoder.search(lp)[0]
    assert best.text == spoken
    assert TOK.decode(list(best.hypothesis.token_ids)) == spoken  # separators between words
    words = word_times(best.hypothesis, TOK, frame_shift_s=0.02)
    assert [w.word for w in words] == spoken.split()
    # Three frames per character from frame 1: "light" starts at character 12 -> frame 37 -> 740 ms.
    assert words[3].start_ms == 740 and words[3].end_ms > words[3].start_ms
    assert all(0 < w.confidence <= 1 for w in words)
    assert words[0].confidence > words[3].confidence  # the misheard word is the least sure
    assert decoder.decode(lp).token_ids == best.hypothesis.token_ids  # the FrameDecoder step


def test_n_best_gives_distinct_alternatives_best_first(lm_dir):
    lp = emissions("dim the fan", misheard={0: "t", 8: "v"})
    results = LMDecoder(lm_dir, TOK, DecodingSpec(alpha=0.5, beta=0.0, beam_size=32)).search(lp, alternatives=3)
    assert len(results) == 3
    assert len({r.text for r in results}) == 3
    assert results[0].text == "dim the fan"
    assert results[0].score >= results[1].score >= results[2].score
    assert all(0 < r.confidence <= 1 for r in results)


def test_boosting_makes_an_out_of_vocabulary_name_decodable(lm_dir):
    spoken = "call harlow"
    lp = emissions(spoken, misheard={5: "c", 9: "u"}, sure=0.6)  # "call carluw"-ish
    decoder = LMDecoder(lm_dir, TOK, DecodingSpec(alpha=0.5, beta=0.0))
    assert "harlow" not in decoder.search(lp)[0].text  # not in the LM's words: the lexicon cannot spell it
    boosted = decoder.search(lp, boosts=[Boost("Harlow", 10.0)])[0]
    assert boosted.text == spoken
    assert word_times(boosted.hypothesis, TOK, 0.02)[1].word == "harlow"
    # The same decoder without boosts is unchanged (boosts are per request).
    assert "harlow" not in decoder.search(lp)[0].text


def test_boosting_an_absent_word_does_not_insert_it(lm_dir):
    spoken = "turn on the light in the kitchen"
    lp = emissions(spoken)
    decoder = LMDecoder(lm_dir, TOK, DecodingSpec(alpha=0.5, beta=0.0))
    assert decoder.search(lp)[0].text == spoken
    for boost in ("Harlow Logistics:10", "mary:10", "fan:10"):
        assert decoder.search(lp, boosts=[Boost.parse(boost)])[0].text == spoken


def test_lexicon_free_decodes_open_vocabulary(lm_dir):
    spoken = "turn on the light"
    lp = emissions(spoken, misheard={15: "d"})  # "lighd"
    decoder = LMDecoder(lm_dir, TOK, DecodingSpec(alpha=1.0, beta=0.0, lexicon_free=True))
    assert decoder.search(lp)[0].text == spoken
    unseen = emissions("turn on the zebra")  # no LM word, but clear audio: the token LM lets it through
    assert decoder.search(unseen)[0].text == "turn on the zebra"


def test_decoding_spec_round_trips_through_json():
    spec = DecodingSpec(alpha=0.7, beta=-1.0, beam_size=8)
    assert DecodingSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    assert math.isinf(DecodingSpec.from_dict(spec.to_dict()).unk_score)
    with pytest.raises(InputError, match="unknown keys"):
        DecodingSpec.from_dict({"alhpa": 1})
    with pytest.raises(InputError, match="alternatives 5 exceeds beam_size 4"):
        DecodingSpec(beam_size=4, alternatives=5)
    assert Boost.parse("Harlow Logistics:12.5") == Boost("Harlow Logistics", 12.5)
    with pytest.raises(InputError, match="PHRASE:SCORE"):
        Boost.parse("Harlow:lots")


def test_log_probs_of_another_vocabulary_are_refused(lm_dir):
    decoder = LMDecoder(lm_dir, TOK)
    with pytest.raises(InputError, match="expected \\(frames, 29\\)"):
        decoder.search(np.zeros((10, 40), dtype=np.float32))


# --- the general English text ----------------------------------------------------------------------------------


def test_general_text_from_a_gensim_wheel(tmp_path):
    import bz2
    import zipfile

    from speechtao.lm.general import GENSIM_LEE, GENSIM_WIKI, gensim_texts, write_general_text

    wiki = (
        '<page><text xml:space="preserve">#REDIRECT [[Elsewhere]]</text></page>'
        "<page><text xml:space=\"preserve\">{{Infobox|x=1}}'''Anarchism''' is a [[political philosophy|philosophy]] "
        "that holds the state undesirable.<ref>Cite</ref>\n== History ==\n* a list item that is long enough to pass\n"
        "</text></page>"
    )
    wheel = tmp_path / "gensim-4.4.0-test.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr(GENSIM_LEE, "Hundreds of people have been forced to vacate their homes.\n\n".encode("latin-1"))
        z.writestr(GENSIM_WIKI, bz2.compress(wiki.encode()))
    texts = gensim_texts(wheel)
    assert texts["gensim-wiki"] == ["Anarchism is a philosophy that holds the state undesirable."]
    assert len(texts["gensim-lee"]) == 1
    counts = write_general_text(
        tmp_path / "g.txt",
        gensim_wheel=wheel,
        debian=False,
        exclude={"hundreds of people have been forced to vacate their homes"},
    )
    assert counts == {"gensim-lee": 0, "gensim-wiki": 1}
    with pytest.raises(InputError, match="pip download"):
        gensim_texts(tmp_path / "absent.whl")


def test_an_onnx_vocabulary_spells_words_too(lm_dir):
    from speechtao.lm.build import spell
    from speechtao.serve.backends import VocabTokenizer

    chars = VocabTokenizer(TOK.vocab, subwords=False)
    lp = emissions("turn on the light", misheard={13: "i", 15: "d"})
    assert LMDecoder(lm_dir, chars, DecodingSpec(alpha=0.5, beta=0.0)).search(lp)[0].text == "turn on the light"
    pieces = VocabTokenizer(["<unk>", "\u2581", "\u2581li", "ght", "g", "h", "t", "l", "i"], subwords=True)
    assert spell("light", pieces) == ["\u2581li", "ght"]
    assert spell("lox", pieces) == []  # no piece holds "o" or "x": the word stays out of the lexicon


def test_sentencepiece_model_decodes_with_the_lm(tmp_path):
    sp = SentencePieceTokenizer.train([t.lower() for t in TEXT] * 5, vocab_size=40)
    build_lm(LMBuildOptions(out=tmp_path, sentences=TEXT, order=3, backend="python", tokenizer=sp))
    n = sp.vocab_size  # blank
    spoken = "turn on the light"
    ids = sp.encode(spoken)
    rows = []
    for k, i in enumerate(ids):
        p = np.full(n + 1, FLOOR)
        if k == len(ids) - 1:  # the last piece misheard as another piece
            p[(i + 1) % n] = 0.5
            p[i] = 0.35
        else:
            p[i] = 0.9
        b = np.full(n + 1, FLOOR)
        b[n] = 0.9
        rows += [p, b]
    lp = np.log(np.stack(rows) / np.stack(rows).sum(1, keepdims=True)).astype(np.float32)
    best = LMDecoder(tmp_path, sp, DecodingSpec(alpha=0.5, beta=0.0)).search(lp)[0]
    assert best.text == spoken
    assert [w.word for w in word_times(best.hypothesis, sp, 0.08)] == spoken.split()


def test_a_model_repository_finds_its_lm_folder(tmp_path, lm_dir):
    import shutil

    from speechtao.serve.repository import shared_lm

    assert shared_lm(tmp_path) is None
    shutil.copytree(lm_dir, tmp_path / "domain_lm")
    assert shared_lm(tmp_path) == tmp_path / "domain_lm"  # the only LM folder, whatever its name
    shutil.copytree(lm_dir, tmp_path / "model.lm")  # a model's own LM is not the shared one
    assert shared_lm(tmp_path) == tmp_path / "domain_lm"
    shutil.copytree(lm_dir, tmp_path / "other")
    with pytest.raises(InputError, match="several LM folders \\(domain_lm, other\\)"):
        shared_lm(tmp_path)
    shutil.copytree(lm_dir, tmp_path / "lm")
    assert shared_lm(tmp_path) == tmp_path / "lm"
