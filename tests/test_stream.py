"""The one stream pipeline in-process: batching, pacing, faults counted in events, close callbacks."""

from __future__ import annotations

import time
from typing import Any, Iterator, List, Optional, Tuple

import pytest

from mokku import config
from mokku.server.http import Request
from mokku.server.stream import DONE, WRITE_BYTES, EventStream, Opening, Token, event
from mokku.simulation.latency import Pace


def _request() -> Request:
    return Request({"REQUEST_METHOD": "POST", "PATH_INFO": "/v1/chat/completions"}, config.load({}))


def _events(tokens: int = 3) -> Iterator[Any]:
    yield event({"opening": True})
    for index in range(tokens):
        yield Token(event({"token": index}))
    yield event({"finish": True})
    yield DONE


def _stream(
    fault: Optional[Tuple[str, int, int]] = None, pace: Optional[Pace] = None, tokens: int = 3
) -> Tuple[EventStream, Request]:
    request = _request()
    # Paced by default (a token delay too short to notice): a token ends a write.
    return EventStream(request, _events(tokens), pace or Pace(token_delay=1e-6), fault), request


def _counts(writes: List[bytes]) -> List[int]:
    return [write.count(b"\n\n") for write in writes]


def test_a_token_ends_a_write_and_other_events_join_the_next() -> None:
    stream, request = _stream()
    writes = list(stream)
    assert _counts(writes) == [2, 1, 1, 2]  # opening + first token, tokens, finish + [DONE]
    assert all(type(write) is bytes for write in writes)  # what wsgiref insists on
    stream.close()
    assert (request.stream_outcome, request.stream_events) == ("completed", 6)


