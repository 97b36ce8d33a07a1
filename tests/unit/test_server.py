"""When the gunicorn worker may close a connection at once (api/server.py), on real sockets."""

from __future__ import annotations

import select
import socket
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from gunicorn.http.body import Body, ChunkedReader, EOFReader, LengthReader

from api.server import nothing_left_to_read, sent_whole, write_problem


@pytest.fixture
def sockets() -> Iterator[tuple[socket.socket, socket.socket]]:
    server, client = socket.socketpair()
    yield server, client
    server.close()
    client.close()


def request(reader: object) -> SimpleNamespace:
    return SimpleNamespace(body=Body(reader))


def test_a_body_read_whole_with_nothing_waiting_leaves_nothing_to_read(
    sockets: tuple[socket.socket, socket.socket],
) -> None:
    server, _ = sockets
    assert nothing_left_to_read(request(LengthReader(None, 0)), server)
    assert nothing_left_to_read(request(EOFReader(None)), server)  # no length: no body


def test_a_client_that_closed_leaves_nothing_to_read(
    sockets: tuple[socket.socket, socket.socket],
) -> None:
    server, client = sockets
    client.shutdown(socket.SHUT_WR)
    assert nothing_left_to_read(request(LengthReader(None, 0)), server)


def test_a_body_not_read_whole_leaves_something(
    sockets: tuple[socket.socket, socket.socket],
) -> None:
    server, _ = sockets
    assert not nothing_left_to_read(request(LengthReader(None, 10)), server)


def test_bytes_waiting_on_the_socket_leave_something_and_stay_there(
    sockets: tuple[socket.socket, socket.socket],
) -> None:
    server, client = sockets
    client.sendall(b"GET /next HTTP/1.1\r\n")
    assert not nothing_left_to_read(request(LengthReader(None, 0)), server)
    assert server.recv(100) == b"GET /next HTTP/1.1\r\n"  # only peeked at


def test_a_chunked_body_is_left_to_the_lingering_close(
    sockets: tuple[socket.socket, socket.socket],
) -> None:
    server, _ = sockets
    assert not nothing_left_to_read(request(ChunkedReader(None, None)), server)
    assert not nothing_left_to_read(SimpleNamespace(body=None), server)


@pytest.fixture
def tcp() -> Iterator[tuple[socket.socket, socket.socket]]:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    yield server, client
    server.close()
    client.close()


def arrived(sock: socket.socket, within: float = 0.05) -> bytes:
    ready, _, _ = select.select([sock], [], [], within)
    return sock.recv(100) if ready else b""


def test_an_answer_is_held_back_until_written_whole(
    tcp: tuple[socket.socket, socket.socket],
) -> None:
    """Headers and body leave together (the kernel holds a corked socket's bytes up to 200 ms)."""
    server, client = tcp
    with sent_whole(server):
        server.sendall(b"HTTP/1.1 200 OK\r\n\r\n")
        assert arrived(client) == b"", "held back"
        server.sendall(b"{}")
    assert arrived(client, within=1) == b"HTTP/1.1 200 OK\r\n\r\n{}"
    server.sendall(b"more")
    assert arrived(client) == b"more", "not held back after"


def test_a_socket_that_cannot_be_held_back_is_written_as_it_is(
    sockets: tuple[socket.socket, socket.socket],
) -> None:
    server, client = sockets  # a Unix socket pair: no TCP_CORK
    with sent_whole(server):
        server.sendall(b"HTTP/1.1 200 OK\r\n\r\n")
        assert arrived(client) == b"HTTP/1.1 200 OK\r\n\r\n"


def test_what_gunicorn_refuses_carries_the_apps_headers() -> None:
    """gunicorn's refusals echo part of the request line, and never pass through the app's
    headers (api/headers.py): they carry nosniff and no-store themselves."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        write_problem(ours, 400, "Bad Request", "Invalid HTTP Version: '<b>HTTP/1.1 x</b>'")
        ours.shutdown(socket.SHUT_WR)
        head = b""
        while chunk := theirs.recv(65536):
            head += chunk
    lines = head.split(b"\r\n\r\n")[0].decode("latin1").split("\r\n")
    assert "X-Content-Type-Options: nosniff" in lines and "Cache-Control: no-store" in lines
