"""Under gunicorn the app times its own reads of a request body (gunicorn would wait as long as the
client keeps the connection open): read with gunicorn's own body reader over a real socket pair."""

from __future__ import annotations

import socket
import threading
import time
from typing import Iterator, Tuple

import pytest
from gunicorn.http.body import Body, LengthReader
from gunicorn.http.unreader import SocketUnreader

from mokku.server.http import WRITE_SECONDS, BodyClock, BodyTimeout, _timed_reads


@pytest.fixture
def pair() -> Iterator[Tuple[socket.socket, socket.socket]]:
    server, client = socket.socketpair()
    server.settimeout(None)  # blocking, as gunicorn's worker thread has it
    yield server, client
    server.close()
    client.close()


def _body(server: socket.socket, length: int) -> Body:
    return Body(LengthReader(SocketUnreader(server), length))


def test_a_body_dripping_in_ends_at_the_whole_bodys_deadline(
    pair: Tuple[socket.socket, socket.socket],
) -> None:
    """A byte before each read's timeout kept gunicorn's reader receiving: one read of the app went on
    for as long as the drip did. Each receive now waits only what the deadline leaves."""
    server, client = pair
    stop = threading.Event()

    def drip() -> None:
        while not stop.wait(0.1):
            client.send(b"x")

    dripper = threading.Thread(target=drip, daemon=True)
    dripper.start()
    read = _timed_reads(_body(server, 10_000), {"gunicorn.socket": server}, BodyClock(5.0, 1.5))
    started = time.monotonic()
    try:
        with pytest.raises(BodyTimeout, match=r"the whole body takes at most 1\.5 s"):
            read(10_000)
    finally:
        stop.set()
        dripper.join()
    assert time.monotonic() - started >= 1.5  # it waited for the body as long as it may, not longer
    assert server.gettimeout() == WRITE_SECONDS


def test_a_body_that_arrives_is_read_whole_and_writes_then_time_out(
    pair: Tuple[socket.socket, socket.socket],
) -> None:
    server, client = pair
    client.sendall(b"y" * 200_000)
    read = _timed_reads(_body(server, 200_000), {"gunicorn.socket": server})
    got = b""
    while len(got) < 200_000:
        got += read(200_000 - len(got))
    assert got == b"y" * 200_000
    # A client that stops taking the answer: gunicorn's blocking writes would wait for ever.
    assert server.gettimeout() == WRITE_SECONDS


def test_a_body_that_stops_coming_times_out_after_one_read(pair: Tuple[socket.socket, socket.socket]) -> None:
    server, client = pair
    client.sendall(b"z" * 10)
    read = _timed_reads(_body(server, 100), {"gunicorn.socket": server}, BodyClock(0.5, 30))
    with pytest.raises(BodyTimeout, match=r"nothing came for 0\.5 s"):
        read(100)
