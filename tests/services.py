"""Real servers for tests: `redis-server` and an S3-protocol server (moto), on 127.0.0.1.

Each server runs as a child process on a free port with its own temporary directory and is
stopped (and its directory removed) when the context manager exits. A missing `redis-server`
is an error, never a skip: CI installs it, so a missing binary means a broken setup.

Run as a script (`python tests/services.py s3 --port N`) this module serves moto's S3 app.
moto does not enforce the lifetime of presigned URLs, which real S3 and MinIO do, so the
app is wrapped in the same check those servers make: a query-signed request is refused with
403 `AccessDenied` once `X-Amz-Date + X-Amz-Expires` (signature v4) or `Expires` (v2) has
passed. Nor does moto check a presigned URL's signature: the wrapper recomputes signature v4
over the request as it arrived (method, path, query, signed headers) with the test
credentials, and refuses a mismatch (a changed key, a stretched lifetime) with 403
`SignatureDoesNotMatch`, as S3 does.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote

import httpx

TEST_ACCESS_KEY_ID = "t2v-test-key"
TEST_SECRET_ACCESS_KEY = "t2v-test-secret"
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
START_TIMEOUT_S = 20.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until(ready: Callable[[], bool], what: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with status {process.returncode} while starting")
        if ready():
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not become ready within {START_TIMEOUT_S} s")


def _stop(process: subprocess.Popen[bytes], *, kill: bool = False) -> None:
    if process.poll() is not None:
        return
    if kill:
        process.kill()
    else:
        process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def _redis_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@dataclass
class RedisServer:
    """A `redis-server` child process; `restart` keeps its port and data directory."""

    directory: Path
    appendonly: bool = False
    port: int = field(default_factory=free_port)
    _process: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0, **query: str) -> str:
        params = "&".join(f"{name}={value}" for name, value in query.items())
        return f"redis://127.0.0.1:{self.port}/{db}" + (f"?{params}" if params else "")

    def start(self) -> None:
        if not Path(REDIS_SERVER).exists():
            raise RuntimeError(
                "redis-server is not installed (looked for it on PATH and at "
                "/usr/bin/redis-server): install it, e.g. `apt-get install redis-server`"
            )
        persistence = (
            ["--appendonly", "yes", "--appendfsync", "always"]
            if self.appendonly
            else ["--appendonly", "no"]
        )
        self._process = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--dir", str(self.directory),
                "--save", "",
                *persistence,
                "--daemonize", "no",
                "--logfile", str(self.directory / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        _wait_until(lambda: _redis_ping(self.port), "redis-server", self._process)

    def stop(self, *, kill: bool = False) -> None:
        if self._process is not None:
            _stop(self._process, kill=kill)
            self._process = None

    def restart(self, *, kill: bool = True) -> None:
        """Stop the server (SIGKILL by default: a crash, not a clean shutdown) and start it
        again on the same port and directory."""
        self.stop(kill=kill)
        self.start()


@contextlib.contextmanager
def redis_server(*, appendonly: bool = False) -> Iterator[RedisServer]:
    directory = Path(tempfile.mkdtemp(prefix="t2v-redis-"))
    server = RedisServer(directory, appendonly=appendonly)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str
    region: str = "us-east-1"
    access_key_id: str = TEST_ACCESS_KEY_ID
    secret_access_key: str = TEST_SECRET_ACCESS_KEY

    def credentials_env(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_DEFAULT_REGION": self.region,
        }


def _s3_ready(endpoint_url: str) -> bool:
    try:
        return httpx.get(endpoint_url + "/", timeout=0.5).status_code < 500
    except httpx.HTTPError:
        return False


@contextlib.contextmanager
def s3_server() -> Iterator[S3Server]:
    port = free_port()
    endpoint_url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "s3", "--port", str(port)],
        env={**os.environ, "MOTO_PORT": str(port)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_until(lambda: _s3_ready(endpoint_url), "S3 server (moto)", process)
        yield S3Server(endpoint_url)
    finally:
        _stop(process)


def _expired(query_string: str, now: datetime) -> bool:
    query = parse_qs(query_string)
    if "Expires" in query and "Signature" in query:  # signature version 2: an epoch time
        return now.timestamp() > int(query["Expires"][0])
    if "X-Amz-Expires" not in query or "X-Amz-Date" not in query:
        return False
    signed_at = datetime.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    return (now - signed_at).total_seconds() > int(query["X-Amz-Expires"][0])


_EXPIRED_BODY = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
    b"<Message>Request has expired</Message></Error>"
)


_BAD_SIGNATURE_BODY = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SignatureDoesNotMatch</Code>'
    b"<Message>The request signature we calculated does not match</Message></Error>"
)


def _sigv4_query_signature(environ: dict[str, Any], query: dict[str, list[str]]) -> str:
    """Signature v4 of a query-signed request as it arrived, with the test secret."""
    pairs = [
        (quote(unquote(name), safe="-_.~"), quote(unquote(value), safe="-_.~"))
        for name, _, value in (item.partition("=") for item in environ["QUERY_STRING"].split("&"))
        if name != "X-Amz-Signature"
    ]
    signed_headers = query["X-Amz-SignedHeaders"][0]
    headers = "".join(
        f"{name}:{environ['HTTP_' + name.upper().replace('-', '_')].strip()}\n"
        for name in signed_headers.split(";")
    )
    raw_path = environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ["PATH_INFO"]
    canonical = "\n".join(
        [
            environ["REQUEST_METHOD"],
            raw_path.split("?", 1)[0],
            "&".join(f"{name}={value}" for name, value in sorted(pairs)),
            headers,
            signed_headers,
            "UNSIGNED-PAYLOAD",
        ]
    )
    _, date, region, service, terminator = query["X-Amz-Credential"][0].split("/")
    to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256",
            query["X-Amz-Date"][0],
            f"{date}/{region}/{service}/{terminator}",
            hashlib.sha256(canonical.encode()).hexdigest(),
        ]
    )
    key = ("AWS4" + TEST_SECRET_ACCESS_KEY).encode()
    for part in (date, region, service, terminator):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def _signature_matches(environ: dict[str, Any]) -> bool:
    query = parse_qs(environ.get("QUERY_STRING", ""))
    if "X-Amz-Signature" not in query:
        return True  # header-signed: moto's own business
    if not query["X-Amz-Credential"][0].startswith(TEST_ACCESS_KEY_ID + "/"):
        return False
    expected = _sigv4_query_signature(environ, query)
    return hmac.compare_digest(expected, query["X-Amz-Signature"][0])


def presigned_expiry_middleware(app: Any) -> Any:
    def checked(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if _expired(environ.get("QUERY_STRING", ""), datetime.now(UTC)):
            start_response("403 Forbidden", [("Content-Type", "application/xml")])
            return [_EXPIRED_BODY]
        if not _signature_matches(environ):
            start_response("403 Forbidden", [("Content-Type", "application/xml")])
            return [_BAD_SIGNATURE_BODY]
        result: Iterable[bytes] = app(environ, start_response)
        return result

    return checked


def _serve_s3(port: int) -> None:
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import run_simple

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(
        "127.0.0.1",
        port,
        presigned_expiry_middleware(app),
        threaded=True,
        request_handler=MotoRequestHandler,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="serve a test S3 server on 127.0.0.1")
    parser.add_argument("server", choices=["s3"])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    _serve_s3(args.port)


if __name__ == "__main__":
    main()
