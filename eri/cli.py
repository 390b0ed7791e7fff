"""The ``eri`` command line."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid

import typer

from eri.audit.cli import app as audit_app
from eri.handoff.cli import app as handoff_app
from eri.logging import configure_logging
from eri.runtime import open_runtime
from eri.settings import Settings, SettingsError, get_settings
from protocols.cli import app as protocols_app

app = typer.Typer(no_args_is_help=True, help="ERI: immediate response to human trafficking.")
probe_app = typer.Typer(no_args_is_help=True, help="End-to-end liveness probe workflows.")
app.add_typer(probe_app, name="probe")
keys_app = typer.Typer(no_args_is_help=True, help="Key-encryption key rotation and status.")
app.add_typer(keys_app, name="keys")
app.add_typer(protocols_app, name="protocols")
app.add_typer(audit_app, name="audit")
users_app = typer.Typer(no_args_is_help=True, help="Users of the local token issuer.")
app.add_typer(users_app, name="users")
app.add_typer(handoff_app, name="handoff")


def _settings(component: str) -> Settings:
    try:
        settings = get_settings()
    except SettingsError as exc:
        typer.echo(f"eri: {exc}", err=True)
        raise typer.Exit(2) from None
    configure_logging(settings, component=component)
    return settings


@app.command()
def up() -> None:
    """Run ERI on the embedded default: Temporal dev server, migrations, worker and API."""
    from eri.supervisor import up as run_up

    raise typer.Exit(run_up(_settings("up")))


@app.command()
def temporal() -> None:
    """Run the Temporal dev server alone (development only)."""
    from eri.supervisor import run_temporal

    raise typer.Exit(run_temporal(_settings("temporal")))


@app.command()
def worker() -> None:
    """Run a worker (production role; scale out by running more)."""
    from eri.worker import run_worker

    asyncio.run(run_worker(_settings("worker")))


@app.command()
def api() -> None:
    """Serve the HTTP API with uvicorn (production role; scale out behind a proxy)."""
    import uvicorn

    settings = _settings("api")
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=settings.api_host,
        port=settings.api_port,
        log_config=None,
        access_log=False,
        proxy_headers=False,
    )


@app.command()
def migrate() -> None:
    """Apply the database migrations."""
    from eri.db import upgrade

    settings = _settings("migrate")
    settings.ensure_dirs()
    upgrade(settings.effective_database_url)
    typer.echo("database migrated")


@app.command()
def workers() -> None:
    """Exit 0 when at least one worker polls ERI's task queue (a worker healthcheck)."""
    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

    from eri import temporal as t

    settings = _settings("workers")

    async def go() -> int:
        client = await t.connect(settings, None)
        resp = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=settings.temporal_namespace,
                task_queue=TaskQueue(name=settings.temporal_task_queue),
                task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
            )
        )
        return len(resp.pollers)

    pollers = asyncio.run(go())
    typer.echo(f"{pollers} worker(s) polling {settings.temporal_task_queue}")
    raise typer.Exit(0 if pollers else 1)


@keys_app.command("rotate")
def keys_rotate(
    new_kek: bool = typer.Option(
        False, "--new-kek", help="Development key directory: create a new KEK first."
    ),
) -> None:
    """Re-wrap every data key under the current KEK, online (run until nothing is left)."""
    from eri import ledger
    from eri.crypto.wiring import new_local_kek
    from eri.ledger import Action, Record

    settings = _settings("keys")
    if new_kek:
        if settings.kek is not None:
            typer.echo(
                "eri: --new-kek rotates the local key directory; with ERI_KEK set, "
                "deploy the new key as ERI_KEK and the old one in ERI_KEK_PREVIOUS",
                err=True,
            )
            raise typer.Exit(2)
        old_id, new_id = new_local_kek(settings.effective_keys_dir)
        typer.echo(f"new KEK {new_id}; the previous one ({old_id}) stays readable")

    async def go() -> None:
        async with open_runtime(settings) as rt:
            report = await rt.keyring.rotate()
            usage = await rt.keyring.kek_usage()
            await ledger.append(
                rt.sessions,
                Record(idempotency_key=f"rotate:{uuid.uuid4().hex}", action=Action.KEYS_ROTATED),
            )
        typer.echo(
            f"KEK {report.kek_id}: {report.rewrapped} re-wrapped, {report.already_current} "
            f"already current, {report.shredded} shredded, {report.raced} raced"
        )
        typer.echo("data keys per KEK: " + ", ".join(f"{k}={n}" for k, n in sorted(usage.items())))
        if not report.complete:
            raise typer.Exit(1)

    asyncio.run(go())


@keys_app.command("status")
def keys_status() -> None:
    """How many live data keys each KEK wraps."""
    settings = _settings("keys")

    async def go() -> dict[str, int]:
        async with open_runtime(settings) as rt:
            return await rt.keyring.kek_usage()

    usage = asyncio.run(go())
    typer.echo(
        "data keys per KEK: " + (", ".join(f"{k}={n}" for k, n in sorted(usage.items())) or "none")
    )


@probe_app.command("start")
def probe_start(max_wait_seconds: int = 86400) -> None:
    """Start a probe workflow and print its id."""
    from eri import temporal as t
    from workflows.probe import ProbeWorkflow

    settings = _settings("probe")

    async def go() -> str:
        async with open_runtime(settings) as rt:
            client = await t.connect(settings, rt.keyring)
            handle = await client.start_workflow(
                ProbeWorkflow.run,
                max_wait_seconds,
                id="probe_" + uuid.uuid4().hex[:16],
                task_queue=settings.temporal_task_queue,
            )
            return handle.id

    typer.echo(asyncio.run(go()))


