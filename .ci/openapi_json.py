"""Write openapi.json, the JSON twin of openapi.yml: ``python .ci/openapi_json.py`` (needs PyYAML).

openapi.yml is the source; mokku serves openapi.json as it is, so it needs no YAML reader.
tests/test_openapi.py fails while the two differ.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "openapi.yml"
TWIN = ROOT / "openapi.json"


def render(yaml_text: str) -> str:
    """The JSON text for a YAML document: one key or item a line, in the YAML's order."""
    return json.dumps(yaml.safe_load(yaml_text), indent=1, ensure_ascii=False) + "\n"


def main() -> None:
    TWIN.write_text(render(SOURCE.read_text(encoding="utf-8")), encoding="utf-8")
    print(f"wrote {TWIN.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
