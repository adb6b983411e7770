"""A stand-in OTLP/HTTP collector for the tracing benchmark: accepts span exports, counts them.

    python bench/otlp_sink.py PORT     # POST /v1/traces answers 200 (an empty export response)

It runs in its own process, on the loopback interface, so that exporting costs the service
what it costs against a real collector (serialising, compressing, sending), and stops with the
benchmark. Every minute and on exit it prints how many exports and bytes it received.
"""

from __future__ import annotations

import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Sink(BaseHTTPRequestHandler):
    """Reads each export and answers with an empty ExportTraceServiceResponse.

    HTTP/1.1, so the exporter's connection stays open between exports, as with a collector
    (under HTTP/1.0 the exporter connected anew for each batch: ~2% of the service's CPU).
    """

    protocol_version = "HTTP/1.1"
    exports = 0
    received = 0

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", "0"))
        self.rfile.read(length)
        Sink.exports += 1
        Sink.received += length
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return


def main() -> None:
    """Serve until terminated."""
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink)
    try:
        server.serve_forever()
    finally:
        print(f"otlp sink: {Sink.exports} exports, {Sink.received} bytes", flush=True)


if __name__ == "__main__":
    main()
