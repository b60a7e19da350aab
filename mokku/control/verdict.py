"""The client verdict: how well each client behaved, judged from the journal.

A retry is the same request (method, path, query and body) sent again after it failed, recognised
by what it asks, not by SDK headers, so application-level retry loops count; the same request after a
success is a new call (a test suite's, a poll). Per client (its masked API key, else "anonymous"):

- ``retried_too_soon`` (error): a retry came before the ``retry-after-ms`` it was sent;
- ``retried_non_retryable`` (error): a 400, 401, 403 or 404 was tried again unchanged;
- ``retry_storm`` (error): more than 10 attempts at one call;
- ``no_backoff`` (warning): three or more attempts at a retryable error (sent with no ``retry-after``)
  whose last wait is not clearly longer than the first;
- ``accepted_broken_stream`` (warning): a stream a fault broke (no ``[DONE]``, no final event) and the
  client never asked again.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Dict, Iterable, List

RETRYABLE = frozenset((408, 409, 429, 500, 502, 503, 504, 529))  # 529: Anthropic's overloaded
NON_RETRYABLE = frozenset((400, 401, 403, 404))
BROKEN_STREAM_FAULTS = frozenset(("stream_drop", "stream_error", "stream_truncated", "stream_malformed"))
STORM = 10
TOLERANCE_MS = 50  # clocks and scheduling: a retry this close to the deadline is on time
BACKOFF_GROWTH = 1.25  # the last wait over the first below which a client is not backing off


def fingerprint(entry: Dict[str, Any]) -> str:
    canonical = json.dumps(
        [entry.get("method"), entry.get("path"), entry.get("query"), entry.get("body")],
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def calls(attempts: List[Dict[str, Any]]) -> List[List[Dict[str, Any]]]:
    """One request's attempts (in order) cut into calls: each ends at its first success (an answer
    under 400 that no fault broke); what follows is asked anew, not retried."""
    made: List[List[Dict[str, Any]]] = [[]]
    for attempt in attempts:
        if not made[-1] or _failed(made[-1][-1]):
            made[-1].append(attempt)
        else:
            made.append([attempt])
    return made


def _failed(attempt: Dict[str, Any]) -> bool:
    return attempt["status"] >= 400 or (attempt["stream"] and attempt.get("fault") in BROKEN_STREAM_FAULTS)


def _start(entry: Dict[str, Any]) -> float:
    return entry["time"] - entry.get("duration_ms", 0) / 1000


def _summary(entry: Dict[str, Any]) -> Dict[str, Any]:
    """What judging an attempt needs of its entry: a few numbers, not its body or headers."""
    return {
        "id": entry.get("id"),
        "time": entry["time"],
        "start": _start(entry),
        "status": entry["status"],
        "path": entry.get("path"),
        "retry_after_ms": entry.get("retry_after_ms"),
        "fault": entry.get("fault"),
        "stream": entry.get("stream") is not None,
    }


# The headers that name a client, by its key (masked in the journal), in each dialect: OpenAI's,
# Anthropic's, Azure's, Google's.
CLIENT_HEADERS = ("authorization", "x-api-key", "api-key", "x-goog-api-key")


def _client(headers: Dict[str, str]) -> str:
    return next((headers[name] for name in CLIENT_HEADERS if headers.get(name)), "anonymous")


def judge(entries: Iterable[Dict[str, Any]]) -> Dict[str, Any]:
    """The verdict on journal entries, read one at a time (``Journal.scan``): memory holds a short
    summary per entry, never the entries themselves."""
    clients: Dict[str, Dict[str, List[Dict[str, Any]]]] = {}
    first_seen: Dict[str, float] = {}
    for entry in entries:
        client = _client(entry.get("headers") or {})
        summary = _summary(entry)
        clients.setdefault(client, {}).setdefault(fingerprint(entry), []).append(summary)
        first_seen[client] = min(first_seen.get(client, summary["start"]), summary["start"])
    report: List[Dict[str, Any]] = []
    for client in sorted(clients, key=first_seen.__getitem__):
        requests = clients[client]
        findings: List[Dict[str, Any]] = []
        for attempts in requests.values():
            attempts.sort(key=lambda summary: summary["start"])
            for call in calls(attempts):
                findings += _judge_call(call)
        report.append(
            {"client": client, "requests": sum(len(a) for a in requests.values()), "findings": findings}
        )
    passed = not any(f["severity"] == "error" for c in report for f in c["findings"])
    return {"object": "verdict", "passed": passed, "clients": report}


def _finding(kind: str, severity: str, message: str, attempts: List[Dict[str, Any]]) -> Dict[str, Any]:
    return {
        "kind": kind,
        "severity": severity,
        "message": message,
        "evidence": [
            {"id": a.get("id"), "time": a["time"], "status": a["status"], "path": a.get("path")}
            for a in attempts
        ],
    }


def _judge_call(attempts: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    findings = []
    for before, after in zip(attempts, attempts[1:]):
        waited_ms = (after["start"] - before["time"]) * 1000
        asked_ms = before.get("retry_after_ms")
        if before["status"] in RETRYABLE and asked_ms is not None and waited_ms + TOLERANCE_MS < asked_ms:
            findings.append(
                _finding(
                    "retried_too_soon",
                    "error",
                    f"retried after {waited_ms:.0f} ms; the {before['status']} asked for {asked_ms} ms",
                    [before, after],
                )
            )
        if before["status"] in NON_RETRYABLE:
            findings.append(
                _finding(
                    "retried_non_retryable",
                    "error",
                    f"sent the same request again after a {before['status']}, which will not change",
                    [before, after],
                )
            )
    if len(attempts) > STORM:
        findings.append(_finding("retry_storm", "error", f"{len(attempts)} attempts at one call", attempts))
    waits = [
        after["start"] - before["time"]
        for before, after in zip(attempts, attempts[1:])
        if before.get("retry_after_ms") is None and before["status"] in RETRYABLE
    ]
    # Backing off means the waits grow. The official SDKs double each wait and take up to a quarter
    # off at random, so their second wait can be as little as 1.5 times the first.
    if len(waits) >= 2 and waits[-1] < BACKOFF_GROWTH * waits[0]:
        findings.append(_finding("no_backoff", "warning", "retries did not wait longer each time", attempts))
    last = attempts[-1]
    broken = [attempt.get("fault") in BROKEN_STREAM_FAULTS and attempt["stream"] for attempt in attempts]
    if broken[-1] and not (len(broken) > 1 and broken[-2]):  # asked again until it gave up: it did ask
        findings.append(
            _finding(
                "accepted_broken_stream",
                "warning",
                f"a stream broken by the {last['fault']} fault was not asked for again",
                [last],
            )
        )
    return findings
