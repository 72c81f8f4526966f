"""``speechtao data label --model M (--audio DIR | --manifest M) --out MANIFEST``: a teacher labels unlabeled audio."""

from __future__ import annotations

import sys

DESCRIPTION = """Transcribe unlabeled audio with a teacher model (any --model form of `asr evaluate`, e.g.
whisper:base) and write a training manifest: each line with the transcript, the teacher's confidence and
label_model. Utterances below --min-confidence, with fewer than --min-words words or reading faster than
--max-chars-per-second go to OUT's .rejected.jsonl with the reason. `speechtao asr finetune` reads the output."""


def register(actions) -> None:
    p = actions.add_parser("label", help="transcribe unlabeled audio into a training manifest", description=DESCRIPTION)
    p.add_argument("--model", required=True, help="teacher: checkpoint, ONNX, preset, or whisper:NAME[:beam=N]")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--audio", default=None, metavar="DIR", help="a folder of audio files (searched recursively)")
    src.add_argument("--manifest", default=None, help="a manifest whose utterances to label (its texts are ignored)")
    p.add_argument("--out", required=True, help="the manifest to write (absolute audio paths)")
    p.add_argument("--min-confidence", type=float, default=0.0, help="keep utterances at or above (0..1; default 0)")
    p.add_argument("--min-words", type=int, default=1, help="keep transcripts of at least this many words (default 1)")
    p.add_argument(
        "--max-chars-per-second", type=float, default=25.0, help="reject faster transcripts (default 25; 0: off)"
    )
    p.add_argument("--batch-size", type=int, default=8)
    p.set_defaults(func=run)


def run(args) -> int:
    from ...asr.label import LabelOptions, label_audio
    from .. import set_threads

    set_threads()
    opts = LabelOptions(
        min_confidence=args.min_confidence,
        min_words=args.min_words,
        max_chars_per_second=args.max_chars_per_second or None,
        batch_size=args.batch_size,
    )

    def progress(done: int, total: int) -> None:
        if sys.stderr.isatty():
            print(f"\rlabel {done}/{total}", end="", file=sys.stderr, flush=True)

    report = label_audio(
        args.model, opts, out=args.out, audio_dir=args.audio, manifest=args.manifest, progress=progress
    )
    if sys.stderr.isatty():
        print(file=sys.stderr)
    why = ", ".join(f"{k} {v}" for k, v in sorted(report.reasons.items())) or "none"
    print(f"kept {report.kept} utterances ({report.hours_kept:.4g} h) -> {report.out}")
    print(f"rejected {report.rejected} ({why}) -> {report.rejected_out}")
    return 0
