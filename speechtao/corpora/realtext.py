"""Real cased English written by people: the Wikipedia and news text that the ``gensim`` 4.4.0 wheel ships as test
data, cleaned into sentences and grouped by document, for punctuation/capitalization and NER data.

=========== ==================================================================================== ================
source      file inside the wheel (``gensim/test/test_data/``)                                   a document is
=========== ==================================================================================== ================
wiki        ``enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2`` (MediaWiki   one article
            XML, 106 articles past the redirects; CC BY-SA)
news        ``lee_background.cor`` (Lee et al.'s news documents, latin-1, one document a line)   one line
=========== ==================================================================================== ================

The wheel is read at set-up time only (``pip download --no-deps gensim==4.4.0``; nothing is imported from it)::

    docs = read_documents("gensim-4.4.0-cp311-...whl")       # or the folder it was unzipped into
    split_documents(docs, eval_fraction=0.1, seed=0)         # {"train": [...], "dev": [...], "test": [...]}

Cleaning: wiki markup goes (templates, tables, references, comments, files and categories; links keep their
text), parenthesized asides go (pronunciations, dates of birth: nobody says them aloud), text is cut into
sentences at ``. ! ?`` before a capital (abbreviations such as *Mr.* or *U.S.* do not end one), and a sentence is
kept only if it looks like prose: 4-50 words, a capital or digit first, a final ``. ! ?``, balanced quotes, no
markup left, Latin letters only, and mostly letters. :func:`spoken_form` writes numbers as words, as an ASR
transcript does, keeping case and punctuation.
"""

from __future__ import annotations

import bz2
import hashlib
import html
import io
import re
import unicodedata
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError, InputError
from ..text.normalize import normalize_text
from .textsrc import split_sentences

__all__ = [
    "Document",
    "GENSIM_FILES",
    "REAL_SOURCES",
    "read_documents",
    "split_documents",
    "split_of",
    "clean_sentence",
    "wiki_text",
    "spoken_form",
]

GENSIM_DIR = "gensim/test/test_data/"
GENSIM_FILES = {
    "wiki": "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2",
    "news": "lee_background.cor",
}
REAL_SOURCES: tuple[str, ...] = tuple(GENSIM_FILES)
GET_IT = "pip download --no-deps gensim==4.4.0 -d DIR (the wheel, or the folder it was unzipped into)"


@dataclass(frozen=True)
class Document:
    source: str  # wiki or news
    doc_id: str  # the article title (wiki) or "news-<line number>"
    sentences: tuple[str, ...]


# ------------------------------------------------------------------------------------------------ reading


def _read_member(path: Path, name: str) -> bytes:
    """The bytes of ``gensim/test/test_data/<name>`` from the wheel at ``path`` or a folder holding the file
    (at ``gensim/test/test_data/<name>`` or directly)."""
    if path.is_file() and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            try:
                return zf.read(GENSIM_DIR + name)
            except KeyError:
                raise DataError(f"{path}: has no {GENSIM_DIR}{name} (is it the gensim 4.4.0 wheel? {GET_IT})") from None
    for candidate in (path / GENSIM_DIR / name, path / name):
        if candidate.is_file():
            return candidate.read_bytes()
    raise InputError(f"real text {path}: neither a gensim wheel nor a folder with {GENSIM_DIR}{name} ({GET_IT})")


def read_documents(path: str | Path, sources: Sequence[str] = REAL_SOURCES) -> list[Document]:
    """The documents of ``sources`` (see the module docstring) with their clean sentences; documents left
    without any are dropped. ``path``: the gensim wheel or a folder it was unzipped into."""
    path = Path(path)
    unknown = [s for s in sources if s not in GENSIM_FILES]
    if unknown or not sources:
        raise InputError(f"real text sources {list(sources)}: choose from {', '.join(REAL_SOURCES)}")
    if not path.exists():
        raise InputError(f"real text {path}: not found ({GET_IT})")
    docs: list[Document] = []
    for source in sources:
        raw = _read_member(path, GENSIM_FILES[source])
        pairs = _wiki_articles(bz2.decompress(raw)) if source == "wiki" else _news_articles(raw)
        for doc_id, text in pairs:
            sents = tuple(c for c in (clean_sentence(s) for s in _sentences(text)) if c)
            if sents:
                docs.append(Document(source, doc_id, sents))
    return docs


