"""README.md and docs/: links resolve, examples run, and the reference tables match the code."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Set

import pytest
import yaml

from mokku import config, telemetry
from mokku.__main__ import parse_args
from mokku.simulation.faults import FAULTS, SIMULATION_MODELS, model_name, parse_spec, split_model

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
DOC_PAGES = (
    "endpoints",
    "faults",
    "control",
    "configuration",
    "deployment",
    "tracing",
    "metrics",
    "benchmarks",
)
# Written separately: README must link to it, but links to it are not checked.
ARCHITECTURE = "architecture.md"
PAGES = [README, *(DOCS / f"{name}.md" for name in DOC_PAGES)]

FENCE = re.compile(r"^```.*?^```", re.S | re.M)
INLINE_CODE = re.compile(r"``.+?``|`[^`\n]+`")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _prose(text: str) -> str:
    """The text without code blocks and code spans, where brackets are not links."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = INLINE_CODE.sub(lambda m: m.group(0).strip("`"), heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(path: Path) -> Set[str]:
    return {
        _slug(line.lstrip("#")) for line in FENCE.sub("", _read(path)).splitlines() if line.startswith("#")
    }


def _cells(line: str) -> List[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _table(text: str, header: List[str]) -> List[Dict[str, str]]:
    """The rows of the Markdown table whose header row starts with ``header``."""
    lines = text.splitlines()
    for number, line in enumerate(lines):
        if line.startswith("|") and _cells(line)[: len(header)] == header:
            columns = _cells(line)
            rows = []
            for row in lines[number + 2 :]:
                if not row.startswith("|"):
                    break
                rows.append(dict(zip(columns, _cells(row))))
            return rows
    raise AssertionError(f"no table with the columns {header}")


def _code(cell: str) -> str:
    return cell.strip().strip("`")


def _python_block(path: Path, first_line: str) -> str:
    match = re.search(r"```python\n(" + re.escape(first_line) + r"\n.*?)```", _read(path), re.S)
    assert match, f"{path.relative_to(ROOT)} has no Python example starting with {first_line!r}"
    return match.group(1)


# --- pages and links ---------------------------------------------------------------------------


def test_every_page_exists_and_the_readme_links_to_it() -> None:
    readme = _read(README)
    for name in (*DOC_PAGES, ARCHITECTURE[: -len(".md")]):
        assert f"](docs/{name}.md)" in readme, f"README.md does not link to docs/{name}.md"
    for page in PAGES:
        assert page.is_file(), f"{page.relative_to(ROOT)} is missing"


def test_the_readme_stays_short() -> None:
    lines = len(_read(README).splitlines())
    assert lines <= 160, f"README.md has {lines} lines: reference text belongs in docs/"


def test_the_readme_test_command_is_the_one_ci_runs() -> None:
    command = "pip install '.[test]' && pytest"
    assert f"\n{command}\n" in _read(README)
    assert f"\n{command}\n" in _read(ROOT / ".ci" / "run")


@pytest.mark.parametrize("page", [*PAGES, *sorted(set(DOCS.glob("*.md")) - set(PAGES))], ids=lambda p: p.name)
def test_relative_links_resolve(page: Path) -> None:
    links = LINK.findall(_prose(_read(page)))
    assert links or page != README, "README.md has no links at all: is the pattern broken?"
    for link in links:
        if re.match(r"[a-z][a-z+.-]*:", link):
            continue  # http:, https:, mailto:
        path, _, anchor = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        if target.name == ARCHITECTURE:
            continue
        assert target.exists(), f"{page.name}: {link} points at nothing"
        if anchor and target.suffix == ".md":
            assert anchor in _anchors(target), f"{page.name}: {link} names no heading of {target.name}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_files_named_in_code_spans_exist(page: Path) -> None:
    paths = re.findall(r"`((?:mokku|bench|deploy|tests)/[\w/.-]*)`", _read(page))
    for path in paths:
        assert (ROOT / path).exists(), f"{page.name} names {path}, which does not exist"


# --- faults ------------------------------------------------------------------------------------

FAULT_COLUMNS = ["fault", "model", "status alias", "argument", "default", "maximum"]


