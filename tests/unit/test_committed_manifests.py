"""Every manifest committed under manifests/ validates, and matches what its generator writes.

The audio of these manifests lives outside the repository: Debian packages install the real recordings under
/usr/share, and the bundled domain is synthesized into data/domain. Where a Debian package is missing, the audio
checks skip with the `apt-get install` line to run, which tests/conftest.py turns into a failure under
SPEECHTAO_REQUIRE_TOOLS=1 (`make test`, CI).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from speechtao.data.manifest import read_manifest, validate_manifest
from speechtao.text.tokenizers import CHAR_VOCAB

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
COMMITTED = sorted(MANIFESTS.rglob("*.json*"))

# Audio outside the repository: the folder prefix of its paths -> the Debian package that installs it.
SYSTEM_AUDIO = {"/usr/share/pocketsphinx/": "pocketsphinx-testdata", "/usr/share/sounds/alsa/": "alsa-utils"}
DOMAIN_AUDIO = ROOT / "data" / "domain"


def _ids(path: Path) -> str:
    return str(path.relative_to(MANIFESTS))


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_the_documented_manifests_are_committed():
    names = {_ids(p) for p in COMMITTED}
    expected = {
        "domain/train.jsonl",
        "domain/test.jsonl",
        "realspeech/pocketsphinx.jsonl",
        "realspeech/alsa.jsonl",
        "realspeech/all.jsonl",
    }
    assert expected <= names
    assert all(p.stat().st_size < 100_000 for p in COMMITTED), "manifests/ holds small text manifests only"
    assert not [p for p in MANIFESTS.rglob("*") if p.suffix.lower() in {".wav", ".flac", ".ogg", ".mp3"}]


@pytest.mark.parametrize("manifest", COMMITTED, ids=_ids)
def test_format_and_vocabulary(manifest):
    assert validate_manifest(manifest, vocab=CHAR_VOCAB, check_audio=False) == []
    for entry in read_manifest(manifest):
        path = entry.audio_filepath
        known = path.startswith(str(DOMAIN_AUDIO) + os.sep) or any(path.startswith(p) for p in SYSTEM_AUDIO)
        assert known, f"{manifest}:{entry.line}: audio {path} is neither under data/domain nor a known package"


@pytest.mark.parametrize("manifest", [p for p in COMMITTED if "realspeech" in p.parts], ids=_ids)
def test_real_recordings_validate_with_their_audio(manifest):
    paths = [e.audio_filepath for e in read_manifest(manifest)]
    absent = sorted(
        {pkg for prefix, pkg in SYSTEM_AUDIO.items() for p in paths if p.startswith(prefix)} - _installed(paths)
    )
    if absent:
        pytest.skip(f"{manifest.name}: audio of {', '.join(absent)} is missing (apt-get install {' '.join(absent)})")
    assert validate_manifest(manifest, vocab=CHAR_VOCAB) == []


def _installed(paths: list[str]) -> set[str]:
    """The packages of SYSTEM_AUDIO all of whose files in ``paths`` exist."""
    out = set()
    for prefix, pkg in SYSTEM_AUDIO.items():
        mine = [p for p in paths if p.startswith(prefix)]
        if mine and all(Path(p).is_file() for p in mine):
            out.add(pkg)
    return out


def test_real_recordings_are_what_realspeech_writes(tmp_path):
    """`speechtao data realspeech` on this machine writes the committed files, line for line."""
    from speechtao.corpora.realspeech import ALSA_DIR, POCKETSPHINX_DIR, write_realspeech_manifests

    absent = [
        pkg for d, pkg in ((POCKETSPHINX_DIR, "pocketsphinx-testdata"), (ALSA_DIR, "alsa-utils")) if not d.is_dir()
    ]
    if absent:
        pytest.skip(f"{', '.join(absent)} not installed (apt-get install {' '.join(absent)})")
    written = write_realspeech_manifests(tmp_path)
    for name, path in written.items():
        assert _lines(path) == _lines(MANIFESTS / "realspeech" / f"{name}.jsonl"), name


def _domain_plan():
    from speechtao.corpora.domain import DomainSpec, domain_voices, plan

    absent = [tool for tool in ("espeak-ng", "flite", "sox") if shutil.which(tool) is None]
    if absent:
        pytest.skip(f"the domain's voices need {', '.join(absent)} (apt-get install {' '.join(absent)})")
    return plan(DomainSpec(), domain_voices())


def test_domain_manifests_are_what_the_generator_plans():
    """Text, voice, rate and pitch of every committed domain line are the generator's, in order."""
    for split, planned in zip(("train", "test"), _domain_plan(), strict=True):
        lines = _lines(MANIFESTS / "domain" / f"{split}.jsonl")
        assert [line["audio_filepath"] for line in lines] == [f"../../data/domain/{u.relpath()}" for u in planned]
        got = [(line["text"], line["voice"], line["rate"], line["pitch"]) for line in lines]
        assert got == [(u.label, u.voice, u.rate, u.pitch) for u in planned], split


def test_domain_durations_are_what_synthesis_gives(tmp_path):
    """Synthesizing the first utterances of each split again gives the committed durations."""
    from speechtao.corpora.tts import synthesize_chunk

    train, test = _domain_plan()
    for split, planned in (("train", train), ("test", test)):
        lines = _lines(MANIFESTS / "domain" / f"{split}.jsonl")
        # the first utterance of each engine in the split
        picks = {u.engine: (i, u) for i, u in reversed(list(enumerate(planned)))}
        for i, u in picks.values():
            ((index, seconds),) = synthesize_chunk([u], tmp_path, 16000)
            assert index == u.index
            assert abs(seconds - lines[i]["duration"]) <= 0.01, (split, i, u.voice, seconds, lines[i]["duration"])


def test_domain_validates_with_its_audio_when_made():
    """After `speechtao data domain --out data/domain` (or `make finetune-asr`), the committed lines validate."""
    if not (DOMAIN_AUDIO / "train.jsonl").is_file():
        pytest.skip(
            "data/domain is not made here (speechtao data domain --out data/domain); durations are checked above"
        )
    for split in ("train", "test"):
        assert validate_manifest(MANIFESTS / "domain" / f"{split}.jsonl", vocab=CHAR_VOCAB) == []
