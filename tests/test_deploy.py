"""The Dockerfile, docker-compose.yml and Kubernetes manifests: linted, schema-checked, and what they run, run."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

import openai
import pytest
import yaml
from dockerfile_parse import DockerfileParser

from .servers import free_port, request

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    path = BIN / name
    assert path.exists(), f"{name} is not installed beside {sys.executable} (it is a test dependency)"
    return str(path)


@pytest.fixture(scope="module")
def dockerfile() -> DockerfileParser:
    parser = DockerfileParser(path=str(ROOT / "Dockerfile"))
    return parser


def _instructions(parser: DockerfileParser, name: str) -> List[Dict[str, Any]]:
    return [item for item in parser.structure if item["instruction"] == name]


def test_hadolint_finds_nothing() -> None:
    result = subprocess.run([_tool("hadolint"), str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_dockerfile_is_small_and_safe(dockerfile: DockerfileParser) -> None:
    assert re.fullmatch(r"python:3\.\d+-slim", dockerfile.baseimage)
    (user,) = _instructions(dockerfile, "USER")
    assert user["value"] not in ("root", "0")
    assert [item["value"] for item in _instructions(dockerfile, "EXPOSE")] == ["8080"]
    envs = dockerfile.envs
    assert envs["PYTHONUNBUFFERED"] == "1"
    assert envs["MOKKU_HOST"] == "0.0.0.0"
    assert envs["MOKKU_PORT"] == "8080"
    assert envs["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger:4317"
    assert envs["OTEL_SERVICE_NAME"] == "mokku"
    # Dependencies are installed before the code is copied, so code edits keep that layer cached.
    steps = [(item["instruction"], item["value"]) for item in dockerfile.structure]
    first_install = next(
        i for i, (kind, value) in enumerate(steps) if kind == "RUN" and "pip install" in value
    )
    code_copy = next(
        i for i, (kind, value) in enumerate(steps) if kind == "COPY" and value.startswith("mokku/ ")
    )
    assert first_install < code_copy
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".git" in ignored and "tests" in ignored


def _cmd(dockerfile: DockerfileParser) -> List[str]:
    (cmd,) = _instructions(dockerfile, "CMD")
    return json.loads(cmd["value"])


def _healthcheck(dockerfile: DockerfileParser) -> List[str]:
    (check,) = _instructions(dockerfile, "HEALTHCHECK")
    return json.loads(check["value"].split("CMD", 1)[1].strip())


def test_cmd_and_healthcheck_as_the_image_runs_them(dockerfile: DockerfileParser) -> None:
    """The image's CMD with its ENV, in this environment (installed with `pip install .` as the image
    does), on a free port; the HEALTHCHECK command against it; then SIGTERM."""
    cmd = _cmd(dockerfile)
    assert cmd[0] == "gunicorn" and "python:mokku.gunicorn_conf" in cmd and cmd[-1] == "mokku.wsgi:app"
    port = free_port()
    env = {
        "PATH": f"{BIN}:/usr/bin:/bin",
        **dockerfile.envs,
        "MOKKU_PORT": str(port),
        "MOKKU_HOST": "127.0.0.1",
    }
    process = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                if request("GET", url + "/health", timeout=1)[0] == 200:
                    break
            except OSError:
                pass
            process.poll()
            assert process.returncode is None, process.stdout.read() if process.stdout else ""
            subprocess.run(["sleep", "0.05"], check=True)
        with openai.OpenAI(base_url=url + "/v1", api_key="sk-x", max_retries=0) as client:
            completion = client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "from the image"}]
            )
        assert completion.choices[0].message.content == "from the image"
        check = _healthcheck(dockerfile)
        assert check[0] == "python"
        result = subprocess.run(check, env=env, capture_output=True, text=True, timeout=10)
        assert result.returncode == 0, result.stderr
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        output = process.stdout.read() if process.stdout else ""
        assert "Traceback" not in output
        assert "tracing on: OTLP grpc to http://jaeger:4317" in output
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_healthcheck_fails_when_nothing_answers(dockerfile: DockerfileParser) -> None:
    env = {"PATH": f"{BIN}:/usr/bin:/bin", "MOKKU_PORT": str(free_port())}
    result = subprocess.run(_healthcheck(dockerfile), env=env, capture_output=True, timeout=10)
    assert result.returncode != 0


@pytest.fixture(scope="module")
def compose() -> Dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_file_matches_the_compose_spec() -> None:
    result = subprocess.run(
        [
            _tool("check-jsonschema"),
            "--builtin-schema",
            "vendor.compose-spec",
            str(ROOT / "docker-compose.yml"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_runs_mokku_beside_jaeger(compose: Dict[str, Any]) -> None:
    services = compose["services"]
    jaeger, mokku = services["jaeger"], services["mokku"]
    assert re.fullmatch(r"(cr\.jaegertracing\.io/)?jaegertracing/jaeger:2\.\d+\.\d+", jaeger["image"])
    assert {"16686:16686", "4317:4317", "4318:4318"} <= set(jaeger["ports"])
    assert mokku["build"] == "."
    assert mokku["ports"] == ["8080:8080"]
    assert mokku["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger:4317"
    assert mokku["environment"]["MOKKU_HOST"] == "0.0.0.0"
    assert "jaeger" in mokku["depends_on"]
    assert "/health" in " ".join(mokku["healthcheck"]["test"])


def test_compose_healthcheck_command_is_the_image_one(
    compose: Dict[str, Any], dockerfile: DockerfileParser
) -> None:
    test = compose["services"]["mokku"]["healthcheck"]["test"]
    assert test[0] == "CMD" and test[1:3] == ["python", "-c"]


def _manifests() -> Dict[str, Dict[str, Any]]:
    return {
        path.stem: yaml.safe_load(path.read_text())
        for path in sorted((ROOT / "deploy" / "kubernetes").glob("*.yaml"))
    }


def test_kubernetes_manifests_validate_strictly() -> None:
    paths = [str(p) for p in sorted((ROOT / "deploy" / "kubernetes").glob("*.yaml"))]
    assert len(paths) == 3
    result = subprocess.run(
        [_tool("kubernetes-validate"), "--strict", *paths], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("passed") == 3, result.stdout


def test_kubernetes_deployment_service_and_autoscaler() -> None:
    manifests = _manifests()
    deployment, service, hpa = manifests["deployment"], manifests["service"], manifests["hpa"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["resources"]["requests"] and container["resources"]["limits"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert pod["terminationGracePeriodSeconds"] > 10
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == container["ports"][0]["name"]
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "mokku"}
    assert hpa["spec"]["minReplicas"] >= 2


def test_docs_document_container_usage() -> None:
    deployment = (ROOT / "docs" / "deployment.md").read_text(encoding="utf-8")
    for needle in ("docker compose up --build", "docker build", "kubectl apply -f deploy/kubernetes/"):
        assert needle in deployment
