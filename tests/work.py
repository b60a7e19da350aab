"""Work counted in function calls, not seconds: a bound on work that holds on any machine.

An unbounded regression (exponential backtracking, a document that grows without end) makes
millions of calls more; a loaded or slow machine makes none, so these bounds cannot flake.
"""

import sys
from contextlib import contextmanager
from types import FrameType
from typing import Any, Iterator, List, Optional


class TooMuchWork(AssertionError):
    pass


@contextmanager
def at_most(calls: int) -> Iterator[List[int]]:
    """Fail once the block (in this thread) makes more than `calls` Python or C function calls.

    The count is stopped at the bound rather than run to the end, so a runaway fails at once. The
    list it yields holds the count when the block ends, for measuring a new bound."""
    counted = [0]

    def count(frame: FrameType, event: str, arg: Any) -> None:
        if event in ("call", "c_call"):
            counted[0] += 1
            if counted[0] > calls:
                raise TooMuchWork(f"more than {calls:,} calls")

    previous: Optional[Any] = sys.getprofile()
    sys.setprofile(count)
    try:
        yield counted
    finally:
        sys.setprofile(previous)
    if counted[0] > calls:  # raised inside code that caught it (the app's 500 handler)
        raise TooMuchWork(f"more than {calls:,} calls")
