"""``speechtao lm build|tune``: n-gram language models for CTC beam search; the decoding flags of
``asr evaluate`` / ``asr infer`` (``--lm DIR --alpha --beta --beam-size --lexicon-free --boost``)."""

from __future__ import annotations

import argparse
import json

from ..errors import InputError


def register(sub) -> None:
    p = sub.add_parser("lm", help="n-gram language models for beam-search decoding: build, tune")
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True

    b = actions.add_parser(
        "build",
        help="build an LM folder (KenLM or pure-Python ARPA, lexicon, model card) from text and manifests",
        description="Normalize text as the training labels are, build an n-gram LM (KenLM's lmplz when "
        "`make lm-tools` built it, else a pure-Python modified Kneser-Ney ARPA), write words.txt, lexicon.txt "
        "and the card lm.json. Prints the card's counts.",
    )
    b.add_argument("--text", nargs="*", default=[], metavar="FILE", help="plain text files")
    b.add_argument("--manifest", nargs="*", default=[], metavar="M", help="NeMo manifests (their text fields)")
    b.add_argument("--order", type=int, default=3, help="n-gram order (default 3)")
    b.add_argument("--out", required=True, metavar="DIR", help="the LM folder to write")
    b.add_argument("--backend", choices=["auto", "kenlm", "python"], default="auto", help="default: kenlm if built")
    b.add_argument("--model", default=None, help="write lexicon.txt in this model's tokenizer (default: characters)")
    b.add_argument("--token-order", type=int, default=0, help="also a token n-gram for --lexicon-free (e.g. 6)")
    b.add_argument("--debian-text", action="store_true", help="add the Debian text sources (the general English LM)")
    b.add_argument("--gensim-wheel", default=None, metavar="WHL", help="add the gensim 4.4.0 wheel's test corpora")
    b.add_argument(
        "--exclude-manifest", nargs="*", default=[], metavar="M", help="leave these manifests' sentences out"
    )
    b.add_argument("--prune", type=int, nargs="*", default=[], metavar="N", help="kenlm: lmplz --prune (e.g. 0 1 1)")
    b.add_argument("--compact", action="store_true", help="kenlm: trie binary with 8-bit quantization (~4x smaller)")
    b.add_argument("--license", action="append", default=[], metavar="NOTE", help="a license note for the card")
    b.set_defaults(func=run_build)

    t = actions.add_parser(
        "tune",
        help="grid-search alpha/beta on a dev manifest and store the best in the LM card",
        description="Run the model once over the manifest, beam-search every alpha x beta, print the grid, and "
        "store the lowest-WER point in DIR/lm.json (used by asr evaluate/infer --lm DIR and the server).",
    )
    t.add_argument("--lm", required=True, metavar="DIR", help="LM folder (speechtao lm build)")
    t.add_argument("--model", required=True, help="checkpoint, .nemo, ONNX file or preset")
    t.add_argument("--manifest", required=True, help="dev manifest with reference texts")
    t.add_argument("--alphas", type=_floats, default=None, metavar="A,B,..", help="LM weights to try")
    t.add_argument("--betas", type=_floats, default=None, metavar="A,B,..", help="word scores to try")
    t.add_argument("--beam-size", type=int, default=16, help="beam width (default 16)")
    t.add_argument("--lexicon-free", action="store_true", help="tune the open-vocabulary token-LM mode")
    t.add_argument("--dry-run", action="store_true", help="print the grid, leave the card as it is")
    t.set_defaults(func=run_tune)


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated numbers, e.g. 0.5,1,2") from None


def add_decoding_args(p: argparse.ArgumentParser) -> None:
    """The LM decoding flags shared by ``asr evaluate`` and ``asr infer``."""
    g = p.add_argument_group("language model decoding (beam search; without --lm: greedy)")
    g.add_argument("--lm", default=None, metavar="DIR", help="LM folder (speechtao lm build); its tuned alpha/beta")
    g.add_argument("--alpha", type=float, default=None, help="LM weight (overrides the LM card's)")
    g.add_argument("--beta", type=float, default=None, help="word score (overrides the LM card's)")
    g.add_argument("--beam-size", type=int, default=None, help="beam width (default: the card's, else 16)")
    g.add_argument("--lexicon-free", action="store_true", help="open vocabulary: the token LM (--token-order)")
    g.add_argument(
        "--boost", action="append", default=[], metavar="PHRASE:SCORE", help="favour a phrase, e.g. 'Harlow:10'"
    )


