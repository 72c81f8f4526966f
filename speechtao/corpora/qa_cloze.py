"""Questions asked of real sentences: broad-coverage QA training data without a question-generation model.

The templated QA sources (:mod:`speechtao.corpora.qa_gen`) teach some twenty relations well and nothing else: on
hand-written questions about other relations (``bench/qa_handwritten_dev.json``) a model trained on them
mostly answers nothing or the wrong span. This module turns real sentences (WordNet 3.0 usage examples, the
King James Bible, fortune files; see :mod:`speechtao.corpora.textsrc`) into questions whose answer is a span of
the sentence, in two ways:

* **wh-questions with do-support** for simple ``subject verb ...`` sentences, using WordNet's word lists and
  its verb exception list to recognize the verb and put it in its base form::

      The committee approved the new budget on Friday.
      -> "What did the committee approve on Friday?"          (answer: "the new budget")
      -> "What approved the new budget on Friday?"            (answer: "The committee")
      She moved to Paris in 1891.  -> "When did she move to Paris?"   (answer: "1891")

* **cloze questions** otherwise: the answer span replaced by a wh-word in place (``"He put his coat over the
  back of what?"``), the fallback of unsupervised QA (Lewis et al., 2019, "Unsupervised Question Answering by
  Cloze Translation", ACL).

A paragraph is 3-5 sentences (consecutive ones of the Bible and the fortune files, unrelated usage examples of
WordNet; never a Bible sentence that a test paragraph holds), one of which is asked about; now and then a word of the question is dropped so that the model cannot
match the question to its sentence word for word, and a share of the questions is made unanswerable by taking
the asked sentence out of the paragraph. The rules are heuristics without a parser: some questions come out
clumsy or wrong, as in the cloze literature; ``make_qa_data`` adds them to the training split only (validation
and test stay as they were).
"""

from __future__ import annotations

import functools
import random
import re
from collections.abc import Sequence
from pathlib import Path

from ..errors import InputError

__all__ = ["CLOZE_SOURCES", "fronted_questions", "cloze_questions", "cloze_examples"]

CLOZE_SOURCES = {"wordnet": 0.5, "bible": 0.25, "fortunes": 0.25}  # share of the questions per text source

_WORD_RE = re.compile(r"[A-Za-z][A-Za-z'-]*|\d+")
_YEAR_RE = re.compile(r"1\d\d\d|20\d\d")
AUX = frozenset(
    {
        "is",
        "was",
        "were",
        "are",
        "has",
        "had",
        "have",
        "will",
        "can",
        "could",
        "would",
        "should",
        "may",
        "might",
        "must",
        "did",
        "does",
        "shall",
    }
)
DETS = frozenset(
    {"the", "a", "an", "his", "her", "their", "my", "your", "our", "its", "this", "that", "these", "those"}
)
FUNCTION_WORDS = frozenset(
    {
        "in",
        "on",
        "at",
        "to",
        "from",
        "with",
        "by",
        "for",
        "of",
        "and",
        "or",
        "but",
        "into",
        "about",
        "when",
        "while",
        "because",
        "as",
        "than",
        "after",
        "before",
        "if",
        "that",
        "which",
        "who",
        "so",
    }
)
PLACE_PREPS = frozenset({"in", "at", "from", "into", "near", "toward", "towards", "through"})
PRONOUNS = frozenset(
    {
        "he",
        "she",
        "it",
        "they",
        "we",
        "i",
        "you",
        "this",
        "that",
        "there",
        "these",
        "those",
        "one",
        "what",
        "who",
        "which",
        "here",
        "some",
        "many",
        "all",
        "each",
        "everyone",
        "nobody",
        "someone",
        "something",
    }
)
SUBJECT_PRONOUNS = {"he": "sg", "she": "sg", "they": "pl", "we": "pl", "i": "pl", "you": "pl"}
NOT_NAMES = frozenset(
    {
        "And",
        "The",
        "Then",
        "Now",
        "But",
        "For",
        "When",
        "Thus",
        "So",
        "Also",
        "Even",
        "Lord",
        "God",
        "Behold",
        "Unto",
        "Yea",
        "Which",
        "I",
        "O",
        "Thou",
        "Ye",
        "He",
        "She",
        "It",
        "They",
        "We",
        "You",
    }
)
COUNT_WORDS = frozenset(
    {
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "twenty",
        "thirty",
        "forty",
        "fifty",
        "hundred",
        "thousand",
    }
)
WH_WORDS = frozenset({"who", "what", "where", "when", "how", "many"})
# tests/e2e/test_nlp_qa_model.py asks about dying, designing, opening and connecting to measure how far the model
# generalizes: questions that use those words are left out, as the templates leave them out
UNTAUGHT = re.compile(r"\b(die|dead|death|open|design|connect)", re.I)
_PERSON, _LOCATION = 18, 15  # WordNet lexicographer files noun.person and noun.location


