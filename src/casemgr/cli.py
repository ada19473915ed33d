"""The ``casemgr`` command: serve, migrate, seed-demo, create-admin, audit verify, tasks run, and the
tracking core's serve, workers, sync and simulate."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Sequence
from pathlib import Path

import asyncpg
import msgspec

from casemgr.config import ConfigError, Settings, load_settings
from casemgr.logs import configure_logging


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as e:
        sys.exit(f"casemgr: configuration error: {e}")


def _run_uvicorn(factory: str, host: str, port: int, workers: int) -> int:
    from casemgr.serving import ServeOptions, serve

    settings = _settings()
    configure_logging(settings.log_format, settings.log_level)
    return serve(ServeOptions(factory, host, port, workers, settings.shutdown_grace_seconds))


def _serve(args: argparse.Namespace) -> int:
    settings = _settings()
    return _run_uvicorn(
        "casemgr.asgi:build",
        args.host or settings.host,
        args.port or settings.port,
        args.workers or settings.workers,
    )


async def _migrate() -> int:
    from casemgr.migrate import apply_migrations

    settings = _settings()
    applied = await apply_migrations(settings.database_url)
    print(f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else ""))
    return 0


def _passwords(settings: Settings):  # type: ignore[no-untyped-def]
    from casemgr.auth.passwords import Passwords

    return Passwords(
        time_cost=settings.argon2_time_cost,
        memory_kib=settings.argon2_memory_kib,
        parallelism=settings.argon2_parallelism,
    )


def _write_private(path: Path, content: bytes) -> Path:
    """Write a file only its owner may read (it holds secrets)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_bytes(content)
    return path


