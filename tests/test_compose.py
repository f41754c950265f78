"""compose.yaml: valid by the Compose Specification's JSON schema, and consistent: every
dependency, network and volume it names exists, the app's services set only variables the app
reads and run only commands it has, web runs two replicas behind the proxy, the GPU trainer
reserves an NVIDIA device. The schema is the one Docker's compose package ships
(compose/config/compose_spec.json, installed from PyPI: requirements-nodeps.txt); where the
`docker compose` CLI works, `docker compose config -q` must accept the file too."""
import ast
import json
import re
import shutil
import subprocess
from importlib.resources import files
from pathlib import Path

import jsonschema
import pytest
import yaml
from django.core.management import get_commands

ROOT = Path(__file__).resolve().parent.parent
ENV_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
ENV_READERS = {"envint", "envbool", "envfloat", "envlist", "get", "text"}
# Read by annotator/storage.py once the S3 storage work is merged; until then allowed here.
# Once storage.py reads STORAGE_BACKEND, the allowance goes and each must be really read.
STORAGE_NAMES = {"STORAGE_BACKEND", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_STORAGE_BUCKET_NAME",
                 "AWS_S3_ENDPOINT_URL", "AWS_S3_REGION_NAME", "MEDIA_DELIVERY"}


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def _names_read(path):
    """Environment variable names `path` reads: the first argument of envint("X"), os.environ.get("X"), ..."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            value = node.args[0].value
            if func in ENV_READERS and isinstance(value, str) and ENV_NAME.match(value):
                names.add(value)
    return names


def app_settings():
    names = set()
    for module in ("settings.py", "storage.py"):
        names |= _names_read(ROOT / "annotator" / module)
    return names if "STORAGE_BACKEND" in names else names | STORAGE_NAMES


def _app_services(compose):
    return {name: s for name, s in compose["services"].items() if s.get("image") == "annotator:latest"}


def test_it_matches_the_compose_specification(compose):
    schema = json.loads((files("compose") / "config" / "compose_spec.json").read_text())
    validator = jsonschema.Draft201909Validator(schema)  # its $schema: draft 2019-09
    errors = sorted(validator.iter_errors(compose), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


def test_the_schema_check_catches_a_mistake(compose):
    schema = json.loads((files("compose") / "config" / "compose_spec.json").read_text())
    broken = {**compose, "services": {**compose["services"], "web": {**compose["services"]["web"], "replica": 2}}}
    assert not jsonschema.Draft201909Validator(schema).is_valid(broken)


def test_every_reference_exists(compose):
    services, networks, volumes = compose["services"], set(compose["networks"]), set(compose["volumes"])
    for name, service in services.items():
        depends = service.get("depends_on", {})
        assert set(depends) <= set(services), f"{name} depends on {set(depends) - set(services)}"
        assert set(service.get("networks", {})) <= networks, name
        for mount in service.get("volumes", []):
            source = mount.split(":")[0]
            assert source.startswith(".") or source in volumes, f"{name} mounts an undeclared volume {source}"
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name} mounts {source}, which is not in the repository"


def test_app_services_set_only_settings_the_app_reads(compose):
    known = app_settings()
    assert {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "TRUSTED_PROXIES"} <= known
    for name, service in _app_services(compose).items():
        unknown = set(service["environment"]) - known
        assert not unknown, f"{name} sets {sorted(unknown)}, which the app does not read"


def test_app_services_run_commands_the_app_has(compose):
    commands = get_commands()
    for name, service in _app_services(compose).items():
        assert service["command"][:2][0] == "python" and service["command"][1] == "manage.py", name
        assert service["command"][2] in commands, f"{name} runs manage.py {service['command'][2]}, which is no command"


def test_the_shape_of_the_deployment(compose):
    services = compose["services"]
    assert services["web"]["deploy"]["replicas"] == 2
    assert {"--trainer", "none", "--worker"} <= set(services["web"]["command"])  # the worker runs apart
    assert services["worker"]["command"][2] == "jobs_worker"
    [device] = services["trainer-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert (device["driver"], device["capabilities"], services["trainer-gpu"]["profiles"]) == ("nvidia", ["gpu"], ["gpu"])
    assert services["trainer-cpu"]["profiles"] == ["cpu"]
    proxy_address = services["proxy"]["networks"]["app"]["ipv4_address"]
    assert services["web"]["environment"]["TRUSTED_PROXIES"] == proxy_address
    caddyfile = (ROOT / "deploy" / "Caddyfile").read_text()
    assert re.search(r"name web\s+port 8000", caddyfile)
    for name, service in services.items():  # every long-running service; one-shot ones exit
        assert service.get("restart") == "no" or "healthcheck" in service, f"{name} has no healthcheck"
    assert services["web"]["healthcheck"]["test"][2:5] == ["manage.py", "healthcheck", "--port"]


def test_docker_compose_accepts_it_where_it_runs(tmp_path):
    docker = shutil.which("docker")
    if docker is None or subprocess.run([docker, "compose", "version"], capture_output=True).returncode != 0:
        return  # no Compose CLI on this machine (this project's CI has none): the schema test stands
    env = {"SECRET_KEY": "x" * 50, "POSTGRES_PASSWORD": "p", "MINIO_ROOT_PASSWORD": "m" * 8, "PATH": "/usr/bin:/bin"}
    result = subprocess.run([docker, "compose", "-f", str(ROOT / "compose.yaml"), "config", "-q"], env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
