"""Content blocks checked against the SDK's closed unions: a block ``type`` outside them, and an
image's or document's ``source`` the real API refuses, are 400s naming the block."""

from __future__ import annotations

import base64
import binascii
from typing import Any, Dict, Tuple

from mokku.anthropic import validate as check

# The SDK's (beta) ContentBlockParam: every block a request may carry.
BLOCK_TYPES: Tuple[str, ...] = (
    "text",
    "image",
    "document",
    "search_result",
    "thinking",
    "redacted_thinking",
    "tool_use",
    "tool_result",
    "server_tool_use",
    "web_search_tool_result",
    "web_fetch_tool_result",
    "advisor_tool_result",
    "code_execution_tool_result",
    "bash_code_execution_tool_result",
    "text_editor_code_execution_tool_result",
    "tool_search_tool_result",
    "mcp_tool_use",
    "mcp_tool_result",
    "container_upload",
    "compaction",
    "tool_addition",
    "tool_removal",
    "mcp_tool_listing",
    "fallback",
)
# The blocks a ``tool_result``'s content may hold (the SDK's ToolResultBlockParam.Content).
RESULT_TYPES: Tuple[str, ...] = (
    "text",
    "image",
    "search_result",
    "document",
    "tool_reference",
    "browser_state",
)
SOURCE_TYPES: Dict[str, Tuple[str, ...]] = {
    "image": ("base64", "url", "file"),
    "document": ("base64", "text", "content", "url", "file"),
}
BASE64_MEDIA_TYPES: Dict[str, Tuple[str, ...]] = {
    "image": ("image/jpeg", "image/png", "image/gif", "image/webp"),
    "document": ("application/pdf",),
}
# What each source carries besides its type (``content`` is a string or blocks: not read here).
SOURCE_FIELDS = {"url": "url", "file": "file_id", "text": "data"}


def block_type(block: Dict[str, Any], where: str, types: Tuple[str, ...] = BLOCK_TYPES) -> str:
    """The block's ``type``, one the SDK's union (``types``) names."""
    kind = check.text(check.required(block, "type", f"{where}.type"), f"{where}.type")
    return check.tag(kind, types, where)


def check_source(block: Dict[str, Any], kind: str, where: str) -> None:
    """An ``image`` or ``document`` block's ``source``: a type its union names, a base64 ``media_type``
    of its Literal and ``data`` that decodes (linear in the data)."""
    at = f"{where}.{kind}.source"
    source = check.mapping(check.required(block, "source", at), at) or {}
    source_type = check.text(check.required(source, "type", f"{at}.type"), f"{at}.type")
    source_type = check.tag(source_type, SOURCE_TYPES[kind], at)
    field = SOURCE_FIELDS.get(source_type)
    if field is not None:
        check.text(
            check.required(source, field, f"{at}.{source_type}.{field}"), f"{at}.{source_type}.{field}"
        )
    if source_type == "text":
        _media_type(source, ("text/plain",), f"{at}.text.media_type")
    if source_type != "base64":
        return
    _media_type(source, BASE64_MEDIA_TYPES[kind], f"{at}.base64.media_type")
    data = check.text(check.required(source, "data", f"{at}.base64.data"), f"{at}.base64.data") or ""
    try:
        base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise check.invalid(f"{at}.base64", "invalid base64 data") from None


def _media_type(source: Dict[str, Any], allowed: Tuple[str, ...], where: str) -> None:
    check.one_of(check.required(source, "media_type", where), allowed, where)
