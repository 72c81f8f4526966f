import json
import subprocess
import sys


def run_cli(*args, check=False):
    return subprocess.run([sys.executable, "-m", "speechtao", *args], capture_output=True, text=True, check=check)


def test_env_json_reports_versions():
    out = run_cli("env", "--json", check=True).stdout
    info = json.loads(out)
    assert info["torch"].startswith("2.13.0") and info["cuda"] in (True, False)
    assert "espeak-ng" in info["tts_and_tools"]


def test_help_lists_groups():
    out = run_cli("--help", check=True).stdout
    for group in ("env", "data", "asr"):
        assert group in out
