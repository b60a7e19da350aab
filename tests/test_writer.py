"""The writer thread's counts: every entry handed over (or announced) is waited for by a flush, and
one that is dropped or never comes does not keep a reader waiting."""

from __future__ import annotations

import threading
from typing import Any, List

from mokku.store import writer
from mokku.store.writer import Writer


def test_an_announced_entry_is_waited_for_until_it_is_written() -> None:
    written: List[Any] = []
    gate = threading.Event()

    def write(batch: List[Any]) -> None:
        gate.wait(10)
        written.extend(batch)

    out = Writer(write, "test")
    out.expect()
    assert out.flush(0.2) is False  # announced, not handed over yet
    out.put("stream", expected=True)
    out.put("plain")
    gate.set()
    assert out.flush(10) is True
    assert sorted(written) == ["plain", "stream"]
    assert out.handed == out.written == 2  # the announced entry counted once


def test_an_entry_that_will_not_come_releases_its_readers() -> None:
    out = Writer(lambda batch: None, "test")
    out.expect()
    out.wrote_one()
    assert out.flush(0.5) is True


def test_an_announced_entry_dropped_past_the_bound_releases_its_readers(monkeypatch: Any) -> None:
    gate = threading.Event()
    out = Writer(lambda batch: gate.wait(10), "test")
    monkeypatch.setattr(writer, "MAX_PENDING", 3)
    for item in range(3):
        out.put(item)
    out.expect()
    out.put("stream", expected=True)  # over the bound: dropped, and counted as done
    assert out.handed == 4
    gate.set()
    assert out.flush(10) is True
    assert out.written == 4
