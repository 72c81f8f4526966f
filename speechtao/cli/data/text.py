"""``speechtao data text``: a deterministic sample of clean English sentences from Debian text packages.

speechtao data text --sources wordnet,bible,fortunes --n 1000 --seed 0 --out sentences.txt [--normalize]
speechtao data text --list
"""

from __future__ import annotations

from pathlib import Path


def register(actions) -> None:
    p = actions.add_parser(
        "text",
        help="sample clean English sentences from installed text packages (wordnet, bible, fortunes, pydocs)",
        description="Write a deterministic sample of clean sentences (letters and plain punctuation, "
        "deduplicated), one per line, and print how many came from each source.",
    )
    p.add_argument(
        "--sources",
        default="wordnet,bible,fortunes",
        help="comma-separated sources (default: wordnet,bible,fortunes; see --list)",
    )
    p.add_argument("--n", type=int, default=1000, help="number of sentences (default: 1000)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default: 0)")
    p.add_argument("--min-words", type=int, default=3, help="shortest sentence in words (default: 3)")
    p.add_argument("--max-words", type=int, default=20, help="longest sentence in words (default: 20)")
    p.add_argument(
        "--normalize",
        action="store_true",
        help="write the normalized spoken form (a-z, apostrophe, space) instead of the raw sentence",
    )
    p.add_argument("--out", help="output text file, one sentence per line")
    p.add_argument("--list", action="store_true", help="list the sources, their packages and licenses, and exit")
    p.set_defaults(func=run)


def run(args) -> int:
    from ...corpora.textsrc import SOURCES, is_available, mix_sentences, sample_sentences
    from ...errors import InputError
    from ...text.normalize import normalize_text

    if args.list:
        for src in SOURCES.values():
            installed = is_available(src.name)
            print(f"{src.name:<9} {'installed' if installed else 'missing  '}  apt: {' '.join(src.packages)}")
            print(f"{'':<9} {src.description}")
            print(f"{'':<9} license: {src.license}")
        return 0
    if not args.out:
        raise InputError("data text: --out is required (the text file to write), or pass --list")
    sources = [s.strip() for s in args.sources.split(",") if s.strip()]
    picked = sample_sentences(sources, args.n, args.seed, args.min_words, args.max_words)
    lines = mix_sentences(picked, args.seed)
    if args.normalize:
        lines = [normalize_text(s) for s in lines]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    tmp.replace(out)
    width = max(len(name) for name in picked)
    for name, sents in picked.items():
        print(f"{name:<{width}}  {len(sents):>6}")
    print(f"{'total':<{width}}  {len(lines):>6}  -> {out}")
    return 0
