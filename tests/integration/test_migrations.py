"""The migration runner against empty databases."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from casemgr.migrate import (
    MigrationError,
    apply_migrations,
    default_migrations_dir,
    load_migrations,
)
from tests.conftest import create_empty_database, drop_database


@pytest.fixture
async def empty_database():  # type: ignore[no-untyped-def]
    dsn = await create_empty_database()
    yield dsn
    await drop_database(dsn)


async def test_all_migrations_apply_to_an_empty_database_and_a_second_run_applies_none(
    empty_database: str,
) -> None:
    names = [m.name for m in load_migrations(default_migrations_dir())]
    assert await apply_migrations(empty_database) == names
    assert await apply_migrations(empty_database) == []
    conn = await asyncpg.connect(empty_database)
    try:
        recorded = [
            r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations ORDER BY version")
        ]
    finally:
        await conn.close()
    assert recorded == names


async def test_two_runners_at_once_apply_each_file_once(empty_database: str) -> None:
    first, second = await asyncio.gather(apply_migrations(empty_database), apply_migrations(empty_database))
    assert sorted(first + second) == sorted(m.name for m in load_migrations(default_migrations_dir()))


async def test_a_failing_file_leaves_no_trace_and_stops_the_run(empty_database: str, tmp_path: Path) -> None:
    (tmp_path / "0001_good.sql").write_text("CREATE TABLE good (id int);")
    (tmp_path / "0002_bad.sql").write_text("CREATE TABLE half (id int); SELECT * FROM missing;")
    with pytest.raises(asyncpg.UndefinedTableError):
        await apply_migrations(empty_database, tmp_path)
    conn = await asyncpg.connect(empty_database)
    try:
        assert await conn.fetchval("SELECT to_regclass('good') IS NOT NULL")
        assert await conn.fetchval("SELECT to_regclass('half') IS NULL")
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == 1
    finally:
        await conn.close()


async def test_a_migration_changed_after_it_was_applied_is_refused(
    empty_database: str, tmp_path: Path
) -> None:
    (tmp_path / "0001_one.sql").write_text("CREATE TABLE one (id int);")
    await apply_migrations(empty_database, tmp_path)
    (tmp_path / "0001_one.sql").write_text("CREATE TABLE one (id bigint);")
    with pytest.raises(MigrationError, match="changed after it was applied"):
        await apply_migrations(empty_database, tmp_path)


def test_badly_named_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "1_x.sql").write_text("")
    with pytest.raises(MigrationError, match="NNNN_name.sql"):
        load_migrations(tmp_path)
