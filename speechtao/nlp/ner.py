"""Named entity recognition: one IOB tag per word over a pretrained encoder.

Data: NeMo's two-file format, one sentence per line in each file of a folder::

    text.txt     Maria Lopez flew to Lisbon on 3 May 2004 .
    labels.txt   B-PER I-PER O O B-LOC O B-DATE I-DATE I-DATE O

Tags are IOB2 (``B-`` starts an entity, ``I-`` continues it, ``O`` is outside). :func:`convert_conll` reads
CoNLL column files (word first, tag last; ``-DOCSTART-`` lines skipped, blank lines end sentences) and turns
IOB1 into IOB2. :func:`make_data` generates varied sentences from hand-written templates filled with real
names: people, places and organizations that WordNet lists as instances (e.g. *Albert Einstein*, *Lisbon*,
*Red Cross*) plus name lists written here, and dates in several written forms. Templates and entity names
are both split disjoint between train/dev and test, so the test set measures generalisation to new contexts
and new names. Scores are entity-level (exact span and type): precision, recall, F1 per type and micro
averaged (what seqeval and NeMo report).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from ..errors import DataError, ManifestError
from ..spec import spec_to_dict
from ..train.loop import TrainerSpec
from ..train.optim import OptimSpec
from ..train.schedule import ScheduleSpec
from .common import (
    EncoderDataSpec,
    EncoderTask,
    ModelSpec,
    NLPModel,
    TokenTaggingNet,
    collate_tagged,
    encode_tagged,
    load_model,
    predict_tags,
    start_model,
    tagging_loss,
    train_and_save,
)

TASK = "ner"
TEXT_FILE, LABELS_FILE = "text.txt", "labels.txt"
ENTITY_TYPES = ("PER", "LOC", "ORG", "DATE")
_TAG_RE = re.compile(r"^(O|[BI]-[A-Za-z][A-Za-z0-9_]*)$")


# ------------------------------------------------------------------------------------------------- data


@dataclass
class NerExample:
    words: list[str]
    tags: list[str]  # IOB2


def write_dataset(folder: str | Path, examples: Sequence[NerExample]) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / TEXT_FILE).write_text("".join(" ".join(e.words) + "\n" for e in examples), encoding="utf-8")
    (folder / LABELS_FILE).write_text("".join(" ".join(e.tags) + "\n" for e in examples), encoding="utf-8")
    return folder


def read_dataset(folder: str | Path, limit: int | None = None) -> list[NerExample]:
    """Read ``text.txt`` + ``labels.txt``; every defect is reported as ``FILE:LINE: problem (fix)``."""
    folder = Path(folder)
    text_path, labels_path = folder / TEXT_FILE, folder / LABELS_FILE
    for p in (text_path, labels_path):
        if not p.is_file():
            raise DataError(
                f"{p}: not found (an NER dataset is a folder with {TEXT_FILE} and {LABELS_FILE}; "
                "`speechtao ner make-data` or `speechtao ner convert-conll` writes them)"
            )
    texts = text_path.read_text(encoding="utf-8").splitlines()
    labels = labels_path.read_text(encoding="utf-8").splitlines()
    defects = []
    if len(texts) != len(labels):
        defects.append(
            f"{labels_path}: {len(labels)} lines but {text_path} has {len(texts)} (one tag line per text line)"
        )
    out = []
    for i, (t, lab) in enumerate(zip(texts, labels), start=1):
        words, tags = t.split(), lab.split()
        if not words:
            defects.append(f"{text_path}:{i}: empty line (remove it)")
        elif len(words) != len(tags):
            defects.append(f"{labels_path}:{i}: {len(tags)} tags for {len(words)} words (one tag per word)")
        elif any(not _TAG_RE.match(x) for x in tags):
            bad = next(x for x in tags if not _TAG_RE.match(x))
            defects.append(f"{labels_path}:{i}: tag {bad!r} is not O, B-TYPE or I-TYPE (IOB2, e.g. B-PER)")
        else:
            out.append(NerExample(words, tags))
        if limit is not None and len(out) >= limit and not defects:
            break
    if defects:
        raise ManifestError(defects[:50], f"{folder}: {len(defects)} defect(s) in the NER dataset")
    if not out:
        raise DataError(f"{folder}: no examples")
    return out


def iob1_to_iob2(tags: Sequence[str]) -> list[str]:
    """``I-X`` that does not continue an ``X`` entity becomes ``B-X`` (IOB2 input is unchanged)."""
    out = []
    prev = "O"
    for t in tags:
        if t.startswith("I-") and (prev == "O" or prev[2:] != t[2:]):
            t = "B-" + t[2:]
        out.append(t)
        prev = t
    return out


def convert_conll(path: str | Path, tag_column: int = -1) -> list[NerExample]:
    """Sentences of a CoNLL column file (whitespace-separated; word first, tag in ``tag_column``)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: CoNLL file not found")
    examples, words, tags, defects = [], [], [], []
    lines = path.read_text(encoding="utf-8").splitlines() + [""]
    for i, line in enumerate(lines, start=1):
        cols = line.split()
        if not cols:
            if words:
                examples.append(NerExample(words, iob1_to_iob2(tags)))
            words, tags = [], []
            continue
        if cols[0] == "-DOCSTART-":
            continue
        if len(cols) < 2:
            defects.append(f"{path}:{i}: one column {line.strip()!r} (need the word and a tag column)")
            continue
        try:
            tag = cols[tag_column]
        except IndexError:
            defects.append(f"{path}:{i}: no column {tag_column} in {len(cols)} columns (set --tag-column)")
            continue
        if not _TAG_RE.match(tag):
            defects.append(f"{path}:{i}: tag {tag!r} is not O, B-TYPE or I-TYPE (is --tag-column right?)")
            continue
        words.append(cols[0])
        tags.append(tag)
    if defects:
        raise ManifestError(defects[:50], f"{path}: {len(defects)} defect(s) in the CoNLL file")
    if not examples:
        raise DataError(f"{path}: no sentences")
    return examples


