"""SIGTERM during a long NLP request: how long `speechtao serve` takes to exit (docs/serving.md, Riva's scripts
table, point 7).

    python bench/serve_nlp_sigterm.py [--src CHECKOUT] [--port 50072] [--chars 100000] [-- EXTRA SERVE FLAGS]

Serves an untrained QA model (MiniLM + a fresh span head: its answers do not matter, its work does), sends a
NaturalQuery whose context holds ``--chars`` characters, sends SIGTERM 3 s later and prints the seconds from
SIGTERM to the process's exit (``--drain-seconds 10``). ``--src`` serves another checkout (e.g. an older commit
in a git worktree) with this one's model folder. The current server refuses contexts past
``--max-qa-context-chars`` (20,000 by default): pass ``-- --max-qa-context-chars 100000``.
"""

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict
from pathlib import Path


def qa_folder(root: Path) -> Path:
    import torch

    from speechtao.nlp import qa
    from speechtao.nlp.model_io import ModelSpec, save_model_folder, start_model

    torch.manual_seed(0)
    model = start_model(ModelSpec(max_length=384), "qa", qa.LABELS, lambda enc: qa.make_net(enc))
    options = asdict(qa.QAOptions(version_2_with_negative=False))
    return save_model_folder(root / "qa", model.payload(extra={"qa": options}), model.tokenizer)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--src", default=str(Path(__file__).resolve().parents[1]))
    p.add_argument("--port", default="50072")
    p.add_argument("--chars", type=int, default=100_000)
    p.add_argument("extra", nargs="*", help="flags for speechtao serve (after --)")
    args = p.parse_args()
    import riva.client

    with tempfile.TemporaryDirectory() as tmp:
        qa_folder(Path(tmp))
        env = dict(os.environ, SPEECHTAO_THREADS="1", PYTHONPATH=args.src)
        serve = [sys.executable, "-m", "speechtao", "serve", "--models", tmp, "--port", args.port]
        proc = subprocess.Popen(
            [*serve, "--drain-seconds", "10", *args.extra],
            cwd=args.src,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        while proc.stdout.readline().strip() != "serving":
            if proc.poll() is not None:
                raise SystemExit(f"the server exited with {proc.returncode} before serving")
        context = ("Ada was born in Lyon in 1901 and moved to Paris in 1920. " * (args.chars // 56 + 1))[: args.chars]
        auth = riva.client.Auth(uri=f"127.0.0.1:{args.port}")
        outcome: list[str] = []

        def ask():
            try:
                riva.client.NLPService(auth).natural_query("Where was Ada born?", context)
                outcome.append("answered")
            except Exception as exc:  # grpc.RpcError: cancelled by the stop, or refused
                code = exc.code() if hasattr(exc, "code") else type(exc).__name__
                outcome.append(str(code))

        t_req = time.monotonic()
        threading.Thread(target=ask, daemon=True).start()
        time.sleep(3)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(600)
        print(
            f"exit {rc} {time.monotonic() - t0:.1f} s after SIGTERM (--drain-seconds 10); the request: "
            f"{outcome[0] if outcome else 'no answer yet'} after {time.monotonic() - t_req:.1f} s"
        )


if __name__ == "__main__":
    main()
