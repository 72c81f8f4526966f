import subprocess
import sys

import pytest

from speechtao.corpora.textsrc import SOURCES, is_available, is_clean, load_sentences
from speechtao.text.normalize import OUTPUT_ALPHABET, normalize_text


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "speechtao", "data", "text", *args], capture_output=True, text=True)


@pytest.fixture(scope="module")
def installed():
    missing = [name for name in ("wordnet", "fortunes") if not is_available(name)]
    if missing:
        pytest.skip(
            f"Debian packages for {missing} not installed "
            f"(apt-get install {' '.join(p for m in missing for p in SOURCES[m].packages)})"
        )


def test_cli_writes_the_library_sample_and_prints_counts(installed, tmp_path):
    out = tmp_path / "sub" / "labels.txt"
    res = run_cli("--sources", "wordnet,fortunes", "--n", "41", "--seed", "7", "--out", str(out), "--normalize")
    assert res.returncode == 0, res.stderr
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines == [normalize_text(s) for s in load_sentences(["wordnet", "fortunes"], 41, seed=7)]
    assert all(s and set(s) <= OUTPUT_ALPHABET for s in lines)
    counts = dict(line.split()[:2] for line in res.stdout.splitlines())
    assert counts == {"wordnet": "21", "fortunes": "20", "total": "41"}
    assert str(out) in res.stdout


def test_cli_errors_exit_2_and_name_the_fix(tmp_path):
    res = run_cli("--sources", "wordnet,wiki", "--out", str(tmp_path / "x.txt"))
    assert res.returncode == 2
    assert "text source 'wiki' is unknown (choose from: wordnet, bible, fortunes, pydocs)" in res.stderr
    assert not (tmp_path / "x.txt").exists()
    res = run_cli("--sources", "wordnet")
    assert res.returncode == 2 and "--out is required" in res.stderr


def test_cli_list_shows_packages_and_licenses():
    res = run_cli("--list")
    assert res.returncode == 0, res.stderr
    for src in SOURCES.values():
        assert src.name in res.stdout and src.license in res.stdout
        assert "apt: " + " ".join(src.packages) in res.stdout


def test_docs_usage_runs(tmp_path):
    """The bash block of docs/asr.md's "Text" section runs as written."""
    from pathlib import Path

    doc = (Path(__file__).parents[2] / "docs" / "asr.md").read_text(encoding="utf-8")
    section = doc.split("### Text\n", 1)[1]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [line.split() for line in block.splitlines() if line.strip()]
    assert len(commands) == 3 and all(c[:3] == ["speechtao", "data", "text"] for c in commands)
    needed = {name for c in commands if "--sources" in c for name in c[c.index("--sources") + 1].split(",")}
    missing = [name for name in sorted(needed) if not is_available(name)]
    if missing:
        pytest.skip(f"Debian packages for {missing} not installed")
    for cmd in commands:
        res = subprocess.run(
            [sys.executable, "-m", "speechtao", *cmd[1:]], capture_output=True, text=True, cwd=tmp_path
        )
        assert res.returncode == 0, (cmd, res.stderr)
    sentences = (tmp_path / "sentences.txt").read_text().splitlines()
    assert len(sentences) == 300 and all(is_clean(s) for s in sentences)
    labels = (tmp_path / "labels.txt").read_text().splitlines()
    assert len(labels) == 100 and all(set(s) <= OUTPUT_ALPHABET for s in labels)
