"""`klubb backup --out FILE` (a consistent copy while Klubb serves) and `klubb restore FILE`
(into an empty database): SQLite's online backup API, or pg_dump and pg_restore on PostgreSQL."""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import create_async_engine

from bot.settings import Settings
from store import migrate
from store.database import database_url

SQLITE_HEADER = b"SQLite format 3\x00"
PG_DUMP_HEADER = b"PGDMP"  # pg_dump's custom format
# Pages copied per step of SQLite's backup: the source's read snapshot is taken per step, and
# a write by another process between steps starts the copy again, so a busy database is copied
# in one step (WAL: the writer is never blocked by it).
ALL_PAGES = -1


class Refused(Exception):
    """The backup or restore can't be done as asked; the message says why. `code`: the exit
    code (2: what the operator gave is wrong; 1: it can't be done here)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def add_commands(commands: Any) -> None:
    """`backup` and `restore` on the `klubb` parser's subcommands."""
    backup = commands.add_parser(
        "backup",
        help="a consistent copy of the database, taken while Klubb serves",
        description="SQLite: a copy through SQLite's online backup API. PostgreSQL: pg_dump's "
        "custom format (pg_dump of the server's major version must be on PATH).",
    )
    backup.add_argument("--out", required=True, metavar="FILE", help="the file to write (new)")
    backup.set_defaults(command=_backup)
    restore = commands.add_parser(
        "restore",
        help="put a backup back, into an empty database (KLUBB_DATABASE_URL)",
        description="Only into an empty database: a missing or empty SQLite file, or a "
        "PostgreSQL database with no tables (createdb NAME). Stop Klubb first.",
    )
    restore.add_argument("file", metavar="FILE", help="a file `klubb backup` wrote")
    restore.set_defaults(command=_restore)


def _backup(args: argparse.Namespace, settings: Settings) -> int:
    out = Path(args.out)
    try:
        if out.exists():
            raise Refused(f"--out {out} already exists: a backup never overwrites a file", 2)
        if not out.parent.is_dir():
            raise Refused(f"--out {out}: no such directory {out.parent}", 2)
        url = database_url(settings.database_url)
        if url.get_backend_name() == "sqlite":
            said = _sqlite_backup(_sqlite_path(url), out)
        else:
            said = _pg_backup(url, out)
    except Refused as exc:
        print(f"klubb backup: {exc}", file=sys.stderr)
        return exc.code
    print(said)
    return 0


def _restore(args: argparse.Namespace, settings: Settings) -> int:
    source = Path(args.file)
    url = database_url(settings.database_url)
    try:
        kind = _kind_of(source)
        if url.get_backend_name() == "sqlite":
            if kind != "sqlite":
                raise Refused(f"{source} is a PostgreSQL backup: restore it into PostgreSQL", 2)
            _sqlite_restore(source, _sqlite_path(url))
        else:
            if kind != "postgresql":
                raise Refused(f"{source} is a SQLite backup: restore it into SQLite", 2)
            _pg_restore(source, url)
    except Refused as exc:
        print(f"klubb restore: {exc}", file=sys.stderr)
        return exc.code
    where = url.render_as_string(hide_password=True)
    found = asyncio.run(migrate.state(settings.database_url))
    print(f"restored {source} into {where}")
    if url.get_backend_name() != "sqlite":
        print("vacuumed and analysed: every table's visibility map set, its statistics made anew")
    if found.status == "current":
        print(f"schema: migration {found.found}, this Klubb's newest")
        return 0
    if found.status == "behind":
        print(f"schema: migration {found.found}, behind {found.head}: run `klubb migrate` next")
        return 0
    print(
        f"klubb restore: the backup's schema is at migration {found.found}, which this Klubb "
        f"(newest {found.head}) does not know: run a Klubb as new as the one that wrote it",
        file=sys.stderr,
    )
    return 1


