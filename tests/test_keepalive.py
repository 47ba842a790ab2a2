"""t2v.keepalive against real sockets: a scripted HTTP server on 127.0.0.1 answers each
request the way a test asks, and counts the connections it accepted."""

from __future__ import annotations

import asyncio
import contextlib
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

from t2v.keepalive import MAX_RESPONSE_BYTES, ExchangeError, KeepAliveClient, Reply

pytestmark = pytest.mark.asyncio

# What the server does with one request: the bytes to write back, and whether to close after.
Answer = Callable[[bytes], tuple[bytes, bool]]


def ok(status: int = 202, body: bytes = b"", extra: str = "") -> Answer:
    def answer(_: bytes) -> tuple[bytes, bool]:
        head = f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
        return head.encode() + body, False

    return answer


def answer_then_close(request: bytes) -> tuple[bytes, bool]:
    """Answer, then close without saying so: the client finds out on its next request."""
    return ok()(request)[0], True


def cut(_: bytes) -> tuple[bytes, bool]:
    return b"HTTP/1.1 20", True


def silent(_: bytes) -> tuple[bytes, bool]:
    return b"", False


@dataclass
class ScriptedServer:
    """Answers requests with ``answers`` in turn, then with ``answer``; while ``gate`` is
    set but not open, holds every answer."""

    answers: list[Answer]
    answer: Answer = field(default_factory=ok)
    gate: asyncio.Event | None = None
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
                if self.gate is not None:
                    await self.gate.wait()
                self.requests.append(request)
                answer = self.answers.pop(0) if self.answers else self.answer
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


@contextlib.asynccontextmanager
async def scripted_server(path: str) -> AsyncIterator[ScriptedServer]:
    scripted = ScriptedServer(answers=[])
    tcp = await asyncio.start_server(scripted.handle, "127.0.0.1", 0)
    port = tcp.sockets[0].getsockname()[1]
    scripted.url = f"http://127.0.0.1:{port}{path}"
    async with tcp:
        yield scripted
        tcp.close()


async def closed_port_url() -> str:
    tcp = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = tcp.sockets[0].getsockname()[1]
    tcp.close()
    await tcp.wait_closed()
    return f"http://127.0.0.1:{port}/"


@pytest.fixture
async def server() -> AsyncIterator[ScriptedServer]:
    async with scripted_server("/broker/ns?x=1") as scripted:
        yield scripted


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
    server.answers = [answer_then_close, ok(200), answer_then_close]
    client = KeepAliveClient(server.url)
    await client.post({}, b"a")
    await asyncio.sleep(0.05)
    assert (await client.post({}, b"b")).status == 200
    assert server.connections == 2
    # A batch that a dead connection never answered is sent again on a new one, too.
    await client.post({}, b"c")
    await asyncio.sleep(0.05)
    outcomes = await client.post_many(_numbered(3))
    assert [outcome.status for outcome in outcomes if isinstance(outcome, Reply)] == [202] * 3
    assert server.connections == 3
    await client.close()


async def test_a_connection_lost_mid_answer_is_an_error(server: ScriptedServer) -> None:
    server.answers = [cut]
    with pytest.raises(ExchangeError, match="closed before a response"):
        await KeepAliveClient(server.url).post({}, b"a")


async def test_no_answer_times_out(server: ScriptedServer) -> None:
    server.answers = [silent]
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
    url = await closed_port_url()
    with pytest.raises(ExchangeError, match="cannot connect"):
        await KeepAliveClient(url).post({}, b"a")
    outcomes = await KeepAliveClient(url).post_many(_numbered(2))
    assert len(outcomes) == 2
    assert all("cannot connect" in str(outcome) for outcome in outcomes)


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


def _numbered(count: int) -> list[tuple[dict[str, str], bytes]]:
    return [({"ce-id": str(number)}, b"event %d" % number) for number in range(count)]


