"""The API shell against the real Temporal dev server and real databases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from eri.settings import Settings
from tests.conftest import free_port

PLANTED = "Ximena Quetzal-Canary 4471"


def _address(env: WorkflowEnvironment) -> str:
    return env.client.service_client.config.target_host


async def _serve(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://eri.test") as client:
            yield client


@pytest.fixture
async def api(
    temporal_env: WorkflowEnvironment, database_url: str, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        data_dir=tmp_path, database_url=database_url, temporal_address=_address(temporal_env)
    )
    async for client in _serve(create_app(settings)):
        yield client


async def test_healthz(api: httpx.AsyncClient) -> None:
    r = await api.get("/healthz")
    assert (r.status_code, r.json()) == (200, {"status": "ok"})


async def test_readyz_when_temporal_and_database_answer(api: httpx.AsyncClient) -> None:
    r = await api.get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "ready", "checks": {"database": "ok", "temporal": "ok"}}


async def test_readyz_names_an_unreachable_temporal(tmp_path: Path, database_url: str) -> None:
    settings = Settings(
        data_dir=tmp_path, database_url=database_url, temporal_address=f"127.0.0.1:{free_port()}"
    )
    async for client in _serve(create_app(settings)):
        r = await client.get("/readyz", headers={"Accept-Language": "en"})
        assert r.status_code == 503
        assert r.headers["content-type"] == "application/problem+json"
        body = r.json()
        assert body["unavailable"] == ["temporal"]
        assert body["type"].endswith("/not-ready")
        assert body["detail"] == "Not reachable: temporal"


async def test_readyz_names_an_unreachable_database(
    temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/nothing"
    settings = Settings(
        data_dir=tmp_path, database_url=url, temporal_address=_address(temporal_env)
    )
    async for client in _serve(create_app(settings)):
        r = await client.get("/readyz")
        assert r.status_code == 503
        assert r.json()["unavailable"] == ["database"]
        assert r.json()["detail"] == "Sin conexión con: database"


async def test_unknown_route_is_problem_json_in_spanish_by_default(api: httpx.AsyncClient) -> None:
    r = await api.get("/no/such/route")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["title"] == "No encontrado"
    assert r.headers["content-language"] == "es"


async def test_openapi_is_served(api: httpx.AsyncClient) -> None:
    assert (await api.get("/docs")).status_code == 200
    spec = (await api.get("/openapi.json")).json()
    assert {"/healthz", "/readyz"} <= set(spec["paths"])


class _Intake(BaseModel):
    name: str
    age: int


async def test_validation_errors_name_fields_and_never_echo_input(tmp_path: Path) -> None:
    app = create_app(
        Settings(data_dir=tmp_path, database_url=f"sqlite+aiosqlite:///{tmp_path}/e.db")
    )

    @app.post("/echo")
    async def echo(body: _Intake) -> dict[str, str]:
        return {"ok": "yes"}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError(f"failed for {PLANTED}")

    async for client in _serve(app):
        r = await client.post(
            "/echo", json={"name": PLANTED, "age": PLANTED}, headers={"Accept-Language": "en-US"}
        )
        assert r.status_code == 422
        assert PLANTED not in r.text
        assert r.json()["errors"] == [{"field": "age", "code": "int_parsing"}]
        assert r.json()["title"] == "Invalid data"
        r = await client.post(
            "/echo",
            content=b"{not json " + PLANTED.encode(),
            headers={"content-type": "application/json"},
        )
        assert r.status_code == 422
        assert PLANTED not in r.text
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://t") as client,
    ):
        r = await client.get("/boom")
        assert r.status_code == 500
        assert r.headers["content-type"] == "application/problem+json"
        assert PLANTED not in r.text
        assert "Traceback" not in r.text