def _news_articles(raw: bytes) -> Iterator[tuple[str, str]]:
    for i, line in enumerate(raw.decode("latin-1").splitlines(), start=1):
        if line.strip():
            yield f"news-{i}", line


def _wiki_articles(xml: bytes) -> Iterator[tuple[str, str]]:
    """``(title, plain text)`` of every article (namespace 0, not a redirect) of a MediaWiki XML dump."""
    title = ns = text = None
    redirect = False
    for _, elem in ET.iterparse(io.BytesIO(xml), events=("end",)):
        tag = elem.tag.rsplit("}", 1)[-1]
        if tag == "title":
            title = elem.text
        elif tag == "ns":
            ns = elem.text
        elif tag == "redirect":
            redirect = True
        elif tag == "text":
            text = elem.text or ""
        elif tag == "page":
            if ns == "0" and not redirect and title and text:
                yield title, wiki_text(text)
            title = ns = text = None
            redirect = False
            elem.clear()


# ------------------------------------------------------------------------------------------------ wiki markup

_COMMENT_RE = re.compile(r"<!--.*?-->", re.S)
_REF_RE = re.compile(r"<ref[^>/]*/>|<ref[^>]*>.*?</ref>", re.S | re.I)
_BLOCK_TAG_RE = re.compile(
    r"<(math|gallery|timeline|source|syntaxhighlight|pre|code|score|imagemap)\b.*?</\1>", re.S | re.I
)
_TAG_RE = re.compile(r"</?[A-Za-z][^>]*>")
_TEMPLATE_RE = re.compile(r"\{\{[^{}]*\}\}")
_TABLE_RE = re.compile(r"\{\|(?:(?!\{\|)(?!\|\}).)*\|\}", re.S)
_LINK_RE = re.compile(r"\[\[([^\[\]]*)\]\]")
_EXTERNAL_RE = re.compile(r"\[(?:https?:)?//[^\s\]]*\s*([^\]]*)\]")
_DROP_NAMESPACES = ("file", "image", "category", "media")
_LINE_SKIP = ("*", "#", ":", ";", "|", "!", "{", "}", "=")


def _link(m: re.Match) -> str:
    inner = m.group(1)
    target, _, text = inner.partition("|")
    prefix = target.split(":", 1)[0].strip().lower() if ":" in target else ""
    if prefix in _DROP_NAMESPACES or (prefix and len(prefix) <= 3 and not text):
        return ""  # files, categories and interlanguage links (fr:Paris)
    return (text.rsplit("|", 1)[-1] if text else target.split(":", 1)[-1] if prefix else target).strip()


def _until_stable(pattern: re.Pattern, repl, text: str) -> str:
    while True:
        new = pattern.sub(repl, text)
        if new == text:
            return new
        text = new


def wiki_text(markup: str) -> str:
    """Plain prose paragraphs (one a line) of MediaWiki ``markup``: headings, lists, tables, templates, references
    and files are dropped, links keep their text, bold and italic marks go."""
    s = _COMMENT_RE.sub("", markup)
    s = _REF_RE.sub("", s)
    s = _BLOCK_TAG_RE.sub("", s)
    s = _until_stable(_TEMPLATE_RE, "", s)
    s = _until_stable(_TABLE_RE, "", s)
    s = _until_stable(_LINK_RE, _link, s)
    s = _EXTERNAL_RE.sub(r"\1", s)
    s = _TAG_RE.sub("", s)
    s = html.unescape(s).replace("\u00a0", " ").replace("'''", "").replace("''", "")
    return "\n".join(line for line in s.splitlines() if line.strip() and not line.lstrip().startswith(_LINE_SKIP))


# ------------------------------------------------------------------------------------------------ sentences

_PAREN_RE = re.compile(r"\s*\([^()]*\)")
_SPACE_PUNCT_RE = re.compile(r"\s+([,;:.!?])")
_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": " - "})
_JUNK_RE = re.compile(r"[\[\]{}|<>=*_#\\@~^]|https?:|www\.|\.\.|,,|\s[,;:]|[,;:][.!?]")
_END_RE = re.compile(r"[.!?][\"')]?$")


def _sentences(text: str) -> Iterator[str]:
    for paragraph in text.splitlines():
        yield from split_sentences(paragraph)


def _latin(text: str) -> bool:
    return all(ord(c) < 0x250 or c in "\u2018\u2019\u201c\u201d\u2013\u2014" for c in text)


