"""t2v.keepalive against real sockets: a scripted HTTP server on 127.0.0.1 answers each
request the way a test asks, and counts the connections it accepted."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import pathlib
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from t2v.keepalive import MAX_RESPONSE_BYTES, ExchangeError, KeepAliveClient

pytestmark = pytest.mark.asyncio

# What the server does with one request: the bytes to write back, and whether to close after.
Answer = Callable[[bytes], tuple[bytes, bool]]


def ok(status: int = 202, body: bytes = b"", extra: str = "") -> Answer:
    def answer(_: bytes) -> tuple[bytes, bool]:
        head = f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
        return head.encode() + body, False

    return answer


@dataclass
class ScriptedServer:
    answers: list[Answer]
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)
    url: str = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                answer = self.answers.pop(0) if self.answers else ok()
                data, close = answer(request)
                if data:
                    writer.write(data)
                    await writer.drain()
                if close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def server() -> AsyncIterator[ScriptedServer]:
    scripted = ScriptedServer(answers=[])
    tcp = await asyncio.start_server(scripted.handle, "127.0.0.1", 0)
    port = tcp.sockets[0].getsockname()[1]
    scripted.url = f"http://127.0.0.1:{port}/broker/ns?x=1"
    async with tcp:
        yield scripted
        tcp.close()


async def test_posts_the_body_and_headers_and_reuses_one_connection(
    server: ScriptedServer,
) -> None:
    client = KeepAliveClient(server.url)
    for number in range(3):
        reply = await client.post({"ce-id": str(number)}, b'{"n": %d}' % number)
        assert reply.status == 202
    await client.close()
    assert server.connections == 1
    first = server.requests[0]
    assert first.startswith(b"POST /broker/ns?x=1 HTTP/1.1\r\n")
    assert b"\r\nce-id: 0\r\n" in first
    assert first.endswith(b'\r\nContent-Length: 8\r\n\r\n{"n": 0}')
    assert b"Host: 127.0.0.1:" in first


async def test_concurrent_posts_open_connections_as_needed(server: ScriptedServer) -> None:
    client = KeepAliveClient(server.url)
    replies = await asyncio.gather(*(client.post({}, b"x") for _ in range(8)))
    assert [reply.status for reply in replies] == [202] * 8
    assert 1 < server.connections <= 8
    before = server.connections
    await asyncio.gather(*(client.post({}, b"x") for _ in range(8)))
    assert server.connections == before  # the idle ones were reused
    await client.close()


async def test_reads_chunked_bodies_and_error_statuses(server: ScriptedServer) -> None:
    def chunked(_: bytes) -> tuple[bytes, bool]:
        return (
            b"HTTP/1.1 503 Busy\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        ), False

    server.answers = [chunked, ok(200, b"fine")]
    client = KeepAliveClient(server.url)
    first = await client.post({}, b"a")
    assert (first.status, first.body) == (503, b"hello world")
    second = await client.post({}, b"b")
    assert (second.status, second.body) == (200, b"fine")
    assert server.connections == 1
    await client.close()


async def test_connection_close_is_honoured(server: ScriptedServer) -> None:
    server.answers = [ok(extra="Connection: close\r\n"), ok()]
    client = KeepAliveClient(server.url)
    await client.post({}, b"a")
    await client.post({}, b"b")
    assert server.connections == 2
    await client.close()


async def test_a_body_that_runs_to_the_end_of_the_connection(server: ScriptedServer) -> None:
    def until_close(_: bytes) -> tuple[bytes, bool]:
        return b"HTTP/1.0 200 OK\r\n\r\nall of it", True

    server.answers = [until_close]
    reply = await KeepAliveClient(server.url).post({}, b"a")
    assert (reply.status, reply.body) == (200, b"all of it")


async def test_informational_responses_are_skipped(server: ScriptedServer) -> None:
    def early_hints(_: bytes) -> tuple[bytes, bool]:
        return b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n" + ok(201)(b"")[0], False

    server.answers = [early_hints]
    assert (await KeepAliveClient(server.url).post({}, b"a")).status == 201


async def test_an_idle_connection_the_server_closed_is_replaced(server: ScriptedServer) -> None:
    # The server answers, then closes without saying so: the next post finds a dead socket.
    def answer_then_close(_: bytes) -> tuple[bytes, bool]:
        return ok()(b"")[0], True

    server.answers = [answer_then_close, ok(200)]
    client = KeepAliveClient(server.url)
    await client.post({}, b"a")
    await asyncio.sleep(0.05)
    assert (await client.post({}, b"b")).status == 200
    assert server.connections == 2
    await client.close()


async def test_a_connection_lost_mid_answer_is_an_error(server: ScriptedServer) -> None:
    def cut(_: bytes) -> tuple[bytes, bool]:
        return b"HTTP/1.1 20", True

    server.answers = [cut]
    with pytest.raises(ExchangeError, match="closed before a response"):
        await KeepAliveClient(server.url).post({}, b"a")


async def test_no_answer_times_out(server: ScriptedServer) -> None:
    server.answers = [lambda _: (b"", False)]
    with pytest.raises(ExchangeError, match="no response within"):
        await KeepAliveClient(server.url, timeout_s=0.2).post({}, b"a")


async def test_malformed_and_oversized_responses_fail(server: ScriptedServer) -> None:
    huge = MAX_RESPONSE_BYTES + 1
    oversized = f"HTTP/1.1 200 OK\r\nContent-Length: {huge}\r\n\r\n".encode() + b"x" * huge
    server.answers = [
        lambda _: (b"NOT HTTP AT ALL\r\n\r\n", False),
        lambda _: (oversized, False),
    ]
    client = KeepAliveClient(server.url)
    with pytest.raises(ExchangeError, match="malformed"):
        await client.post({}, b"a")
    with pytest.raises(ExchangeError, match="over"):
        await client.post({}, b"b")
    assert (await client.post({}, b"c")).status == 202  # a fresh connection works
    await client.close()


async def test_header_injection_is_refused_before_sending(server: ScriptedServer) -> None:
    client = KeepAliveClient(server.url)
    with pytest.raises(ValueError, match="CR, LF"):
        await client.post({"ce-id": "x\r\nX-Evil: 1"}, b"a")
    assert server.requests == []


async def test_refused_connection_is_an_exchange_error() -> None:
    tcp = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = tcp.sockets[0].getsockname()[1]
    tcp.close()
    await tcp.wait_closed()
    with pytest.raises(ExchangeError, match="cannot connect"):
        await KeepAliveClient(f"http://127.0.0.1:{port}/").post({}, b"a")


def test_only_http_urls() -> None:
    with pytest.raises(ValueError, match="not an http"):
        KeepAliveClient("ftp://example/")


def _self_signed(directory: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    """A certificate for 127.0.0.1 and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def test_https_verifies_the_server_and_keeps_the_connection(tmp_path: pathlib.Path) -> None:
    cert_path, key_path = _self_signed(tmp_path)
    server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_side.load_cert_chain(cert_path, key_path)
    scripted = ScriptedServer(answers=[ok(201), ok(202)])
    tcp = await asyncio.start_server(scripted.handle, "127.0.0.1", 0, ssl=server_side)
    url = f"https://127.0.0.1:{tcp.sockets[0].getsockname()[1]}/events"
    async with tcp:
        trusting = ssl.create_default_context(cafile=str(cert_path))
        client = KeepAliveClient(url, ssl_context=trusting)
        assert (await client.post({}, b"a")).status == 201
        assert (await client.post({}, b"b")).status == 202
        assert scripted.connections == 1
        await client.close()
        # The default context trusts only the system CAs: a self-signed server is refused.
        with pytest.raises(ExchangeError, match="cannot connect"):
            await KeepAliveClient(url).post({}, b"c")
        tcp.close()