def label_set(examples: Sequence[NerExample]) -> list[str]:
    """``O`` then ``B-``/``I-`` of every entity type found, types sorted."""
    types = sorted({t[2:] for e in examples for t in e.tags if t != "O"})
    return ["O"] + [f"{p}-{t}" for t in types for p in "BI"]


def entities(tags: Sequence[str]) -> set[tuple[int, int, str]]:
    """``{(start, end, type)}`` spans of IOB2 tags (an ``I-`` without its ``B-`` starts an entity too)."""
    spans, start, kind = set(), None, None
    for i, t in enumerate(list(tags) + ["O"]):
        if start is not None and (t == "O" or t.startswith("B-") or t[2:] != kind):
            spans.add((start, i, kind))
            start = None
        if t != "O" and start is None:
            start, kind = i, t[2:]
    return spans


def entity_report(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict:
    """Entity-level exact-match precision/recall/F1 per type and micro averaged over all entities."""
    counts: dict[str, list[int]] = {}  # type -> [tp, n_pred, n_gold]
    for g, p in zip(gold, pred):
        ge, pe = entities(g), entities(p)
        for e in ge | pe:
            c = counts.setdefault(e[2], [0, 0, 0])
            c[0] += e in ge and e in pe
            c[1] += e in pe
            c[2] += e in ge

    def prf(tp: int, n_pred: int, n_gold: int) -> dict:
        pr = tp / n_pred if n_pred else 0.0
        rc = tp / n_gold if n_gold else 0.0
        return {"precision": pr, "recall": rc, "f1": 2 * pr * rc / (pr + rc) if pr + rc else 0.0, "support": n_gold}

    per = {k: prf(*counts[k]) for k in sorted(counts)}
    total = [sum(c[i] for c in counts.values()) for i in range(3)]
    micro = prf(*total)
    present = [v for v in per.values() if v["support"]]
    macro = {k: sum(v[k] for v in present) / len(present) if present else 0.0 for k in ("precision", "recall", "f1")}
    return {"per_class": per, "micro": micro, "macro": macro, "f1": micro["f1"]}


def format_entity_report(report: dict) -> str:
    lines = [f"{'entity':<10}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}"]
    for name, v in list(report["per_class"].items()) + [("micro avg", report["micro"])]:
        lines.append(f"{name:<10}{v['precision']:>10.4f}{v['recall']:>10.4f}{v['f1']:>10.4f}{v['support']:>10d}")
    m = report["macro"]
    lines.append(f"{'macro avg':<10}{m['precision']:>10.4f}{m['recall']:>10.4f}{m['f1']:>10.4f}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------- generated data

# People, places and organizations written here (WordNet adds thousands of real ones, see wordnet_entities).
FIRST_NAMES = """James Mary Robert Patricia John Jennifer Michael Linda David Elizabeth William Barbara Richard Susan
Joseph Jessica Thomas Sarah Charles Karen Daniel Nancy Matthew Lisa Anthony Betty Mark Sandra Paul Ashley Steven Emily
Andrew Donna Kenneth Michelle Joshua Carol Kevin Amanda Brian Melissa George Deborah Timothy Stephanie Ronald Rebecca
Jason Laura Ryan Sharon Jacob Cynthia Gary Kathleen Nicholas Amy Eric Angela Jonathan Shirley Larry Anna Justin Ruth
Scott Brenda Brandon Pamela Benjamin Nicole Samuel Katherine Gregory Samantha Alexander Christine Patrick Emma Frank
Catherine Raymond Debra Jack Virginia Dennis Rachel Jerry Carolyn Tyler Janet Aaron Maria Jose Heather Adam Diane Henry
Julie Nathan Joyce Douglas Victoria Zachary Kelly Peter Christina Kyle Lauren Noah Joan Ethan Evelyn Jeremy Olivia
Walter Judith Christian Megan Keith Cheryl Roger Martha Terry Andrea Austin Frances Sean Hannah Gerald Jacqueline Carl
Ann Harold Gloria Dylan Jean Arthur Kathryn Lawrence Alice Jordan Teresa Jesse Sara Bryan Janice Billy Doris Bruce
Madison Gabriel Julia Joe Grace Logan Judy Alan Theresa Juan Beverly Wayne Denise Roy Marilyn Ralph Amber Randy Danielle
Eugene Abigail Vincent Brittany Russell Rose Louis Diana Philip Natalie Bobby Sophia Johnny Alexis Bradley Lori Priya
Ahmed Wei Yuki Olga Ivan Fatima Omar Chen Aisha Hiroshi Ingrid Lars Sven Giulia Marco Pierre Amelie Hans Katarina
Dmitri Mei Raj Anjali Kofi Amara Tariq Leila Mateo Lucia Diego Sofia Kenji Sakura Nikos Elena Pavel Zofia""".split()
SURNAMES = """Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez Gonzalez Wilson
Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris Sanchez Clark Ramirez Lewis Robinson Walker
Young Allen King Wright Scott Torres Nguyen Hill Flores Green Adams Nelson Baker Hall Rivera Campbell Mitchell Carter
Roberts Gomez Phillips Evans Turner Diaz Parker Cruz Edwards Collins Reyes Stewart Morris Morales Murphy Cook Rogers
Gutierrez Ortiz Morgan Cooper Peterson Bailey Reed Kelly Howard Ramos Kim Cox Ward Richardson Watson Brooks Chavez Wood
James Bennett Gray Mendoza Ruiz Hughes Price Alvarez Castillo Sanders Patel Myers Long Ross Foster Jimenez Powell Jenkins
Perry Russell Sullivan Bell Coleman Butler Henderson Barnes Gonzales Fisher Vasquez Simmons Romero Jordan Patterson
Alexander Hamilton Graham Reynolds Griffin Wallace Moreno West Cole Hayes Bryant Herrera Gibson Ellis Tran Medina Aguilar
Stevens Murray Ford Castro Marshall Owens Harrison Fernandez McDonald Woods Washington Kennedy Wells Vargas Henry Chen
Freeman Webb Tucker Guzman Burns Crawford Olson Simpson Porter Hunter Gordon Mendez Silva Shaw Snyder Mason Dixon Munoz
Hunt Hicks Holmes Palmer Wagner Black Robertson Boyd Rose Stone Salazar Fox Warren Mills Meyer Rice Schmidt Garza Daniels
Ferguson Nichols Stephens Soto Weaver Ryan Gardner Payne Grant Dunn Kelley Spencer Hawkins Arnold Pierce Hansen Peters
Santos Hart Bradley Knight Elliott Cunningham Duncan Armstrong Hudson Carroll Lane Riley Andrews Alvarado Ray Delgado
Berry Perkins Hoffman Johnston Matthews Pena Richards Contreras Willis Carpenter Lawrence Sandoval Yamamoto Tanaka
Ivanova Novak Kowalski Muller Rossi Dubois Larsen Okafor Mensah Haddad Singh Sharma Khan Nakamura Petrov Costa""".split()
ORG_SUFFIXES = [
    "Industries",
    "Group",
    "Holdings",
    "Bank",
    "Motors",
    "Airlines",
    "Insurance",
    "Foundation",
    "Corporation",
    "Labs",
    "Partners",
    "Systems",
    "Energy",
    "Pharmaceuticals",
    "Media",
    "Logistics",
]
ORG_PATTERNS = [
    "{surname} {suffix}",
    "{surname} and {surname2}",
    "University of {city}",
    "{city} General Hospital",
    "{city} Symphony Orchestra",
    "{city} Chamber of Commerce",
    "Bank of {city}",
    "{city} Times",
    "{city} City Council",
    "{city} {suffix}",
    "{surname} {suffix}",
    "{city} Institute of Technology",
]
MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]

# Templates: {PER} {LOC} {ORG} {DATE} are filled with entities; words are separated by spaces, punctuation too.
# The two lists share no template (nor any sentence frame): TRAIN_TEMPLATES feed train/dev, TEST_TEMPLATES test.
TRAIN_TEMPLATES = [
    "{PER} was born in {LOC} on {DATE} .",
    "{PER} works for {ORG} in {LOC} .",
    "On {DATE} , {ORG} announced that {PER} would join the board .",
    "The meeting between {PER} and {PER} took place in {LOC} .",
    "{ORG} opened a new office in {LOC} last year .",
    "I met {PER} at the airport in {LOC} .",
    "According to {PER} , the contract with {ORG} ends on {DATE} .",
    "{PER} moved from {LOC} to {LOC} in {DATE} .",
    "Shares of {ORG} fell sharply after the report .",
    "Please send the invoice to {PER} at {ORG} before {DATE} .",
    "the train from {LOC} arrives at noon",
    "{PER} said the team would travel to {LOC} .",
    "Did {PER} ever visit {LOC} ?",
    "{ORG} hired {PER} as its new director .",
    "The festival in {LOC} starts on {DATE} and lasts a week .",
    "My sister lives near {LOC} with her husband {PER} .",
    "{PER} wrote a letter to {ORG} complaining about the delay .",
    "we are flying to {LOC} on {DATE}",
    "The lawsuit against {ORG} was filed on {DATE} in {LOC} .",
    "{PER} and {PER} founded {ORG} together .",
    "Call {PER} tomorrow about the trip to {LOC} .",
    "The weather in {LOC} was terrible on {DATE} .",
    "{ORG} will publish its results on {DATE} .",
    "Yesterday {PER} gave a talk at {ORG} .",
    "The road between {LOC} and {LOC} is closed .",
    "{PER} thanked everyone at {ORG} for their support .",
    "Her grandfather {PER} came from {LOC} .",
    "A spokesman for {ORG} declined to comment .",
    "remind me to call {PER} on {DATE}",
    "The museum in {LOC} reopened on {DATE} after repairs .",
    "{PER} is the new manager of the {LOC} branch of {ORG} .",
    "Tickets to {LOC} are cheaper before {DATE} .",
    "Nobody at {ORG} expected {PER} to resign .",
    "The package left {LOC} on {DATE} and reached {LOC} two days later .",
    "{PER} studied law before joining {ORG} .",
    "Is the office of {ORG} still in {LOC} ?",
    "The old bridge was built in {LOC} in {DATE} .",
    "{PER} , who grew up in {LOC} , now teaches music .",
    "The board of {ORG} meets every month .",
    "Our cousin {PER} is getting married on {DATE} .",
    "The storm hit {LOC} hard .",
    "{PER} reviewed the plans with {PER} .",
    "The deal gives {ORG} control of its rival .",
    "What did {PER} tell you about {ORG} ?",
    "There was a long queue at the station in {LOC} .",
    "The price of bread went up again .",
    "She finished the report late at night .",
]
TEST_TEMPLATES = [
    "{PER} joined {ORG} on {DATE} .",
    "Last summer {PER} spent three weeks hiking near {LOC} .",
    "The new factory of {ORG} near {LOC} employs many people .",
    "We received a message from {PER} about the conference in {LOC} .",
    "{ORG} and {ORG} agreed to merge on {DATE} .",
    "could you book a hotel in {LOC} for {PER}",
    "The concert by {PER} in {LOC} was cancelled .",
    "Before {DATE} , {PER} had never left {LOC} .",
    "Analysts at {ORG} expect prices to rise .",
    "{PER} married {PER} in {LOC} on {DATE} .",
    "The ambassador met officials from {ORG} in {LOC} .",
    "Why did {ORG} close its branch in {LOC} ?",
    "{PER} has lived in {LOC} since {DATE} .",
    "The interview with {PER} will be published by {ORG} .",
    "Flights between {LOC} and {LOC} resume on {DATE} .",
    "my appointment with {PER} is on {DATE}",
    "The children played in the garden all afternoon .",
    "He left his umbrella on the bus .",
]


def _dates(rng: random.Random, n: int) -> list[str]:
    out = []
    for _ in range(n):
        m, d, y = rng.choice(MONTHS), rng.randint(1, 28), rng.randint(1850, 2030)
        form = rng.randrange(6)
        out.append(
            [
                f"{d} {m} {y}",
                f"{m} {d} , {y}",
                f"{m} {y}",
                f"{rng.choice(WEEKDAYS)}",
                f"{y}",
                f"{rng.choice(WEEKDAYS)} {d} {m}",
            ][form]
        )
    return out


_NAME_RE = re.compile(r"^[A-Z][A-Za-z'.-]*( [A-Za-z][A-Za-z'.-]*){0,3}$")


def wordnet_entities(root: str | Path = "/usr/share/wordnet") -> dict[str, list[str]]:
    """Instance nouns of WordNet 3.0 as ``{"PER": [...], "LOC": [...], "ORG": [...]}``: instances in the
    person and location lexicographer files, and instances below *organization* (08008335). Empty lists
    when wordnet-base is not installed."""
    path = Path(root) / "data.noun"
    out: dict[str, list[str]] = {"PER": [], "LOC": [], "ORG": []}
    if not path.is_file():
        return out
    hyper: dict[str, list[str]] = {}
    rows = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith(" "):
            continue
        fields = line.split(" | ")[0].split()
        offset, lexfile, n_words = fields[0], fields[1], int(fields[3], 16)
        words = [fields[4 + 2 * i].replace("_", " ") for i in range(n_words)]
        p = 4 + 2 * n_words
        n_ptr = int(fields[p])
        ptrs = [(fields[p + 1 + 4 * k], fields[p + 2 + 4 * k]) for k in range(n_ptr)]
        hyper[offset] = [o for sym, o in ptrs if sym in ("@", "@i")]
        if any(sym == "@i" for sym, _ in ptrs):
            rows.append((offset, lexfile, words))

    def under(offset: str, target: str, depth: int = 0) -> bool:
        if offset == target:
            return True
        return depth < 20 and any(under(h, target, depth + 1) for h in hyper.get(offset, []))

    for offset, lexfile, words in rows:
        kind = {"18": "PER", "15": "LOC"}.get(lexfile)
        if kind is None and under(offset, "08008335"):
            kind = "ORG"
        if kind is None:
            continue
        for w in words:
            w = re.sub(r"\(.*?\)", "", w).strip()
            if _NAME_RE.match(w) and not w.isupper():
                out[kind].append(w)
    return {k: sorted(set(v)) for k, v in out.items()}


def _held_out(name: str, seed: int, frac: float) -> bool:
    return int(hashlib.sha1(f"{seed}:{name}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF < frac


def entity_pools(seed: int = 0, test_fraction: float = 0.25) -> dict[str, dict[str, list[str]]]:
    """``{"train": {type: names}, "test": {type: names}}``: every name lands in exactly one pool."""
    rng = random.Random(seed)
    wn = wordnet_entities()
    per = list(wn["PER"]) + [f"{f} {s}" for f in FIRST_NAMES for s in rng.sample(SURNAMES, 3)] + FIRST_NAMES[::4]
    cities = [c for c in wn["LOC"] if " " not in c] or ["Lisbon", "Denver", "Osaka", "Nairobi"]
    orgs = list(wn["ORG"])
    for _ in range(3000):
        pat = rng.choice(ORG_PATTERNS)
        orgs.append(
            pat.format(
                surname=rng.choice(SURNAMES),
                surname2=rng.choice(SURNAMES),
                suffix=rng.choice(ORG_SUFFIXES),
                city=rng.choice(cities),
            )
        )
    pools: dict[str, dict[str, list[str]]] = {"train": {}, "test": {}}
    for kind, names in (("PER", per), ("LOC", list(wn["LOC"]) or cities), ("ORG", orgs)):
        names = sorted(set(names))
        pools["test"][kind] = [n for n in names if _held_out(n, seed, test_fraction)]
        pools["train"][kind] = [n for n in names if not _held_out(n, seed, test_fraction)]
    return pools


def fill(template: str, pool: dict[str, list[str]], rng: random.Random) -> NerExample:
    """One sentence from ``template`` with entities drawn from ``pool`` (dates are generated)."""
    words, tags = [], []
    for tok in template.split():
        m = re.fullmatch(r"\{(PER|LOC|ORG|DATE)\}", tok)
        if not m:
            words.append(tok)
            tags.append("O")
            continue
        kind = m.group(1)
        value = _dates(rng, 1)[0] if kind == "DATE" else rng.choice(pool[kind])
        parts = value.split()
        words += parts
        tags += [f"B-{kind}"] + [f"I-{kind}"] * (len(parts) - 1)
    if rng.random() < 0.3:  # ASR-like variant: lower case, no punctuation
        keep = [(w.lower(), t) for w, t in zip(words, tags) if re.search(r"[A-Za-z0-9]", w)]
        words, tags = [w for w, _ in keep], [t for _, t in keep]
    return NerExample(words, tags)


@dataclass(frozen=True)
class NerDataOptions:
    train: int = 6000  # sentences
    dev: int = 500
    test: int = 1000
    plain_fraction: float = 0.15  # share of real sentences without entities (WordNet examples, all O)
    seed: int = 0


def _plain_sentences(n: int, seed: int) -> list[NerExample]:
    """Real sentences with no capitalized word past the first (so no unlabeled names): all ``O``."""
    from ..corpora.textsrc import is_clean, iter_sentences

    out: list[NerExample] = []
    try:
        sents = [s for s in iter_sentences("wordnet") if is_clean(s, 4, 20)]
    except Exception:  # wordnet-base missing: no plain sentences
        return out
    rng = random.Random(f"{seed}:plain")
    rng.shuffle(sents)
    for s in sents:
        words = re.findall(r"[A-Za-z']+|[,.?!;:]", s)
        if any(w[0].isupper() for w in words[1:]) or not words:
            continue
        out.append(NerExample(words, ["O"] * len(words)))
        if len(out) >= n:
            break
    return out


def make_data(out_dir: str | Path, options: NerDataOptions = NerDataOptions()) -> dict:
    """Write ``train/``, ``dev/`` and ``test/`` NER datasets (see the module docstring) and ``stats.json``."""
    out = Path(out_dir)
    pools = entity_pools(options.seed)
    rng = random.Random(options.seed)
    plain = _plain_sentences(
        int((options.train + options.dev + options.test) * options.plain_fraction) + 3, options.seed
    )
    n_plain = {
        k: int(n * options.plain_fraction)
        for k, n in (("train", options.train), ("dev", options.dev), ("test", options.test))
    }
    splits = {
        "train": (TRAIN_TEMPLATES, pools["train"], options.train),
        "dev": (TRAIN_TEMPLATES, pools["train"], options.dev),
        "test": (TEST_TEMPLATES, pools["test"], options.test),
    }
    counts = {}
    taken = 0
    for name, (templates, pool, n) in splits.items():
        k = min(n_plain[name], len(plain) - taken)
        exs = [fill(rng.choice(templates), pool, rng) for _ in range(n - k)] + plain[taken : taken + k]
        taken += k
        rng.shuffle(exs)
        write_dataset(out / name, exs)
        counts[name] = {"sentences": len(exs), "entities": sum(len(entities(e.tags)) for e in exs)}
    result = {
        "counts": counts,
        "templates": {"train": len(TRAIN_TEMPLATES), "test": len(TEST_TEMPLATES)},
        "names": {split: {k: len(v) for k, v in p.items()} for split, p in pools.items()},
        "options": options.__dict__,
    }
    (out / "stats.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


# ------------------------------------------------------------------------------------------------ model


def make_net(encoder: nn.Module, spec: ModelSpec, n_labels: int) -> TokenTaggingNet:
    return TokenTaggingNet(encoder, {"ner": n_labels}, spec.head_layers, spec.dropout)


def predict(model: NLPModel, lines: Sequence[Sequence[str]], batch_size: int = 32) -> list[list[str]]:
    """IOB2 tags for every word of every line."""
    names = model.labels["ner"]
    return [[names[i] for i in t[0]] for t in predict_tags(model, lines, batch_size)]


def evaluate(model: NLPModel, examples: Sequence[NerExample], batch_size: int = 32) -> dict:
    """Entity-level report (``f1`` is the micro-averaged entity F1) plus word-level tag accuracy."""
    pred = predict(model, [e.words for e in examples], batch_size)
    report = entity_report([e.tags for e in examples], pred)
    words = sum(len(e.tags) for e in examples)
    report["tag_accuracy"] = sum(g == p for e, pr in zip(examples, pred) for g, p in zip(e.tags, pr)) / max(words, 1)
    report["sentences"] = len(examples)
    return report


@dataclass(frozen=True)
class NerDataSpec(EncoderDataSpec):
    """``train``/``validation``: folders with text.txt and labels.txt (IOB)."""


@dataclass(frozen=True)
class NerFinetuneSpec:
    data: NerDataSpec
    trainer: TrainerSpec
    optim: OptimSpec
    model: ModelSpec = field(default_factory=ModelSpec)
    schedule: ScheduleSpec = field(default_factory=ScheduleSpec)


def training_task(
    model: NLPModel,
    train: Path,
    validation: Path,
    batch_size: int,
    seed: int,
    max_train: int | None = None,
    max_val: int | None = None,
) -> EncoderTask:
    """The Trainer task; validation reports ``f1`` (entity micro F1)."""
    names = model.labels["ner"]
    train_ex = read_dataset(train, max_train)
    val_ex = read_dataset(validation, max_val)
    unknown = sorted({t for e in train_ex + val_ex for t in e.tags} - set(names))
    if unknown:
        raise DataError(
            f"{train}: tags {unknown} are not among the model's labels {names} (fine-tune from the "
            "encoder instead of model.init_from, or map the tags)"
        )
    index = {n: i for i, n in enumerate(names)}
    items = encode_tagged(
        model.tokenizer,
        [e.words for e in train_ex],
        [{"ner": [index[t] for t in e.tags]} for e in train_ex],
        model.max_length,
    )
    pad = model.tokenizer.pad_token_id

    def validate() -> dict:
        r = evaluate(model, val_ex)
        return {"f1": r["f1"], "precision": r["micro"]["precision"], "recall": r["micro"]["recall"]}

    return EncoderTask(
        model.net,
        items,
        lambda b: collate_tagged(b, pad),
        tagging_loss,
        validate,
        lambda: model.payload(),
        batch_size,
        seed,
    )


def finetune(spec: NerFinetuneSpec, resume: bool = False) -> dict:
    labels = {"ner": label_set(read_dataset(spec.data.train, spec.data.max_train_samples))}
    model = start_model(
        spec.model, TASK, labels, lambda enc: make_net(enc, spec.model, len(labels["ner"])), spec.trainer.seed
    )
    model.spec = spec_to_dict(spec)
    task = training_task(
        model,
        spec.data.train,
        spec.data.validation,
        spec.data.batch_size,
        spec.trainer.seed,
        spec.data.max_train_samples,
        spec.data.max_val_samples,
    )
    return train_and_save(task, model, spec, spec.trainer.out_dir, resume)


def load(path: str | Path) -> NLPModel:
    return load_model(path, TASK)
