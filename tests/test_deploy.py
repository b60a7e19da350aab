"""The Dockerfile, docker-compose.yml and Kubernetes manifests: linted, schema-checked, and what they run, run."""

from __future__ import annotations

import configparser
import json
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Set
from urllib.parse import urlsplit

import openai
import pytest
import webtest
import yaml
from dockerfile_parse import DockerfileParser
from prometheus_client.parser import text_string_to_metric_families

from mokku import config
from mokku.server.app import App

from .redis_server import RedisServer
from .servers import LiveServer, free_port, request, request_json

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


def test_image_installs_the_redis_and_metrics_extras(dockerfile: DockerfileParser) -> None:
    """The dependency layer installs the package with its ``redis`` and ``metrics`` extras, which name
    the clients."""
    installs = [item["value"] for item in _instructions(dockerfile, "RUN") if "pip install" in item["value"]]
    match = re.search(r"pip install [^&]*[\"']?\./?\[([\w,]+)\][\"']?", installs[0])
    assert match and {"redis", "metrics"} <= set(match.group(1).split(",")), installs[0]
    # The code layer reinstalls the package alone: the dependencies stay those of the first layer.
    assert "--no-deps" in installs[1]
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    for name, client in (("redis", "redis"), ("metrics", "prometheus-client")):
        extra = setup["options.extras_require"][name].split()
        assert any(re.fullmatch(rf"{client}(>=[\d.]+)?", requirement) for requirement in extra), extra


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


REPLICAS = ("mokku-1", "mokku-2", "mokku-3")
NGINX_CONF = ROOT / "deploy" / "compose" / "nginx.conf"


def _profile(compose: Dict[str, Any], name: str) -> Dict[str, Dict[str, Any]]:
    return {
        key: service for key, service in compose["services"].items() if name in service.get("profiles", [])
    }


def _interpolated(environment: Dict[str, Any], values: Dict[str, str]) -> Dict[str, str]:
    """``environment`` as compose passes it: ``${NAME:-default}`` replaced from ``values``."""

    def value(match: re.Match[str]) -> str:
        return values.get(match.group(1), match.group(2) or "")

    return {key: re.sub(r"\$\{(\w+)(?::-([^}]*))?\}", value, str(item)) for key, item in environment.items()}


def test_compose_profile_replicas_runs_three_mokku_on_valkey_behind_nginx(compose: Dict[str, Any]) -> None:
    services = compose["services"]
    # The default services stay in no profile: `docker compose up` starts them and only them.
    assert "profiles" not in services["jaeger"] and "profiles" not in services["mokku"]
    replicas = _profile(compose, "replicas")
    assert set(replicas) == {"valkey", "nginx", *REPLICAS}
    valkey = replicas["valkey"]
    assert re.fullmatch(r"valkey/valkey:\d+\.\d+(\.\d+)?", valkey["image"])
    command = valkey["command"]
    assert command[0] == "valkey-server"
    assert command[command.index("--save") + 1] == "" and command[command.index("--appendonly") + 1] == "no"
    assert "valkey-cli ping" in " ".join(valkey["healthcheck"]["test"])
    assert "ports" not in valkey and "volumes" not in valkey
    default = services["mokku"]
    for name in REPLICAS:
        replica = replicas[name]
        environment = replica["environment"]
        state = urlsplit(environment["MOKKU_STATE"])
        assert (state.scheme, state.hostname, state.port, state.path) == ("redis", "valkey", 6379, "/0"), name
        assert replica["depends_on"]["valkey"] == {"condition": "service_healthy"}, name
        assert "jaeger" in replica["depends_on"], name
        test = replica["healthcheck"]["test"]
        assert test[:3] == ["CMD", "python", "-c"] and "http://127.0.0.1:8080/readyz" in test[3], name
        assert "ports" not in replica, f"{name} is reached through nginx only"
        assert replica["build"] == default["build"] and replica["image"] == default["image"], name
        # The default service's settings (tracing to Jaeger included), plus the shared state.
        own = ("MOKKU_STATE", "OTEL_RESOURCE_ATTRIBUTES")
        assert {k: v for k, v in environment.items() if k not in own} == default["environment"], name
        assert environment["OTEL_RESOURCE_ATTRIBUTES"] == f"service.instance.id={name}"
    nginx = replicas["nginx"]
    assert re.fullmatch(r"nginx:1\.(2[89]|[3-9]\d)(\.\d+)?-alpine", nginx["image"]), (
        "upstream `resolve` needs 1.27.3+"
    )
    assert nginx["ports"] == ["8081:8080"]
    (mount,) = nginx["volumes"]
    source, target, mode = mount.split(":")
    assert (ROOT / source).resolve() == NGINX_CONF and target == "/etc/nginx/nginx.conf" and mode == "ro"
    assert nginx["depends_on"] == {name: {"condition": "service_healthy"} for name in REPLICAS}
    assert "http://127.0.0.1:8080/" in " ".join(nginx["healthcheck"]["test"])
    published = [port.split(":")[0] for service in services.values() for port in service.get("ports", [])]
    assert len(published) == len(set(published)), f"two services publish one host port: {published}"


