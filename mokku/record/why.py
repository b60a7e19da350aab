"""``python -m mokku cassette why --dir D --request file.json``: whether a request would be replayed,
and if not, the closest recording and what differs."""

from __future__ import annotations

import argparse
import json
import sys
from typing import List

from mokku.record.cassettes import Cassettes, matching_key, normalise, query_without_key


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(prog="mokku cassette why", description=__doc__)
    parser.add_argument("--dir", required=True, help="the cassette directory (MOKKU_CASSETTES)")
    parser.add_argument(
        "--request",
        required=True,
        help='a JSON file: {"method", "path", "body", "dialect", "query"} or a bare body with --path',
    )
    parser.add_argument("--path", help="the request's path, when the file holds only its body")
    parser.add_argument("--method", default="POST")
    parser.add_argument("--dialect", default="openai", help="openai, anthropic, azure or gemini")
    parser.add_argument("--ignore", default="user,metadata,stream_options", help="MOKKU_MATCH_IGNORE")
    args = parser.parse_args(argv)
    try:
        with open(args.request, encoding="utf-8") as handle:
            given = json.load(handle)
    except (OSError, ValueError) as exc:
        print(f"mokku cassette why: cannot read {args.request}: {exc}", file=sys.stderr)
        return 2
    whole = isinstance(given, dict) and "path" in given and "body" in given
    request = {
        "method": (given.get("method") if whole else None) or args.method,
        "path": given["path"] if whole else args.path,
        "dialect": (given.get("dialect") if whole else None) or args.dialect,
        "query": query_without_key((given.get("query") if whole else None) or ""),
        "body": normalise(
            given["body"] if whole else given, tuple(part for part in args.ignore.split(",") if part)
        ),
    }
    if not request["path"]:
        print("mokku cassette why: give --path, or a file with a path", file=sys.stderr)
        return 2
    cassettes = Cassettes(args.dir)
    key = matching_key(
        request["method"], request["path"], request["dialect"], request["query"], request["body"]
    )
    print(f"key {key}")
    if cassettes.exists(request["path"], key, 1):
        print(f"matched: {cassettes.path(request['path'], key, 1)} (and any later recordings of it)")
        return 0
    closest, differences = cassettes.closest(request)
    if closest is None:
        print(f"no match: nothing was recorded for {request['method']} {request['path']} in {args.dir}")
    else:
        print(f"no match; the closest recording is {closest}:")
        for difference in differences:
            print(f"  {difference}")
    return 1
