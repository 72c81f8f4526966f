"""What `pip install .` puts into site-packages: speechtao and the gRPC layer as `speechtao_server`, never a
generic top-level `server` module (the repository keeps the gRPC layer in its server/ folder)."""

import ast
import pathlib
import re

from setuptools import find_packages

ROOT = pathlib.Path(__file__).parents[2]


def test_installed_top_level_packages_are_speechtao_and_speechtao_server():
    toml = (ROOT / "pyproject.toml").read_text()
    section = toml.split("[tool.setuptools.packages.find]", 1)[1]
    include = ast.literal_eval(re.search(r"^include = (\[.*\])$", section, re.M).group(1))
    packages = find_packages(str(ROOT), include=include)
    assert {p.split(".")[0] for p in packages} == {"speechtao", "speechtao_server"}
    assert "speechtao_server" in packages and "speechtao.serve" in packages
    assert (ROOT / "speechtao_server").resolve() == (ROOT / "server").resolve()
    import speechtao_server.app

    assert pathlib.Path(speechtao_server.app.__file__).resolve().parent == (ROOT / "server").resolve()
