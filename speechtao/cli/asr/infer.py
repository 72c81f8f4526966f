"""``speechtao asr infer``: transcripts with word times as JSON lines, CTM or SRT."""

from __future__ import annotations

import sys

from ._model_args import add_model_arguments, open_from_args


def register(actions) -> None:
    p = actions.add_parser(
        "infer",
        help="transcribe audio files or a manifest (JSON lines, CTM or SRT)",
        description="Transcribe audio with word times (ms from the start of each file) and confidences.",
    )
    add_model_arguments(p)
    p.add_argument("files", nargs="*", metavar="FILE", help="audio files (WAV, FLAC, OGG)")
    p.add_argument("--manifest", default=None, help="transcribe the utterances of a manifest instead of FILEs")
    p.add_argument("--format", choices=["jsonl", "ctm", "srt"], default="jsonl", help="output format")
    p.add_argument("--out", default=None, help="output file (default stdout); for SRT of several recordings, a folder")
    p.add_argument(
        "--batch-size",
        type=int,
        default=16,
        help="utterances per forward pass; with --server, requests in flight (default 16)",
    )
    p.set_defaults(func=run)


def run(args) -> int:
    from ...asr.infer import utterances_from, write_results
    from .. import set_threads

    set_threads()
    utts = utterances_from(args.files, args.manifest)
    model = open_from_args(args)
    print(f"loaded {model.description}", file=sys.stderr, flush=True)
    try:
        results = model.transcribe(utts, args.batch_size, progress=sys.stderr.isatty())
    finally:
        model.close()
    written = write_results(results, args.format, args.out)
    if written:
        print(f"wrote {len(results)} transcripts to {', '.join(map(str, written))}", file=sys.stderr)
    return 0