@probe_app.command("finish")
def probe_finish(workflow_id: str) -> None:
    """Finish a probe workflow and print how many beats it received."""
    from typing import Any

    from temporalio.client import WorkflowHandle

    from eri import temporal as t
    from workflows.probe import ProbeWorkflow

    settings = _settings("probe")

    async def go() -> int:
        async with open_runtime(settings) as rt:
            client = await t.connect(settings, rt.keyring)
            handle: WorkflowHandle[Any, int] = client.get_workflow_handle_for(
                ProbeWorkflow.run, workflow_id
            )
            await handle.signal(ProbeWorkflow.finish)
            beats: int = await handle.result()
            return beats

    typer.echo(asyncio.run(go()))


def _users_db(settings: Settings) -> None:
    from eri.db import upgrade

    settings.ensure_dirs()
    upgrade(settings.effective_database_url)


@users_app.command("add")
def users_add(
    name: str = typer.Argument(..., help="Log-in name, e.g. ana.pgn"),
    role: str = typer.Option(..., help="responder, coordinator, committee, prosecutor or admin"),
    institution: str = typer.Option(..., help="Institution code, e.g. pgn"),
    group: list[str] = typer.Option(  # noqa: B008
        [], "--group", help="Protocol candidate group institution:role (repeatable)"
    ),
) -> None:
    """Add a user of the local issuer."""
    from eri import users

    settings = _settings("users")
    try:
        users.check(name, role, institution, group)
    except users.UserError as exc:
        typer.echo(f"eri: {exc}", err=True)
        raise typer.Exit(2) from None
    _users_db(settings)

    async def go() -> str:
        async with open_runtime(settings) as rt:
            user = await users.add(rt.sessions, name, role, institution, group)
            return user.user_id

    try:
        user_id = asyncio.run(go())
    except users.UserError as exc:
        typer.echo(f"eri: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"added {name} ({user_id}), {role} at {institution}")


@users_app.command("token")
def users_token(
    name: str = typer.Argument(...),
    ttl_minutes: int = typer.Option(0, help="Lifetime (default: ERI_TOKEN_TTL_MINUTES)"),
) -> None:
    """Print a short-lived bearer token for a user (local issuer only)."""
    from eri import users

    settings = _settings("users")
    if settings.oidc_jwks_url:
        typer.echo("eri: tokens come from the OIDC provider here (ERI_OIDC_JWKS_URL)", err=True)
        raise typer.Exit(2)
    _users_db(settings)

    async def go() -> str:
        async with open_runtime(settings) as rt:
            user = await users.get(rt.sessions, name)
            return users.token(settings, user, ttl_minutes or None)

    try:
        typer.echo(asyncio.run(go()))
    except users.UserError as exc:
        typer.echo(f"eri: {exc}", err=True)
        raise typer.Exit(2) from None


@users_app.command("password")
def users_password(
    name: str = typer.Argument(...),
    stdin: bool = typer.Option(False, "--stdin", help="Read the password from standard input"),
) -> None:
    """Set the password a user signs in to the web pages with (stored as a scrypt hash)."""
    import sys

    from eri import users

    settings = _settings("users")
    if stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    _users_db(settings)

    async def go() -> None:
        async with open_runtime(settings) as rt:
            await users.set_password(rt.sessions, name, password)

    try:
        asyncio.run(go())
    except users.UserError as exc:
        typer.echo(f"eri: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"password set for {name}")


@users_app.command("link")
def users_link(name: str = typer.Argument(...)) -> None:
    """Print a one-time sign-in link for a user (valid ERI_WEB_LINK_TTL_MINUTES)."""
    from datetime import timedelta

    from eri import users

    settings = _settings("users")
    _users_db(settings)

    async def go() -> str:
        async with open_runtime(settings) as rt:
            ttl = timedelta(minutes=settings.web_link_ttl_minutes)
            return await users.create_link(rt.sessions, name, ttl)

    try:
        token = asyncio.run(go())
    except users.UserError as exc:
        typer.echo(f"eri: {exc}", err=True)
        raise typer.Exit(2) from None
    base = settings.web_public_url or f"http://{settings.api_host}:{settings.api_port}"
    typer.echo(f"{base.rstrip('/')}/web/signin/link?token={token}")


@users_app.command("list")
def users_list() -> None:
    """List the users of the local issuer."""
    from eri import users

    settings = _settings("users")
    _users_db(settings)

    async def go() -> list[tuple[str, str, str, str, str]]:
        async with open_runtime(settings) as rt:
            return [
                (u.name, u.user_id, u.role, u.institution, u.groups)
                for u in await users.all_users(rt.sessions)
            ]

    for row in asyncio.run(go()):
        typer.echo("\t".join(row))


def main() -> None:
    """Entry point. Exits with ``os._exit`` after flushing: the Temporal SDK can crash at
    interpreter shutdown (sdk-python issue 300), which must not turn a success into a failure."""
    try:
        # Without standalone mode, click answers ``typer.Exit(n)`` by returning n.
        result = app(standalone_mode=False)
        code = result if isinstance(result, int) else 0
    except typer.Exit as exc:
        code = exc.exit_code
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except (typer.Abort, KeyboardInterrupt):
        code = 130
    except Exception as exc:  # click usage errors and the like
        from click import ClickException

        if isinstance(exc, ClickException):
            exc.show()
            code = exc.exit_code
        else:
            raise
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
