"""grpc.health.v1.Health: NOT_SERVING until the models are loaded, SERVING after, NOT_SERVING while draining.

Service names: "" (the whole server), "nvidia.riva.asr.RivaSpeechRecognition" and
"nvidia.riva.nlp.RivaLanguageUnderstanding". Uses the health messages that ``nvidia-riva-client`` ships
(``riva.client.proto.health_pb2``), so no extra package is needed.
"""

from __future__ import annotations

import threading

import grpc
from riva.client.proto import health_pb2, health_pb2_grpc

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
UNKNOWN = health_pb2.HealthCheckResponse.UNKNOWN


class HealthService(health_pb2_grpc.HealthServicer):
    def __init__(self, services: tuple[str, ...] = ("",)):
        self._status = {name: NOT_SERVING for name in services}
        self._changed = threading.Condition()
        self._stopping = False

    def set_all(self, status: int) -> None:
        with self._changed:
            for name in self._status:
                self._status[name] = status
            self._changed.notify_all()

    def stop_watches(self) -> None:
        with self._changed:
            self._stopping = True
            self._changed.notify_all()

    def Check(self, request, context):
        status = self._status.get(request.service)
        if status is None:
            context.abort(
                grpc.StatusCode.NOT_FOUND,
                f"health: unknown service {request.service!r} (known: {', '.join(repr(s) for s in self._status)})",
            )
        return health_pb2.HealthCheckResponse(status=status)

    def Watch(self, request, context):
        last = None
        while context.is_active() and not self._stopping:
            status = self._status.get(request.service, UNKNOWN)
            if status != last:
                last = status
                yield health_pb2.HealthCheckResponse(status=status)
            with self._changed:
                self._changed.wait(timeout=1.0)
