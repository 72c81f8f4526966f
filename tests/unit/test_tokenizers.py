import io
import re

import pytest
import torch

from speechtao.errors import CheckpointError, InputError
from speechtao.text.normalize import normalize_text
from speechtao.text.tokenizers import (
    CHAR_VOCAB,
    CharTokenizer,
    SentencePieceTokenizer,
    tokenizer_from_dict,
)


def _stdlib_sentences() -> list[str]:
    """Real English prose available wherever Python runs: sentences of standard-library docstrings."""
    import importlib

    names = [
        "argparse",
        "collections",
        "json",
        "logging",
        "pathlib",
        "subprocess",
        "textwrap",
        "threading",
        "unittest",
        "inspect",
        "shutil",
        "tarfile",
        "zipfile",
        "dataclasses",
        "functools",
        "email",
        "http",
    ]
    objects = [importlib.import_module(name) for name in names]
    for mod in list(objects):
        objects += [getattr(mod, name) for name in sorted(dir(mod)) if not name.startswith("_")]
    out, seen = [], set()
    for obj in objects:
        doc = getattr(obj, "__doc__", None)
        if not isinstance(doc, str):
            continue
        for sent in re.split(r"(?<=[.!?])\s+", " ".join(doc.split())):
            text = normalize_text(sent)
            if 4 <= len(text.split()) <= 30 and text not in seen and re.fullmatch(r"[A-Za-z ,.;:'\-]+", sent):
                seen.add(text)
                out.append(text)
    return out


@pytest.fixture(scope="module")
def sentences():
    out = _stdlib_sentences()
    assert len(out) >= 400, len(out)
    return out


@pytest.fixture(scope="module")
def unigram(sentences):
    return SentencePieceTokenizer.train(sentences[:250], vocab_size=128)


@pytest.fixture(scope="module")
def bpe(sentences):
    return SentencePieceTokenizer.train(sentences[:250], vocab_size=128, model_type="bpe")


def _roundtrip_weights_only(obj):
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


# --- characters -----------------------------------------------------------------------------------------------


def test_char_vocab_is_nemos_english_labels():
    assert CHAR_VOCAB == [" ", *"abcdefghijklmnopqrstuvwxyz", "'"]
    tok = CharTokenizer()
    assert (tok.vocab_size, tok.blank_id) == (28, 28)
    assert tok.encode("hello world") == [8, 5, 12, 12, 15, 0, 23, 15, 18, 12, 4]
    assert tok.encode("don't") == [4, 15, 14, 27, 20]


def test_char_roundtrip_on_normalized_sentences(sentences):
    tok = CharTokenizer()
    for text in sentences[:100]:
        ids = tok.encode(text)
        assert len(ids) == len(text) and max(ids) < tok.blank_id
        assert tok.decode(ids) == text


def test_char_oov_error_names_character_and_text():
    with pytest.raises(InputError, match=r"character 'H' \(U\+0048\) at position 0 of 'Hello!'.*normalize_text"):
        CharTokenizer().encode("Hello!")


def test_decode_rejects_blank_and_out_of_range_ids(unigram):
    with pytest.raises(InputError, match="id 28 at position 1 .*CTC blank"):
        CharTokenizer().decode([1, 28])
    with pytest.raises(InputError, match="id 40 .*valid ids are 0..27"):
        CharTokenizer().decode([40])
    with pytest.raises(InputError, match=f"id {unigram.vocab_size} .*CTC blank"):
        unigram.decode([unigram.vocab_size])


@pytest.mark.parametrize(
    "text, spans",
    [
        ("hello world", [(0, 5), (6, 11)]),
        ("a", [(0, 1)]),
        ("  a  bc ", [(2, 3), (5, 7)]),
        ("", []),
        ("   ", []),
        ("it's o'clock", [(0, 4), (5, 12)]),
    ],
)
def test_char_word_boundaries(text, spans):
    tok = CharTokenizer()
    assert tok.word_boundaries(tok.encode(text)) == spans
    assert [text[s:e] for s, e in spans] == text.split()


@pytest.mark.parametrize(
    "vocab, message",
    [
        ([], "empty vocabulary"),
        (["a", "bc"], "entry 1 is 'bc'"),
        (["a", "b", "a"], r"duplicate labels \['a'\]"),
    ],
)
def test_char_vocab_validation(vocab, message):
    with pytest.raises(InputError, match=message):
        CharTokenizer(vocab)


def test_custom_char_vocab_follows_its_order():
    tok = CharTokenizer(["x", " ", "y"])
    assert (tok.encode("xy x"), tok.blank_id) == ([0, 2, 1, 0], 3)
    assert tok.word_boundaries([0, 2, 1, 0]) == [(0, 2), (3, 4)]


# --- SentencePiece ----------------------------------------------------------------------------------------------


def test_sentencepiece_follows_nemo_conventions(unigram):
    vocab = unigram.vocab
    assert vocab[0] == "<unk>" and unigram.unk_id == 0
    assert "<s>" not in vocab and "</s>" not in vocab and "<pad>" not in vocab
    assert unigram.blank_id == unigram.vocab_size == len(vocab)
    assert 40 < unigram.vocab_size <= 128
    # every English letter and the apostrophe have a piece, so no normalized text maps to <unk>
    assert set("abcdefghijklmnopqrstuvwxyz'") <= {p.lstrip("\u2581") for p in vocab if len(p.lstrip("\u2581")) == 1}
    assert 0 not in unigram.encode("quizzically jazzy xylophones")


