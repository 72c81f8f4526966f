"""Build an n-gram language model folder for CTC beam search: ``speechtao lm build``.

Text (plain files and the ``text`` of NeMo manifests) is split into sentences and normalized with
:func:`speechtao.text.normalize.normalize_text`, the normalizer of the training labels, so the LM's words are
spelled as the model spells them. The folder holds:

- ``lm.bin`` (KenLM binary, when KenLM's ``lmplz``/``build_binary`` are installed: ``make lm-tools``) or
  ``lm.arpa`` (this package's pure-Python modified Kneser-Ney writer, :mod:`speechtao.lm.arpa`);
- ``words.txt``: the LM's vocabulary, one word a line;
- ``lexicon.txt``: each word and its spelling in the tokenizer's tokens (flashlight/torchaudio layout:
  ``word<TAB>t1 t2 ...``); the decoder respells ``words.txt`` for another model's tokenizer itself;
- ``lm.json``: the model card: sources (sha256, sentences, license notes), n-gram counts, order, backend,
  tokenizer, and the tuned decoding parameters once ``speechtao lm tune`` has run.

Usage::

    card = build_lm(LMBuildOptions(texts=["corpus.txt"], manifests=["train.jsonl"], order=3, out="lm/"))
    card["counts"]     # {"1": 431, "2": 2210, "3": 3954}
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError, MissingDependencyError
from ..text.normalize import normalize_text
from .arpa import BOS, EOS, UNK, write_arpa

log = logging.getLogger(__name__)

CARD = "lm.json"
CARD_FORMAT = "speechtao-lm/1"
INSTALL_TOOLS = "make lm-tools"
BACKENDS = ("auto", "kenlm", "python")
_REPO_ROOT = Path(__file__).resolve().parents[2]
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])")


@dataclass(frozen=True)
class LMBuildOptions:
    out: str | Path  # the LM folder to write
    texts: Sequence[str | Path] = ()  # plain text files (sentences split on . ! ? before a capital)
    manifests: Sequence[str | Path] = ()  # NeMo manifests: their "text" fields
    sentences: Sequence[str] = ()  # extra sentences given in memory (e.g. by the flow)
    order: int = 3
    backend: str = "auto"  # "kenlm" (lmplz), "python" (pure-Python ARPA), "auto": kenlm when installed
    tokenizer: object | None = None  # the model's tokenizer for lexicon.txt (None: NeMo English characters)
    token_order: int = 0  # > 0: also a token n-gram (tokens.arpa) for lexicon-free decoding (6 suits characters)
    prune: Sequence[int] = ()  # kenlm: lmplz --prune thresholds per order (e.g. 0 1 1: drop singleton 2/3-grams)
    compact: bool = False  # kenlm: trie binary with 8-bit quantized probabilities (about 4x smaller, a bit slower)
    min_count: int = 1  # words seen fewer times stay out of words.txt (and the lexicon)
    license_notes: Sequence[str] = ()  # what the card says about the text's licenses
    source_names: dict = field(default_factory=dict)  # path -> a human name for the card


def find_tool(name: str) -> str | None:
    """Path of KenLM's ``name`` (lmplz, build_binary): ``$SPEECHTAO_KENLM_BIN``, ``.tools/kenlm/bin`` of the
    checkout (what ``make lm-tools`` builds), then ``PATH``."""
    for folder in (os.environ.get("SPEECHTAO_KENLM_BIN"), str(_REPO_ROOT / ".tools" / "kenlm" / "bin")):
        if folder and os.access(os.path.join(folder, name), os.X_OK):
            return os.path.join(folder, name)
    return shutil.which(name)


def require_tool(name: str) -> str:
    path = find_tool(name)
    if path is None:
        raise MissingDependencyError(
            f"KenLM tool {name!r} not found (looked in $SPEECHTAO_KENLM_BIN, {_REPO_ROOT / '.tools/kenlm/bin'} and "
            f"PATH); build it with `{INSTALL_TOOLS}` (~3 minutes), or pass --backend python"
        )
    return path


def split_sentences(text: str) -> list[str]:
    """Lines, then sentences within a line (a . ! or ? followed by a capital or digit)."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line:
            out.extend(s for s in _SENTENCE_END.split(line) if s.strip())
    return out


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")  # older corpora (e.g. gensim's lee_background.cor)


