"""A tiny stand-in for the gensim 4.4.0 wheel's test data (speechtao.corpora.realtext): a MediaWiki XML dump
(bz2) with markup of every kind the cleaner removes, and a latin-1 news file of one document a line."""

from __future__ import annotations

import bz2
import zipfile
from pathlib import Path

from speechtao.corpora.realtext import GENSIM_DIR, GENSIM_FILES

ARTICLE = """{{Infobox country|name=Alpha|capital=[[Beta City]]}}
'''Alpha''' is a country in [[Europe|western Europe]] with a population of 3,500,000 people.<ref>{{cite web|url=http://x.org|title=Census}}</ref> Its capital is [[Beta City]], founded in 1204 by Mr. Gamma.
[[File:Flag.svg|thumb|The flag of [[Alpha]]]]
==History==
The kingdom of Alpha (from Latin ''alfa'') was formed on 12 May 1821, after a long war.<!-- hidden note --> Did the war end quickly? It did not, and it cost 40% of the budget.
* a list item that is not prose.
{| class="wikitable"
| cell one || cell two
|}
In the U.S. the country is known for its cheese, wine and music.
Alpha joined the [[European Union]] in 1995 and the euro in 2002.
[[Category:Countries]]
[[fr:Alpha]]"""


def _page(title: str, text: str, ns: int = 0, redirect: bool = False) -> str:
    red = '<redirect title="Alpha" />' if redirect else ""
    return (
        f'<page><title>{title}</title><ns>{ns}</ns><id>1</id>{red}<revision><text xml:space="preserve">'
        f"{text.replace('&', '&amp;').replace('<', '&lt;').replace('>', '&gt;')}</text></revision></page>"
    )


def _filler(i: int) -> str:
    return " ".join(
        f"Article {name} tells the story number {k} of the town of Delta, where Anna Smith lived for years."
        for k, name in enumerate(["one", "two", "three"], start=i * 3)
    )


def wiki_xml() -> bytes:
    pages = [_page("Alpha", ARTICLE), _page("AlphaRedirect", "#REDIRECT [[Alpha]]", redirect=True)]
    pages.append(_page("Talk:Alpha", "This talk page is not an article at all, is it?", ns=1))
    pages += [_page(f"Town {i}", _filler(i)) for i in range(12)]
    head = '<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/" version="0.10">'
    return (head + "".join(pages) + "</mediawiki>").encode("utf-8")


NEWS = [
    "The café in Paris reopened on Monday, the owner said. Customers queued for 2 hours! Was it worth it?",
    *[
        f"Officials in Sydney said on Tuesday that report {i} was finished. It will be published next week."
        for i in range(9)
    ],
]


def write(root: Path, wheel: bool = False) -> Path:
    """The fixture as a folder holding gensim/test/test_data/..., or (``wheel``) as a zip named like the wheel."""
    files = {GENSIM_FILES["wiki"]: bz2.compress(wiki_xml()), GENSIM_FILES["news"]: "\n".join(NEWS).encode("latin-1")}
    if wheel:
        path = root / "gensim-4.4.0-cp311-cp311-manylinux_2_28_x86_64.whl"
        with zipfile.ZipFile(path, "w") as zf:
            for name, data in files.items():
                zf.writestr(GENSIM_DIR + name, data)
        return path
    folder = root / "gensim_unzipped"
    (folder / GENSIM_DIR).mkdir(parents=True)
    for name, data in files.items():
        (folder / GENSIM_DIR / name).write_bytes(data)
    return folder
