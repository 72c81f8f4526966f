"""The gRPC layer: Riva's ASR and NLP services and grpc.health.v1 over the serving API in ``speechtao.serve``.

Installed as ``speechtao_server`` (this folder; ``pip install`` adds no top-level ``server`` module).
``speechtao_server.app.start_server`` assembles a ``grpc.Server`` from a
:class:`speechtao.serve.repository.ModelRepository`;
``speechtao serve`` (``speechtao/cli/serve.py``) runs it. The message and servicer classes are the ones
``nvidia-riva-client`` ships, so Riva's own clients talk to this server unchanged.
"""
