"""Clean English sentences from text that Debian packages ship: prompts for synthetic speech corpora and text for
tokenizers and language models, with no download.

=========== ============================================= ==========================================
source      Debian package(s)                             what is read
=========== ============================================= ==========================================
wordnet     wordnet-base                                  quoted example sentences in WordNet glosses
bible       bible-kjv-text, bible-kjv (its reader)        the King James Bible, chapter by chapter
fortunes    fortunes, fortunes-min                        fortune cookie files (a curated subset)
pydocs      python3-doc (python3.11-doc)                  prose paragraphs of the Python docs (reST)
=========== ============================================= ==========================================

:func:`iter_sentences` yields raw sentences of one source in file order; :func:`load_sentences` returns a
deterministic sample of *clean* ones: only ASCII letters, spaces and ``, ; : ! ? ' " ( ) -`` (no digits,
symbols, abbreviations or all-capital words, so any TTS engine reads the sentence exactly as
:func:`speechtao.text.normalize.normalize_text` writes its transcript), balanced quotes and brackets, ending
in a letter or ``. ! ?``, ``min_words``..``max_words`` words, deduplicated on the normalized text::

    sentences = load_sentences(["wordnet", "bible"], n=1000, seed=0)

The same arguments always give the same list (each source is walked in a seeded shuffle of its sentences).
"""

from __future__ import annotations

import functools
import glob
import random
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError, InputError, MissingDependencyError
from ..text.normalize import normalize_text

__all__ = [
    "TextSource",
    "SOURCES",
    "DEFAULT_SOURCES",
    "iter_sentences",
    "is_clean",
    "sample_sentences",
    "load_sentences",
    "mix_sentences",
    "is_available",
    "split_sentences",
]


@dataclass(frozen=True)
class TextSource:
    name: str
    description: str
    license: str
    packages: tuple[str, ...]  # Debian packages to install (apt-get install ...)
    path: str  # default location of the text (a file or folder)


SOURCES: dict[str, TextSource] = {
    s.name: s
    for s in [
        TextSource(
            "wordnet",
            "example sentences quoted in the glosses of WordNet 3.0 (about 48,000)",
            "WordNet 3.0 license (Princeton University): use, copy, modify and distribute with its notice kept",
            ("wordnet-base",),
            "/usr/share/wordnet",
        ),
        TextSource(
            "bible",
            "the King James Version of the Bible (1611), read with the `bible` program",
            "public domain text (Crown patent in the UK only); the reader `bible` (bible-kjv) is GPL-2+, run as "
            "a separate program",
            ("bible-kjv-text", "bible-kjv"),
            "/usr/lib/bible.data",
        ),
        TextSource(
            "fortunes",
            "fortune cookie files (curated subset; no art, code, ethnic or men-women files)",
            "fortune-mod data, distributed under BSD terms by Debian (short quotations from many authors)",
            ("fortunes", "fortunes-min"),
            "/usr/share/games/fortunes",
        ),
        TextSource(
            "pydocs",
            "prose paragraphs of the Python 3 documentation sources (reStructuredText)",
            "Python documentation: PSF License Agreement (see /usr/share/doc/python3.*/copyright)",
            ("python3-doc",),
            "/usr/share/doc/python3.11/html/_sources",
        ),
    ]
}

DEFAULT_SOURCES: tuple[str, ...] = ("wordnet", "bible", "fortunes")
"""What ``sources=None`` means: the general-English sources (pydocs is technical prose)."""

FORTUNE_FILES = (
    "computers",
    "cookie",
    "definitions",
    "education",
    "food",
    "fortunes",
    "goedel",
    "humorists",
    "kids",
    "law",
    "linux",
    "literature",
    "love",
    "magic",
    "medicine",
    "miscellaneous",
    "news",
    "paradoxum",
    "people",
    "pets",
    "platitudes",
    "riddles",
    "science",
    "songs-poems",
    "sports",
    "startrek",
    "tao",
    "wisdom",
    "work",
)


def _missing(source: TextSource, what: str) -> MissingDependencyError:
    return MissingDependencyError(
        f"text source {source.name!r}: {what} not found (install the Debian package(s): "
        f"apt-get install {' '.join(source.packages)})"
    )


# --- sentence splitting -------------------------------------------------------------------------------------

_WS_RE = re.compile(r"\s+")
_SPLIT_RE = re.compile(r"(?<=[.!?])([\"')\]]*)\s+(?=[\"'(\[]*[A-Z])")
_ABBREV_RE = re.compile(
    r"(?:\b(?:mr|mrs|ms|dr|st|mt|jr|sr|vs|etc|no|vol|fig|prof|gen|col|capt|e\.g|i\.e)|\b[A-Za-z])\.$", re.I
)


