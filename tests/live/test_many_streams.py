"""The "many streams" profile holding hundreds of slow streams at once, read by the bench's client."""

from __future__ import annotations

import math
import os
import resource
import socket
from typing import List

from bench import streams
from mokku.server import connection

from ..servers import LiveServer


def test_many_streams_profile_holds_hundreds_of_paced_streams() -> None:
    server = LiveServer("gunicorn-streams", {"MOKKU_THREADS": "200"}, workers=2)
    try:
        # 300 streams of 20 tokens, 50 ms apart, all open together: more than either worker's threads.
        outcome = streams.run(server.port, 300, tokens=20, token_ms=50, ramp=0.5)
    finally:
        server.stop()
    assert outcome.completed == 300
    assert not math.isnan(outcome.lateness_p99_ms)  # every stream's chunks were timed


def test_waiting_watches_sockets_numbered_above_select_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
    left, right = socket.socketpair()
    spare: List[int] = []
    try:
        while True:  # push the next descriptor past FD_SETSIZE (1024)
            spare.append(os.dup(left.fileno()))
            if spare[-1] > 1100:
                break
        high = socket.socket(fileno=os.dup(left.fileno()))
        assert high.fileno() > 1024
        with high:
            # select() refuses this descriptor (ValueError); the wait must still work.
            assert connection.wait(0.05, {"mokku.socket": high}) is True  # waited, client still there
            right.close()
            assert connection.wait(5, {"mokku.socket": high}) is False  # the hang-up ends the wait
    finally:
        for descriptor in spare:
            os.close(descriptor)
        left.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
