"""``speechtao data convert --from folder|csv|librispeech SRC --out manifest.jsonl``."""

from __future__ import annotations

SOURCE_KINDS = ("folder", "csv", "librispeech")


def register(actions) -> None:
    p = actions.add_parser(
        "convert",
        help="build a NeMo manifest from a folder of audio+.txt, a path,text CSV or a LibriSpeech folder",
        description="Build a NeMo JSON-lines manifest; durations are measured from the audio and audio paths "
        "are written relative to the manifest's folder. Every missing transcript or audio file is reported.",
    )
    p.add_argument(
        "--from",
        dest="kind",
        required=True,
        choices=SOURCE_KINDS,
        help="folder: audio with same-stem .txt transcripts (recursive); csv: header path,text, "
        "paths relative to the CSV; librispeech: SPEAKER/CHAPTER/*.trans.txt + .flac",
    )
    p.add_argument("src", help="the folder or CSV file to convert")
    p.add_argument("--out", required=True, help="manifest to write (.jsonl)")
    p.add_argument(
        "--min-duration", type=float, default=None, metavar="SECONDS", help="drop utterances shorter than this"
    )
    p.add_argument(
        "--max-duration", type=float, default=None, metavar="SECONDS", help="drop utterances longer than this"
    )
    p.set_defaults(func=run)


def run(args) -> int:
    from ...data.convert import convert

    entries, report = convert(args.kind, args.src, args.out, args.min_duration, args.max_duration)
    seconds = sum(e.duration for e in entries)
    print(report)
    print(f"wrote {len(entries)} utterances ({seconds / 3600:.3g} hours, {seconds:.1f} s) to {args.out}")
    return 0