@pytest.mark.parametrize("model", ["unigram", "bpe"])
def test_sentencepiece_roundtrip_on_held_out_sentences(model, unigram, bpe, sentences):
    tok = unigram if model == "unigram" else bpe
    held_out = sentences[250:]
    assert held_out
    for text in held_out:
        ids = tok.encode(text)
        assert all(0 <= i < tok.vocab_size for i in ids)
        assert tok.decode(ids) == text
    # subwords compress: fewer tokens than characters on held-out text
    assert sum(len(tok.encode(t)) for t in held_out) < 0.7 * sum(len(t) for t in held_out)


def test_sentencepiece_training_is_deterministic(sentences, unigram):
    again = SentencePieceTokenizer.train(sentences[:250], vocab_size=128)
    assert again.model_bytes == unigram.model_bytes
    assert again == unigram


@pytest.mark.parametrize("model", ["unigram", "bpe"])
def test_sentencepiece_word_boundaries_spell_the_words(model, unigram, bpe, sentences):
    tok = unigram if model == "unigram" else bpe
    for text in sentences[250:300] + ["zyzzyva qq x"]:
        ids = tok.encode(text)
        spans = tok.word_boundaries(ids)
        assert [tok.decode(ids[s:e]) for s, e in spans] == text.split()
        assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))  # contiguous: the '▁' opens each word


def test_sentencepiece_unknown_characters_become_unk(unigram):
    ids = unigram.encode("abc \u65e5")
    assert unigram.unk_id in ids


def test_train_errors():
    with pytest.raises(InputError, match="no non-empty sentences"):
        SentencePieceTokenizer.train(["", "  "], vocab_size=64)
    with pytest.raises(InputError, match="model_type 'wordpiece'"):
        SentencePieceTokenizer.train(["a b"], vocab_size=64, model_type="wordpiece")
    with pytest.raises(InputError, match="vocab_size 10 is too small"):
        SentencePieceTokenizer.train(["a b"], vocab_size=10)


def test_save_writes_nemo_tokenizer_folder(unigram, tmp_path):
    folder = unigram.save(tmp_path / "tok")
    assert (folder / "tokenizer.model").read_bytes() == unigram.model_bytes
    spe_vocab = (folder / "tokenizer.vocab").read_text(encoding="utf-8").splitlines()
    assert [line.split("\t")[0] for line in spe_vocab] == unigram.vocab
    vocab_txt = (folder / "vocab.txt").read_text(encoding="utf-8").splitlines()
    assert len(vocab_txt) == unigram.vocab_size - 1  # <unk> left out
    for piece, token in zip(unigram.vocab[1:], vocab_txt):
        assert token == (piece[1:] or piece if piece.startswith("\u2581") else "##" + piece)
    assert SentencePieceTokenizer.from_file(folder) == unigram
    assert SentencePieceTokenizer.from_file(folder / "tokenizer.model") == unigram


def test_from_file_errors(tmp_path):
    with pytest.raises(InputError, match="missing.model: SentencePiece model not found"):
        SentencePieceTokenizer.from_file(tmp_path / "missing.model")
    bad = tmp_path / "tokenizer.model"
    bad.write_bytes(b"this is not a protobuf \xff\xfe")
    with pytest.raises(InputError, match="tokenizer.model: not a SentencePiece model"):
        SentencePieceTokenizer.from_file(bad)


# --- serialization -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["char", "unigram", "custom_char"])
def test_to_dict_survives_weights_only_torch_load(kind, unigram, sentences):
    tok = {"char": CharTokenizer(), "unigram": unigram, "custom_char": CharTokenizer(list("ab c"))}[kind]
    payload = {"tokenizer": tok.to_dict(), "w": torch.zeros(2)}
    restored = tokenizer_from_dict(_roundtrip_weights_only(payload)["tokenizer"])
    assert type(restored) is type(tok) and restored == tok
    assert restored.vocab == tok.vocab and restored.blank_id == tok.blank_id
    text = "ab c" if kind == "custom_char" else sentences[0]
    assert restored.encode(text) == tok.encode(text)


def test_tokenizers_pickle_for_dataloader_workers(unigram, sentences):
    import pickle

    for tok in (CharTokenizer(), unigram):
        clone = pickle.loads(pickle.dumps(tok))
        assert clone == tok and clone.encode(sentences[1]) == tok.encode(sentences[1])


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"type": "wordpiece"}, "tokenizer type 'wordpiece' is unknown"),
        ({"vocab": ["a"]}, "expected a mapping with a 'type' key"),
        ({"type": "char"}, "no 'vocab' list"),
        ({"type": "sentencepiece", "model": "not bytes"}, "no 'model' bytes"),
        ({"type": "sentencepiece", "model": b"\x00garbage"}, "not a SentencePiece model"),
        ({"type": "char", "vocab": ["a", "a"]}, "duplicate labels"),
    ],
)
def test_tokenizer_from_dict_errors(entry, message):
    with pytest.raises((CheckpointError, InputError), match=message):
        tokenizer_from_dict(entry)


# --- parity with NeMo ---------------------------------------------------------------------------------------------


@pytest.mark.nemo
def test_nemo_reads_our_sentencepiece_folder_identically(unigram, sentences, tmp_path):
    pytest.importorskip("nemo")
    from nemo.collections.common.tokenizers.sentencepiece_tokenizer import SentencePieceTokenizer as NemoSP

    folder = unigram.save(tmp_path / "tok")
    nemo_tok = NemoSP(str(folder / "tokenizer.model"))
    assert nemo_tok.vocab_size == unigram.vocab_size
    assert nemo_tok.vocab == unigram.vocab
    for text in sentences[250:300]:
        ids = unigram.encode(text)
        assert nemo_tok.text_to_ids(text) == ids
        assert nemo_tok.ids_to_text(ids) == unigram.decode(ids)