def collect_sentences(options: LMBuildOptions) -> tuple[list[str], list[dict]]:
    """Normalized sentences of every source, and one card entry per source."""
    from ..data.manifest import read_manifest

    sentences: list[str] = []
    sources: list[dict] = []

    def add(kind: str, name: str, raw: Iterable[str], digest: str | None) -> None:
        n = 0
        for s in raw:
            norm = normalize_text(s)
            if norm:
                sentences.append(norm)
                n += 1
        entry = {"kind": kind, "name": name, "sentences": n}
        if digest:
            entry["sha256"] = digest
        sources.append(entry)

    for t in options.texts:
        p = Path(t)
        if not p.is_file():
            raise InputError(f"--text {p}: file not found (pass plain text files, one or more sentences a line)")
        add("text", options.source_names.get(str(t), str(p)), split_sentences(_read_text(p)), _sha256(p))
    for m in options.manifests:
        p = Path(m)
        if not p.is_file():
            raise InputError(f"--manifest {p}: file not found (pass NeMo JSON-lines manifests)")
        add("manifest", options.source_names.get(str(m), str(p)), (e.text for e in read_manifest(p)), _sha256(p))
    if options.sentences:
        add("sentences", "in memory", options.sentences, None)
    if not sentences:
        raise InputError("lm build: no sentences (pass --text FILE or --manifest M with non-empty text)")
    return sentences, sources


def _is_chars(tokenizer) -> bool:
    """True for character vocabularies (CharTokenizer, or an ONNX file's vocabulary without subwords)."""
    if tokenizer is None:
        return True
    if hasattr(tokenizer, "subwords"):  # speechtao.serve.backends.VocabTokenizer (ONNX metadata)
        return not tokenizer.subwords
    return not hasattr(tokenizer, "model_bytes")


def _longest_match(text: str, pieces: dict[str, int]) -> list[str]:
    """Greedy longest-match segmentation (for a subword vocabulary known only by its pieces)."""
    out, i = [], 0
    longest = max(map(len, pieces))
    while i < len(text):
        for n in range(min(longest, len(text) - i), 0, -1):
            if text[i : i + n] in pieces:
                out.append(text[i : i + n])
                i += n
                break
        else:
            return []  # a character no piece holds: the model cannot spell the word
    return out


def spell(word: str, tokenizer) -> list[str]:
    """A word as the tokenizer's tokens (characters, or SentencePiece pieces starting with '▁')."""
    if _is_chars(tokenizer):
        return list(word)
    if hasattr(tokenizer, "encode"):
        return [tokenizer.vocab[i] for i in tokenizer.encode(word)]
    return _longest_match("\u2581" + word, {p: i for i, p in enumerate(tokenizer.vocab)})


def token_symbol(token: str) -> str:
    """A tokenizer token as a word of the token LM (the space, the word separator, becomes ``|``)."""
    return "|" if token == " " else token


def token_sentences(sentences: Iterable[str], tokenizer) -> Iterable[str]:
    """Sentences as space-separated token symbols, for the token LM of lexicon-free decoding."""
    for s in sentences:
        if _is_chars(tokenizer):
            yield " ".join(token_symbol(c) for c in s)
        else:
            yield " ".join(token_symbol(t) for w in s.split() for t in spell(w, tokenizer))


def _run(cmd: list[str], stdin_path: Path | None = None) -> None:
    with open(stdin_path, "rb") if stdin_path else open(os.devnull, "rb") as stdin:
        proc = subprocess.run(cmd, stdin=stdin, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise InputError(f"{Path(cmd[0]).name} failed (exit {proc.returncode}): {' | '.join(tail)}")


def _kenlm_build(corpus: Path, out: Path, order: int, prune: Sequence[int], compact: bool) -> dict[int, int]:
    """``lmplz`` then ``build_binary``; returns n-gram counts read from the ARPA header."""
    lmplz, build_binary = require_tool("lmplz"), require_tool("build_binary")
    arpa = out / "lm.arpa"
    with tempfile.TemporaryDirectory() as tmp:
        _run(
            [lmplz, "-o", str(order), "--text", str(corpus), "--arpa", str(arpa), "-S", "10%", "-T", tmp]
            + ["--discount_fallback", "--skip_symbols"]
            + (["--prune", *map(str, prune)] if prune else [])
        )
    layout = ["-a", "22", "-q", "8", "-b", "8", "trie"] if compact else ["probing"]
    _run([build_binary, "-s", *layout, str(arpa), str(out / "lm.bin")])
    counts = arpa_counts(arpa)
    arpa.unlink()
    return counts


def arpa_counts(path: Path) -> dict[int, int]:
    counts: dict[int, int] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = re.match(r"ngram (\d+)=(\d+)", line)
            if m:
                counts[int(m.group(1))] = int(m.group(2))
            elif line.startswith("\\1-grams:"):
                break
    return counts


def arpa_words(path: Path) -> list[str]:
    """The unigrams of an ARPA file (without <s>, </s>, <unk>)."""
    words, inside = [], False
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("\\1-grams:"):
                inside = True
            elif inside and line.startswith("\\"):
                break
            elif inside and line.strip():
                w = line.split("\t")[1].strip()
                if w not in (BOS, EOS, UNK):
                    words.append(w)
    return words


def _tokenizer_entry(tokenizer) -> dict:
    if tokenizer is None:
        return {"type": "char"}
    if not hasattr(tokenizer, "to_dict"):  # an ONNX file's vocabulary
        return {"type": "char" if _is_chars(tokenizer) else "pieces", "vocab_size": len(tokenizer.vocab)}
    d = tokenizer.to_dict()
    if d["type"] == "char":
        return {"type": "char", "vocab": d["vocab"]}
    return {"type": d["type"], "sha256": hashlib.sha256(d["model"]).hexdigest(), "vocab_size": tokenizer.vocab_size}


def read_card(lm_dir: str | Path) -> dict:
    """``lm.json`` of an LM folder; raises :class:`InputError` naming the folder when absent or damaged."""
    path = Path(lm_dir) / CARD
    if not path.is_file():
        raise InputError(f"--lm {lm_dir}: no {CARD} in it (build one with `speechtao lm build --out {lm_dir}`)")
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc}); rebuild the LM with `speechtao lm build`") from None
    if card.get("format") != CARD_FORMAT or not (Path(lm_dir) / card.get("lm", "")).is_file():
        raise InputError(
            f"{path}: not a {CARD_FORMAT} card or its LM file is missing (rebuild with `speechtao lm build`)"
        )
    return card