async def _seed_demo(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime, timedelta

    from casemgr.crypto import Keyring
    from casemgr.db import create_pool
    from casemgr.seed import DEMO_LOGINS, DEMO_PASSWORD, seed_demo
    from casemgr.supervision.engine import run_once

    settings = _settings()
    conn = await asyncpg.connect(settings.database_url)
    try:
        created = await seed_demo(conn, _passwords(settings), Keyring(settings.data_keys), people=args.people)
    finally:
        await conn.close()
    if created:
        # Plan the due contacts, assessments and reviews, and mark what is late already.
        pool = await create_pool(settings.app_database_url, min_size=1, max_size=2)
        try:
            await run_once(
                pool, datetime.now(UTC), escalate_after=timedelta(hours=settings.task_escalate_after_hours)
            )
        finally:
            await pool.close()
    if created:
        from casemgr.monitoring.demo import seed_monitoring

        conn = await asyncpg.connect(settings.database_url)
        try:
            devices = await seed_monitoring(
                conn, Keyring(settings.data_keys), datetime.now(UTC), count=args.monitored
            )
        finally:
            await conn.close()
        path = _write_private(Path(args.devices_file), msgspec.json.format(msgspec.json.encode(devices)))
        print(f"{len(devices)} monitored subjects; their devices' secrets are in {path} for the simulator")
        await _tracking_sync()
    print("demo city seeded" if created else "demo city already present; nothing changed")
    print(f"demo logins (password {DEMO_PASSWORD!r}):")
    for login in DEMO_LOGINS:
        print(f"  {login.username:<20} {login.role:<15} {login.unit}")
    return 0


async def _create_admin(args: argparse.Namespace) -> int:
    from casemgr.admin_tasks import cli_context, create_account, ensure_city
    from casemgr.auth.principal import Role
    from casemgr.errors import CasemgrError

    settings = _settings()
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("password for the new admin: ")
    conn = await asyncpg.connect(settings.database_url)
    ctx = cli_context()
    try:
        async with conn.transaction():
            if args.city_name:
                await ensure_city(conn, code=args.org_unit, name=args.city_name)
            account_id = await create_account(
                conn,
                _passwords(settings),
                username=args.username,
                display_name=args.display_name or args.username,
                role=Role.ADMIN,
                org_unit_code=args.org_unit,
                password=password,
                ctx=ctx,
            )
    except CasemgrError as e:
        print(f"casemgr: {e.detail}", file=sys.stderr)
        return 2
    finally:
        await conn.close()
    print(f"admin {args.username!r} created (account {account_id}, audit request {ctx.request_id})")
    return 0


async def _audit_verify() -> int:
    from casemgr.audit import verify_chain

    settings = _settings()
    conn = await asyncpg.connect(settings.database_url)
    try:
        report = await verify_chain(conn)
    finally:
        await conn.close()
    if report.ok:
        print(f"audit chain intact: {report.rows_checked} rows; head hash {report.head_hash}")
        return 0
    print(
        f"audit chain BROKEN at row {report.first_broken_id}: {report.problem} "
        f"({report.rows_checked} rows before it verified)"
    )
    return 1


async def _tasks_run() -> int:
    from datetime import UTC, datetime, timedelta

    from casemgr.db import create_pool
    from casemgr.supervision.engine import run_once

    settings = _settings()
    pool = await create_pool(settings.app_database_url, min_size=1, max_size=2)
    try:
        report = await run_once(
            pool, datetime.now(UTC), escalate_after=timedelta(hours=settings.task_escalate_after_hours)
        )
    finally:
        await pool.close()
    print(
        f"tasks created {report.created}, cancelled {report.cancelled}, "
        f"marked overdue {report.overdue}, escalated {report.escalated}"
    )
    return 0


async def _retention_run() -> int:
    from datetime import UTC, datetime

    from casemgr.retention.service import run_once

    settings = _settings()
    conn = await asyncpg.connect(settings.database_url)
    try:
        report = await run_once(
            conn,
            datetime.now(UTC),
            ping_days=settings.retention_ping_days,
            closed_case_days=settings.retention_closed_case_days,
        )
    finally:
        await conn.close()
    print(
        f"ping history purged for {report.orders_purged} ended orders ({report.pings_purged} pings); "
        f"{report.people_anonymised} people of closed cases anonymised"
    )
    return 0


def _tracking_serve(args: argparse.Namespace) -> int:
    settings = _settings()
    return _run_uvicorn(
        "tracking.asgi:build",
        args.host or settings.tracking_host,
        args.port or settings.tracking_port,
        args.workers or settings.tracking_workers,
    )


def _tracking_workers() -> int:
    from tracking.workers import run_workers

    settings = _settings()
    configure_logging(settings.log_format, settings.log_level)
    asyncio.run(run_workers(settings))
    return 0


async def _tracking_sync() -> int:
    """Queue every device and publish it: rebuilds tracking's Redis keys from PostgreSQL."""
    from datetime import UTC, datetime, timedelta

    from tracking.keys import KeySpace

    from casemgr.db import create_pool
    from casemgr.monitoring.publisher import TrackingLink
    from casemgr.monitoring.repository import queue_all
    from casemgr.redis_client import create_redis

    settings = _settings()
    pool = await create_pool(settings.app_database_url, min_size=1, max_size=2)
    redis = create_redis(settings.redis_url, cluster=settings.redis_cluster)
    try:
        # As the owner: the application role sees no device outside a caller's scope.
        owner = await asyncpg.connect(settings.database_url)
        try:
            queued = await queue_all(owner)
        finally:
            await owner.close()
        link = TrackingLink.create(redis, KeySpace(settings.tracking_shards, settings.tracking_namespace))
        published = await link.drain_outbox(
            pool, datetime.now(UTC) + timedelta(seconds=1), older_than=timedelta(0)
        )
    finally:
        await pool.close()
        await redis.aclose()
    print(f"devices queued {queued}, published {published}")
    return 0


def _tracking_simulate(args: argparse.Namespace) -> int:
    from tracking.simulator import run_simulator

    from casemgr.monitoring.demo import DemoDevice

    settings = _settings()
    devices = msgspec.json.decode(Path(args.devices_file).read_bytes(), type=list[DemoDevice])
    return asyncio.run(run_simulator(settings, devices, args))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="casemgr", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int)
    commands.add_parser("migrate", help="apply pending migrations (as DATABASE_URL's user)")
    seed = commands.add_parser("seed-demo", help="create the demo city, its accounts and cases")
    seed.add_argument("--people", type=int, default=3000, help="how many people (default 3000)")
    seed.add_argument(
        "--devices-file", default=".data/demo-devices.json", help="where to write the demo devices' secrets"
    )
    seed.add_argument(
        "--monitored",
        type=int,
        default=60,
        help="how many community-corrections subjects get a monitoring order and a device (default 60)",
    )
    admin = commands.add_parser("create-admin", help="create an admin account")
    admin.add_argument("--username", required=True)
    admin.add_argument("--display-name")
    admin.add_argument("--org-unit", required=True, help="code of the admin's org unit")
    admin.add_argument("--city-name", help="create the org unit as a new city of this name")
    admin.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from standard input instead of prompting",
    )
    tasks = commands.add_parser("tasks", help="the due-task engine")
    tasks_commands = tasks.add_subparsers(dest="tasks_command", required=True)
    tasks_commands.add_parser("run", help="run the due-task engine once (for cron)")
    retention = commands.add_parser("retention", help="purge and anonymise what is past its keeping")
    retention_commands = retention.add_subparsers(dest="retention_command", required=True)
    retention_commands.add_parser("run", help="run once, as DATABASE_URL's user (daily, from a timer)")
    audit = commands.add_parser("audit", help="audit trail tools")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True)
    audit_commands.add_parser("verify", help="recompute the hash chain; report the first break")
    tracking = commands.add_parser("tracking", help="the device-facing tracking core")
    tracking_commands = tracking.add_subparsers(dest="tracking_command", required=True)
    tracking_serve = tracking_commands.add_parser("serve", help="run the ping ingest HTTP service")
    tracking_serve.add_argument("--host")
    tracking_serve.add_argument("--port", type=int)
    tracking_serve.add_argument("--workers", type=int)
    tracking_commands.add_parser("workers", help="run the watchdog, the persister and the alert sink")
    tracking_commands.add_parser("sync", help="republish every device's configuration to Redis")
    from tracking.simulator import add_arguments

    add_arguments(
        tracking_commands.add_parser("simulate", help="drive virtual devices through the demo city")
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "tracking" and args.tracking_command == "serve":
        return _tracking_serve(args)
    if args.command == "tracking" and args.tracking_command == "workers":
        return _tracking_workers()
    if args.command == "tracking" and args.tracking_command == "simulate":
        return _tracking_simulate(args)
    if args.command != "serve":
        configure_logging("console", "WARNING")
    if args.command == "migrate":
        return asyncio.run(_migrate())
    if args.command == "seed-demo":
        return asyncio.run(_seed_demo(args))
    if args.command == "create-admin":
        return asyncio.run(_create_admin(args))
    if args.command == "tasks":
        return asyncio.run(_tasks_run())
    if args.command == "audit":
        return asyncio.run(_audit_verify())
    if args.command == "retention":
        return asyncio.run(_retention_run())
    if args.command == "tracking":
        return asyncio.run(_tracking_sync())
    return 2


if __name__ == "__main__":
    sys.exit(main())
