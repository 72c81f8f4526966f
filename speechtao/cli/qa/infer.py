"""``speechtao qa infer``: answer a question about a context (or every question of a SQuAD file)."""

from __future__ import annotations


def register(actions) -> None:
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
    p.set_defaults(func=run)


def run(args) -> int:
    import json
    from pathlib import Path

    from ...errors import InputError
    from ...nlp.qa import QAModel, read_examples
    from .. import set_threads

    set_threads()
    if (args.data is None) == (args.context is None or args.question is None):
        raise InputError("give --context and --question, or --data FILE (not both)")
    qa = QAModel.load(args.model)
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