def test_nginx_round_robins_over_every_replica(compose: Dict[str, Any]) -> None:
    text = re.sub(r"#[^\n]*", "", NGINX_CONF.read_text())
    upstreams = dict(re.findall(r"\bupstream\s+(\w+)\s*\{([^}]*)\}", text))
    assert len(upstreams) == 1
    ((name, block),) = upstreams.items()
    servers = re.findall(r"^\s*server\s+([\w.-]+):(\d+)((?:\s+\w+(?:=\S+)?)*)\s*;", block, re.M)
    replicas = _profile(compose, "replicas")
    assert sorted(host for host, _, _ in servers) == sorted(REPLICAS)
    for host, port, parameters in servers:
        assert port == replicas[host]["environment"]["MOKKU_PORT"], host
        assert "backup" not in parameters and "down" not in parameters, host
        assert "resolve" in parameters.split(), f"{host}: a restarted replica's new address is not followed"
    assert re.search(r"^\s*resolver\s+127\.0\.0\.11\b", text, re.M), "`resolve` needs Docker's DNS"
    assert not re.search(r"^\s*(least_conn|ip_hash|hash|random)\b", block, re.M), (
        "round-robin is nginx's default"
    )
    published, container = replicas["nginx"]["ports"][0].split(":")
    assert re.findall(r"^\s*listen\s+(\d+)\s*;", text, re.M) == [container]
    assert published == "8081"
    assert re.findall(r"proxy_pass\s+http://(\w+)\s*;", text) == [name]
    # Streams go out as mokku writes them; bodies up to mokku's own limit reach mokku.
    assert re.search(r"^\s*proxy_buffering\s+off\s*;", text, re.M)
    (size,) = re.findall(r"client_max_body_size\s+(\d+)m\s*;", text)
    assert int(size) * 1024 * 1024 > config.DEFAULT_MAX_BODY_BYTES


