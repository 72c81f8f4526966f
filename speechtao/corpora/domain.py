"""The bundled "custom domain": smart-home voice commands spoken by voices that pretraining never hears.

``speechtao asr flow`` (and ``make finetune-asr``) adapts a pretrained starter to this domain, so it must
differ from the pretraining corpus in both ways that matter to an ASR user:

- **vocabulary**: sentences from templates about thermostats, lights, blinds, locks, appliances and rooms
  ("dim the hallway lights to forty percent"), words that the pretraining sources (WordNet glosses, the King
  James Bible, fortunes, Python docs) seldom or never use;
- **voices**: the espeak-ng New York accent (``en-us-nyc`` with its variants) and flite's ``rms``:
  :data:`DOMAIN_VOICES`. :func:`pretrain_split` keeps them (and the held-out test voices
  :data:`HELDOUT_VOICES`) out of a pretraining manifest.

Everything is fixed by the seed: sentence ``i`` of a split is drawn from ``default_rng([seed, split, i])``, its
voice, rate and pitch from ``default_rng([seed, split, i, 1])``. Train and test sentences never coincide (a test
sentence that a template also produced for train is redrawn). Layout of ``out_dir``::

    domain_spec.yaml           the options (a rerun with other options is refused)
    wav/000/000123.wav         16 kHz mono WAVs (train indices first, then test)
    train.jsonl, test.jsonl    NeMo manifests (paths relative to the folder)

A rerun skips finished WAVs, so an interrupted build resumes.

Usage::

    train, test = make_domain_corpus("data/domain", DomainSpec(n_train=160, n_test=40))
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import yaml

from ..data.manifest import ManifestEntry, read_manifest, write_manifest
from ..errors import DataError, InputError, MissingDependencyError
from ..text.normalize import normalize_text

# Voices of the domain (a voice matches a prefix when it equals it or continues with "+variant").
DOMAIN_VOICES: tuple[str, ...] = ("espeak-ng:en-us-nyc", "flite:rms")
# Voices kept out of pretraining training data as its held-out synthetic test set.
HELDOUT_VOICES: tuple[str, ...] = ("espeak-ng:en-gb-scotland", "flite:awb")

SPEC_FILE = "domain_spec.yaml"

_ROOMS = [
    "living room",
    "kitchen",
    "bedroom",
    "hallway",
    "garage",
    "basement",
    "bathroom",
    "nursery",
    "office",
    "patio",
    "guest room",
    "dining room",
]
_LIGHTS = ["lights", "lamps", "ceiling light", "porch light", "reading lamp", "night light"]
_NUMBERS = ["ten", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_TEMPS = ["sixty five", "sixty eight", "seventy", "seventy two", "seventy four", "sixty", "seventy six"]
_TIMES = ["six thirty", "seven", "seven fifteen", "eight", "nine thirty", "ten", "eleven", "noon", "midnight"]
_DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "weekdays", "weekends"]
_DEVICES = [
    "dishwasher",
    "washing machine",
    "dryer",
    "robot vacuum",
    "coffee maker",
    "oven",
    "air purifier",
    "dehumidifier",
    "ceiling fan",
    "sprinkler",
]
_DOORS = ["front door", "back door", "garage door", "side gate", "patio door"]
_COLORS = ["warm white", "cool white", "blue", "amber", "green", "purple", "red"]
_SCENES = ["movie night", "dinner party", "good morning", "bedtime", "away mode", "reading mode"]

# Each template fills its {slots} from the lists above ({room2} is a room too).
_TEMPLATES: tuple[str, ...] = (
    "turn on the {light} in the {room}",
    "turn off the {light} in the {room}",
    "dim the {room} {light} to {number} percent",
    "set the {room} {light} to {color}",
    "set the thermostat in the {room} to {temp} degrees",
    "lower the heating in the {room} by two degrees",
    "lock the {door}",
    "unlock the {door} for ten minutes",
    "is the {door} locked",
    "start the {device} at {time}",
    "stop the {device}",
    "schedule the {device} for {time} on {day}",
    "open the blinds in the {room} halfway",
    "close the blinds in the {room} and the {room2}",
    "activate the {scene} scene",
    "what is the temperature in the {room}",
    "set an alarm for {time} on {day}",
    "turn the {device} off when i leave",
    "show the {room} camera on the television",
    "remind me to empty the {device} at {time}",
)


@dataclass(frozen=True)
class DomainSpec:
    """What domain corpus to make. The defaults make ~8 minutes of audio (~1 minute per 24 utterances)."""

    n_train: int = 160  # training utterances
    n_test: int = 40  # test utterances (sentences differ from every training sentence)
    seed: int = 0  # decides every sentence, voice, rate and pitch
    rate_range: tuple[float, float] = (0.9, 1.15)  # speaking-rate factor
    pitch_range: tuple[float, float] = (-1.5, 1.5)  # semitones
    sample_rate: int = 16000
    workers: int = 2

    def __post_init__(self) -> None:
        if self.n_train < 1 or self.n_test < 1:
            raise ValueError(f"n_train and n_test must be >= 1, got {self.n_train} and {self.n_test}")
        if not 0.5 <= self.rate_range[0] <= self.rate_range[1] <= 2.0:
            raise ValueError(f"rate_range must satisfy 0.5 <= low <= high <= 2.0, got {self.rate_range}")
        if not -12.0 <= self.pitch_range[0] <= self.pitch_range[1] <= 12.0:
            raise ValueError(f"pitch_range must satisfy -12 <= low <= high <= 12, got {self.pitch_range}")
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")

    def content_key(self) -> dict:
        d = asdict(self)
        d.pop("workers")
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def matches(voice: str, prefixes: Sequence[str]) -> bool:
    """True when ``voice`` is one of ``prefixes`` or one of their ``+variant`` forms."""
    return any(voice == p or voice.startswith(p + "+") for p in prefixes)


def domain_sentence(rng: np.random.Generator) -> str:
    """One sentence: a template drawn from :data:`_TEMPLATES`, its slots filled by ``rng``."""
    template = _TEMPLATES[int(rng.integers(len(_TEMPLATES)))]
    pick = lambda xs: xs[int(rng.integers(len(xs)))]  # noqa: E731
    room, room2 = (_ROOMS[int(j)] for j in rng.choice(len(_ROOMS), size=2, replace=False))
    slots = {
        "room": room,
        "room2": room2,
        "light": pick(_LIGHTS),
        "number": pick(_NUMBERS),
        "temp": pick(_TEMPS),
        "time": pick(_TIMES),
        "day": pick(_DAYS),
        "device": pick(_DEVICES),
        "door": pick(_DOORS),
        "color": pick(_COLORS),
        "scene": pick(_SCENES),
    }
    return template.format(**slots)


def domain_sentences(n_train: int, n_test: int, seed: int) -> tuple[list[str], list[str]]:
    """``(train, test)`` sentences; no test sentence occurs in train (redrawn with the next sub-seed)."""
    train = [domain_sentence(np.random.default_rng([seed, 0, i])) for i in range(n_train)]
    seen = set(train)
    test = []
    for i in range(n_test):
        for attempt in range(1000):
            s = domain_sentence(np.random.default_rng([seed, 1, i, attempt]))
            if s not in seen:
                break
        else:  # pragma: no cover - the templates give tens of thousands of sentences
            raise DataError(f"domain corpus: no new test sentence for index {i} (lower n_train={n_train})")
        seen.add(s)
        test.append(s)
    return train, test


def domain_voices() -> list[str]:
    """The installed voices of :data:`DOMAIN_VOICES`, sorted (raises when none is installed)."""
    from .tts import list_voices

    found = []
    for engine in ("espeak-ng", "flite"):
        found += [v for v in list_voices(engine) if matches(v, DOMAIN_VOICES)]
    if not found:
        raise MissingDependencyError(
            "domain corpus: neither espeak-ng (en-us-nyc) nor flite (rms) is installed "
            "(apt-get install espeak-ng flite sox)"
        )
    return sorted(found)


def plan(spec: DomainSpec, voices: Sequence[str]) -> tuple[list, list]:
    """The planned :class:`speechtao.corpora.synth.Utterance` lists ``(train, test)``; indices run on from train."""
    from .tts import Utterance

    train_text, test_text = domain_sentences(spec.n_train, spec.n_test, spec.seed)
    # flite has one domain voice, espeak-ng dozens of variants: draw the engine first (half each), then a voice.
    by_engine: dict[str, list[str]] = {}
    for v in voices:
        by_engine.setdefault(v.split(":", 1)[0], []).append(v)
    engines = sorted(by_engine)
    out: tuple[list, list] = ([], [])
    for split, texts in enumerate((train_text, test_text)):
        for i, text in enumerate(texts):
            rng = np.random.default_rng([spec.seed, split, i, 1])
            engine = engines[int(rng.integers(len(engines)))]
            voice = by_engine[engine][int(rng.integers(len(by_engine[engine])))]
            index = i if split == 0 else spec.n_train + i
            out[split].append(
                Utterance(
                    index=index,
                    text=text,
                    label=normalize_text(text),
                    engine=engine,
                    voice=voice,
                    rate=round(float(rng.uniform(*spec.rate_range)), 3),
                    pitch=round(float(rng.uniform(*spec.pitch_range)), 2),
                )
            )
    return out


def _check_spec_file(out_dir: Path, spec: DomainSpec) -> None:
    path = out_dir / SPEC_FILE
    key = spec.content_key()
    if path.is_file():
        old = yaml.safe_load(path.read_text())
        if old != key:
            raise InputError(
                f"{path}: the corpus in {out_dir} was made with other options ({old}); use another "
                f"--out folder or delete {out_dir}"
            )
    else:
        out_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(key, sort_keys=True))


def make_domain_corpus(
    out_dir: str | Path, spec: DomainSpec = DomainSpec(), log: Callable[[str], None] = print
) -> tuple[Path, Path]:
    """Make (or finish) the domain corpus in ``out_dir``; returns the paths of ``train.jsonl`` and ``test.jsonl``."""
    from concurrent.futures import ProcessPoolExecutor

    from .tts import plan_chunks, synthesize_chunk, wav_seconds

    out = Path(out_dir)
    _check_spec_file(out, spec)
    train, test = plan(spec, domain_voices())
    seconds: dict[int, float] = {}
    todo = []
    for u in train + test:
        s = wav_seconds(out / u.relpath())
        if s is None:
            todo.append(u)
        else:
            seconds[u.index] = s
    if todo:
        log(f"domain: synthesizing {len(todo)} utterances into {out}")
        jobs = plan_chunks(todo, 8)
        with ProcessPoolExecutor(max_workers=spec.workers) as pool:
            for done in pool.map(synthesize_chunk, jobs, [out] * len(jobs), [spec.sample_rate] * len(jobs)):
                seconds.update(dict(done))
    paths = []
    for name, utts in (("train.jsonl", train), ("test.jsonl", test)):
        entries = [
            ManifestEntry(
                audio_filepath=str((out / u.relpath()).resolve()),
                duration=round(seconds[u.index], 4),
                text=u.label,
                extra={"engine": u.engine, "voice": u.voice, "speaker": u.voice, "rate": u.rate, "pitch": u.pitch},
            )
            for u in utts
        ]
        write_manifest(out / name, entries)
        paths.append(out / name)
    return paths[0], paths[1]


def pretrain_split(
    manifest: str | Path,
    out_dir: str | Path | None = None,
    heldout: Sequence[str] = HELDOUT_VOICES,
    excluded: Sequence[str] = DOMAIN_VOICES,
) -> tuple[Path, Path, dict]:
    """Split a synthetic pretraining manifest: ``train.jsonl`` without the domain and held-out voices,
    ``test.jsonl`` with the held-out voices only. Returns both paths and counts.

    Lines keep their text unchanged (audio paths are rewritten relative to ``out_dir``, the manifest's folder by
    default). Raises :class:`DataError` when either split would be empty.
    """
    src = Path(manifest)
    out = Path(out_dir) if out_dir is not None else src.parent
    entries = read_manifest(src)
    missing = [e for e in entries if "voice" not in e.extra]
    if missing:
        raise DataError(
            f"{src}:{missing[0].line}: no 'voice' field (pretrain_split needs a manifest written by "
            "`speechtao data synth`)"
        )
    train = [e for e in entries if not matches(e.extra["voice"], heldout) and not matches(e.extra["voice"], excluded)]
    test = [e for e in entries if matches(e.extra["voice"], heldout) and not matches(e.extra["voice"], excluded)]
    if not train or not test:
        raise DataError(
            f"{src}: splitting by held-out voices {list(heldout)} leaves {len(train)} train and "
            f"{len(test)} test utterances (make a larger corpus with more voices)"
        )
    write_manifest(out / "train.jsonl", train)
    write_manifest(out / "test.jsonl", test)
    counts = {
        "train": len(train),
        "test": len(test),
        "excluded": len(entries) - len(train) - len(test),
        "train_hours": sum(e.duration for e in train) / 3600,
        "test_hours": sum(e.duration for e in test) / 3600,
    }
    return out / "train.jsonl", out / "test.jsonl", counts


def corpus_summary(manifest: str | Path) -> dict:
    """Utterances, minutes, distinct voices and words of a manifest (for reports)."""
    entries = read_manifest(manifest)
    words = {w for e in entries for w in normalize_text(e.text).split()}
    return {
        "utterances": len(entries),
        "minutes": sum(e.duration for e in entries) / 60,
        "voices": len({e.extra.get("voice") for e in entries}),
        "vocabulary": len(words),
    }


__all__ = [
    "DOMAIN_VOICES",
    "HELDOUT_VOICES",
    "DomainSpec",
    "domain_sentence",
    "domain_sentences",
    "domain_voices",
    "plan",
    "make_domain_corpus",
    "pretrain_split",
    "corpus_summary",
    "matches",
]
