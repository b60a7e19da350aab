"""``python -m mokku`` / ``mokku``: run the server on the threaded stdlib WSGI server."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from typing import List, Optional

from mokku import __version__, config

log = logging.getLogger("mokku")

# CLI flag -> the environment variable the app reads.
_FLAG_ENV = {
    "host": "MOKKU_HOST",
    "port": "MOKKU_PORT",
    "threads": "MOKKU_THREADS",
    "log_level": "MOKKU_LOG_LEVEL",
    "mode": "MOKKU_MODE",
}


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="mokku",
        description="An OpenAI-API mock server: echoes the last user message back.",
        epilog=(
            "Every flag has a MOKKU_* environment variable; the flag wins.\n\n"
            "other commands:\n"
            "  mokku verdict --url URL                   how each client retried (exit 1: one misbehaved)\n"
            "  mokku cassette why --dir D --request F    why replay found no recording for a request"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", help=f"address to bind (MOKKU_HOST, default {config.DEFAULT_HOST})")
    parser.add_argument(
        "--port", help=f"port, 0 for any free one (MOKKU_PORT, default {config.DEFAULT_PORT})"
    )
    parser.add_argument(
        "--threads",
        help=f"requests served at once (MOKKU_THREADS, default {config.DEFAULT_THREADS})",
    )
    parser.add_argument("--log-level", help="DEBUG, INFO, WARNING or ERROR (MOKKU_LOG_LEVEL, default INFO)")
    parser.add_argument(
        "--mode", help="record, replay, replay_or_record or passthrough (MOKKU_MODE; see docs/recording.md)"
    )
    parser.add_argument("--version", action="version", version=f"mokku {__version__}")
    return parser.parse_args(argv)


def verdict_main(argv: List[str]) -> int:
    """``python -m mokku verdict --url URL``: print the verdict; exit 1 when a client misbehaved."""
    import json
    import urllib.error
    import urllib.request

    parser = argparse.ArgumentParser(
        prog="mokku verdict", description="Judge the clients of a running mokku."
    )
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="the server's base URL")
    parser.add_argument("--token", default=os.environ.get("MOKKU_ADMIN_TOKEN", ""), help="MOKKU_ADMIN_TOKEN")
    args = parser.parse_args(argv)
    request = urllib.request.Request(args.url.rstrip("/") + "/mokku/verdict")
    if args.token:
        request.add_header("Authorization", f"Bearer {args.token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            report = json.load(response)
    except urllib.error.HTTPError as exc:  # the server's own words: a token to set, a file that failed
        try:
            reason = json.load(exc)["error"]["message"]
        except (ValueError, KeyError, TypeError):
            reason = str(exc)
        print(f"mokku verdict: cannot read {request.full_url}: {exc.code}: {reason}", file=sys.stderr)
        return 2
    except (urllib.error.URLError, ValueError) as exc:
        print(f"mokku verdict: cannot read {request.full_url}: {exc}", file=sys.stderr)
        return 2
    for client in report["clients"]:
        print(f"{client['client']}: {client['requests']} requests, {len(client['findings'])} findings")
        for finding in client["findings"]:
            print(f"  [{finding['severity']}] {finding['kind']}: {finding['message']}")
    print("passed" if report["passed"] else "failed: a client misbehaved")
    return 0 if report["passed"] else 1


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["verdict"]:
        return verdict_main(argv[1:])
    if argv[:2] == ["cassette", "why"]:
        from mokku.record import why

        return why.main(argv[2:])
    args = parse_args(argv)
    for flag, env_name in _FLAG_ENV.items():
        value = getattr(args, flag)
        if value is not None:
            os.environ[env_name] = str(value)
    try:
        settings = config.load()
    except config.ConfigError as exc:
        print(f"mokku: {exc}", file=sys.stderr)
        return 2

    from mokku import metrics, store, telemetry
    from mokku.control import state
    from mokku.simulation import faults

    try:
        metrics.check(settings)
        metrics.clear_earlier_run(settings)
        telemetry.check()
        faults.chance_faults(settings)
        own_state = state.claim_state(settings)
    except config.ConfigError as exc:
        print(f"mokku: {exc}", file=sys.stderr)
        return 2
    from mokku.control.admin import exposure_warning
    from mokku.server.stdlib import make_server
    from mokku.wsgi import app, core

    try:
        server = make_server(
            app, settings.host, settings.port, settings.threads, max_body=settings.max_body_bytes
        )
    except OSError as exc:
        log.error("cannot listen on %s:%s: %s", settings.host, settings.port, exc)
        state.remove(own_state)
        return 1

    def stop(signum: int, frame: object) -> None:
        # Once: a second signal must not cut short the drain that stopping gives streams (2 s).
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        server.stop_soon()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    host, port = str(server.server_address[0]), int(server.server_address[1])
    shown = f"[{host}]" if ":" in host else host
    telemetry.setup()
    log.info("mokku %s listening on http://%s:%d (threads=%d)", __version__, shown, port, settings.threads)
    log.info(telemetry.describe())
    if os.environ.get("MOKKU_STATE"):
        log.info(store.shown(os.environ["MOKKU_STATE"]))
    warning = exposure_warning(settings, [host])
    if warning:
        log.warning(warning)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        if core.journal is not None:  # its writer thread done before the state file goes
            core.journal.flush()
        telemetry.stop()
        state.remove(own_state)
    log.info("mokku stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