def test_compose_replicas_share_their_state_and_follow_redis(compose: Dict[str, Any]) -> None:
    """Two replicas with their compose environment (Valkey's address swapped for a local
    redis-server): a scripted reply posted to one is what the other answers; their healthcheck
    passes while Redis answers and fails once it is gone, while /health (liveness) still answers."""
    redis_server = RedisServer()
    replicas = _profile(compose, "replicas")
    servers: Dict[str, LiveServer] = {}
    try:
        for name in REPLICAS[:2]:
            environment = _interpolated(replicas[name]["environment"], {"MOKKU_ADMIN_TOKEN": "compose-token"})
            del environment["MOKKU_HOST"], environment["MOKKU_PORT"]  # a free local port instead
            valkey = urlsplit(environment["MOKKU_STATE"])
            environment["MOKKU_STATE"] = valkey._replace(netloc=f"127.0.0.1:{redis_server.port}").geturl()
            environment["OTEL_SDK_DISABLED"] = "true"
            servers[name] = LiveServer("gunicorn", environment)
        first, second = servers.values()
        admin = {"Authorization": "Bearer compose-token", "Content-Type": "application/json"}
        rule = {"match": {"contains": "which replica"}, "reply": {"content": "any of them"}}
        status, _, _ = request("POST", first.url + "/mokku/scenarios", json.dumps(rule).encode(), admin)
        assert status == 200
        chat = {"model": "gpt-4o", "messages": [{"role": "user", "content": "which replica?"}]}
        status, _, body = request_json("POST", second.url + "/v1/chat/completions", chat)
        assert status == 200, body
        assert body["choices"][0]["message"]["content"] == "any of them", body  # type: ignore[index]

        def healthcheck(name: str) -> int:
            _, python, flag, code = replicas[name]["healthcheck"]["test"]
            assert python == "python" and "127.0.0.1:8080" in code
            code = code.replace("127.0.0.1:8080", f"127.0.0.1:{servers[name].port}")
            return subprocess.run([sys.executable, flag, code], capture_output=True, timeout=10).returncode

        assert [healthcheck(name) for name in servers] == [0, 0]
        redis_server.stop()
        assert 0 not in [healthcheck(name) for name in servers]
        assert request("GET", first.url + "/health")[0] == 200
    finally:
        for server in servers.values():
            server.close()
        redis_server.stop()


KUBERNETES = ROOT / "deploy" / "kubernetes"


def _manifests() -> Dict[str, Dict[str, Any]]:
    return {path.stem: yaml.safe_load(path.read_text()) for path in sorted(KUBERNETES.glob("*.yaml"))}


