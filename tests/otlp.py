"""In-process OTLP receivers (gRPC and HTTP/protobuf) that collect the spans they are sent (the gRPC
one metrics too), and a collector that never answers."""

from __future__ import annotations

import gzip
import socket
import threading
import time
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, List

import grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from .servers import free_port


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    return getattr(value, kind) if kind else None


class ReceivedSpan:
    """A flattened span: name, kind, ids, attributes, events, status and its resource's attributes."""

    def __init__(self, span: Any, resource: Dict[str, Any]) -> None:
        self.name = span.name
        self.kind = span.kind
        self.trace_id = span.trace_id.hex()
        self.span_id = span.span_id.hex()
        self.parent_span_id = span.parent_span_id.hex()
        self.attributes = {a.key: _value(a.value) for a in span.attributes}
        self.events = [(e.name, {a.key: _value(a.value) for a in e.attributes}) for e in span.events]
        self.status_code = span.status.code
        self.status_message = span.status.message
        self.resource = resource
        self.start_ns = span.start_time_unix_nano
        self.end_ns = span.end_time_unix_nano

    def __repr__(self) -> str:
        return f"<span {self.name} {self.attributes}>"


class Collector:
    """Spans received so far, shared by both receivers; ``wait_for`` polls with a deadline."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.spans: List[ReceivedSpan] = []
        self.requests = 0

    def add(self, request: Any) -> None:
        with self._lock:
            self.requests += 1
            for resource_spans in request.resource_spans:
                resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        self.spans.append(ReceivedSpan(span, resource))

    def wait_for(
        self, predicate: Callable[[List[ReceivedSpan]], bool], timeout: float = 15.0
    ) -> List[ReceivedSpan]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                spans = list(self.spans)
            if predicate(spans):
                return spans
            time.sleep(0.05)
        raise AssertionError(f"spans never matched; received: {self.spans}")

    def clear(self) -> None:
        with self._lock:
            self.spans.clear()


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, collector: Collector) -> None:
        self.collector = collector

    def Export(self, request: Any, context: Any) -> Any:
        self.collector.add(request)
        return trace_service_pb2.ExportTraceServiceResponse()


class _MetricsService(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, receiver: GrpcReceiver) -> None:
        self.receiver = receiver

    def Export(self, request: Any, context: Any) -> Any:
        self.receiver.add_metrics(request)
        return metrics_service_pb2.ExportMetricsServiceResponse()


Point = Dict[str, Any]


class GrpcReceiver(Collector):
    def __init__(self) -> None:
        super().__init__()
        # The latest cumulative histogram points, by (service.instance.id, metric, attributes).
        self.histograms: Dict[Any, Point] = {}
        self.port = free_port()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_TraceService(self), self.server)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(_MetricsService(self), self.server)
        self.server.add_insecure_port(f"127.0.0.1:{self.port}")
        self.server.start()
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def add_metrics(self, request: Any) -> None:
        with self._lock:
            for resource_metrics in request.resource_metrics:
                resource = {a.key: _value(a.value) for a in resource_metrics.resource.attributes}
                for scope_metrics in resource_metrics.scope_metrics:
                    for metric in scope_metrics.metrics:
                        for point in metric.histogram.data_points:
                            attributes = {a.key: _value(a.value) for a in point.attributes}
                            key = (
                                resource.get("service.instance.id"),
                                metric.name,
                                tuple(sorted(attributes.items())),
                            )
                            self.histograms[key] = {
                                "name": metric.name,
                                "unit": metric.unit,
                                "resource": resource,
                                "attributes": attributes,
                                "count": point.count,
                                "sum": point.sum,
                                "bounds": list(point.explicit_bounds),
                            }

    def points(self, name: str, **attributes: Any) -> List[Point]:
        """The latest point of each process for the histogram ``name`` whose attributes include these."""
        with self._lock:
            return [
                point
                for point in self.histograms.values()
                if point["name"] == name and attributes.items() <= point["attributes"].items()
            ]

    def count(self, name: str, **attributes: Any) -> int:
        """Observations of ``name`` so far, summed over every process that sent them."""
        return sum(point["count"] for point in self.points(name, **attributes))

    def stop(self) -> None:
        self.server.stop(grace=None)


class HttpReceiver(Collector):
    def __init__(self) -> None:
        super().__init__()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                data = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    data = gzip.decompress(data)
                request = trace_service_pb2.ExportTraceServiceRequest()
                request.ParseFromString(data)
                collector.add(request)
                collector.paths.append(self.path)
                body = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.paths: List[str] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class SilentPort:
    """A collector that takes connections (the kernel completes them) but never answers a byte."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.sock.close()
