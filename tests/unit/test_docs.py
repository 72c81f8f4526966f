"""The README and docs/ cannot drift from the code: commands they name exist, commands they show parse, links
resolve, make targets exist."""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

from speechtao.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = sorted(
    [README, *(ROOT / "docs").glob("*.md"), *(ROOT / "manifests").glob("*.md"), *(ROOT / "models").glob("*.md")]
)


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


@pytest.fixture(scope="module")
def cli() -> dict[str, set[str]]:
    """``{group: {action, ...}}`` of the real command line (an empty set for a group without actions)."""
    return {group: set(_subcommands(p)) for group, p in _subcommands(build_parser()).items()}


def _section(text: str, heading: str) -> str:
    assert heading in text, f"heading {heading!r} is missing"
    return text.split(heading, 1)[1].split("\n## ", 1)[0]


def _code_blocks(text: str, lang: str = "") -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, re.S)


def _command_map() -> dict[str, set[str]]:
    block = _code_blocks(_section(README.read_text(), "## Command map"))[0]
    listed: dict[str, set[str]] = {}
    for line in block.splitlines():
        command = re.split(r"\s{2,}", line.strip())[0].split()
        assert command[0] == "speechtao", f"README command map: {line!r} does not start with 'speechtao'"
        actions = set(command[2].split("|")) if len(command) > 2 else set()
        listed.setdefault(command[1], set()).update(actions)
    return listed


def test_readme_command_map_lists_every_group_and_action(cli):
    listed = _command_map()
    fix = "(add a line to, or remove one from, the code block under '## Command map' in README.md)"
    assert sorted(listed) == sorted(cli), (
        f"README command map: groups {sorted(listed)}, the CLI has {sorted(cli)} {fix}"
    )
    for group, actions in cli.items():
        assert listed[group] == actions, (
            f"README command map, speechtao {group}: listed {sorted(listed[group])}, the CLI has {sorted(actions)} {fix}"
        )


def _shell_commands(text: str) -> list[list[str]]:
    """``speechtao ...`` commands of the ```bash blocks (also after ``VAR=x`` or ``python -m``), comments dropped,
    continuation lines joined."""
    out = []
    for block in _code_blocks(text, "bash"):
        for line in block.replace("\\\n", " ").splitlines():
            m = re.search(r"(?:^|\s)(speechtao .*)$", line.split(" #", 1)[0].strip())
            if m:
                out.append(shlex.split(m.group(1)))
    return out


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_shown_commands_parse(doc):
    """Every `speechtao ...` line of a document's bash blocks is accepted by the real parser."""
    parser = build_parser()
    for argv in _shell_commands(doc.read_text()):
        with contextlib.redirect_stderr(io.StringIO()) as err:
            try:
                parser.parse_args(argv[1:])
            except SystemExit:
                pytest.fail(f"{doc.relative_to(ROOT)}: {' '.join(argv)!r} does not parse: {err.getvalue().strip()}")


def test_readme_shows_commands():
    assert len(_shell_commands(README.read_text())) >= 5


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_commands_named_in_docs_exist(doc, cli):
    """`speechtao GROUP ACTION` in any code block names a real group and action."""
    for block in _code_blocks(doc.read_text()):
        for m in re.finditer(r"(?m)^\s*(?:\S*/)?speechtao ([a-z][\w-]*)(?: ([a-z][\w-]*))?", block):
            group, action = m.group(1), m.group(2)
            assert group in cli, f"{doc.name}: `speechtao {group}` is not a command group"
            if cli[group]:
                assert action in cli[group], f"{doc.name}: `speechtao {group} {action}` is not an action of {group}"


def _anchors(text: str) -> set[str]:
    """GitHub's anchors of the markdown headings of ``text``."""
    out = set()
    for heading in re.findall(r"(?m)^#+ (.+)$", re.sub(r"```.*?```", "", text, flags=re.S)):
        out.add(re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-"))
    return out


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(doc):
    for target in re.findall(r"\]\(([^)\s]+)\)", doc.read_text()):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        dest = (doc.parent / path).resolve() if path else doc
        assert dest.exists(), f"{doc.relative_to(ROOT)}: link {target!r} points at a missing file"
        if anchor and dest.suffix == ".md":
            assert anchor in _anchors(dest.read_text()), f"{doc.relative_to(ROOT)}: link {target!r}: no such heading"


def test_make_targets_named_in_readme_exist():
    targets = set(re.findall(r"(?m)^([\w-]+(?: [\w-]+)*):", (ROOT / "Makefile").read_text()))
    targets = {t for line in targets for t in line.split()}
    named = set(re.findall(r"`make ([\w-]+)", README.read_text())) | set(
        m for block in _code_blocks(README.read_text(), "bash") for m in re.findall(r"(?m)^make ([\w-]+)", block)
    )
    assert named, "README names no make target"
    assert named <= targets, f"README names make targets the Makefile lacks: {sorted(named - targets)}"


REPO_FOLDERS = "speechtao|server|recipes|bench|scripts|models|manifests|tests|docs"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_repository_paths_named_in_docs_exist(doc):
    """`speechtao/asr/models.py`, `recipes/asr_flow.yaml`, ...: every repository path a document names exists."""
    text = doc.read_text()
    named = re.findall(rf"`((?:{REPO_FOLDERS})/[^`\s]*)`", text)
    for block in _code_blocks(text):  # the data path of ARCHITECTURE.md names folders in a code block
        named += re.findall(r"(?<![\w/.-])((?:speechtao|server)/[\w/.-]*)", block)
    missing = []
    for path in named:
        path = path.rstrip(".,:;")
        if re.search(r"[<>*{}|]|\b(X|M|TASK)\b", path):  # a placeholder, not a path
            continue
        if not (ROOT / path).exists():
            missing.append(path)
    assert not missing, f"{doc.relative_to(ROOT)} names paths that do not exist: {missing}"


def _option_strings(parser: argparse.ArgumentParser) -> set[str]:
    return {s for action in parser._actions for s in action.option_strings}


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_inline_commands_name_real_actions_and_flags(doc):
    """`speechtao GROUP ACTION --flag ...` quoted in prose: the group, the action and every --flag exist
    (placeholders such as TASK or <task> aside)."""
    groups = _subcommands(build_parser())
    prose = " ".join(re.sub(r"```.*?```", "", doc.read_text(), flags=re.S).split())
    for command in re.findall(r"`(speechtao [^`]+)`", prose):
        words = command.split()
        if re.search(r"[A-Z<]", words[1]):
            continue
        assert words[1] in groups, f"{doc.name}: `{command}`: no group {words[1]!r}"
        parser, actions = groups[words[1]], _subcommands(groups[words[1]])
        if actions and len(words) > 2:
            assert words[2] in actions, f"{doc.name}: `{command}`: {words[2]!r} is not an action of {words[1]}"
            parser = actions[words[2]]
        flags = {w.split("=", 1)[0] for w in words if w.startswith("--")}
        unknown = sorted(flags - _option_strings(parser))
        assert not unknown, f"{doc.name}: `{command}`: no such flag {unknown}"