def _kind_of(path: Path) -> str:
    """sqlite or postgresql, read from the file's first bytes; Refused if it is neither."""
    try:
        with path.open("rb") as file:
            head = file.read(len(SQLITE_HEADER))
    except FileNotFoundError:
        raise Refused(f"{path}: no such file", 2) from None
    except OSError as exc:
        raise Refused(f"can't read {path}: {exc.strerror}", 2) from None
    if head.startswith(SQLITE_HEADER):
        return "sqlite"
    if head.startswith(PG_DUMP_HEADER):
        return "postgresql"
    raise Refused(f"{path} is not a backup `klubb backup` wrote (neither SQLite nor pg_dump)", 2)


# --- SQLite -----------------------------------------------------------------------------------


def _sqlite_path(url: URL) -> Path:
    if not url.database or url.database == ":memory:":
        raise Refused("KLUBB_DATABASE_URL names no SQLite file", 2)
    return Path(url.database)


def _sqlite_backup(database: Path, out: Path) -> str:
    """Copy the live database into `out` (written beside it first, then renamed: a file at
    `out` is always a whole backup)."""
    if not database.is_file():
        raise Refused(f"no database at {database}")
    partial = out.with_name(out.name + ".partial")
    partial.unlink(missing_ok=True)
    try:
        # Read-only: a backup never creates or changes the database it copies.
        source = sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro", uri=True)
        try:
            copy = sqlite3.connect(partial)
            try:
                source.backup(copy, pages=ALL_PAGES)
                # One self-contained file (no -wal beside it), checked before it is kept.
                copy.execute("PRAGMA journal_mode=DELETE")
                checked = copy.execute("PRAGMA quick_check").fetchone()[0]
                if checked != "ok":
                    raise Refused(f"the copy failed SQLite's check: {checked}")
                tables = copy.execute(
                    "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
                ).fetchone()[0]
            finally:
                copy.close()
        finally:
            source.close()
        partial.replace(out)
    except sqlite3.Error as exc:
        raise Refused(f"could not copy {database}: {exc}") from None
    finally:
        partial.unlink(missing_ok=True)
    return f"backup of {database} written to {out} ({_size(out)}, {tables} tables)"


def _sqlite_restore(backup: Path, database: Path) -> None:
    """The backup copied into `database`, which must be missing or have no table."""
    if database.exists() and database.stat().st_size:
        try:
            target = sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro", uri=True)
            try:
                tables = [
                    row[0]
                    for row in target.execute(
                        "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
                    )
                ]
            finally:
                target.close()
        except sqlite3.Error as exc:
            raise Refused(
                f"{database} is not an empty database ({exc}): nothing restored"
            ) from None
        if tables:
            raise Refused(
                f"{database} is not empty ({len(tables)} tables, {', '.join(tables[:3])}...): "
                "restore goes only into an empty database; move it aside or set "
                "KLUBB_DATABASE_URL to a new file"
            )
    if not database.parent.is_dir():
        raise Refused(f"no such directory {database.parent}", 2)
    try:
        source = sqlite3.connect(f"{backup.resolve().as_uri()}?mode=ro", uri=True)
        try:
            checked = source.execute("PRAGMA quick_check").fetchone()[0]
            if checked != "ok":
                raise Refused(f"{backup} is damaged (SQLite's check: {checked}): nothing restored")
            target = sqlite3.connect(database)
            try:
                source.backup(target, pages=ALL_PAGES)
                # As Klubb runs it (store.database): readers beside the writer.
                target.execute("PRAGMA journal_mode=WAL")
            finally:
                target.close()
        finally:
            source.close()
    except sqlite3.Error as exc:
        raise Refused(f"could not restore {backup}: {exc}") from None


