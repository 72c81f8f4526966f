"""``speechtao data realspeech --out DIR``: manifests of the real speech Debian packages ship with transcripts."""

from __future__ import annotations


def register(actions) -> None:
    p = actions.add_parser(
        "realspeech",
        help="manifests of real human speech from Debian packages (pocketsphinx-testdata, alsa-utils)",
        description="Write pocketsphinx.jsonl (10 transcribed utterances of pocketsphinx-testdata), alsa.jsonl (the "
        "8 spoken channel names of alsa-utils) and all.jsonl, with absolute audio paths.",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=run)


def run(args) -> int:
    from ...corpora.realspeech import write_realspeech_manifests
    from ...data.manifest import read_manifest

    for name, path in write_realspeech_manifests(args.out).items():
        entries = read_manifest(path)
        print(f"{name:<13} {path}  {len(entries)} utterances, {sum(e.duration for e in entries):.1f} s")
    return 0