class _Lexicon:
    """Word lists of WordNet 3.0 (Debian wordnet-base): nouns, verbs, adjectives, irregular forms, and the
    capitalized noun lemmas with their lexicographer file (to tell people from places)."""

    def __init__(self, root: Path):
        files = {
            name: root / name for name in ("index.noun", "index.verb", "index.adj", "data.noun", "verb.exc", "noun.exc")
        }
        missing = [str(p) for p in files.values() if not p.is_file()]
        if missing:
            from .textsrc import SOURCES, _missing

            raise _missing(SOURCES["wordnet"], f"the WordNet files {', '.join(missing)}")
        self.nouns = self._index(files["index.noun"])
        self.verbs = self._index(files["index.verb"])
        self.adjectives = self._index(files["index.adj"])
        self.noun_forms = {line.split()[0] for line in self._lines(files["noun.exc"])}
        self.past = {}  # irregular verb form -> base form ("took" -> "take"); -ing forms left out
        for line in self._lines(files["verb.exc"]):
            form, base = line.split()[:2]
            if not form.endswith("ing"):
                self.past.setdefault(form, base)
        self.capitalized: dict[str, int] = {}
        for line in self._lines(files["data.noun"]):
            fields = line.split(" ", 5)
            if fields[4][:1].isupper():
                self.capitalized.setdefault(fields[4].split("_")[0], int(fields[1]))

    @staticmethod
    def _lines(path: Path):
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.strip() and not line.startswith(" "):  # data/index files open with a license block
                    yield line

    @classmethod
    def _index(cls, path: Path) -> frozenset[str]:
        return frozenset(line.split(" ", 1)[0] for line in cls._lines(path))

    def is_noun(self, word: str) -> bool:
        w = word.lower()
        return (
            w in self.nouns
            or w in self.noun_forms
            or (w.endswith("s") and w[:-1] in self.nouns)
            or (w.endswith("es") and w[:-2] in self.nouns)
        )

    def is_modifier(self, word: str) -> bool:
        return self.is_noun(word) or word.lower() in self.adjectives

    def is_name(self, word: str) -> bool:
        """A capitalized word that reads as a name: a WordNet person or place, or no common word at all."""
        if not word[:1].isupper() or not word.isalpha() or word in NOT_NAMES:
            return False
        w = word.lower()
        if self.capitalized.get(word) in (_PERSON, _LOCATION):
            return True
        return not (w in self.nouns or w in self.adjectives or w in self.verbs or w in AUX or w in DETS)

    def is_place(self, word: str) -> bool:
        return self.capitalized.get(word) == _LOCATION

    def verb(self, word: str, number: str) -> tuple[str, str] | None:
        """``(do-word, base form)`` when ``word`` reads as a finite lexical verb after a subject of ``number``
        (``sg``/``pl``): ``took`` -> ("did", "take"), ``stopped`` -> ("did", "stop"), ``walks`` -> ("does",
        "walk"); None for auxiliaries and words that are not verbs."""
        w = word.lower()
        if w in AUX or w in ("do", "be", "been", "being", "not"):
            return None
        if w in self.past and self.past[w] in self.verbs:
            return "did", self.past[w]
        if w.endswith("ied") and w[:-3] + "y" in self.verbs:
            return "did", w[:-3] + "y"
        if w.endswith("ed"):
            doubled = w[:-3] if len(w) > 4 and w[-3] == w[-4] else ""
            for stem in (w[:-2], w[:-1], doubled):
                if stem and stem in self.verbs:
                    return "did", stem
            return None
        if number == "sg" and w.endswith("s") and not w.endswith("ss") and not self.is_noun(w):
            for stem in (w[:-1], w[:-2] if w.endswith("es") else ""):
                if stem and stem in self.verbs:
                    return "does", stem
        if number == "pl" and w in self.verbs and w not in self.nouns:
            return "do", w
        return None