def test_unpaced_events_share_writes_of_a_bounded_size() -> None:
    stream, request = _stream(pace=Pace())
    assert _counts(list(stream)) == [6]  # all ready at once: one write
    stream.close()
    assert (request.stream_outcome, request.stream_events) == ("completed", 6)
    token = len(event({"token": 0}))
    stream, _ = _stream(pace=Pace(), tokens=2 * WRITE_BYTES // token)
    writes = list(stream)
    assert len(writes) >= 2 and all(len(write) < WRITE_BYTES + 2 * token for write in writes)
    # A fault still strikes at its event: the events before it go out, then the end.
    stream, _ = _stream(("stream_error", 3, 3), pace=Pace())
    writes = list(stream)
    assert _counts(writes) == [3, 1] and b'"server_error"' in writes[-1]


def test_closed_before_its_first_byte_still_runs_its_callbacks_once() -> None:
    stream, request = _stream()
    seen: List[Any] = []
    stream.on_close(lambda s: seen.append((s.outcome, s.events)))
    stream.close()
    stream.close()
    assert seen == [(None, 0)]
    assert (request.stream_outcome, request.stream_events) == ("client_disconnected", 0)


def test_a_failing_callback_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    stream, _ = _stream()
    seen: List[str] = []
    stream.on_close(lambda s: 1 / 0)  # type: ignore[arg-type,func-returns-value]
    stream.on_close(lambda s: seen.append("second"))
    list(stream)
    stream.close()
    assert seen == ["second"] and "close callback failed" in caplog.text


@pytest.mark.parametrize(
    ("fault", "counts", "last"),
    [
        (("stream_truncated", 2, 2), [2], b'{"token":0}'),  # two events out, then the end
        (("stream_truncated", 4, 4), [2, 1, 1], b'{"token":2}'),
        (("stream_truncated", 99, 99), [2, 1, 1, 1], b'{"finish":true}'),  # met at [DONE]
        (("stream_error", 3, 3), [2, 1, 1], b'"server_error"'),
        (("stream_malformed", 1, 1), [1, 1, 1, 1, 2], None),
    ],
)
def test_faults_count_events_whatever_the_batching(
    fault: Tuple[str, int, int], counts: List[int], last: Optional[bytes]
) -> None:
    stream, _ = _stream(fault)
    writes = list(stream)
    assert _counts(writes) == counts
    if last is not None:
        assert last in writes[-1]
    if fault[0] == "stream_malformed":
        payload = b'{"token":0}'
        assert event({"token": 0}) == b"data: " + payload + b"\n\n"
        assert writes[0] == event({"opening": True}) and writes[1] == b'data: {"tok\n\n'


def test_a_drop_resets_after_the_events_before_it() -> None:
    stream, _ = _stream(("stream_drop", 3, 3))
    iterator = iter(stream)
    assert _counts([next(iterator), next(iterator)]) == [2, 1]
    with pytest.raises(ConnectionResetError):
        next(iterator)


def test_tokens_are_paced_and_the_first_waits_for_its_time_to_first_token() -> None:
    stream, _ = _stream(pace=Pace(ttft=0.1, token_delay=0.05), tokens=4)
    started = time.monotonic()
    first = next(stream)
    assert time.monotonic() - started >= 0.1 - 0.005 and _counts([first]) == [2]
    rest = list(stream)
    assert time.monotonic() - started >= 0.1 + 3 * 0.05 - 0.01
    assert _counts(rest) == [1, 1, 1, 2]


def test_opening_events_go_out_before_the_time_to_first_token() -> None:
    """As the Responses API sends ``response.created`` and ``in_progress`` at once: their own write,
    then the wait, then the first token."""

    def opened() -> Iterator[Any]:
        yield Opening(event({"created": True}))
        yield Opening(event({"in_progress": True}))
        yield from _events(2)

    stream = EventStream(_request(), opened(), Pace(ttft=0.2, token_delay=1e-6))
    first = next(stream)
    opened_at = time.monotonic()
    assert first == event({"created": True}) + event({"in_progress": True})
    assert stream.first_at == 0.0  # no token yet: the time to first token is still to come
    second = next(stream)  # the whole wait comes after the opening write
    assert time.monotonic() - opened_at >= 0.2 - 0.005 and _counts([second]) == [2]
    assert stream.first_at > 0 and _counts(list(stream)) == [1, 2]
    # Unpaced, they share the one write.
    stream = EventStream(_request(), opened(), Pace())
    assert _counts(list(stream)) == [7]


def test_a_stall_holds_the_stream_once_after_three_events() -> None:
    stream, _ = _stream(("stream_stall", 3, 1), tokens=4)
    before = [next(stream), next(stream)]  # three events: the stall comes before the fourth
    started = time.monotonic()
    rest = list(stream)
    assert time.monotonic() - started >= 1 - 0.01
    assert _counts(before + rest) == [2, 1, 1, 1, 2]
    assert b"".join(rest).endswith(DONE)


def test_tokens_after_a_stall_keep_their_pace_instead_of_catching_up() -> None:
    stream, _ = _stream(("stream_stall", 3, 0.5), pace=Pace(token_delay=0.4), tokens=5)
    before = [next(stream), next(stream), next(stream)]  # the third write is the stalled token
    started = time.monotonic()
    after = next(stream)
    assert time.monotonic() - started >= 0.4 - 0.01
    assert _counts([*before, after]) == [2, 1, 1, 1]


def test_a_stream_left_before_its_end_makes_the_servers_close_immediate() -> None:
    """A write that failed (a client that stopped reading) or a client gone: the connection is set
    to reset on close and its read side shut, so that gunicorn's polite close (which waits up to
    2 s for the client's own close, on the worker's main thread) returns at once. A stream the
    server took to its end leaves the connection as it is."""
    import socket
    import struct

    for drained in (False, True):
        listener = socket.create_server(("127.0.0.1", 0))
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
        with listener, client, server:
            request = _request()
            request.environ["gunicorn.socket"] = server
            stream = EventStream(request, _events(), Pace(token_delay=1e-6))
            writes = list(stream) if drained else [next(stream), next(stream)]
            stream.close()
            assert writes
            linger = struct.unpack("ii", server.getsockopt(socket.SOL_SOCKET, socket.SO_LINGER, 8))
            server.settimeout(1.0)
            if drained:
                assert linger == (0, 0)
                with pytest.raises(socket.timeout):
                    server.recv(1)  # still open both ways: the client may send its next request
            else:
                assert linger == (1, 0) and server.recv(1) == b""  # at once: the read side is shut
