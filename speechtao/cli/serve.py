"""``speechtao serve --models DIR`` (and/or ``--model M``): serve ASR and NLP models over Riva's gRPC protocol.

Prints ``listening on HOST:PORT`` once the port is bound (health NOT_SERVING), one line per loaded model, then
``serving`` (health SERVING). SIGTERM or Ctrl-C drains running streams for ``--drain-seconds`` and exits 0.
The bearer token can come from ``--token`` or, to keep it out of the process list, ``SPEECHTAO_TOKEN``.
PyTorch (the feature front end, checkpoint models) runs one intra-op thread unless ``SPEECHTAO_THREADS`` says
otherwise: a 2-thread OpenMP pool on a busy 2-core machine made 3 s of log-mel features take ~650 ms instead of
~2-10 ms.
"""

from __future__ import annotations

import os
import sys

from ..errors import InputError, MissingDependencyError


def register(sub) -> None:
    p = sub.add_parser(
        "serve",
        help="serve exported models over Riva's gRPC protocol (ASR, NLP, health)",
        description="Serve the models of a folder over Riva's gRPC protocol; existing Riva clients "
        "work unchanged. Listens on loopback unless --host says otherwise.",
    )
    p.add_argument("--models", help="model repository folder (.onnx / .ckpt ASR models, NLP folders)")
    p.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="M",
        help="an ASR model to serve besides (or instead of) a folder: a file (.onnx/.pt/.ckpt/.nemo) or a "
        "Whisper encoder-decoder reference whisper:NAME[:beam=N][:timestamps] (tiny.en, base), served under that "
        "reference as its name; repeatable",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    p.add_argument("--port", type=int, default=50051, help="port (default 50051; 0 picks a free one)")
    p.add_argument("--tls-cert", help="PEM certificate chain; with --tls-key the server accepts TLS only")
    p.add_argument("--tls-key", help="PEM private key")
    p.add_argument(
        "--token",
        default=os.environ.get("SPEECHTAO_TOKEN"),
        help="bearer token every RPC but health must carry (default: $SPEECHTAO_TOKEN)",
    )
    p.add_argument(
        "--default-model", help="ASR model used when RecognitionConfig.model is empty (default: first by name)"
    )
    p.add_argument(
        "--lm",
        default=None,
        metavar="DIR",
        help="LM folder (speechtao lm build; e.g. models/lm_general_en) for the ASR models without their own "
        "(MODELS/lm/ or MODELS/X.lm/): finals are beam-searched, speech_contexts and max_alternatives apply",
    )
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"], help="where ASR models run")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="intra-op threads per ONNX Runtime session (PyTorch uses 1, or $SPEECHTAO_THREADS)",
    )
    p.add_argument("--chunk-ms", type=int, default=160, help="audio committed per streaming step")
    p.add_argument("--left-context-ms", type=int, default=1200, help="audio before each chunk the model sees")
    p.add_argument("--right-context-ms", type=int, default=480, help="look-ahead after each chunk")
    p.add_argument(
        "--final-pass",
        default="utterance",
        choices=["utterance", "chunks"],
        help="finals from one pass over the utterance (accurate) or from the chunks (faster)",
    )
    p.add_argument(
        "--normalization",
        default="stream",
        choices=["stream", "window"],
        help="feature statistics of chunk windows: the utterance so far (stream) or the window alone",
    )
    p.add_argument(
        "--redecode-ms",
        type=int,
        default=1000,
        help="encoder-decoder (Whisper) streams: new audio between two interim decodes of the utterance",
    )
    p.add_argument(
        "--interim-beam", type=int, default=1, help="encoder-decoder streams: beam of interim decodes (1: greedy)"
    )
    p.add_argument(
        "--max-interim-share",
        type=float,
        default=0.5,
        help="encoder-decoder streams: interim decoding takes at most this share of a stream's real time (a "
        "decode of d s waits for d / share s of new audio before the next)",
    )
    p.add_argument(
        "--bf16-encoder",
        default="interims",
        choices=["off", "interims", "all"],
        help="encoder-decoder models, where the CPU has native bf16 (avx512_bf16/AMX): run the encoder in bf16 for "
        "interim decodes (default; finals stay float32, exactly asr infer's), for finals too (all), or never",
    )
    p.add_argument("--max-batch-size", type=int, default=16, help="streams decoded in one batch at most")
    p.add_argument("--max-wait-ms", type=float, default=10.0, help="how long a step waits for others to batch with")
    p.add_argument(
        "--no-final-lane",
        action="store_true",
        help="one decoding worker only (default: a second worker runs final results, so a final never "
        "waits behind an interim batch)",
    )
    p.add_argument("--max-streams", type=int, default=64, help="concurrent recognition RPCs in total")
    p.add_argument(
        "--max-streams-per-peer",
        type=int,
        default=0,
        help="concurrent recognition RPCs per client address (default 0: no cap below --max-streams; an "
        "application server is one peer carrying many users)",
    )
    p.add_argument(
        "--max-message-mb",
        type=float,
        default=64.0,
        help="largest audio in one request message, MiB (default 64: 34 min of 16-bit 16 kHz mono)",
    )
    p.add_argument(
        "--max-text-chars", type=int, default=20_000, help="characters of text in one NLP request, all texts together"
    )
    p.add_argument("--max-qa-context-chars", type=int, default=20_000, help="characters of one NaturalQuery context")
    p.add_argument(
        "--no-itn",
        action="store_true",
        help="do not load the inverse text normalization grammars (then verbatim_transcripts=false also "
        "returns the model's words; ~12 s less start-up)",
    )
    p.add_argument("--itn-cache", help="folder of the compiled ITN grammars (default ~/.cache/speechtao/itn)")
    p.add_argument("--max-stream-seconds", type=float, default=3600.0, help="longest audio per request")
    p.add_argument("--idle-timeout", type=float, default=30.0, help="cancel a stream silent for this many seconds")
    p.add_argument("--drain-seconds", type=float, default=10.0, help="on SIGTERM, time running RPCs get to finish")
    p.add_argument(
        "--web",
        type=int,
        metavar="PORT",
        help="also serve the browser demo (microphone or file -> live transcript, questions about a text) on "
        "http://HOST:PORT/ (0: a free port), bridged to this server's gRPC API",
    )
    p.set_defaults(func=run)