@pytest.mark.parametrize(
    ("folder", "files", "resources"),
    [(KUBERNETES, 3, 3), (KUBERNETES / "redis", 4, 5)],
    ids=["default", "redis"],
)
def test_kubernetes_manifests_validate_strictly(folder: Path, files: int, resources: int) -> None:
    paths = [str(p) for p in sorted(folder.glob("*.yaml"))]
    assert len(paths) == files
    documents = sum(len([d for d in yaml.safe_load_all(Path(p).read_text()) if d]) for p in paths)
    assert documents == resources
    result = subprocess.run(
        [_tool("kubernetes-validate"), "--strict", *paths], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("passed") == resources, result.stdout


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


def _resources(folder: Path) -> Dict[str, Dict[str, Any]]:
    """Every resource in ``folder``, by ``kind/name``."""
    resources: Dict[str, Dict[str, Any]] = {}
    for path in sorted(folder.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                key = f"{document['kind']}/{document['metadata']['name']}"
                assert key not in resources, f"{key} twice"
                resources[key] = document
    return resources


def _env(container: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    return {item["name"]: item for item in container.get("env", [])}


def _secret_command() -> Dict[str, str]:
    """The ``kubectl create secret`` command in the comment of deploy/kubernetes/redis/deployment.yaml:
    the Secret's name and its literals, with ``$PASSWORD`` kept as it is."""
    lines = (KUBERNETES / "redis" / "deployment.yaml").read_text().splitlines()
    comment = " ".join(line.lstrip("# ").rstrip("\\") for line in lines if line.startswith("#"))
    match = re.search(
        r"kubectl create secret generic ([\w-]+)((?:\s+--from-literal=\w+=\"[^\"]*\")+)", comment
    )
    assert match, "deploy/kubernetes/redis/deployment.yaml no longer tells how to create its Secret"
    literals = dict(re.findall(r"--from-literal=(\w+)=\"([^\"]*)\"", match.group(2)))
    return {"name": match.group(1), **literals}


def test_kubernetes_redis_variant_runs_three_replicas_on_valkey() -> None:
    default = _manifests()
    resources = _resources(KUBERNETES / "redis")
    assert set(resources) == {
        "Deployment/mokku",
        "Service/mokku",
        "HorizontalPodAutoscaler/mokku",
        "Deployment/mokku-valkey",
        "Service/mokku-valkey",
    }
    deployment = resources["Deployment/mokku"]
    assert deployment["spec"]["replicas"] == 3
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    default_pod = default["deployment"]["spec"]["template"]["spec"]
    (default_container,) = default_pod["containers"]
    env = _env(container)
    assert env["MOKKU_STATE"] == {
        "name": "MOKKU_STATE",
        "valueFrom": {"secretKeyRef": {"name": "mokku-redis", "key": "url"}},
    }, "MOKKU_STATE holds a password: from a Secret, which the pods cannot start without"
    # Everything else is the default Deployment's: settings, security, resources, shutdown.
    default_env = _env(default_container)
    assert {k: v for k, v in env.items() if k != "MOKKU_STATE"} == {
        k: v for k, v in default_env.items() if k != "MOKKU_STATE"
    }
    assert pod["securityContext"] == default_pod["securityContext"]
    assert pod["terminationGracePeriodSeconds"] == default_pod["terminationGracePeriodSeconds"]
    for key in ("securityContext", "resources", "ports", "image", "lifecycle"):
        assert container[key] == default_container[key], key
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert [volume["name"] for volume in pod["volumes"]] == ["tmp"], "no state file: nothing else to mount"
    # The Service and the autoscaler are the default ones; the autoscaler starts from 3.
    assert resources["Service/mokku"] == default["service"]
    hpa = resources["HorizontalPodAutoscaler/mokku"]
    assert hpa["spec"]["minReplicas"] == deployment["spec"]["replicas"]
    assert {**hpa["spec"], "minReplicas": default["hpa"]["spec"]["minReplicas"]} == default["hpa"]["spec"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert resources["Service/mokku"]["spec"]["selector"].items() <= labels.items()


def test_kubernetes_valkey_is_private_bounded_and_probed() -> None:
    resources = _resources(KUBERNETES / "redis")
    deployment, service = resources["Deployment/mokku-valkey"], resources["Service/mokku-valkey"]
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"]["type"] == "Recreate"
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert re.fullmatch(r"valkey/valkey:\d+\.\d+(\.\d+)?", container["image"])
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert container["resources"]["requests"] and container["resources"]["limits"]
    assert "sh -c" in " ".join(container["readinessProbe"]["exec"]["command"][:2])
    assert "valkey-cli ping" in container["readinessProbe"]["exec"]["command"][-1]
    assert container["livenessProbe"]["tcpSocket"]["port"] == container["ports"][0]["name"]
    # No persistence: nothing saved, no volume claim.
    args = container["args"]
    assert args[args.index("--save") + 1] == "" and args[args.index("--appendonly") + 1] == "no"
    assert all(set(volume) == {"name", "emptyDir"} for volume in pod["volumes"])
    # Bounded below the container's memory, never evicting (a scripted reply or a bucket lost silently).
    maxmemory = args[args.index("--maxmemory") + 1]
    limit = container["resources"]["limits"]["memory"]
    assert re.fullmatch(r"\d+mb", maxmemory) and re.fullmatch(r"\d+Gi", limit)
    assert int(maxmemory[:-2]) < int(limit[:-2]) * 1024
    assert args[args.index("--maxmemory-policy") + 1] == "noeviction"
    # The password, from the Secret, reaches valkey-server (Kubernetes expands $(NAME)) and the probe.
    env = _env(container)
    password = args[args.index("--requirepass") + 1]
    assert re.fullmatch(r"\$\((\w+)\)", password) and password[2:-1] in env
    for name in (password[2:-1], "REDISCLI_AUTH"):
        assert env[name]["valueFrom"]["secretKeyRef"] == {"name": "mokku-redis", "key": "password"}
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert not resources["Service/mokku"]["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == container["ports"][0]["name"]


def test_kubernetes_secret_command_matches_the_manifests() -> None:
    """The documented ``kubectl create secret`` makes the keys the pods read, and its URL names the
    Valkey Service, with the password that Valkey requires."""
    secret = _secret_command()
    resources = _resources(KUBERNETES / "redis")
    wanted = set()
    for resource in resources.values():
        if resource["kind"] == "Deployment":
            for container in resource["spec"]["template"]["spec"]["containers"]:
                for item in container.get("env", []):
                    ref = item.get("valueFrom", {}).get("secretKeyRef")
                    if ref and ref["name"] == secret["name"]:
                        wanted.add(ref["key"])
    assert wanted == {"password", "url"} and wanted <= set(secret)
    url = urlsplit(secret["url"])
    service = resources["Service/mokku-valkey"]
    assert url.scheme == "redis" and url.path == "/0"
    assert (url.hostname, url.port) == (service["metadata"]["name"], service["spec"]["ports"][0]["port"])
    assert url.password == secret["password"] == "$PASSWORD"
    assert re.search(
        r'PASSWORD="\$\(openssl rand -hex \d+\)"', (KUBERNETES / "redis" / "deployment.yaml").read_text()
    )


def test_docs_document_container_usage() -> None:
    deployment = (ROOT / "docs" / "deployment.md").read_text(encoding="utf-8")
    for needle in (
        "docker compose up --build",
        "docker build",
        "kubectl apply -f deploy/kubernetes/",
        "docker compose --profile replicas up --build",
        "localhost:8081",
        "kubectl apply -f deploy/kubernetes/redis/",
        "](scaling.md)",
    ):
        assert needle in deployment, needle
    # The page's Secret is the one the manifests read, with the same URL.
    secret = _secret_command()
    assert f"kubectl create secret generic {secret['name']}" in deployment
    assert f'--from-literal=url="{secret["url"]}"' in deployment


# --- metrics: the Grafana dashboard, the compose profile "observe", Kubernetes scrape annotations ---

DASHBOARD = ROOT / "deploy" / "grafana" / "mokku-dashboard.json"
OBSERVE = ROOT / "deploy" / "observe"
PROMETHEUS = {"type": "prometheus", "uid": "${datasource}"}
IDENTIFIER = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
CHAT = "/v1/chat/completions"


@pytest.fixture(scope="module")
def dashboard() -> Dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def _panels(panels: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Every panel, those inside rows included."""
    return [item for panel in panels for item in (panel, *_panels(panel.get("panels", [])))]


def _series_in(expr: str) -> Set[str]:
    """The mokku and vLLM series a PromQL expression names (strings, such as label values, left out)."""
    code = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    return {name for name in IDENTIFIER.findall(code) if name.startswith(("mokku_", "vllm:"))}


def _queries(dashboard: Dict[str, Any]) -> List[str]:
    """Every PromQL query of the dashboard: its panels' targets and its variables' queries."""
    queries = [
        target["expr"] for panel in _panels(dashboard["panels"]) for target in panel.get("targets", [])
    ]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            queries.append(query["query"] if isinstance(query, dict) else query)
    return queries


def test_dashboard_reads_prometheus_through_its_variables(dashboard: Dict[str, Any]) -> None:
    assert dashboard["schemaVersion"] >= 39 and dashboard["uid"]
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    model = variables["model"]
    assert model["type"] == "query" and model["datasource"] == PROMETHEUS
    assert model["definition"] == "label_values(mokku_requests_total, model)"
    panels = _panels(dashboard["panels"])
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), "two panels share an id"
    rows = [panel for panel in panels if panel["type"] == "row"]
    assert [row["title"] for row in rows] == ["vLLM-compatible"]
    graphs = [panel for panel in panels if panel["type"] != "row"]
    assert len(graphs) >= 16
    assert {panel["type"] for panel in graphs} <= {"timeseries", "stat"}
    for panel in graphs:
        assert panel["datasource"] == PROMETHEUS, panel["title"]
        assert panel["targets"], f"{panel['title']} queries nothing"
        for target in panel["targets"]:
            assert target["datasource"] == PROMETHEUS, panel["title"]
            expr = target["expr"]
            assert _series_in(expr), f"{panel['title']}: {expr} names no mokku or vLLM series"
            code = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
            for left, right in ("()", "{}", "[]"):
                assert code.count(left) == code.count(right), f"{panel['title']}: {expr}"
    # On Grafana's grid of 24 columns, no two panels overlap.
    cells: Set[Any] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        own = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not own & cells, f"{panel['title']} overlaps another panel"
        cells |= own


def _scraped_series(tmp_path: Path) -> Set[str]:
    """The names of every sample /metrics serves after a plain, a streamed and a scripted chat."""
    settings = config.load({"MOKKU_STATE": str(tmp_path / "state.sqlite3"), "MOKKU_METRICS": "vllm"})
    app = webtest.TestApp(App(settings), extra_environ={"wsgi.multithread": True})
    messages = [{"role": "user", "content": "fill the dashboard"}]
    app.post_json(CHAT, {"model": "gpt-4o", "messages": messages})
    streamed = app.post_json(CHAT, {"model": "gpt-4o", "messages": messages, "stream": True})
    assert "data: [DONE]" in streamed.text
    app.post_json("/mokku/scenarios", {"match": {"model": "scripted"}, "reply": {"content": "x"}})
    scripted = app.post_json(CHAT, {"model": "scripted", "messages": messages})
    assert scripted.json["choices"][0]["message"]["content"] == "x"
    response = app.get("/metrics")
    return {
        sample.name for family in text_string_to_metric_families(response.text) for sample in family.samples
    }


def test_every_series_the_dashboard_queries_is_scraped(dashboard: Dict[str, Any], tmp_path: Path) -> None:
    """Each series a query names is in a real scrape of a server with MOKKU_METRICS=vllm: a misspelt
    or renamed series fails here, not as an empty graph."""
    scraped = _scraped_series(tmp_path)
    assert {"mokku_requests_total", "vllm:request_success_total"} <= scraped
    assert _series_in("rate(mokku_request_total[1m])") - scraped, "a misspelt series would pass"
    named = {query: _series_in(query) for query in _queries(dashboard)}
    missing = {query: sorted(series - scraped) for query, series in named.items() if series - scraped}
    assert not missing, f"the dashboard queries series /metrics does not serve: {missing}"
    used = set().union(*named.values())
    for series in (
        "mokku_requests_total",
        "mokku_request_duration_seconds_bucket",
        "mokku_time_to_first_token_seconds_bucket",
        "mokku_inter_token_latency_seconds_bucket",
        "mokku_prompt_tokens_total",
        "mokku_completion_tokens_total",
        "mokku_scenario_hits_total",
        "mokku_active_streams",
        "mokku_journal_entries",
        "vllm:num_requests_running",
        "vllm:num_requests_waiting",
        "vllm:kv_cache_usage_perc",
        "vllm:time_to_first_token_seconds_bucket",
        "vllm:e2e_request_latency_seconds_bucket",
        "vllm:request_success_total",
    ):
        assert series in used, f"no panel shows {series}"


def _mounts(service: Dict[str, Any]) -> Dict[str, Path]:
    """A service's bind mounts, target: source; every one read-only."""
    mounts = {}
    for volume in service["volumes"]:
        source, target, mode = volume.split(":")
        assert mode == "ro", volume
        mounts[target] = (ROOT / source).resolve()
    return mounts


def test_compose_profile_observe_scrapes_mokku_into_grafana(
    compose: Dict[str, Any], dashboard: Dict[str, Any]
) -> None:
    services = compose["services"]
    observe = _profile(compose, "observe")
    assert set(observe) == {"prometheus", "grafana"}
    assert all(service["profiles"] == ["observe"] for service in observe.values())
    prometheus, grafana = observe["prometheus"], observe["grafana"]
    assert re.fullmatch(r"prom/prometheus:v3\.\d+\.\d+", prometheus["image"])
    assert re.fullmatch(r"grafana/grafana:12\.\d+\.\d+", grafana["image"])
    assert prometheus["ports"] == ["9090:9090"] and grafana["ports"] == ["3000:3000"]
    # Prometheus scrapes mokku, and the replicas in a job of their own, by service name.
    assert _mounts(prometheus) == {"/etc/prometheus/prometheus.yml": OBSERVE / "prometheus.yml"}
    scrape = yaml.safe_load((OBSERVE / "prometheus.yml").read_text())
    assert scrape["global"]["scrape_interval"] == "5s"
    jobs = {
        job["job_name"]: [target for static in job["static_configs"] for target in static["targets"]]
        for job in scrape["scrape_configs"]
    }
    assert jobs == {"mokku": ["mokku:8080"], "mokku-replicas": [f"{name}:8080" for name in REPLICAS]}
    for job in scrape["scrape_configs"]:
        assert job.get("metrics_path", "/metrics") == "/metrics", job["job_name"]
    for target in (target for targets in jobs.values() for target in targets):
        host, port = target.split(":")
        assert host in services, f"{target}: no such service"
        environment = services[host]["environment"]
        assert port == environment["MOKKU_PORT"], target
        assert environment["MOKKU_METRICS"] == "vllm", f"{host} serves no /metrics (or not vLLM's series)"
    # Grafana: anonymous viewers, the data source and the dashboard provisioned from the mounts.
    environment = grafana["environment"]
    assert environment["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert environment["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    mounts = _mounts(grafana)
    assert mounts["/etc/grafana/provisioning"] == OBSERVE / "grafana" / "provisioning"
    provisioning = OBSERVE / "grafana" / "provisioning"
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "mokku.yml").read_text())["providers"]
    assert provider["type"] == "file"
    path = provider["options"]["path"]
    assert mounts[path] == DASHBOARD.parent, "Grafana looks for the dashboard where compose mounts none"
    assert environment["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"] == f"{path}/{DASHBOARD.name}"
    (source,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"]
    assert (source["type"], source["uid"], source["isDefault"]) == ("prometheus", "prometheus", True)
    url = urlsplit(source["url"])
    assert url.hostname in observe and f"{url.port}:{url.port}" in observe[url.hostname]["ports"]
    datasource = next(v for v in dashboard["templating"]["list"] if v["name"] == "datasource")
    assert datasource["current"]["value"] == source["uid"]


SCRAPE_ANNOTATIONS = {"prometheus.io/scrape": "true", "prometheus.io/path": "/metrics"}


@pytest.mark.parametrize(
    "path",
    [KUBERNETES / "deployment.yaml", KUBERNETES / "redis" / "deployment.yaml"],
    ids=["default", "redis"],
)
def test_kubernetes_pods_serve_metrics_and_say_so(path: Path) -> None:
    template = yaml.safe_load(path.read_text())["spec"]["template"]
    (container,) = template["spec"]["containers"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    annotations = template["metadata"]["annotations"]
    assert annotations == {**SCRAPE_ANNOTATIONS, "prometheus.io/port": str(ports["http"])}
    assert _env(container)["MOKKU_METRICS"] == {"name": "MOKKU_METRICS", "value": "vllm"}


def test_documented_service_monitor_selects_the_service() -> None:
    """The ServiceMonitor in docs/metrics.md selects the Service mokku by its labels and port."""
    metrics = (ROOT / "docs" / "metrics.md").read_text(encoding="utf-8")
    blocks = [yaml.safe_load(block) for block in re.findall(r"```yaml\n(.*?)```", metrics, re.S)]
    (monitor,) = [block for block in blocks if block.get("kind") == "ServiceMonitor"]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    service = _manifests()["service"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in [port["name"] for port in service["spec"]["ports"]]
    assert endpoint["path"] == "/metrics"


def test_docs_document_the_dashboards() -> None:
    metrics = (ROOT / "docs" / "metrics.md").read_text(encoding="utf-8")
    deployment = (ROOT / "docs" / "deployment.md").read_text(encoding="utf-8")
    header = (ROOT / "docker-compose.yml").read_text().split("\nname:", 1)[0]
    for needle in ("docker compose --profile observe up", "localhost:9090", "localhost:3000"):
        assert needle in metrics and needle in header, needle
    for annotation in (*SCRAPE_ANNOTATIONS, "prometheus.io/port"):
        assert annotation in metrics, annotation
    assert "](metrics.md#dashboards)" in deployment