def attach_decoder(backend, args) -> str | None:
    """Give ``backend`` (a Transcriber) the LM decoder the flags ask for; returns a description, or None."""
    if args.lm is None:
        if args.boost or args.alpha is not None or args.beta is not None or args.lexicon_free:
            raise InputError("--boost, --alpha, --beta and --lexicon-free need --lm DIR (speechtao lm build)")
        return None
    from ..lm.decode import Boost, LMDecoder

    if not hasattr(backend, "decoder") or not hasattr(backend, "tokenizer"):
        raise InputError("--lm decodes a model run here (checkpoint, .nemo or ONNX), not a --server endpoint")
    decoder = LMDecoder(args.lm, backend.tokenizer, boosts=[Boost.parse(b) for b in args.boost])
    spec = decoder.spec.replace(alpha=args.alpha, beta=args.beta, beam_size=args.beam_size)
    if args.lexicon_free:
        spec = spec.replace(lexicon_free=True)
    decoder.spec = spec
    backend.decoder = decoder
    mode = "lexicon-free" if spec.lexicon_free else "lexicon"
    return f"LM {args.lm} ({mode}, alpha {spec.alpha:g}, beta {spec.beta:g}, beam {spec.beam_size})"


def run_build(args) -> int:
    from ..lm.build import LMBuildOptions, build_lm

    tokenizer = None
    if args.model:
        from ..asr.backends import open_model

        backend = open_model(args.model)
        tokenizer = backend.tokenizer
        backend.close()
    texts, notes, names = list(args.text), list(args.license), {}
    if args.debian_text or args.gensim_wheel:
        from pathlib import Path

        from ..data.manifest import read_manifest
        from ..lm.general import licenses, write_general_text
        from ..text.normalize import normalize_text

        exclude = {normalize_text(e.text) for m in args.exclude_manifest for e in read_manifest(m)}
        general = Path(args.out) / "general.txt"
        counts = write_general_text(general, gensim_wheel=args.gensim_wheel, exclude=exclude, debian=args.debian_text)
        texts.append(str(general))
        names[str(general)] = "general English text: " + ", ".join(f"{k} {v} lines" for k, v in counts.items())
        notes += [f"{k}: {licenses()[k]}" for k in counts]
    card = build_lm(
        LMBuildOptions(
            out=args.out,
            texts=texts,
            source_names=names,
            manifests=args.manifest,
            order=args.order,
            backend=args.backend,
            tokenizer=tokenizer,
            token_order=args.token_order,
            prune=args.prune,
            compact=args.compact,
            license_notes=notes,
        )
    )
    if args.debian_text or args.gensim_wheel:
        (Path(args.out) / "general.txt").unlink()  # rebuilt from the packages on demand; the card says how
    counts = ", ".join(f"{k}-grams {v}" for k, v in card["counts"].items())
    print(f"{card['sentences']} sentences, {card['vocabulary']} words; {counts} ({card['backend']})")
    print(f"wrote {args.out}/{card['lm']}, words.txt, lexicon.txt, lm.json")
    return 0


def run_tune(args) -> int:
    from ..asr.backends import open_model
    from ..lm.tune import TuneOptions, tune_lm
    from . import set_threads

    set_threads()
    kw = {k: v for k, v in (("alphas", args.alphas), ("betas", args.betas)) if v}
    opts = TuneOptions(beam_size=args.beam_size, lexicon_free=args.lexicon_free, write=not args.dry_run, **kw)
    backend = open_model(args.model)
    try:
        result = tune_lm(args.lm, backend, args.manifest, opts)
    finally:
        backend.close()
    for g in result["grid"]:
        print(f"alpha {g['alpha']:<5g} beta {g['beta']:<5g} WER {100 * g['wer']:.2f}%")
    best = result["best"]
    print(json.dumps({k: v for k, v in result.items() if k != "grid"}))
    where = "" if args.dry_run else f" (stored in {args.lm}/lm.json)"
    print(
        f"best alpha {best['alpha']:g} beta {best['beta']:g}: WER {100 * best['wer']:.2f}% "
        f"vs greedy {100 * result['greedy_wer']:.2f}%{where}"
    )
    return 0