def clean_sentence(sentence: str) -> str | None:
    """``sentence`` tidied (asides in brackets dropped, curly quotes and dashes made plain, spaces before marks
    removed) if it looks like prose (see the module docstring), else ``None``."""
    s = _until_stable(_PAREN_RE, "", unicodedata.normalize("NFC", sentence)).translate(_QUOTES)
    s = _SPACE_PUNCT_RE.sub(r"\1", re.sub(r"\s+", " ", s)).strip()
    words = s.split()
    if not 4 <= len(words) <= 50 or not _latin(s) or _JUNK_RE.search(s) or not _END_RE.search(s):
        return None
    if not (s[0].isupper() or s[0].isdigit() or (s[0] in "\"'" and len(s) > 1 and s[1].isupper())):
        return None
    if s.count('"') % 2 or s.count("(") != s.count(")"):
        return None
    visible = s.replace(" ", "")
    if sum(c.isalpha() for c in visible) < 0.8 * len(visible):
        return None
    return s


# ------------------------------------------------------------------------------------------------ spoken form

_ACRONYM_RE = re.compile(r"\b((?:[A-Za-z]\.){2,})")
_ABBREVIATIONS = (
    "Mr|Mrs|Ms|Dr|St|Jr|Sr|Prof|Gen|Col|Capt|Lt|Sgt|Mt|Inc|Ltd|Co|Corp|vs|etc|No|Jan|Feb|Aug|Sept|Oct|Nov|Dec"
)
_ABBREV_RE = re.compile(rf"\b({_ABBREVIATIONS})\.(?!$)")
_RANGE_RE = re.compile(r"(\d)\s*-\s*(\d)")
_NUMBER_RE = re.compile(
    r"(?<![A-Za-z0-9])[$£€]?\d+(?:[.,:/]\d+)*(?:\s?(?:%|percent\b))?(?:st|nd|rd|th|s)?(?:\s?[ap]\.?m\b\.?)?(?:\s(?:million|billion))?"
)


def _acronym(m: re.Match) -> str:
    letters = m.group(1).replace(".", "")
    return letters + ("." if m.end() == len(m.string) else "")


_LIGATURES = str.maketrans(
    {"\u00e6": "ae", "\u00c6": "Ae", "\u0153": "oe", "\u00df": "ss", "\u00f8": "o", "\u00d8": "O"}
)


def spoken_form(sentence: str) -> str:
    """``sentence`` as a transcript would write it, case and punctuation kept: numbers, amounts, times and years as
    words (:func:`speechtao.text.normalize.normalize_text`'s readings; ``1914-1918`` reads "... to ..."),
    *U.S.* -> *US*, *Mr.* -> *Mr* (the period of a sentence's last word stays), letters without accents."""
    s = unicodedata.normalize("NFKD", sentence.translate(_LIGATURES))
    s = "".join(c for c in s if not unicodedata.combining(c))
    s = _ACRONYM_RE.sub(_acronym, s)
    s = _ABBREV_RE.sub(r"\1", s)
    s = _RANGE_RE.sub(r"\1 to \2", s)

    def number(m: re.Match) -> str:
        words = normalize_text(m.group(0))
        return words[:1].upper() + words[1:] if m.start() == 0 else words

    return _NUMBER_RE.sub(number, s).replace("&", "and")


# ------------------------------------------------------------------------------------------------ splits


def split_of(doc: Document, eval_fraction: float, seed: int) -> str:
    """``test``, ``dev`` or ``train`` for ``doc`` by a seeded hash of its source and id (each held-out split gets
    about ``eval_fraction`` of the documents)."""
    h = int(hashlib.sha1(f"{seed}:{doc.source}:{doc.doc_id}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "test" if h < eval_fraction else "dev" if h < 2 * eval_fraction else "train"


def split_documents(docs: Sequence[Document], eval_fraction: float = 0.1, seed: int = 0) -> dict[str, list[Document]]:
    """Documents by split (no document in two splits; see :func:`split_of`)."""
    if not 0 < eval_fraction < 0.5:
        raise InputError(f"eval_fraction={eval_fraction}: must be between 0 and 0.5 (each of dev and test)")
    out: dict[str, list[Document]] = {"train": [], "dev": [], "test": []}
    for d in docs:
        out[split_of(d, eval_fraction, seed)].append(d)
    return out