def _size(path: Path) -> str:
    size = float(path.stat().st_size)
    for unit in ("bytes", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


# --- PostgreSQL -------------------------------------------------------------------------------


def _pg_env(url: URL) -> dict[str, str]:
    """libpq's environment for the URL: the password never on a command line (ps shows it)."""
    env = dict(os.environ)
    for name, value in (
        ("PGHOST", url.host),
        ("PGPORT", url.port),
        ("PGUSER", url.username),
        ("PGPASSWORD", url.password),
        ("PGDATABASE", url.database),
    ):
        if value is not None:
            env[name] = str(value)
    return env


def _libpq_url(url: URL) -> str:
    shown = URL.create("postgresql", url.username, None, url.host, url.port, url.database)
    return shown.render_as_string(hide_password=False)


def _tool(name: str, url: URL, command: list[str]) -> str:
    """The tool's path, or Refused (exit 2) with the exact command to run by hand."""
    found = shutil.which(name)
    if found is not None:
        return found
    by_hand = shlex.join(command)
    if url.password is not None:
        by_hand = "PGPASSWORD='<the password in KLUBB_DATABASE_URL>' " + by_hand
    raise Refused(
        f"{name} is not on PATH: install PostgreSQL's client tools of the server's major "
        f"version, or run: {by_hand}",
        2,
    )


def _pg_backup(url: URL, out: Path) -> str:
    """pg_dump's custom format: one snapshot (a consistent copy while Klubb writes)."""
    args = ["--format=custom", f"--file={out}", f"--dbname={_libpq_url(url)}"]
    tool = _tool("pg_dump", url, ["pg_dump", *args])
    partial = out.with_name(out.name + ".partial")
    args[1] = f"--file={partial}"
    try:
        _run(tool, args, url)
        partial.replace(out)
    finally:
        partial.unlink(missing_ok=True)
    return f"backup of {_libpq_url(url)} written to {out} ({_size(out)}, pg_dump custom format)"


def _pg_restore(backup: Path, url: URL) -> None:
    """pg_restore into an empty database, in one transaction (all of it, or nothing)."""
    args = [
        "--exit-on-error",
        "--single-transaction",
        # The tables belong to whoever restores them: the server the backup came from may
        # have had other roles.
        "--no-owner",
        "--no-privileges",
        f"--dbname={_libpq_url(url)}",
        str(backup),
    ]
    tool = _tool("pg_restore", url, ["pg_restore", *args])
    tables = asyncio.run(_pg_tables(url))
    if tables:
        raise Refused(
            f"the database {url.database} is not empty ({len(tables)} tables, "
            f"{', '.join(tables[:3])}...): restore goes only into an empty database; "
            "create one (createdb NAME) and set KLUBB_DATABASE_URL to it"
        )
    _run(tool, args, url)
    asyncio.run(_pg_vacuum_analyze(url))


async def _pg_vacuum_analyze(url: URL) -> None:
    """VACUUM ANALYZE every table restored: pg_restore brings rows, not the planner's
    statistics, and until autovacuum comes round a million members' segment count is planned
    blind (see store.outreach.segments.for_counting) and every index-only scan reads the
    table too, the visibility map being empty (tests/bench/dashboard.py's 1M club dumped and
    restored: the 12-month page 2.9 s analysed only, 0.38 s vacuumed too)."""
    engine = create_async_engine(url.set(drivername="postgresql+asyncpg"))
    try:
        async with engine.connect() as connection:
            # VACUUM runs outside a transaction only.
            outside = await connection.execution_options(isolation_level="AUTOCOMMIT")
            await outside.execute(text("VACUUM (ANALYZE)"))
    finally:
        await engine.dispose()


async def _pg_tables(url: URL) -> list[str]:
    engine = create_async_engine(url.set(drivername="postgresql+asyncpg"))
    try:
        async with engine.connect() as connection:
            found = await connection.execute(
                text(
                    "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
                    "ORDER BY tablename"
                )
            )
            return list(found.scalars())
    except Exception as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        raise Refused(
            f"can't read the database {url.database}: {reason[0] if reason else exc}"
        ) from None
    finally:
        await engine.dispose()


def _run(tool: str, args: list[str], url: URL) -> None:
    # The tool found on PATH, its arguments built here (no shell): nothing untrusted runs.
    done = subprocess.run(  # noqa: S603
        [tool, *args], env=_pg_env(url), capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        said = [line for line in done.stderr.strip().splitlines() if line.strip()]
        # Its own words: a server newer than the tool says "server version mismatch".
        raise Refused(f"{Path(tool).name} failed: {' / '.join(said[-3:]) or done.returncode}")
