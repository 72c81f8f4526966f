"""The general English LM of the shipped starters, from text already on this machine (no download).

Sources (each optional but the Debian ones; their licenses go into the LM card):

- the Debian text packages of :mod:`speechtao.corpora.textsrc` (WordNet glosses, the King James Bible,
  fortunes, the Python documentation), every sentence, not only the TTS-clean ones;
- with ``gensim_wheel`` (``pip download --no-deps gensim==4.4.0``): the test data inside the gensim wheel,
  ``lee_background.cor`` (300 news documents) and a 211-page English Wikipedia extract (wiki markup stripped).

Usage::

    text = write_general_text("general.txt", gensim_wheel="gensim-4.4.0-....whl")   # {"bible": 31102, ...}
"""

from __future__ import annotations

import bz2
import logging
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

from ..errors import InputError

log = logging.getLogger(__name__)

DEBIAN_SOURCES = ("wordnet", "bible", "fortunes", "pydocs")
GENSIM_LEE = "gensim/test/test_data/lee_background.cor"
GENSIM_WIKI = "gensim/test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"


def licenses() -> dict[str, str]:
    """What the card says of each source's license (the Debian ones as :mod:`speechtao.corpora.textsrc` has them)."""
    from ..corpora.textsrc import SOURCES

    return {name: SOURCES[name].license for name in DEBIAN_SOURCES} | GENSIM_LICENSES


GENSIM_LICENSES = {
    "gensim-lee": "gensim 4.4.0 test data lee_background.cor (Lee et al. news corpus), shipped in the LGPL-2.1 gensim "
    "wheel; research-corpus terms of its authors",
    "gensim-wiki": "gensim 4.4.0 test data: English Wikipedia extract (CC BY-SA 3.0 / GFDL; attribution: Wikipedia "
    "contributors)",
}

_WIKI_DROP = [
    re.compile(r"\{\{[^{}]*\}\}"),  # templates (innermost first; applied repeatedly)
    re.compile(r"\{\|.*?\|\}", re.S),  # tables
    re.compile(r"<ref[^>]*/>|<ref[^>]*>.*?</ref>", re.S),
    re.compile(r"<!--.*?-->", re.S),
    re.compile(r"<[^>]+>"),
    re.compile(r"\[\[(?:File|Image|Category|[a-z-]{2,12}):[^\]]*\]\]"),
]
_WIKI_LINK = re.compile(r"\[\[(?:[^|\]]*\|)?([^\]]*)\]\]")
_WIKI_EXT = re.compile(r"\[(?:https?|ftp)://\S+\s*([^\]]*)\]")
_TEXT = re.compile(r"<text[^>]*>(.*?)</text>", re.S)


def _wiki_paragraphs(xml: str) -> Iterator[str]:
    import html

    for m in _TEXT.finditer(xml):
        text = html.unescape(m.group(1))
        if text.lstrip().upper().startswith("#REDIRECT"):
            continue
        for _ in range(3):
            for pat in _WIKI_DROP:
                text = pat.sub(" ", text)
        text = _WIKI_EXT.sub(r"\1", _WIKI_LINK.sub(r"\1", text))
        for line in text.splitlines():
            line = line.strip().replace("'''", "").replace("''", "")
            # Prose lines only: no headings, lists, tables or leftover markup.
            if len(line) > 40 and line[0].isalnum() and not re.search(r"[{}|=\[\]]", line):
                yield line


def gensim_texts(wheel: str | Path) -> dict[str, list[str]]:
    """Paragraphs of the two gensim test corpora inside the wheel."""
    p = Path(wheel)
    if not p.is_file():
        raise InputError(f"--gensim-wheel {p}: not found (pip download --no-deps gensim==4.4.0 -d DIR)")
    with zipfile.ZipFile(p) as z:
        names = set(z.namelist())
        missing = [n for n in (GENSIM_LEE, GENSIM_WIKI) if n not in names]
        if missing:
            raise InputError(f"{p}: lacks {missing[0]} (use the gensim 4.4.0 wheel)")
        lee = z.read(GENSIM_LEE).decode("latin-1").splitlines()
        wiki = list(_wiki_paragraphs(bz2.decompress(z.read(GENSIM_WIKI)).decode("utf-8", "replace")))
    return {"gensim-lee": [x for x in lee if x.strip()], "gensim-wiki": wiki}


def write_general_text(
    out: str | Path, *, gensim_wheel: str | Path | None = None, exclude: set[str] = frozenset(), debian: bool = True
) -> dict[str, int]:
    """Write the general text, one sentence or paragraph a line, to ``out``; returns lines per source.

    ``exclude``: normalized sentences to leave out (e.g. the transcripts of the test sets an LM is scored on).
    """
    from ..corpora.textsrc import iter_sentences
    from ..text.normalize import normalize_text

    texts: dict[str, list[str]] = {name: list(iter_sentences(name)) for name in DEBIAN_SOURCES} if debian else {}
    if gensim_wheel is not None:
        texts.update(gensim_texts(gensim_wheel))
    counts = {}
    dest = Path(out)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest, "w", encoding="utf-8") as f:
        for name, lines in texts.items():
            n = 0
            for line in lines:
                line = " ".join(line.split())
                if line and normalize_text(line) not in exclude:
                    f.write(line + "\n")
                    n += 1
            counts[name] = n
    log.info("general text %s: %s", dest, counts)
    return counts
