"""`speechtao serve` in a child process on a free loopback port, for end-to-end tests that talk to it as a client
would (one PyTorch thread, this checkout's code)."""

import os
import re
import subprocess
import sys
import time


def start_serve(*args: str, timeout_s: float = 180.0) -> tuple[subprocess.Popen, str, list[str]]:
    """Start ``speechtao serve ARGS --port 0`` and wait for "serving": (process, "127.0.0.1:PORT", its lines)."""
    env = dict(os.environ, SPEECHTAO_THREADS="1", PYTHONPATH=os.pathsep.join(sys.path))
    cmd = [sys.executable, "-m", "speechtao", "serve", *args, "--port", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines, port = [], None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        m = re.match(r"listening on 127\.0\.0\.1:(\d+)", line)
        port = int(m.group(1)) if m else port
        if line.strip() == "serving":
            break
    if not (port and lines and lines[-1].strip() == "serving"):
        proc.kill()
        raise AssertionError("speechtao serve did not start:\n" + "".join(lines))
    return proc, f"127.0.0.1:{port}", lines


def stop_serve(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.wait(timeout=30)
