"""docker-compose.yml cannot run here (no Docker engine): check its structure instead."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from eri import search_attributes
from eri.temporal import find_binary

ROOT = Path(__file__).resolve().parents[2]
LONG_RUNNING = {"postgresql", "temporal", "temporal-ui", "eri-worker", "eri-api"}
ONE_SHOT = {"temporal-schema", "temporal-namespace", "eri-migrate"}
SECRET_KEY = re.compile(r"PASSWORD|PWD|KEK|SECRET|TOKEN", re.IGNORECASE)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    assert isinstance(env, dict), "environment must be a mapping"
    return {k: str(v) for k, v in env.items() if k != "<<"} | {
        k: str(v) for k, v in env.get("<<", {}).items()
    }


def test_services_and_images(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == LONG_RUNNING | ONE_SHOT
    for name, svc in services.items():
        if "image" in svc:
            image = svc["image"]
            assert ":" in image and not image.endswith(":latest"), f"{name}: pin {image}"
        else:
            assert svc.get("build") == ".", f"{name}: ERI services build the repo's Dockerfile"
    assert services["temporal"]["environment"]["DB"] == "postgres12"
    assert services["temporal-ui"]["environment"]["TEMPORAL_CODEC_ENDPOINT"].endswith("/codec")
    assert (ROOT / "Dockerfile").exists()


def test_long_running_services_have_healthchecks(compose: dict[str, Any]) -> None:
    for name in LONG_RUNNING:
        check = compose["services"][name].get("healthcheck")
        assert check and check.get("test"), f"{name} has no healthcheck"


def test_dependencies_wait_for_health_or_completion(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, svc in services.items():
        for dep, cond in svc.get("depends_on", {}).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            expected = "service_completed_successfully" if dep in ONE_SHOT else "service_healthy"
            assert cond["condition"] == expected, f"{name} -> {dep}"
    assert set(services["eri-worker"]["depends_on"]) == {"eri-migrate", "temporal-namespace"}


def test_no_secret_is_committed(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        for key, value in _env(svc).items():
            if SECRET_KEY.search(key):
                assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]*\}", value), (
                    f"{name}.{key} must come from the environment"
                )
            for part in re.findall(r"://[^:/@]+:([^@]+)@", value):
                assert part.startswith("${"), f"{name}.{key} embeds a literal password"


def test_namespace_job_registers_eris_search_attributes(compose: dict[str, Any]) -> None:
    script = compose["services"]["temporal-namespace"]["command"][0]
    registered = dict(re.findall(r"(Eri\w+)=(\w+)", script))
    expected = dict(arg.split("=") for arg in search_attributes.cli_args()[1::2])
    assert registered == expected


def test_cluster_runs_the_dev_servers_temporal_version(compose: dict[str, Any]) -> None:
    out = subprocess.run(
        [find_binary("temporal"), "--version"], capture_output=True, text=True, check=True
    )
    match = re.search(r"Server (\d+\.\d+\.\d+)", out.stdout)
    assert match, out.stdout
    assert compose["services"]["temporal"]["image"] == f"temporalio/server:{match.group(1)}"
