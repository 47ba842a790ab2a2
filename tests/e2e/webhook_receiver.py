"""A webhook receiver for the end-to-end tests, run as its own process on 127.0.0.1:
records every request (headers and body, one JSON line each) and answers 500 to the first
`--fail-completions` deliveries of a `job.completed`, 204 to everything else.

    python -m tests.e2e.webhook_receiver --port-file P --log L --fail-completions 3
"""

from __future__ import annotations

import argparse
import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port-file", type=Path, required=True)
    parser.add_argument("--log", type=Path, required=True)
    parser.add_argument("--fail-completions", type=int, default=0)
    args = parser.parse_args()
    lock = threading.Lock()
    failures_left = [args.fail_completions]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            with lock:
                kind = json.loads(body).get("type") if body.startswith(b"{") else None
                failing = kind == "job.completed" and failures_left[0] > 0
                failures_left[0] -= 1 if failing else 0
                status = 500 if failing else 204
                line = {
                    "path": self.path,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": base64.b64encode(body).decode(),
                    "answered": status,
                }
                with args.log.open("a", encoding="utf-8") as stream:
                    stream.write(json.dumps(line) + "\n")
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *values: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    scratch = args.port_file.with_suffix(".tmp")
    scratch.write_text(str(server.server_address[1]))
    scratch.replace(args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