def split_sentences(text: str) -> Iterator[str]:
    """Split running text into sentences at ``. ! ?`` followed by a capital; abbreviations keep their text."""
    text = _WS_RE.sub(" ", text).strip()
    if not text:
        return
    pieces = _SPLIT_RE.split(text)
    # re.split with one group: [s0, closer0, s1, closer1, ...]; a closer belongs to the sentence before it.
    buf = ""
    for i in range(0, len(pieces), 2):
        sent = pieces[i] + (pieces[i + 1] if i + 1 < len(pieces) else "")
        buf = f"{buf} {sent}" if buf else sent
        if _ABBREV_RE.search(buf) and i + 2 < len(pieces):
            continue
        yield buf
        buf = ""
    if buf:
        yield buf


# --- readers ------------------------------------------------------------------------------------------------

_WORDNET_EXAMPLE_RE = re.compile(r'"([^"]+)"')


# Each reader checks its files at once (raising MissingDependencyError) and returns a lazy iterator.


def _wordnet(root: Path, source: TextSource) -> Iterator[str]:
    files = [root / f"data.{pos}" for pos in ("noun", "verb", "adj", "adv")]
    if not all(f.is_file() for f in files):
        raise _missing(source, f"WordNet data files data.noun/verb/adj/adv under {root}")
    return _wordnet_sentences(files)