@functools.lru_cache(maxsize=2)
def _lexicon(root: str = "/usr/share/wordnet") -> _Lexicon:
    return _Lexicon(Path(root))


def _tokens(text: str) -> list[tuple[str, int, int]]:
    return [(m.group(), m.start(), m.end()) for m in _WORD_RE.finditer(text)]


def _adjacent(text: str, left: tuple[str, int, int], right: tuple[str, int, int]) -> bool:
    """The two tokens are separated by one space (no punctuation between them)."""
    return text[left[2] : right[1]] == " "


def _name_end(lex: _Lexicon, text: str, toks: list, i: int) -> int:
    """Index after the run of up to 3 adjacent name words that starts at token ``i`` (itself a name)."""
    j = i + 1
    while j < min(len(toks), i + 3) and lex.is_name(toks[j][0]) and _adjacent(text, toks[j - 1], toks[j]):
        j += 1
    return j


def _join(*parts: str) -> str:
    return re.sub(r"\s+", " ", " ".join(p.strip(" ,;:") for p in parts if p and p.strip(" ,;:")))


def _noun_phrase_end(lex: _Lexicon, text: str, toks: list, i: int) -> int | None:
    """Index after a ``determiner modifier* noun`` phrase that starts at token ``i`` (a determiner), or None."""
    j = i + 1
    while (
        j < len(toks)
        and j - i <= 3
        and toks[j][0].islower()
        and toks[j][0] not in FUNCTION_WORDS
        and toks[j][0] not in AUX
        and toks[j][0] not in DETS
        and _adjacent(text, toks[j - 1], toks[j])
        and lex.is_modifier(toks[j][0])
    ):
        j += 1
    while j > i + 1 and not lex.is_noun(toks[j - 1][0]):
        j -= 1
    if j == i + 1 or (j < len(toks) and toks[j][0] == "of"):  # "the back of ..." asks badly
        return None
    return j


def fronted_questions(sentence: str) -> list[tuple[int, int, str]]:
    """``(answer start, answer end, question)`` wh-questions of a simple ``subject verb ...`` sentence: the
    subject (who/what + verb), the object after the verb (what/who did ...), a year after "in"/"since"
    (when), a name after a place preposition (where), a count before a plural noun (how many)."""
    lex = _lexicon()
    toks = _tokens(sentence)
    if not 4 <= len(toks) <= 25:
        return []
    body = sentence.rstrip(" .!?;:")
    first = toks[0][0]
    ask_subject: str | None = None
    if first.lower() in SUBJECT_PRONOUNS:
        k, number, subject = 1, SUBJECT_PRONOUNS[first.lower()], first if first == "I" else first.lower()
    elif lex.is_name(first):
        k = _name_end(lex, sentence, toks, 0)
        number, subject = "sg", body[: toks[k - 1][2]]
        ask_subject = "What" if lex.is_place(first) else "Who"
    elif first.lower() not in PRONOUNS and (first.lower() in DETS or lex.is_modifier(first)):
        k = 1
        while (
            k < min(len(toks), 4)
            and toks[k][0].islower()
            and lex.is_modifier(toks[k][0])
            and toks[k][0] not in AUX
            and _adjacent(sentence, toks[k - 1], toks[k])
            and lex.verb(toks[k][0], "sg") is None
        ):
            k += 1
        if not lex.is_noun(toks[k - 1][0]) or (k == 1 and first.lower() in DETS):
            return []
        last = toks[k - 1][0].lower()
        number = "pl" if last.endswith("s") and not last.endswith("ss") else "sg"
        subject = body[: toks[k - 1][2]]
        subject = subject[0].lower() + subject[1:]
        ask_subject = "What"
    else:
        return []
    if k >= len(toks) or not _adjacent(sentence, toks[k - 1], toks[k]):
        return []
    verb = lex.verb(toks[k][0], number)
    if verb is None:
        return []
    do, base = verb
    verb_end = toks[k][2]
    out = []
    if ask_subject:
        out.append((0, toks[k - 1][2], f"{ask_subject} {body[toks[k][1] :]}?"))
    rest = [(w, a + verb_end, b + verb_end) for w, a, b in _tokens(body[verb_end:])]
    if not rest:
        return out
    head = f"{do} {subject} {base}"
    w, a, _ = rest[0]
    if w.lower() in DETS and w.lower() not in ("that", "this"):
        j = _noun_phrase_end(lex, sentence, rest, 0)
        if j is not None:
            end = rest[j - 1][2]
            out.append((a, end, _join(f"What {head}", body[end:]) + "?"))
    elif lex.is_name(w) and not lex.is_place(w):
        end = rest[_name_end(lex, sentence, rest, 0) - 1][2]
        out.append((a, end, _join(f"Who {head}", body[end:]) + "?"))
    for i in range(1, len(rest)):
        (pw, pa, _), (w, a, b) = rest[i - 1], rest[i]
        if pw.lower() in ("in", "since") and _YEAR_RE.fullmatch(w):
            out.append((a, b, _join(f"When {head}", body[verb_end:pa], body[b:]) + "?"))
        elif (pw.lower() in PLACE_PREPS or (pw == "to" and lex.is_place(w))) and lex.is_name(w):
            end = rest[_name_end(lex, sentence, rest, i) - 1][2]
            out.append((a, end, _join(f"Where {head}", body[verb_end:pa], body[end:]) + "?"))
    for i in range(len(rest) - 1):
        (w, a, b), (noun, _, nb) = rest[i], rest[i + 1]
        if (w.lower() in COUNT_WORDS or w.isdigit()) and noun.islower() and noun.endswith("s") and lex.is_noun(noun):
            out.append((a, b, _join(f"How many {noun} {head}", body[verb_end:a], body[nb:]) + "?"))
    return out


