"""``speechtao data domain --out DIR [--n-train N] [--n-test N] [--seed S]``: the bundled custom-domain corpus."""

from __future__ import annotations


def register(actions) -> None:
    p = actions.add_parser(
        "domain",
        help="make the bundled custom-domain corpus (smart-home commands, voices unseen in pretraining)",
        description="Synthesize smart-home voice commands with the espeak-ng New York accent and flite rms (voices "
        "that the shipped starters never heard) into train.jsonl and test.jsonl. Deterministic for "
        "a seed and resumable: rerun the same command to finish an interrupted corpus.",
    )
    p.add_argument("--out", required=True, help="output folder (WAVs, train.jsonl, test.jsonl)")
    p.add_argument("--n-train", type=int, default=160, help="training utterances (default 160)")
    p.add_argument("--n-test", type=int, default=40, help="test utterances, sentences unseen in train (default 40)")
    p.add_argument("--seed", type=int, default=0, help="decides sentences, voices, rates, pitches (default 0)")
    p.add_argument("--workers", type=int, default=2, help="parallel processes (default 2)")
    p.set_defaults(func=run)


def run(args) -> int:
    import sys

    from ...corpora.domain import DomainSpec, corpus_summary, make_domain_corpus
    from ...errors import InputError

    try:
        spec = DomainSpec(n_train=args.n_train, n_test=args.n_test, seed=args.seed, workers=args.workers)
    except ValueError as exc:
        raise InputError(f"data domain: {exc}") from None
    train, test = make_domain_corpus(args.out, spec, log=lambda m: print(m, file=sys.stderr))
    for name, path in (("train", train), ("test", test)):
        s = corpus_summary(path)
        print(
            f"{name:<6} {path}  {s['utterances']} utterances, {s['minutes']:.2f} min, {s['voices']} voices, "
            f"{s['vocabulary']} distinct words"
        )
    return 0
