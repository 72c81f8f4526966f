"""The model arguments ``asr evaluate`` and ``asr infer`` share: any form :func:`open_model` opens."""

from __future__ import annotations

from ..lm import add_decoding_args, attach_decoder


def add_model_arguments(p) -> None:
    g = p.add_argument_group("model (one of --model or --server)")
    g.add_argument(
        "--model",
        default=None,
        help="checkpoint (.pt/.ckpt), .nemo archive, exported ONNX (FP32 or INT8, from `asr export`), preset name, "
        "or whisper:NAME[:beam=N][:timestamps] (a Whisper encoder-decoder: tiny.en, base)",
    )
    g.add_argument(
        "--server", default=None, metavar="HOST:PORT", help="a running Riva-protocol server (Riva or speechtao serve)"
    )
    g.add_argument("--streaming", action="store_true", help="with --server: StreamingRecognize (finals) not Recognize")
    g.add_argument(
        "--server-model", default="", metavar="NAME", help="with --server: the served model (default: its default)"
    )
    g.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    g.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads for an .onnx model (default 1)")
    g.add_argument(
        "--window-s",
        type=float,
        default=None,
        help="fixed-window models (Whisper takes 30 s): longer audio is decoded in overlapping windows of this "
        "many seconds (default 10)",
    )
    g.add_argument("--overlap-s", type=float, default=4.0, help="seconds neighbouring windows share (default 4)")
    add_decoding_args(p)


def open_from_args(args):
    """Open the model the arguments name; raises InputError when neither or both of --model/--server are given."""
    from ...asr.backends import open_model
    from ...errors import InputError

    if args.server is None and args.model is None:
        raise InputError("no model: pass --model (checkpoint, .nemo, .onnx or preset) or --server HOST:PORT")
    model = open_model(
        args.model,
        threads=args.threads,
        device=args.device,
        server=args.server,
        streaming=args.streaming,
        model_name=args.server_model,
        window_s=args.window_s,
        overlap_s=args.overlap_s,
    )
    lm = attach_decoder(model, args)  # beam search with --lm DIR (speechtao.cli.lm)
    if lm:
        model.description += f"; {lm}"
    return model
