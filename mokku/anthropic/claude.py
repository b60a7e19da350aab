"""A Claude model id read as its family and version, the one place that reads them: what a model
takes and how large its window is depend on its generation, not on one id or another.

``claude-opus-4-7``, ``claude-opus-4-5-20251101`` (a dated id is its alias's model) and
``claude-fable-5`` (version 5.0) read; an id of another shape (``claude-3-5-haiku-20241022``, an
id of mokku's own) reads as None, and no generation's rule applies to it.
"""

from __future__ import annotations

import re
from typing import Dict, NamedTuple, Optional, Tuple

Version = Tuple[int, int]

FAMILIES = ("opus", "sonnet", "haiku", "fable")
_ID = re.compile(rf"claude-({'|'.join(FAMILIES)})-(\d{{1,2}})(?:-(\d{{1,2}}))?(?:-\d{{8}})?")

WIDE_WINDOW = (1_000_000, 128_000)  # (input, output) tokens of every model from 4.6 on
WIDE_FROM: Version = (4, 6)


class Claude(NamedTuple):
    family: str
    version: Version

    def since(self, firsts: Dict[str, Version]) -> bool:
        """Whether this model is its family's first version in ``firsts`` or later (a family not in
        ``firsts``: never)."""
        first = firsts.get(self.family)
        return first is not None and self.version >= first


def parse(model_id: str) -> Optional[Claude]:
    """The family and version of a Claude model id, alias or dated; None for any other id."""
    found = _ID.fullmatch(model_id)
    if found is None:
        return None
    family, major, minor = found.groups()
    return Claude(family, (int(major), int(minor or 0)))


def window(model_id: str) -> Optional[Tuple[int, int]]:
    """(most input tokens, most output tokens) of a model from 4.6 on; None for the others."""
    model = parse(model_id)
    return WIDE_WINDOW if model is not None and model.version >= WIDE_FROM else None