async def test_post_many_pipelines_a_batch_on_one_connection() -> None:
    # This server reads the whole batch before it answers anything: a client that waited
    # for each response before sending the next request would never get one.
    count = 5
    connections = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        bodies = []
        for _ in range(count):
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
            bodies.append(await reader.readexactly(length))
        for number, body in enumerate(bodies):
            echo = b"reply to " + body
            writer.write(
                b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n\r\n%s"
                % (201 + number % 3, len(echo), echo)
            )
        await writer.drain()
        writer.close()

    tcp = await asyncio.start_server(handle, "127.0.0.1", 0)
    async with tcp:
        url = f"http://127.0.0.1:{tcp.sockets[0].getsockname()[1]}/"
        outcomes = await KeepAliveClient(url, timeout_s=2).post_many(_numbered(count))
        tcp.close()
    assert [
        (reply.status, reply.body) for reply in outcomes if not isinstance(reply, ExchangeError)
    ] == [(201 + number % 3, b"reply to event %d" % number) for number in range(count)]
    assert connections == 1


async def test_post_many_reuses_the_kept_alive_connection(server: ScriptedServer) -> None:
    server.answers = [ok(201), ok(202), ok(203), ok(204)]
    client = KeepAliveClient(server.url)
    assert (await client.post({}, b"first")).status == 201
    outcomes = await client.post_many(_numbered(3))
    assert [outcome.status for outcome in outcomes if isinstance(outcome, Reply)] == [202, 203, 204]
    assert server.connections == 1
    assert [request.rsplit(b"\r\n\r\n", 1)[1] for request in server.requests] == [
        b"first", b"event 0", b"event 1", b"event 2"
    ]  # fmt: skip
    assert await client.post_many([]) == []
    await client.close()


async def test_post_many_after_connection_close_leaves_the_rest_unanswered(
    server: ScriptedServer,
) -> None:
    def close_after(_: bytes) -> tuple[bytes, bool]:
        return ok(extra="Connection: close\r\n")(b"")[0], True

    server.answers = [ok(200), close_after]
    client = KeepAliveClient(server.url)
    outcomes = await client.post_many(_numbered(5))
    assert [outcome.status for outcome in outcomes[:2] if isinstance(outcome, Reply)] == [200, 202]
    assert all(isinstance(outcome, ExchangeError) for outcome in outcomes[2:])
    assert "after 2 responses" in str(outcomes[2])
    assert len(server.requests) == 2  # the rest were not sent again
    # The closed connection is not reused.
    assert (await client.post({}, b"next")).status == 202
    assert server.connections == 2
    await client.close()


async def test_post_many_connection_lost_or_silent_mid_batch(server: ScriptedServer) -> None:
    server.answers = [ok(201), cut]
    client = KeepAliveClient(server.url, timeout_s=0.3)
    outcomes = await client.post_many(_numbered(4))
    assert isinstance(outcomes[0], Reply) and outcomes[0].status == 201
    assert all("closed before a response" in str(outcome) for outcome in outcomes[1:])

    server.answers = [ok(201), ok(202), silent, silent]
    outcomes = await client.post_many(_numbered(4))
    assert [outcome.status for outcome in outcomes[:2] if isinstance(outcome, Reply)] == [201, 202]
    assert all("no response within" in str(outcome) for outcome in outcomes[2:])
    await client.close()


async def test_post_many_oversized_response_fails_the_rest(server: ScriptedServer) -> None:
    huge = MAX_RESPONSE_BYTES + 1
    oversized = f"HTTP/1.1 200 OK\r\nContent-Length: {huge}\r\n\r\n".encode() + b"x" * huge
    server.answers = [ok(201), lambda _: (oversized, False)]
    client = KeepAliveClient(server.url)
    outcomes = await client.post_many(_numbered(3))
    assert isinstance(outcomes[0], Reply) and outcomes[0].status == 201
    assert all("over" in str(outcome) for outcome in outcomes[1:])
    await client.close()


async def test_post_many_refuses_header_injection_before_sending(server: ScriptedServer) -> None:
    client = KeepAliveClient(server.url)
    for bad in ({"ce-id": "x\nX-Evil: 1"}, {"ce-id\r": "x"}, {"ce-id": "x\0"}):
        with pytest.raises(ValueError, match="CR, LF"):
            await client.post_many([({"ce-id": "fine"}, b"fine"), (bad, b"a")])
    assert server.requests == []