def cloze_questions(sentence: str) -> list[tuple[int, int, str]]:
    """``(answer start, answer end, question)`` with the answer replaced by a wh-word where it stands: a
    subject before an auxiliary (who/what), a name (who, or where after a place preposition), a year after
    "in" (when), a count (how many), a ``determiner ... noun`` phrase (what)."""
    lex = _lexicon()
    toks = _tokens(sentence)
    if not 5 <= len(toks) <= 30:
        return []
    body = sentence.rstrip(" .!?;:")
    out = []
    for i, (w, a, _) in enumerate(toks[:6]):  # "The old king was ..." -> "Who/What was ...?"
        if w.lower() in AUX and i >= 1:
            subject = toks[:i]
            head = subject[0][0]
            if "," in sentence[:a] or head.lower() in PRONOUNS or (len(subject) == 1 and head.lower() in DETS):
                break
            names = all(lex.is_name(t[0]) for t in subject)
            if head.lower() in DETS or names:
                out.append((subject[0][1], subject[-1][2], f"{'Who' if names else 'What'} {body[a:]}?"))
            break
    i = 1
    while i < len(toks):
        w = toks[i][0]
        if lex.is_name(w) and toks[i - 1][0].lower() != "the" and _adjacent(sentence, toks[i - 1], toks[i]):
            j = _name_end(lex, sentence, toks, i) - 1
            a, b = toks[i][1], toks[j][2]
            if toks[i - 1][0].lower() in PLACE_PREPS:
                out.append((a, b, _join(body[: toks[i - 1][1]], "where", body[b:]) + "?"))
            else:
                out.append((a, b, _join(body[:a], "who", body[b:]) + "?"))
            i = j + 1
        else:
            i += 1
    for i, (w, a, b) in enumerate(toks):
        if i and toks[i - 1][0].lower() in ("in", "since") and _YEAR_RE.fullmatch(w):
            out.append((a, b, _join(body[: toks[i - 1][1]], "when", body[b:]) + "?"))
        elif (
            (w.lower() in COUNT_WORDS or w.isdigit())
            and i + 1 < len(toks)
            and toks[i + 1][0].islower()
            and toks[i + 1][0].endswith("s")
        ):
            out.append((a, b, _join(body[:a], "how many", body[b:]) + "?"))
        elif i >= 2 and w.lower() in DETS and w.lower() not in ("that", "this"):
            j = _noun_phrase_end(lex, sentence, toks, i)
            if j is None:
                continue
            end = toks[j - 1][2]
            if j < len(toks) and toks[j][0] not in FUNCTION_WORDS and sentence[end : end + 1] not in ",;:.!?":
                continue  # the phrase runs on: its end is unclear
            out.append((a, end, _join(body[:a], "what", body[end:]) + "?"))
    return [(a, b, q[0].upper() + q[1:]) for a, b, q in out if len(q.split()) >= 4]


