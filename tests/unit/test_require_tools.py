"""SPEECHTAO_REQUIRE_TOOLS=1 (make test, .ci/run) turns a skip for a missing Debian package into a failure."""

import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).parents[1]

CASES = """
import pytest

def test_tool_in_the_test():
    pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")

@pytest.mark.skipif(True, reason="needs sox")
def test_tool_in_a_mark():
    pass

def test_other_reason():
    pytest.skip("CUDA is available here")
"""


def _run(tmp_path, require):
    (tmp_path / "test_cases.py").write_text(CASES)
    env = {**os.environ, "PYTHONPATH": str(TESTS), "SPEECHTAO_REQUIRE_TOOLS": "1" if require else "0"}
    args = [sys.executable, "-m", "pytest", "-q", "-rfs", "-p", "conftest", "-p", "no:cacheprovider", "test_cases.py"]
    return subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


def test_debian_skips_fail_only_when_tools_are_required(tmp_path):
    required = _run(tmp_path, require=True)
    assert required.returncode == 1, required.stdout
    # a skip in the test fails it; one in a mark (setup) errors it: either way the run fails
    assert "1 failed, 1 skipped, 1 error" in required.stdout and "SPEECHTAO_REQUIRE_TOOLS=1" in required.stdout
    relaxed = _run(tmp_path, require=False)
    assert relaxed.returncode == 0 and "3 skipped" in relaxed.stdout, relaxed.stdout
