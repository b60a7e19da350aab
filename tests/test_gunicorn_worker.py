"""The worker's polite close, off gunicorn's main thread: the FIN at once, the close at the client's."""

from __future__ import annotations

import socket
import time

import pytest

from mokku import gunicorn_worker
from mokku.gunicorn_worker import Lingerer


def closed_soon(sock: socket.socket, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if sock.fileno() == -1:
            return True
        time.sleep(0.01)
    return False


def test_the_fin_goes_at_once_and_the_close_follows_the_clients() -> None:
    lingerer = Lingerer()
    server, client = socket.socketpair()
    client.settimeout(5)
    server.sendall(b"the answer")
    lingerer.take(server)
    assert client.recv(100) == b"the answer" and client.recv(100) == b""  # the FIN, at once
    assert server.fileno() != -1  # still open: the client has not closed
    client.close()
    assert closed_soon(server)


def test_a_client_that_never_closes_is_let_go_after_the_linger(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gunicorn_worker, "LINGER_S", 0.2)
    lingerer = Lingerer()
    server, client = socket.socketpair()
    lingerer.take(server)
    assert closed_soon(server)
    client.close()


def test_past_the_most_waiting_a_socket_is_closed_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gunicorn_worker, "MAX_LINGERING", 2)
    lingerer = Lingerer()
    pairs = [socket.socketpair() for _ in range(3)]
    for server, _ in pairs:
        lingerer.take(server)
    assert pairs[2][0].fileno() == -1  # over the bound: closed by take itself
    assert pairs[0][0].fileno() != -1 and pairs[1][0].fileno() != -1
    for server, client in pairs:
        client.close()
        assert closed_soon(server)
