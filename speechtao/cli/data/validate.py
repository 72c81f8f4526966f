"""``speechtao data validate MANIFEST``: print every defect of a manifest; exit 2 if there is any."""

from __future__ import annotations


def register(actions) -> None:
    p = actions.add_parser(
        "validate",
        help="check a NeMo manifest line by line (JSON, fields, audio, durations, vocabulary)",
        description="Check every line of a NeMo JSON-lines manifest and print each defect as "
        "FILE:LINE: problem (fix). Exits 2 when there is any defect.",
    )
    p.add_argument("manifest", help="the .json/.jsonl manifest (relative audio paths resolve against its folder)")
    p.add_argument(
        "--vocab",
        metavar="char|FILE",
        help="check transcripts against a vocabulary: 'char' (NeMo's 28 symbols: space, a-z, "
        "apostrophe) or a file with one character per line",
    )
    p.add_argument(
        "--no-audio",
        action="store_true",
        help="skip opening the audio files (existence, decoding, length against duration)",
    )
    p.add_argument(
        "--duration-tolerance",
        type=float,
        default=None,
        metavar="SECONDS",
        help="allowed difference between duration and the audio's length (default 0.05)",
    )
    p.add_argument(
        "--allow-duplicates",
        action="store_true",
        help="accept the same audio_filepath and offset on several lines (deliberate oversampling)",
    )
    p.set_defaults(func=run)


def run(args) -> int:
    from ...data.manifest import DEFAULT_DURATION_TOLERANCE, load_vocab, scan_manifest
    from ...errors import ManifestError

    vocab = load_vocab(args.vocab) if args.vocab else None
    tolerance = DEFAULT_DURATION_TOLERANCE if args.duration_tolerance is None else args.duration_tolerance
    scan = scan_manifest(
        args.manifest,
        vocab=vocab,
        check_audio=not args.no_audio,
        duration_tolerance=tolerance,
        allow_duplicates=args.allow_duplicates,
    )
    if scan.defects:
        for defect in scan.defects:
            print(defect)
        # The defects are on stdout already; the error carries only the summary the CLI prints last.
        n, k = scan.lines, len(scan.defects)
        raise ManifestError([], summary=f"{args.manifest}: {n} line{'s' * (n != 1)}, {k} defect{'s' * (k != 1)}")
    seconds = sum(e.duration for e in scan.entries)
    print(f"OK: {len(scan.entries)} utterances, {seconds / 3600:.3g} hours ({seconds:.1f} s)")
    return 0
