"""Generated NER data: hand-written templates filled with real names (people, places and organizations that
WordNet lists as instances, e.g. *Albert Einstein*, *Lisbon*, *Red Cross*, plus name lists written here) and
dates in several written forms. Templates and entity names are both split disjoint between train/dev and test,
so the test set measures generalisation to new contexts and new names. The data format is
:mod:`speechtao.nlp.ner`'s."""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import MissingDependencyError
from ..nlp.ner import NerExample, entities, write_dataset

log = logging.getLogger(__name__)

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


def spoken_date(rng: random.Random) -> str:
    """A date as a speaker says it and a transcript writes it, the month's name cased: "the fifth of March
    nineteen ninety", "March twenty first", "the end of June", "nineteen eighty four", "the nineteen nineties"."""
    from ..text.normalize import number_to_words, ordinal_words, year_words

    m, d, y = rng.choice(MONTHS), ordinal_words(rng.randint(1, 31)), year_words(rng.randint(1850, 2030))
    decade = year_words(rng.randrange(1900, 2030, 10)).split()
    decade[-1] = decade[-1][:-1] + "ies" if decade[-1].endswith("y") else decade[-1] + "s"
    return rng.choice(
        [
            f"{m} {d}",
            f"the {d} of {m}",
            f"{m} {d} {y}",
            f"the {d} of {m} {y}",
            f"{m} {y}",
            y,
            f"the end of {m}",
            f"early {y}",
            f"the {' '.join(decade)}",
            f"{rng.choice(WEEKDAYS)} the {d}",
            f"{number_to_words(rng.randint(2, 12))} years ago",
        ]
    )


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


def fill(
    template: str, pool: dict[str, list[str]], rng: random.Random, spoken: random.Random | None = None, p: float = 0.0
) -> NerExample:
    """One sentence from ``template`` with entities drawn from ``pool`` (dates are generated; each is spoken, see
    :func:`spoken_date`, with probability ``p``, drawn from ``spoken``, so that ``rng``'s draws stay the same)."""
    words, tags = [], []
    for tok in template.split():
        m = re.fullmatch(r"\{(PER|LOC|ORG|DATE)\}", tok)
        if not m:
            words.append(tok)
            tags.append("O")
            continue
        kind = m.group(1)
        value = _dates(rng, 1)[0] if kind == "DATE" else rng.choice(pool[kind])
        if kind == "DATE" and spoken is not None and spoken.random() < p:
            value = spoken_date(spoken)
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
    spoken_dates: float = 0.0  # share of dates written as spoken (spoken_date), from their own random stream
    seed: int = 0


def _plain_sentences(n: int, seed: int) -> list[NerExample]:
    """Real sentences with no capitalized word past the first (so no unlabeled names): all ``O``. None when
    wordnet-base is not installed (a warning is logged; any other error propagates)."""
    from .textsrc import is_clean, iter_sentences

    out: list[NerExample] = []
    try:
        sents = [s for s in iter_sentences("wordnet") if is_clean(s, 4, 20)]
    except MissingDependencyError as exc:  # the data can do without them: said here and in stats.json
        log.warning("%s; the NER data gets no plain (all-O) sentences", exc)
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


def generate_splits(options: NerDataOptions = NerDataOptions()) -> tuple[dict[str, list[NerExample]], dict]:
    """The generated ``train``/``dev``/``test`` sentences (see the module docstring) and their description."""
    pools = entity_pools(options.seed)
    rng = random.Random(options.seed)
    spoken = random.Random(f"{options.seed}:spoken") if options.spoken_dates > 0 else None
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
    out = {}
    taken = 0
    for name, (templates, pool, n) in splits.items():
        k = min(n_plain[name], len(plain) - taken)
        exs = [fill(rng.choice(templates), pool, rng, spoken, options.spoken_dates) for _ in range(n - k)]
        exs += plain[taken : taken + k]
        taken += k
        rng.shuffle(exs)
        out[name] = exs
    info = {
        "templates": {"train": len(TRAIN_TEMPLATES), "test": len(TEST_TEMPLATES)},
        "names": {split: {k: len(v) for k, v in p.items()} for split, p in pools.items()},
        "options": options.__dict__,
    }
    if not plain and options.plain_fraction > 0:
        info["plain_sentences"] = "none: wordnet-base is not installed (apt-get install wordnet-base)"
    return out, info


def spoken_date_sentences(n: int, seed: int = 0) -> list[NerExample]:
    """``n`` sentences of the test templates that hold a date, every date spoken (:func:`spoken_date`), with test
    names: a small set that asks how dates said aloud are tagged."""
    pools = entity_pools(seed)["test"]
    rng = random.Random(f"{seed}:spoken-set")
    templates = [t for t in TEST_TEMPLATES if "{DATE}" in t]
    return [fill(rng.choice(templates), pools, rng, rng, 1.0) for _ in range(n)]


def make_data(out_dir: str | Path, options: NerDataOptions = NerDataOptions()) -> dict:
    """Write ``train/``, ``dev/`` and ``test/`` NER datasets (see the module docstring) and ``stats.json``."""
    out = Path(out_dir)
    splits, info = generate_splits(options)
    counts = {}
    for name, exs in splits.items():
        write_dataset(out / name, exs)
        counts[name] = {"sentences": len(exs), "entities": sum(len(entities(e.tags)) for e in exs)}
    result = {"counts": counts, **info}
    (out / "stats.json").write_text(json.dumps(result, indent=2) + "\n")
    return result
