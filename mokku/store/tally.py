"""Read-your-writes for the embedded store: every process writing journal entries keeps, in a small
file of shared memory beside the state file, how many it was handed and how many it wrote. A reader
snapshots the handed counts and waits until each process has written that many: it then sees every
entry handed over before it began, whichever worker took the request.

A slot is (pid, handed, written); each writer claims one under ``flock`` on first use, taking a free
slot or one whose process is gone. The server empties the file when it starts (``reset``), so slots
of an earlier run never hold a reader up. The file is never followed through a symlink.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import stat
import struct
import time
from typing import List, Optional, Tuple

SUFFIX = "-writers"
SLOTS = 256
_SLOT = struct.Struct("<qqq")  # pid, handed, written
_COUNT = struct.Struct("<q")
_SIZE = SLOTS * _SLOT.size


def _open(path: str) -> int:
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(f"{path} is not a regular file")
        if info.st_size < _SIZE:
            _zero(descriptor)
    except BaseException:
        os.close(descriptor)
        raise
    return descriptor


def _zero(descriptor: int) -> None:
    """Zeros written, not a sparse file: a page of shared memory the disk has no room for would
    kill the process that first touches it (SIGBUS) on a full disk."""
    os.pwrite(descriptor, bytes(_SIZE), 0)


def reset(state_path: str) -> None:
    """Empty every slot (at server start, before any worker writes)."""
    descriptor = _open(state_path + SUFFIX)
    try:
        _zero(descriptor)
    finally:
        os.close(descriptor)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Tallies:
    """The shared slots of one state file."""

    def __init__(self, state_path: str) -> None:
        descriptor = _open(state_path + SUFFIX)
        try:
            self._memory = mmap.mmap(descriptor, _SIZE)
            self._descriptor = os.dup(descriptor)  # kept for flock when a slot is claimed
        finally:
            os.close(descriptor)

    def claim(self) -> Optional[Slot]:
        """A slot for this process, or None when all are held by live processes."""
        pid = os.getpid()
        fcntl.flock(self._descriptor, fcntl.LOCK_EX)
        try:
            for index in range(SLOTS):
                owner = _SLOT.unpack_from(self._memory, index * _SLOT.size)[0]
                if owner == 0 or (owner != pid and not _alive(owner)):  # one process may hold several
                    _SLOT.pack_into(self._memory, index * _SLOT.size, pid, 0, 0)
                    return Slot(self._memory, index * _SLOT.size)
        finally:
            fcntl.flock(self._descriptor, fcntl.LOCK_UN)
        return None

    def _pending(self) -> List[Tuple[int, int, int]]:
        found = []
        for index in range(SLOTS):
            pid, handed, written = _SLOT.unpack_from(self._memory, index * _SLOT.size)
            if pid and handed > written:
                found.append((index * _SLOT.size, pid, handed))
        return found

    def settled(self, timeout: float) -> bool:
        """Wait until every live process wrote what it was handed before this call; False on timeout."""
        deadline = time.monotonic() + timeout
        for offset, pid, handed in self._pending():
            pause = 0.0005
            while True:
                owner, _, written = _SLOT.unpack_from(self._memory, offset)
                if owner != pid or written >= handed or not _alive(pid):
                    break
                if time.monotonic() >= deadline:
                    return False
                time.sleep(pause)
                pause = min(pause * 2, 0.01)
        return True


class Slot:
    """One process's counts (``mokku.store.writer.Tally``)."""

    __slots__ = ("_memory", "_offset")

    def __init__(self, memory: mmap.mmap, offset: int) -> None:
        self._memory, self._offset = memory, offset

    def handed(self, count: int) -> None:
        _COUNT.pack_into(self._memory, self._offset + 8, count)

    def wrote(self, count: int) -> None:
        _COUNT.pack_into(self._memory, self._offset + 16, count)