def _drop_a_word(question: str, rng: random.Random, p: float = 0.3) -> str:
    """Now and then drop one word (never the wh-words), so that questions do not repeat their sentence exactly."""
    words = question[:-1].split()
    if len(words) > 6 and rng.random() < p:
        k = rng.randrange(1, len(words))
        if words[k].lower() not in WH_WORDS:
            del words[k]
    return " ".join(words) + "?"


def cloze_examples(
    n: int,
    seed: int = 0,
    unanswerable: float = 0.1,
    shares: dict[str, float] | None = None,
    sentences: dict[str, Sequence[str]] | None = None,
) -> list:
    """``n`` training questions (:class:`speechtao.nlp.squad.QAExample`) about real paragraphs, ids
    ``train-cloze-<k>``; ``sentences`` gives each source's sentences in text order (default: read with
    :func:`speechtao.corpora.textsrc.iter_sentences`)."""
    from ..nlp.squad import Answer, QAExample
    from .qa_gen import bible_test_sentences
    from .textsrc import iter_sentences

    if n < 0 or not 0.0 <= unanswerable < 0.5:
        raise InputError(f"n={n}, unanswerable={unanswerable}: give n >= 0 and a fraction in [0, 0.5)")
    shares = shares or CLOZE_SOURCES
    rng = random.Random(f"{seed}:cloze")
    total = sum(shares.values())
    out = []
    for source, share in shares.items():
        pool = list(sentences[source]) if sentences else list(iter_sentences(source))
        if source == "bible":  # test's Bible paragraphs stay unseen: their sentences are left out
            held_out = bible_test_sentences(pool)
            pool = [s for s in pool if s not in held_out]
        want, tries = round(n * share / total), 0
        made = 0
        while made < want and len(pool) > 5:
            tries += 1
            if tries > 50 * want + 1000:
                raise InputError(f"cloze source {source!r}: too few sentences to ask {want} questions of")
            k = rng.randint(3, 5)
            if source == "wordnet":  # unrelated usage examples, made into sentences
                chosen = [pool[rng.randrange(len(pool))] for _ in range(k)]
                chosen = [s[0].upper() + s[1:] + ("" if s[-1] in ".!?" else ".") for s in chosen]
            else:
                start = rng.randrange(len(pool) - k)
                chosen = pool[start : start + k]
            asked_by_rule = {i: q for i, q in enumerate(map(fronted_questions, chosen)) if q}
            if asked_by_rule and rng.random() < 0.8:
                asked = rng.choice(list(asked_by_rule))
                candidates = asked_by_rule[asked]
            else:
                asked = rng.randrange(k)
                candidates = cloze_questions(chosen[asked])
            if not candidates:
                continue
            a, b, question = rng.choice(candidates)
            if UNTAUGHT.search(question):
                continue
            question = _drop_a_word(question, rng)
            impossible = rng.random() < unanswerable
            kept = chosen[:asked] + chosen[asked + 1 :] if impossible else chosen
            context = " ".join(kept)
            if len(context) > 1200:
                continue
            qid, title = f"train-cloze-{len(out)}", f"cloze-{source}"
            meta = {"source": "cloze", "question_template": f"cloze-{source}", "group": f"cloze-{source}"}
            if impossible:
                ex = QAExample(qid, question, context, (), True, title, meta)
            else:
                offset = len(" ".join(chosen[:asked])) + (1 if asked else 0)
                answer = Answer(context[offset + a : offset + b], offset + a)
                if context.count(answer.text) != 1:  # the same words elsewhere make the span ambiguous
                    continue
                ex = QAExample(qid, question, context, (answer,), False, title, meta)
            out.append(ex)
            made += 1
    rng.shuffle(out)
    return out