def test_the_fault_table_matches_the_code() -> None:
    rows = _table(_read(DOCS / "faults.md"), FAULT_COLUMNS)
    documented = {_code(row["fault"]): row for row in rows}
    assert len(documented) == len(rows), "a fault is documented twice"
    assert set(documented) == set(FAULTS)
    for name, row in documented.items():
        fault = FAULTS[name]
        assert _code(row["model"]) == model_name(name), name
        assert _code(row["status alias"]) == (fault.status_alias or ""), name
        if fault.arg is None:
            assert (row["argument"], row["default"], row["maximum"]) == ("", "", ""), name
        else:
            _, default, maximum = fault.arg
            assert row["argument"], f"{name}: what the argument means is missing"
            assert int(row["default"].replace(",", "")) == default, name
            assert int(row["maximum"].replace(",", "")) == maximum, name


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_fault_trigger_mentioned_works(page: Path) -> None:
    """Simulation models, ``model@fault`` suffixes and ``X-Mokku-Fault`` values in the docs exist."""
    text = _read(page)
    for model in re.findall(r"`([a-z-]+-error)`", text):
        assert model in SIMULATION_MODELS, f"{page.name}: {model} is not a simulation model"
    for model in re.findall(r"`([\w.-]+@[\w:-]+)`", text):
        assert split_model(model)[1] is not None, f"{page.name}: {model} names no fault"
    for spec in re.findall(r"X-Mokku-Fault: ([\w:-]+)", text):
        parse_spec(spec)


# --- configuration -----------------------------------------------------------------------------


def _variables_in_code() -> Set[str]:
    names: Set[str] = set()
    for path in (ROOT / "mokku").rglob("*.py"):
        names.update(re.findall(r"[\"'](MOKKU_[A-Z0-9_]+)[\"']", _read(path)))
    return names


def test_every_variable_is_documented() -> None:
    in_code = _variables_in_code()
    assert {"MOKKU_PORT", "MOKKU_THREADS", "MOKKU_JOURNAL"} <= in_code, "the pattern finds nothing"
    documented = _read(DOCS / "configuration.md")
    missing = sorted(name for name in in_code if f"`{name}`" not in documented)
    assert not missing, f"docs/configuration.md does not document {missing}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_variable_mentioned_exists(page: Path) -> None:
    in_code = _variables_in_code()
    unknown = sorted(set(re.findall(r"MOKKU_[A-Z0-9_]*[A-Z0-9]", _read(page))) - in_code)
    assert not unknown, f"{page.name} mentions variables mokku does not read: {unknown}"


def test_every_flag_is_documented(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    flags = set(re.findall(r"(--[a-z][a-z-]+)", capsys.readouterr().out))
    assert {"--port", "--threads"} <= flags
    documented = _read(DOCS / "configuration.md")
    assert not sorted(flag for flag in flags if f"`{flag}`" not in documented)


def test_documented_defaults_match_the_code() -> None:
    rows = _table(_read(DOCS / "configuration.md"), ["flag", "variable", "default", "meaning"])
    defaults = {_code(row["variable"]): _code(row["default"]) for row in rows}
    assert defaults["MOKKU_HOST"] == config.DEFAULT_HOST
    assert defaults["MOKKU_PORT"] == str(config.DEFAULT_PORT)
    assert defaults["MOKKU_THREADS"] == str(config.DEFAULT_THREADS)
    assert defaults["MOKKU_WORKERS"] == str(config.DEFAULT_WORKERS)
    assert defaults["MOKKU_MAX_BODY_BYTES"] == str(config.DEFAULT_MAX_BODY_BYTES)


def test_the_container_thread_counts_are_documented() -> None:
    image = re.search(r"MOKKU_THREADS=(\d+)", _read(ROOT / "Dockerfile"))
    assert image, "the Dockerfile no longer sets MOKKU_THREADS"
    compose = yaml.safe_load(_read(ROOT / "docker-compose.yml"))["services"]["mokku"]["environment"]
    for threads in {image.group(1), str(compose["MOKKU_THREADS"])}:
        for page in ("deployment.md", "configuration.md"):
            assert f"MOKKU_THREADS={threads}" in _read(DOCS / page), page


def test_untraced_paths_are_documented() -> None:
    tracing = _read(DOCS / "tracing.md")
    for path in (*telemetry.UNTRACED_PATHS, "/mokku/"):
        assert f"`{path}" in tracing, path


# --- examples ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("page", "first_line", "printed"),
    [
        (README, "from openai import OpenAI", "Hello!"),
        (README, "import openai", "rate_limit_exceeded"),
        (DOCS / "faults.md", "import openai", "rate_limit_exceeded"),
    ],
    ids=["readme-client", "readme-fault", "faults-header"],
)
def test_python_examples_run(mokku_server: str, page: Path, first_line: str, printed: str) -> None:
    code = _python_block(page, first_line)
    assert "http://127.0.0.1:8080/v1" in code
    code = code.replace("http://127.0.0.1:8080/v1", mokku_server + "/v1")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == printed
