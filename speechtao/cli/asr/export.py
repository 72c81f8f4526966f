"""``speechtao asr export --model CKPT --format FORMAT --out PATH``: write a model for another runtime.

The formats and their options live in :mod:`speechtao.export.asr`; this module maps flags onto
:class:`~speechtao.export.asr.ExportOptions` and prints what was written.
"""

from __future__ import annotations

from ...export.asr import CALIB_METHODS, FORMATS, INT8_SCHEMES  # light: no torch import


def register(actions) -> None:
    p = actions.add_parser("export", help="export a model: " + ", ".join(FORMATS))
    p.add_argument(
        "--model",
        required=True,
        help="a speechtao checkpoint, a .nemo archive or a preset name; for the whisper-onnx formats whisper:NAME "
        "or a checkpoint of `asr finetune` from whisper:NAME",
    )
    p.add_argument(
        "--format", required=True, choices=sorted(FORMATS), help="; ".join(f"{k}: {v[1]}" for k, v in FORMATS.items())
    )
    p.add_argument("--out", required=True, help="file to write (triton, whisper-onnx*: the model's folder)")
    g = p.add_argument_group("onnx, onnx-int8, tensorrt, triton")
    g.add_argument(
        "--calib",
        help="manifest of in-domain audio for INT8 calibration (onnx-int8; tensorrt and triton become INT8 with it)",
    )
    g.add_argument(
        "--calib-method",
        default="entropy",
        choices=CALIB_METHODS,
        help="how activation ranges are calibrated (default entropy: robust to rare outlier activations, which "
        "minmax lets take the whole INT8 range)",
    )
    g.add_argument("--calib-utterances", type=int, default=64, help="calibration utterances (default 64)")
    g.add_argument("--percentile", type=float, default=99.999, help="kept percentile for --calib-method percentile")
    g.add_argument(
        "--int8-scheme",
        default="auto",
        choices=INT8_SCHEMES,
        help="static: calibrated QDQ (needs --calib); dynamic: INT8 weights, activation ranges at run time (no "
        "calibration); auto (default): dynamic for Whisper-encoder models, static for the others",
    )
    g.add_argument(
        "--int8-ffn-out",
        default="float",
        choices=("float", "int8"),
        help="dynamic INT8 of a Whisper-encoder model: keep the MLP output projections float (default; their "
        "GELU inputs have a long tail: they were nearly all of the character starter's 2.6-point INT8 WER loss on "
        "its validation voices) or make them INT8 too (smaller, faster)",
    )
    g.add_argument("--no-check", action="store_true", help="skip the ONNX-vs-PyTorch check (not recommended)")
    g.add_argument(
        "--dynamo",
        action="store_true",
        help="use torch's dynamo exporter (shorter graph, much slower export) instead of TorchScript's",
    )
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from ...asr.checkpoint import load_model
    from ...export.asr import ExportOptions, export_model

    options = ExportOptions(
        calib=Path(args.calib) if args.calib else None,
        calib_method=args.calib_method,
        calib_utterances=args.calib_utterances,
        percentile=args.percentile,
        check=not args.no_check,
        dynamo=args.dynamo,
        int8_scheme=args.int8_scheme,
        int8_ffn_out=args.int8_ffn_out,
    )
    from ...asr.whisper_transcribe import is_seq_path, is_seq_ref

    if args.format.startswith("whisper-"):
        return _export_whisper_seq(args, options)
    if is_seq_ref(args.model) or is_seq_path(args.model):
        from ...errors import InputError

        raise InputError(
            f"--model {args.model}: a Whisper encoder-decoder exports with --format whisper-onnx or whisper-onnx-int8"
        )
    loaded = load_model(args.model)
    result = export_model(loaded, args.format, Path(args.out), options)
    q = result.quant
    if q is not None and q.scheme == "dynamic":
        print(f"dynamic INT8 (no calibration, {len(q.float_nodes)} MatMuls kept float); FP32 graph {q.fp32_path}")
    elif q is not None:
        note = f", {len(q.overridden)} ranges from QAT" if q.overridden else ""
        print(
            f"calibrated on {q.utterances} utterances ({args.calib_method}{note}); TensorRT cache "
            f"{q.trt_cache_path} for {q.fp32_path}"
        )
    print(
        f"wrote {result.path} ({args.format}, {loaded.config.family}, {loaded.tokenizer.vocab_size}-token vocabulary)"
    )
    return 0


def _export_whisper_seq(args, options) -> int:
    from pathlib import Path

    from ...asr.whisper_seq import WhisperSeqModel
    from ...asr.whisper_transcribe import PREFIX, is_seq_path, load_seq_ref
    from ...errors import InputError
    from ...export.asr import export_model

    if not (args.model.startswith(PREFIX) or is_seq_path(args.model)):
        raise InputError(
            f"--format {args.format} takes a Whisper encoder-decoder: whisper:NAME or a checkpoint of `asr finetune` "
            f"from whisper:NAME, not {args.model!r} (CTC models: --format onnx or onnx-int8)"
        )
    ref = args.model if args.model.startswith(PREFIX) else PREFIX + args.model
    model = load_seq_ref(ref).model
    if not isinstance(model, WhisperSeqModel):
        raise InputError(f"--model {args.model}: is an ONNX export already; export from whisper:NAME or a checkpoint")
    result = export_model(model, args.format, Path(args.out), options)
    check = result.quant
    note = ""
    if check is not None:
        note = f"; ONNX Runtime vs PyTorch: max |logit diff| {check.max_logit_diff:.2g}, greedy tokens " + (
            "equal" if check.same_tokens else "differ"
        )
    print(f"wrote {result.path}/ ({args.format}, Whisper {model.name}){note}")
    return 0