def _wordnet_sentences(files: list[Path]) -> Iterator[str]:
    for f in files:
        with open(f, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith(" "):  # the license header
                    continue
                _, _, gloss = line.partition(" | ")
                for example in _WORDNET_EXAMPLE_RE.findall(gloss):
                    yield from split_sentences(example)


_BIBLE_VERSE_RE = re.compile(r"^\s+\d+ (.*)$")
_BIBLE_SMALL_CAPS = {"LORD": "Lord", "GOD": "God", "JEHOVAH": "Jehovah", "JAH": "Jah"}
_BIBLE_CAPS_RE = re.compile(r"\b(" + "|".join(_BIBLE_SMALL_CAPS) + r")\b")


def _bible(data_file: Path, source: TextSource) -> Iterator[str]:
    program = shutil.which("bible")
    if program is None:
        raise _missing(source, "the `bible` program")
    if not data_file.is_file():
        raise _missing(source, f"the Bible data file {data_file}")
    return _bible_sentences(program, data_file, source)


def _unsmallcaps(text: str) -> str:
    return _BIBLE_CAPS_RE.sub(lambda c: _BIBLE_SMALL_CAPS[c.group(1)], text)


def _bible_sentences(program: str, data_file: Path, source: TextSource) -> Iterator[str]:
    proc = subprocess.run(
        [program, "-l0", "-p", str(data_file.parent), "-d", data_file.name, "gen1:1-rev22:21"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        encoding="latin-1",
    )
    if proc.returncode != 0 or not proc.stdout.strip():
        detail = f"{program} exited {proc.returncode}: {proc.stderr.strip()[:200]}"
        raise _missing(source, f"readable Bible text ({detail})")
    chapter: list[str] = []
    for line in proc.stdout.splitlines():
        m = _BIBLE_VERSE_RE.match(line)
        if m:
            chapter.append(m.group(1))
        elif line.strip() and chapter:  # a "Book N" heading starts the next chapter
            yield from split_sentences(_unsmallcaps(" ".join(chapter)))
            chapter = []
    if chapter:
        yield from split_sentences(_unsmallcaps(" ".join(chapter)))


_OVERSTRIKE_RE = re.compile(r".\x08")
_ATTRIBUTION_RE = re.compile(r"^\s*(--|- |~)")


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _fortunes(root: Path, source: TextSource) -> Iterator[str]:
    files = [root / name for name in FORTUNE_FILES if (root / name).is_file()]
    if not files:
        raise _missing(source, f"fortune files ({', '.join(FORTUNE_FILES[:3])}, ...) under {root}")
    return _fortune_sentences(files)


def _fortune_sentences(files: list[Path]) -> Iterator[str]:
    for f in files:
        text = _OVERSTRIKE_RE.sub("", _read_text(f))
        for cookie in text.split("\n%\n"):
            lines = []
            for line in cookie.splitlines():
                if _ATTRIBUTION_RE.match(line):
                    break  # "-- Author": the quotation is over
                lines.append(line)
            yield from split_sentences(" ".join(lines))


_RST_ROLE_RE = re.compile(r":[a-z][\w:+-]*:`([^`]*)`")
_RST_LITERAL_RE = re.compile(r"``([^`]*)``")
_RST_LINK_RE = re.compile(r"`([^`<]*?)\s*(?:<[^>]*>)?`_{1,2}")
_RST_EMPHASIS_RE = re.compile(r"\*{1,2}([^*]+)\*{1,2}")
_RST_SKIP_START = re.compile(r"^(\.\.|[-*+|] |#\. |\d+\. |[=~^\"'`:#*+-]{3,}$|>>>|:[\w ]+:)")
_REJECT = "\x00"  # marks markup we cannot turn into words: the clean filter drops its sentence


def _rst_role(m: re.Match) -> str:
    inner = m.group(1)
    title = re.match(r"(.*?)\s*<[^>]*>$", inner)
    if title:
        return title.group(1)
    inner = inner.lstrip("!~")
    if m.group(0).startswith((":ref:", ":doc:")) or not re.fullmatch(r"[A-Za-z ]+", inner):
        return _REJECT  # a bare reference renders as a title we do not have; dotted names are code
    return inner


def _rst_literal(m: re.Match) -> str:
    inner = m.group(1)
    return inner if re.fullmatch(r"[A-Za-z]+", inner) else _REJECT


def _rst_paragraphs(text: str) -> Iterator[str]:
    """Top-level prose paragraphs of a reST file: no indented blocks, directives, lists, titles or tables."""
    block: list[str] = []
    for line in text.splitlines() + [""]:
        if line.strip():
            block.append(line)
            continue
        if block and not any(b[0].isspace() or _RST_SKIP_START.match(b) for b in block):
            yield " ".join(block)
        block = []


def _pydocs(root: Path, source: TextSource) -> Iterator[str]:
    files = sorted(root.rglob("*.rst.txt")) if root.is_dir() else []
    if not files:
        raise _missing(source, f"Python documentation sources (*.rst.txt) under {root}")
    return _pydocs_sentences(files)


def _pydocs_sentences(files: list[Path]) -> Iterator[str]:
    for f in files:
        for para in _rst_paragraphs(_read_text(f)):
            if para.rstrip().endswith("::"):  # introduces a code block
                para = para.rstrip()[:-1]
            para = _RST_ROLE_RE.sub(_rst_role, para)
            para = _RST_LITERAL_RE.sub(_rst_literal, para)
            para = _RST_LINK_RE.sub(r"\1", para)
            para = _RST_EMPHASIS_RE.sub(r"\1", para)
            yield from split_sentences(para)


def _default_path(source: TextSource) -> Path:
    if source.name == "pydocs" and not Path(source.path).is_dir():
        found = sorted(glob.glob("/usr/share/doc/python3*/html/_sources"))
        if found:
            return Path(found[-1])
    return Path(source.path)


_READERS = {"wordnet": _wordnet, "bible": _bible, "fortunes": _fortunes, "pydocs": _pydocs}


def _source(name: str) -> TextSource:
    if name not in SOURCES:
        raise InputError(f"text source {name!r} is unknown (choose from: {', '.join(SOURCES)})")
    return SOURCES[name]


def is_available(source: str) -> bool:
    """Whether ``source``'s Debian package(s) are installed here."""
    try:
        iter_sentences(source)
    except MissingDependencyError:
        return False
    return True


def iter_sentences(source: str, path: str | Path | None = None) -> Iterator[str]:
    """Raw sentences of ``source`` in file order (whitespace collapsed, markup removed, not yet filtered).

    ``path`` overrides the packaged location (:attr:`TextSource.path`). A missing package raises
    :class:`MissingDependencyError` naming the Debian package to install.
    """
    src = _source(source)
    root = Path(path) if path is not None else _default_path(src)
    return _READERS[source](root, src)


# --- cleaning and sampling ----------------------------------------------------------------------------------

_ALLOWED_RE = re.compile(r"[A-Za-z ,;:!?'\"()\-]*[A-Za-z][A-Za-z ,;:!?'\"()\-]*[.!?]?[\"')]*")
_CAPS_WORD_RE = re.compile(r"\b[A-Z]{2,}\b")
_INNER_STOP_RE = re.compile(r"[.!?](?![\"')])(?!$)")  # a stop inside, not closing a quotation
_BAD_END_RE = re.compile(r"[,;:(\-][\"')]*$")


def is_clean(sentence: str, min_words: int = 3, max_words: int = 20) -> str | None:
    """The normalized text of ``sentence`` if it is clean (see the module docstring), else ``None``."""
    if not _ALLOWED_RE.fullmatch(sentence):
        return None
    if _CAPS_WORD_RE.search(sentence) or _INNER_STOP_RE.search(sentence) or _BAD_END_RE.search(sentence):
        return None
    if sentence.count("(") != sentence.count(")") or sentence.count('"') % 2 or "()" in sentence:
        return None
    if sentence.startswith(("-", ",", ";", ":")) or "--" in sentence:
        return None
    normalized = normalize_text(sentence)
    n_words = normalized.count(" ") + 1 if normalized else 0
    if not min_words <= n_words <= max_words:
        return None
    return normalized


@functools.lru_cache(maxsize=8)
def _candidates(source: str) -> tuple[str, ...]:
    """Distinct raw sentences of ``source`` that pass the cheap character checks, in file order (cached)."""
    seen: set[str] = set()
    out = []
    for s in iter_sentences(source):
        if s not in seen and _ALLOWED_RE.fullmatch(s):
            seen.add(s)
            out.append(s)
    return tuple(out)


def sample_sentences(
    sources: list[str] | None, n: int, seed: int = 0, min_words: int = 3, max_words: int = 20
) -> dict[str, list[str]]:
    """A deterministic sample of ``n`` clean sentences, split as evenly as the sources allow.

    Returns ``{source: [sentences]}`` in the order of ``sources``. Duplicates (same normalized text) are
    removed across sources. ``sources=None`` means :data:`DEFAULT_SOURCES`. Raises :class:`DataError` when
    the sources hold fewer than ``n`` clean sentences.
    """
    if sources is None:
        sources = list(DEFAULT_SOURCES)
    if not sources:
        raise InputError("no text sources given (choose from: " + ", ".join(SOURCES) + ")")
    for name in sources:
        _source(name)
    if len(set(sources)) != len(sources):
        raise InputError(f"text sources {sources} repeat a name (give each source once)")
    if n < 1:
        raise InputError(f"n={n}: ask for at least one sentence")
    if not 1 <= min_words <= max_words:
        raise InputError(f"min_words={min_words}, max_words={max_words}: need 1 <= min_words <= max_words")

    # Each source walks its own shuffled candidate list; the walk position persists across rounds.
    orders = {}
    for name in sources:
        order = list(_candidates(name))
        random.Random(f"{seed}:{name}").shuffle(order)
        orders[name] = order
    pos = {name: 0 for name in sources}
    picked: dict[str, list[str]] = {name: [] for name in sources}
    seen: set[str] = set()
    active = list(sources)
    while active and sum(map(len, picked.values())) < n:
        remaining = n - sum(map(len, picked.values()))
        share, extra = divmod(remaining, len(active))
        for k, name in enumerate(list(active)):
            want = share + (1 if k < extra else 0)
            order = orders[name]
            while want and pos[name] < len(order):
                raw = order[pos[name]]
                pos[name] += 1
                key = is_clean(raw, min_words, max_words)
                if key is None or key in seen:
                    continue
                seen.add(key)
                picked[name].append(raw)
                want -= 1
            if pos[name] >= len(order):
                active.remove(name)
    total = sum(map(len, picked.values()))
    if total < n:
        counts = ", ".join(f"{k}: {len(v)}" for k, v in picked.items())
        raise DataError(
            f"only {total} clean sentences of {min_words}-{max_words} words in {counts}; asked for n={n} "
            "(lower n, widen min_words/max_words or add sources)"
        )
    return picked


def load_sentences(
    sources: list[str] | None, n: int, seed: int = 0, min_words: int = 3, max_words: int = 20
) -> list[str]:
    """``n`` clean raw sentences from ``sources`` (``None``: :data:`DEFAULT_SOURCES`; see
    :func:`sample_sentences`), interleaved by a seeded shuffle. Deterministic for the same arguments."""
    return mix_sentences(sample_sentences(sources, n, seed, min_words, max_words), seed)


def mix_sentences(picked: dict[str, list[str]], seed: int = 0) -> list[str]:
    """Interleave the per-source lists of :func:`sample_sentences` by a seeded shuffle."""
    out = [s for sents in picked.values() for s in sents]
    random.Random(f"{seed}:mix").shuffle(out)
    return out


def source_documents(source: str, doc_sentences: int, min_words: int = 2, max_words: int = 30) -> list[list[str]]:
    """Runs of consecutive clean sentences of ``source`` (file order), cut into documents of at most
    ``doc_sentences``; a sentence that fails the cleaning filter ends the run (its neighbours are not adjacent).
    WordNet's gloss examples get a capital first letter and a final period when they lack them."""
    docs: list[list[str]] = []
    run: list[str] = []
    for s in iter_sentences(source):
        if is_clean(s, min_words, max_words) is None:
            if run:
                docs.append(run)
            run = []
            continue
        if source == "wordnet":  # gloss examples start lower case and lack a final stop: make them sentences
            s = s[0].upper() + s[1:]
            if s[-1] not in ".!?\"'":
                s += "."
        run.append(s)
        if len(run) >= doc_sentences:
            docs.append(run)
            run = []
    if run:
        docs.append(run)
    return docs