def run(args) -> int:
    from ..serve.batching import BatchOptions
    from ..serve.recognizer import StreamingOptions
    from ..serve.repository import ModelRepository, describe
    from ..serve.seq_recognizer import SeqStreamingOptions
    from . import set_threads

    try:
        from speechtao_server.app import ServerOptions, serve_forever
        from speechtao_server.limits import Limits
    except ImportError as exc:
        raise MissingDependencyError(
            f"the gRPC server package speechtao_server cannot be imported ({exc}); install speechtao "
            "(pip install -e . from the repository, which installs server/ as speechtao_server) and "
            "nvidia-riva-client"
        ) from None
    if os.environ.get("SPEECHTAO_THREADS"):
        set_threads()
    else:  # PyTorch (features, checkpoint models): one thread; the server runs many streams per batch instead
        import torch

        torch.set_num_threads(1)
    try:
        options = ServerOptions(
            host=args.host,
            port=args.port,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            token=args.token or None,
            limits=Limits(
                max_streams=args.max_streams,
                max_streams_per_peer=args.max_streams_per_peer,
                max_message_bytes=int(args.max_message_mb * (1 << 20)),
                max_stream_seconds=args.max_stream_seconds,
                idle_timeout_s=args.idle_timeout,
                drain_seconds=args.drain_seconds,
                max_text_chars=args.max_text_chars,
                max_qa_context_chars=args.max_qa_context_chars,
            ),
            itn=not args.no_itn,
            itn_cache=args.itn_cache,
            batch=BatchOptions(
                max_batch_size=args.max_batch_size, max_wait_ms=args.max_wait_ms, final_lane=not args.no_final_lane
            ),
        )
        streaming = StreamingOptions(
            chunk_ms=args.chunk_ms,
            left_context_ms=args.left_context_ms,
            right_context_ms=args.right_context_ms,
            final_pass=args.final_pass,
            normalization=args.normalization,
        )
        seq = SeqStreamingOptions(
            redecode_ms=args.redecode_ms,
            interim_beam=args.interim_beam,
            max_interim_share=args.max_interim_share,
            bf16_encoder=args.bf16_encoder,
        )
    except ValueError as exc:
        raise InputError(f"speechtao serve: {exc}") from None
    if args.models is None and not args.model:
        raise InputError("speechtao serve: nothing to serve (give --models DIR and/or --model M, e.g. whisper:tiny.en)")
    if args.host not in ("127.0.0.1", "::1", "localhost") and not args.token:
        print(
            f"warning: listening on {args.host} without --token: anyone who can reach the port may use it",
            file=sys.stderr,
        )

    def load():
        return ModelRepository.load(
            args.models,
            streaming,
            device=args.device,
            threads=args.threads,
            default_asr=args.default_model,
            max_batch_size=args.max_batch_size,
            lm=args.lm,
            models=args.model,
            seq_options=seq,
        )

    if args.web is not None and args.tls_cert:
        raise InputError("--web needs a plaintext gRPC port (its bridge connects over loopback): drop --tls-cert")
    web = []

    def on_event(event: str, info: dict) -> None:
        if event == "listening" and args.web is not None:
            from speechtao_server.web import start_web

            web.append(start_web(info["port"], args.host, args.web, args.token))
            print(f"web demo on {web[0].url}", flush=True)
        if event == "listening":
            scheme = "TLS" if args.tls_cert else "plaintext"
            print(
                f"listening on {args.host}:{info['port']} ({scheme}{', token auth' if args.token else ''}); "
                "health NOT_SERVING while models load",
                flush=True,
            )
        elif event == "serving":
            for row in describe(info["repo"]):
                extra = f" {row['provider']} {row['sample_rate']} Hz" if row["task"] == "asr" else ""
                default = " (default)" if row.get("default") else ""
                print(f"model {row['name']}: {row['task']}{extra} {row['path']}{default}", flush=True)
            print("serving", flush=True)
        elif event == "stopped":
            for bridge in web:
                bridge.stop()
            print("stopped", flush=True)

    busy = serve_forever(load, options, on_event)
    if busy:  # RPCs the drain cancelled may still be computing (an NLP call cannot be interrupted): do not wait
        print(f"exiting with {busy} request(s) still computing after the drain", file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(0)
    return 0