def write_card(lm_dir: str | Path, card: dict) -> Path:
    path = Path(lm_dir) / CARD
    tmp = path.with_name(f".{CARD}.tmp")
    tmp.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def build_lm(options: LMBuildOptions) -> dict:
    """Build the LM folder ``options.out`` and return its card (also written as ``lm.json``)."""
    if options.backend not in BACKENDS:
        raise InputError(f"--backend {options.backend!r}: unknown (use one of {', '.join(BACKENDS)})")
    if not 1 <= options.order <= 6:
        raise InputError(f"--order {options.order}: must be 1..6 (KenLM's tools are built for up to 6; 3-4 suit ASR)")
    backend = options.backend
    if backend == "auto":
        backend = "kenlm" if find_tool("lmplz") and find_tool("build_binary") else "python"
    if backend == "python" and (options.prune or options.compact):
        raise InputError("--prune and --compact need KenLM's tools (`make lm-tools`, then --backend kenlm)")
    start = time.perf_counter()
    sentences, sources = collect_sentences(options)
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("lm.bin", "lm.arpa"):
        (out / stale).unlink(missing_ok=True)
    if backend == "kenlm":
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as f:
            f.write("".join(s + "\n" for s in sentences))
            corpus = Path(f.name)
        try:
            counts = _kenlm_build(corpus, out, options.order, options.prune, options.compact)
        finally:
            corpus.unlink(missing_ok=True)
        lm_file = "lm.bin"
    else:
        counts = write_arpa(sentences, out / "lm.arpa", options.order)
        lm_file = "lm.arpa"
    token_counts = None
    (out / "tokens.arpa").unlink(missing_ok=True)
    if options.token_order > 0:
        token_counts = write_arpa(
            token_sentences(sentences, options.tokenizer), out / "tokens.arpa", options.token_order
        )
    freq: dict[str, int] = {}
    for s in sentences:
        for w in s.split():
            freq[w] = freq.get(w, 0) + 1
    words = sorted(w for w, c in freq.items() if c >= options.min_count)
    (out / "words.txt").write_text("".join(w + "\n" for w in words), encoding="utf-8")
    with open(out / "lexicon.txt", "w", encoding="utf-8") as f:
        for w in words:
            f.write(f"{w}\t{' '.join(spell(w, options.tokenizer))}\n")
    card = {
        "format": CARD_FORMAT,
        "lm": lm_file,
        "order": options.order,
        "backend": "kenlm lmplz + build_binary" if backend == "kenlm" else "speechtao.lm.arpa (pure Python)",
        "smoothing": "interpolated modified Kneser-Ney",
        "prune": list(options.prune),
        "binary": ("trie, 8-bit quantized" if options.compact else "probing") if backend == "kenlm" else None,
        "counts": {str(k): v for k, v in sorted(counts.items())},
        "token_lm": None
        if token_counts is None
        else {
            "file": "tokens.arpa",
            "order": options.token_order,
            "counts": {str(k): v for k, v in token_counts.items()},
        },
        "sentences": len(sentences),
        "tokens": sum(freq.values()),
        "vocabulary": len(words),
        "normalizer": "speechtao.text.normalize.normalize_text",
        "tokenizer": _tokenizer_entry(options.tokenizer),
        "sources": sources,
        "license_notes": list(options.license_notes),
        "build_seconds": round(time.perf_counter() - start, 2),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    old = out / CARD
    if old.is_file():  # keep tuned decoding parameters only if the text is the same
        try:
            prev = json.loads(old.read_text(encoding="utf-8"))
            if prev.get("sources") == sources and prev.get("order") == options.order and "decoding" in prev:
                card["decoding"] = prev["decoding"]
        except json.JSONDecodeError:
            pass
    write_card(out, card)
    log.info("LM %s: %d sentences, %d words, counts %s (%s)", out, len(sentences), len(words), counts, backend)
    return card
