"""The unit of work: run a synchronous store function inside one transaction, from asyncio.

Store functions are plain synchronous code on a SQLAlchemy `Session`; the edges (a webhook, an
API call, a job) hand one to `Database.run` and await the result. How it reaches the database is
chosen by measurement (../shared/PERFORMANCE.md):

- SQLite: one writer thread owns the only connection. Each turn costs one thread hop, and the
  turns that arrive together are committed together (group commit). Should one of them fail,
  the group is rolled back and run again with each turn in its own SAVEPOINT, so one failing
  turn never undoes another: a unit of work must therefore be a function of the database and
  its input, with no effect outside the session. A refusal (a StoreError raised before the
  unit changed anything: an API's 404 or 409) is an answer, not a failure: the group goes on.
  A refusal that is not the store's (the webhook's club unknown on a number) is returned by
  its unit as a value, for the same reason.
  SQLite's single writer serialises turns.
- Reads that take long (the admin's dashboard, segment counts, exports) go to `Database.read`:
  on SQLite a pool of reader threads with connections of their own (WAL lets them read while
  the writer writes), so a merchant's report never holds up a member's text; a read there that
  tries to write fails (`PRAGMA query_only`). On PostgreSQL it is `run`.
- PostgreSQL: SQLAlchemy's async engine over asyncpg, the same sync function run through
  `AsyncSession.run_sync` (no threads). Turns of one member are serialised by
  `SELECT ... FOR UPDATE` on the member row; a unique-key race is retried.
  The hot path's short units (`Database.turn`: a text's turn, a delivery receipt) go instead
  to a writer thread with its own psycopg 3 connection, which commits the units arriving
  together in one transaction as SQLite's writer does (the same group commit, the same
  savepoints when one fails; a unique-key race or a deadlock runs the unit again in its
  savepoint): a turn then costs no BEGIN or COMMIT round trip of its own, no greenlet switch
  and no event-loop wake-up per statement. The group's members are locked and its retries
  looked up in one round trip before its turns run (`Reads`, made again should a turn write),
  and its texts and replies are written in one statement before its commit (`write_later`):
  a text that changes nothing but its own record costs no round trip of its own
  (README: Benchmarks). Long units (jobs, reports, the admin) and API calls (a
  sale is a dozen statements, which the writer would wait out in turn) stay on asyncpg.
  With `postgresql+psycopg://`, every unit runs on the sync Session over psycopg 3 in a pool
  of threads instead, one hop a unit (measured against the above). Same locking and retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import queue
import re
import threading
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy import Connection, Engine, Executable, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session

from store import metrics
from store.errors import StoreError

T = TypeVar("T")
UnitOfWork = Callable[[Session], T]
Lookup = Callable[[Connection], T]

log = logging.getLogger(__name__)

# The most turns committed together: bounds the time a turn waits behind the others.
GROUP_COMMIT_MAX = 64
PG_RETRIES = 3
# PostgreSQL's writers of turns, each a connection. With a group's reads made ahead and its
# texts written at its end (`_Ahead`), one no longer waits out a round trip or two a turn; more
# contend for the GIL and make smaller groups (inbound bench, quiet, 20,000 members: one
# 974-1,004 texts/s, p99 45-47 ms; two 994-1,018/s, p99 61-62 ms; three 761/s, p99 103 ms).
PG_TURN_WRITERS = 1
# SQLite reads beside the writer: two at once on a 2-CPU machine keeps one core for turns.
SQLITE_READERS = 2


class Database(Protocol):
    """Where units of work run; see the module docstring for the two kinds."""

    url: str
    dialect: str

    async def run(self, work: UnitOfWork[T]) -> T: ...

    async def turn(self, work: UnitOfWork[T], key: str | None = None) -> T:
        """Run a short unit of the hot path (a text's turn): as `run` does, but on PostgreSQL
        through writer threads that commit the turns arriving together in one transaction, as
        SQLite's writer does. Units with the same `key` (a text's sender) go to the same
        writer, so they never wait for each other's locks across writers."""
        ...

    async def read(self, work: UnitOfWork[T]) -> T:
        """Run a unit of work that only reads, in one snapshot, beside the writer."""
        ...

    async def lookup(self, work: Lookup[T]) -> T:
        """Read a few rows by their indexes with Core statements on a bare connection, in one
        snapshot: no Session, and on SQLite at once on the calling thread (a hop to a reader
        thread and back costs more than such a read; in WAL mode it never waits for the
        writer). For a hot path's reads: a till's basket."""
        ...

    async def close(self) -> None: ...


def open_database(url: str) -> Database:
    """A Database for a URL: sqlite[+aiosqlite]:///file or postgresql[+asyncpg|+psycopg]://...
    (read by `database_url`; UnsupportedDatabase for any other)."""
    parsed = database_url(url)
    url = parsed.render_as_string(hide_password=False)
    if parsed.get_backend_name() == "sqlite":
        return SqliteDatabase(url)
    if parsed.get_driver_name() == "psycopg":
        return ThreadedPostgresDatabase(url)
    return PostgresDatabase(url)


# The databases Klubb runs on, as a URL's scheme names them (a driver may follow: +asyncpg).
SCHEMES = ("sqlite", "postgresql")
# Other names URLs in the wild give them: postgres:// is libpq's and many hosts' spelling.
_SCHEME_ALIASES = {"postgres": "postgresql"}
# user:password@ in a URL, for hiding the password of one that can't be parsed.
_PASSWORD = re.compile(r"(://[^/@:]*:)[^/@]*@")


class UnsupportedDatabase(ValueError):
    """A database URL Klubb can't run on. `reason` says why, to follow the URL's name (the
    variable it came from, say); the password is never in it."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"the URL {reason}")
        self.reason = reason


def database_url(url: str) -> URL:
    """The one reading of a database URL, for every part of Klubb that opens one (settings,
    open_database, migrations, backups): SQLite or PostgreSQL, postgres:// taken for
    postgresql://; UnsupportedDatabase for anything else, so two commands never disagree
    about one URL."""
    try:
        parsed = make_url(url)
        port = parsed.port
    except (ArgumentError, ValueError):
        # SQLAlchemy's own message names neither the URL nor what would do.
        raise UnsupportedDatabase(
            f"is not a database URL: {shown_url(url)!r} "
            "(sqlite:///FILE or postgresql://USER@HOST/NAME)"
        ) from None
    scheme, plus, driver = parsed.drivername.partition("+")
    scheme = _SCHEME_ALIASES.get(scheme, scheme)
    if scheme not in SCHEMES:
        raise UnsupportedDatabase(
            f"{shown_url(parsed)} names {scheme}, which Klubb does not run on: "
            f"the supported schemes are {' and '.join(SCHEMES)}"
        )
    if port is not None and not 1 <= port <= 65535:
        raise UnsupportedDatabase(
            f"{shown_url(parsed)} has the port {port}, not between 1 and 65535"
        )
    return parsed.set(drivername=scheme + plus + driver)


def shown_url(url: str | URL) -> str:
    """The URL as a message may show it: the password masked."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return _PASSWORD.sub(r"\1***@", str(url))


def plain_rows(conn: Connection, statement: Executable, params: dict[str, Any]) -> list[Any]:
    """The rows of a Core select, as tuples with their columns' types applied: what
    `conn.execute(statement, params).all()` gives. On SQLite the statement, compiled once,
    runs on the driver's cursor: SQLAlchemy's execution of a cached statement costs twice the
    read of a few rows by their indexes (a till's basket, Database.lookup); so on psycopg (a
    writer of turns: POINTS's lots, 10 % of its time through `execute`). Elsewhere it is
    `execute`."""
    if conn.dialect.driver == "psycopg":
        return pipelined(conn, [(statement, params)])[0]
    if conn.dialect.name != "sqlite":
        return list(conn.execute(statement, params).all())
    compiled, processors = _plain(statement, conn.dialect)
    values = _bound(compiled, params)
    driver = conn.connection.driver_connection
    assert driver is not None
    found = driver.execute(compiled.string, [values[name] for name in compiled.positiontup or ()])
    return _typed(found.fetchall(), processors)


def pipelined(
    conn: Connection, reads: Sequence[tuple[Executable, dict[str, Any]]]
) -> list[list[Any]]:
    """The rows of several Core selects, each as `plain_rows` gives them. On psycopg all are
    sent at once in a pipeline, one round trip: the server still runs them one after another,
    each on a snapshot of its own taken when it starts, so a read after a `FOR UPDATE` sees
    what committed while the lock was waited for. Elsewhere one after another. A statement
    alone goes without the pipeline (entering and leaving one costs more than its execution)."""
    if conn.dialect.driver != "psycopg":
        return [plain_rows(conn, statement, params) for statement, params in reads]
    driver = conn.connection.driver_connection
    assert driver is not None
    plans = [(_plain(statement, conn.dialect), params) for statement, params in reads]
    cursors = []
    try:
        with driver.pipeline() if len(plans) > 1 else contextlib.nullcontext():
            for (compiled, _), params in plans:
                cursor = driver.cursor()
                cursor.execute(compiled.string, _bound(compiled, params))
                cursors.append(cursor)
    except conn.dialect.loaded_dbapi.Error as exc:
        raise _wrapped(conn, exc, plans[0][0][0].string) from exc
    out = []
    for cursor, ((_, processors), _) in zip(cursors, plans, strict=True):
        out.append(_typed(cursor.fetchall(), processors))
        cursor.close()
    return out


def _wrapped(conn: Connection, exc: Exception, sql: str) -> DBAPIError:
    """The driver's error as SQLAlchemy's own execution raises it (an IntegrityError, an
    OperationalError...: what callers and the retries catch), a lost connection invalidated
    so the pool replaces it."""
    lost = conn.dialect.is_disconnect(exc, conn.connection.driver_connection, None)
    if lost:
        conn.invalidate(exc)
    return DBAPIError.instance(
        sql, None, exc, conn.dialect.loaded_dbapi.Error, connection_invalidated=lost
    )


def plain_write(
    conn: Connection, statement: Executable, params: dict[str, Any]
) -> tuple[list[Any], int]:
    """A Core INSERT or UPDATE of one row's values, as `conn.execute(statement, params)` runs
    it: the rows it returns (RETURNING; typed as `plain_rows` gives them) and how many rows it
    changed. On SQLite and psycopg it runs on the driver's cursor, compiled once for these
    parameters' names: SQLAlchemy's execution of a cached statement costs a writer of turns
    about 60 µs more (a member's UPDATE on psycopg: 188 -> 124 µs of CPU). A statement whose
    columns have Python-side defaults SQLAlchemy would fill in goes through `execute`.

    On psycopg the statement is counted as a write, as `turn_engine`'s listener counts those
    SQLAlchemy runs: reads made ahead (`_Ahead`) and refusals (`_refused_or_done`) rely on it."""
    driver = conn.dialect.driver
    plan = None
    if driver in _DIRECT:
        plan = _plain_write(statement, conn.dialect, tuple(sorted(params)))
    if plan is None:
        done = conn.execute(statement, params)
        return (list(done.all()) if done.returns_rows else []), done.rowcount
    compiled, processors = plan
    values = _bound(compiled, params)
    raw = conn.connection.driver_connection
    assert raw is not None
    cursor = raw.cursor()
    try:
        if driver == "psycopg":
            conn.info["writes"] = conn.info.get("writes", 0) + 1
            cursor.execute(compiled.string, values)
        else:
            cursor.execute(compiled.string, [values[name] for name in compiled.positiontup or ()])
        rows = [] if cursor.description is None else _typed(cursor.fetchall(), processors)
        return rows, cursor.rowcount
    except conn.dialect.loaded_dbapi.Error as exc:
        raise _wrapped(conn, exc, compiled.string) from exc
    finally:
        cursor.close()


_DIRECT = frozenset({"psycopg", "pysqlite"})
_UNPLANNED = object()
_PLAIN_WRITES: dict[tuple[Executable, str, str, tuple[str, ...]], tuple[Any, list[Any]] | None] = {}


def _plain_write(
    statement: Executable, dialect: Any, keys: tuple[str, ...]
) -> tuple[Any, list[Any]] | None:
    """The statement compiled for these parameters' names, with its result processors; None
    if its execution must compute a column's default (SQLAlchemy's execution context does)."""
    key = (statement, dialect.name, dialect.driver, keys)
    # Writers of turns run in threads of their own: one lookup, never a test and then a read
    # (another may clear the dict between them).
    found = _PLAIN_WRITES.get(key, _UNPLANNED)
    if found is not _UNPLANNED:
        return found  # type: ignore[return-value]
    if len(_PLAIN_WRITES) >= 2000:  # a member's UPDATE by changed columns: bounded anyway
        _PLAIN_WRITES.clear()
    compiled: Any = statement.compile(dialect=dialect, column_keys=list(keys))
    plan = None
    if not (compiled.insert_prefetch or compiled.update_prefetch):
        processors = [
            column.type._cached_result_processor(dialect, None)
            for column in compiled._result_columns
        ]
        plan = (compiled, processors)
    _PLAIN_WRITES[key] = plan
    return plan


def _typed(rows: list[Any], processors: list[Any]) -> list[Any]:
    """The driver's rows with each column's result processor applied (None: as it is)."""
    if not any(processors):
        return rows
    return [
        tuple(value if f is None else f(value) for f, value in zip(processors, row, strict=True))
        for row in rows
    ]


# By the statement itself (a statement hashes by identity): plain_rows is for module-level ones.
_PLAIN: dict[tuple[Executable, str, str], tuple[Any, list[Any]]] = {}


def _plain(statement: Executable, dialect: Any) -> tuple[Any, list[Any]]:
    """The statement compiled for the dialect, and each result column's processor (None: the
    driver's value as it is)."""
    key = (statement, dialect.name, dialect.driver)
    found = _PLAIN.get(key)
    if found is None:
        compiled = statement.compile(dialect=dialect)
        processors = [
            column.type._cached_result_processor(dialect, None)
            for column in compiled._result_columns  # type: ignore[attr-defined]
        ]
        found = _PLAIN[key] = (compiled, processors)
    return found


def _bound(compiled: Any, params: dict[str, Any]) -> dict[str, Any]:
    """The statement's parameters as the driver takes them: each through its type's bind
    processor, as SQLAlchemy's execution would (SQLite keeps an instant as text of its own
    form, which a datetime given to the driver as it is would not compare equal to)."""
    values: dict[str, Any] = compiled.construct_params(params)
    binds = compiled._bind_processors
    if not binds:
        return values
    return {name: binds[name](v) if name in binds else v for name, v in values.items()}


@dataclass(frozen=True, slots=True)
class Reads:
    """The reads a unit of work makes first, declared so that a writer of turns on PostgreSQL
    makes those of a whole group at once before its units run (`_Ahead`): `make(connection,
    reads)` makes the reads of several units (each by its `args`) in a statement or two and
    gives what each unit's `key` gets; the unit takes it with `prefetched(session, key)`.
    `holder`: what the reads are about (a member, by club and number): a unit whose holder an
    earlier unit of the group had makes its own reads when it runs, after that unit's writes."""

    key: Hashable
    holder: Hashable
    make: Callable[[Connection, Sequence[Reads]], dict[Hashable, Any]]
    args: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class ReadsFirst(Generic[T]):
    """A unit of work and the reads it makes first (None: none this time)."""

    work: UnitOfWork[T]
    reads: Callable[[Session], Reads | None]

    def __call__(self, session: Session) -> T:
        return self.work(session)


_AHEAD = "klubb.ahead"


def prefetched(session: Session, key: Hashable) -> Any | None:
    """What the reads declared under `key` gave, if the group this unit runs in made them
    ahead and nothing has been written since; None: the caller reads for itself."""
    ahead = session.info.get(_AHEAD)
    return None if ahead is None else ahead.fetch(key)


# Writes several units' rows in one statement, giving what each row's write gave (None: the row
# was not written).
Send = Callable[[Connection, Sequence[Any]], Sequence[Any]]


def write_later(session: Session, send: Send, row: Any, not_written: BaseException) -> bool:
    """On a writer of turns, keep a row for `send` to write with the group's others in one
    statement before its commit (True); the caller writes it itself otherwise (False). Only for
    a row that no later unit of the group reads unless it has the same holder (before such a
    unit runs, what was kept is written). Should the row not be written (`send` gives None),
    `not_written` is raised there, and the group runs again apart, each unit writing at once."""
    ahead = session.info.get(_AHEAD)
    if ahead is None:
        return False
    ahead.later.append((send, row, not_written))
    return True


class _Ahead:
    """A group's reads made ahead and its writes kept for its end (`Reads`, `write_later`):
    a statement or two a group, not a round trip or two a turn. What was read ahead is given
    out only while no statement has written since it was read (anything a unit wrote may be
    what another read): otherwise the reads of the units still to run are made again."""

    def __init__(self, session: Session, jobs: list[_Job]) -> None:
        self.session = session
        self.declared: list[Reads | None] = []
        self.repeated: list[bool] = []
        holders: set[Hashable] = set()
        for job in jobs:
            reads_of = getattr(job.work, "reads", None)
            reads = None if reads_of is None else job.context.run(reads_of, session)
            self.repeated.append(reads is not None and reads.holder in holders)
            if reads is not None:
                holders.add(reads.holder)
            self.declared.append(reads)
        self.next = 0
        self.found: dict[Hashable, Any] = {}
        self.read_at: int | None = None
        self.later: list[tuple[Send, Any, BaseException]] = []

    def before(self, index: int) -> None:
        """Unit `index` runs next: if an earlier one had its holder, it reads for itself, and
        what was kept to write is written first (it may read it)."""
        self.next = index
        if self.repeated[index]:
            self.send_later()

    def fetch(self, key: Hashable) -> Any | None:
        declared = self.declared[self.next]
        if declared is None or declared.key != key or self.repeated[self.next]:
            return None
        written = _pg_statements_written(self.session)
        if key not in self.found or self.read_at != written:
            self._read(written)
        return self.found.pop(key, None)

    def _read(self, written: int) -> None:
        self.found.clear()
        self.read_at = written
        by_make: dict[Any, list[Reads]] = {}
        for reads, repeated in zip(
            self.declared[self.next :], self.repeated[self.next :], strict=True
        ):
            if reads is not None and not repeated:
                by_make.setdefault(reads.make, []).append(reads)
        connection = self.session.connection()
        for make, reads_list in by_make.items():
            self.found.update(make(connection, reads_list))

    def send_later(self) -> None:
        later, self.later = self.later, []
        by_send: dict[Any, list[tuple[Any, BaseException]]] = {}
        for send, row, not_written in later:
            by_send.setdefault(send, []).append((row, not_written))
        connection = self.session.connection()
        for send, rows in by_send.items():
            written = send(connection, [row for row, _ in rows])
            for done, (_, not_written) in zip(written, rows, strict=True):
                if done is None:
                    raise not_written


def sync_sqlite_engine(url: str, *, read_only: bool = False, begins: bool = True) -> Engine:
    """A pysqlite engine with WAL, foreign keys and SQLAlchemy's SAVEPOINT recipe applied; one
    connection per thread. `read_only`: its transactions take no write lock and can't write.
    `begins=False`: SQLAlchemy's transactions emit nothing (the caller begins and ends them)."""
    parsed = make_url(url).set(drivername="sqlite")
    engine = create_engine(parsed, poolclass=_single_connection_pool())

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # pysqlite's own transaction handling breaks SAVEPOINT; SQLAlchemy emits BEGIN instead.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if not read_only:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=5000")
        if read_only:
            cursor.execute("PRAGMA query_only=ON")
        cursor.close()

    if not begins:
        return engine

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # IMMEDIATE takes the write lock up front, so another process (the CLI) waits instead of
        # failing half-way with "database is locked". A reader's BEGIN reads one snapshot.
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


def _single_connection_pool() -> Any:
    from sqlalchemy.pool import SingletonThreadPool

    return SingletonThreadPool


@dataclass
class _Job:
    work: UnitOfWork[Any]
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop
    # The caller's context variables (the request id its log lines carry), for the writer
    # thread to run the unit in: a thread does not inherit them.
    context: contextvars.Context


_STOP = object()


class _GroupWriter:
    """One thread owning one connection: the units that arrive together run in one
    transaction and are committed together (group commit); see the module docstring.

    `changes(session)` counts what the connection has written so far (a refusal after a
    write is a failure); `retryable(exc)` says whether a unit that failed so runs again in its
    savepoint (PostgreSQL's unique-key races and deadlocks); `depth` and `groups` are the
    gauge and histogram of /metrics its queue depth and group sizes go to."""

    def __init__(
        self,
        engine: Engine,
        name: str,
        changes: Callable[[Session], int],
        retryable: Callable[[BaseException], bool] | None = None,
        *,
        depth: Any,
        groups: Any,
        ahead: bool = False,
    ) -> None:
        self.engine = engine
        self._ahead = ahead
        self.jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._changes = changes
        self._retryable = retryable or (lambda _exc: False)
        self._depth = depth
        self._groups = groups
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    async def run(self, work: UnitOfWork[T]) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        # Counted before it is queued: the writer may take it (and count it off) at once.
        self._depth.inc()
        self.jobs.put(_Job(work, future, loop, contextvars.copy_context()))
        return await future

    async def close(self) -> None:
        self.jobs.put(_STOP)
        await asyncio.get_running_loop().run_in_executor(None, self._thread.join)
        self.engine.dispose()

    def _serve(self) -> None:
        stopping = False
        while not stopping:
            first = self.jobs.get()
            if first is _STOP:
                break
            jobs: list[_Job] = [first]
            while len(jobs) < GROUP_COMMIT_MAX:
                try:
                    more = self.jobs.get_nowait()
                except queue.Empty:
                    break
                if more is _STOP:
                    stopping = True
                    break
                jobs.append(more)
            self._depth.dec(len(jobs))
            self._groups.observe(len(jobs))
            self._run_group(jobs)
        self.engine.dispose()

    def _run_group(self, jobs: list[_Job]) -> None:
        outcomes = self._run_together(jobs)
        if outcomes is None:
            outcomes = self._run_apart(jobs)
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]] = {}
        for job, (ok, value) in zip(jobs, outcomes, strict=True):
            by_loop.setdefault(job.loop, []).append((job.future, ok, value))
        for loop, settled in by_loop.items():
            # One wake-up of the event loop per group, not one per turn.
            loop.call_soon_threadsafe(_settle_all, settled)

    def _run_together(self, jobs: list[_Job]) -> list[tuple[bool, Any]] | None:
        """The common case: every unit of the group in one transaction, no savepoints.

        None when a unit failed in a group of several (or failed so that it may run again):
        the group is then run again apart.
        """
        try:
            with Session(self.engine, expire_on_commit=False) as session:
                session.begin()
                ahead = None
                if self._ahead:
                    ahead = session.info[_AHEAD] = _Ahead(session, jobs)
                outcomes = []
                for index, job in enumerate(jobs):
                    if ahead is not None:
                        ahead.before(index)
                    outcomes.append(
                        job.context.run(_refused_or_done, job.work, session, self._changes)
                    )
                if ahead is not None:
                    ahead.send_later()
                session.commit()
        # BaseException too: whatever a unit raises (a test's pytest.fail is one) goes to its
        # caller, and the writer thread lives on to serve everyone else.
        except BaseException as exc:
            if len(jobs) == 1 and not self._retryable(exc):
                return [(False, exc)]
            return None
        return outcomes

    def _run_apart(self, jobs: list[_Job]) -> list[tuple[bool, Any]]:
        """Run again, each unit in its own SAVEPOINT, so one failing unit undoes only itself
        (a unit of work is a function of the database and its input: running it again after a
        rollback is running it once)."""
        try:
            with Session(self.engine, expire_on_commit=False) as session:
                session.begin()
                outcomes = [
                    job.context.run(_attempt_nested, job.work, session, self._retryable)
                    for job in jobs
                ]
                if any(ok for ok, _ in outcomes):
                    session.commit()
                else:
                    session.rollback()
        except Exception as exc:
            # The commit itself failed: no unit of the group is durable.
            log.exception("group commit failed")
            return [(False, exc)] * len(jobs)
        return outcomes


def _sqlite_changes(session: Session) -> int:
    raw = session.connection().connection.dbapi_connection
    assert raw is not None
    return int(raw.total_changes)  # rows SQLite changed on this connection so far


class SqliteDatabase:
    """SQLite through one writer thread with group commit."""

    dialect = "sqlite"

    def __init__(self, url: str) -> None:
        self.url = url
        self._writer = _GroupWriter(
            sync_sqlite_engine(url),
            "klubb-sqlite-writer",
            _sqlite_changes,
            depth=metrics.SQLITE_WRITER_QUEUE,
            groups=metrics.SQLITE_WRITER_GROUP,
        )
        self.engine = self._writer.engine
        self._read_engine: Engine | None = None
        self._readers: ThreadPoolExecutor | None = None
        self._lookup_engine: Engine | None = None
        self._lookups = threading.local()

    async def run(self, work: UnitOfWork[T]) -> T:
        return await self._writer.run(work)

    async def turn(self, work: UnitOfWork[T], key: str | None = None) -> T:
        return await self._writer.run(work)

    async def read(self, work: UnitOfWork[T]) -> T:
        if self._readers is None:
            # Made on first use: most processes (the CLI, a turn's tests) never read apart.
            self._read_engine = sync_sqlite_engine(self.url, read_only=True)
            self._readers = ThreadPoolExecutor(SQLITE_READERS, thread_name_prefix="klubb-reader")
        engine = self._read_engine
        assert engine is not None

        def snapshot() -> T:
            with Session(engine, expire_on_commit=False) as session, session.begin():
                return work(session)

        # In the caller's context variables, as the writer runs units (_Job.context).
        context = contextvars.copy_context()
        return await asyncio.get_running_loop().run_in_executor(
            self._readers, context.run, snapshot
        )

    async def lookup(self, work: Lookup[T]) -> T:
        connection = getattr(self._lookups, "connection", None)
        if connection is None:
            if self._lookup_engine is None:
                self._lookup_engine = sync_sqlite_engine(self.url, read_only=True, begins=False)
            # Kept open, one per thread (the event loop's): a lookup is a few rows, and a
            # connection's checkout and SQLAlchemy's transaction events would cost as much.
            connection = self._lookup_engine.connect().execution_options(
                isolation_level="AUTOCOMMIT"
            )
            self._lookups.connection = connection
        driver = connection.connection.driver_connection
        assert driver is not None
        driver.execute("BEGIN")  # one snapshot for the lookup's statements
        try:
            return work(connection)
        finally:
            driver.execute("COMMIT")

    async def close(self) -> None:
        await self._writer.close()
        loop = asyncio.get_running_loop()
        if self._readers is not None:
            await loop.run_in_executor(None, self._readers.shutdown)
            assert self._read_engine is not None
            self._read_engine.dispose()
        if self._lookup_engine is not None:
            self._lookup_engine.dispose()


def _refused_or_done(
    work: UnitOfWork[Any], session: Session, changes: Callable[[Session], int]
) -> tuple[bool, Any]:
    """Run a unit in the group's transaction. A refusal (the store's own error: a 404 or a 409
    of the API, a rule broken) raised before the unit changed anything is its answer, kept as a
    value: there is nothing to undo, so the group goes on. Any other failure, or a refusal
    after a change (a row written, an object added or changed in the session), propagates,
    and the group runs again apart."""
    before = changes(session)
    try:
        return True, work(session)
    except StoreError as refused:
        if changes(session) != before or session.new or session.dirty or session.deleted:
            raise
        return False, refused


def _attempt_nested(
    work: UnitOfWork[Any], session: Session, retryable: Callable[[BaseException], bool]
) -> tuple[bool, Any]:
    for attempt in range(PG_RETRIES):
        nested = session.begin_nested()
        ok, value = _attempt(work, session)
        if ok:
            break
        nested.rollback()
        if attempt + 1 == PG_RETRIES or not retryable(value):
            return ok, value
        log.info("retrying a unit of work after %s", type(value).__name__)
    try:
        nested.commit()
    except Exception as exc:
        nested.rollback()
        return False, exc
    return ok, value


def _attempt(work: UnitOfWork[Any], session: Session) -> tuple[bool, Any]:
    try:
        result = work(session)
        session.flush()
    except BaseException as exc:
        return False, exc
    return True, result


def _settle_all(settled: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for future, ok, value in settled:
        if future.cancelled():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


class PostgresDatabase:
    """PostgreSQL through SQLAlchemy's async engine over asyncpg."""

    dialect = "postgresql"

    def __init__(self, url: str) -> None:
        self.url = url
        parsed = make_url(url).set(drivername="postgresql+asyncpg")
        self.engine: AsyncEngine = create_async_engine(parsed, pool_size=10, max_overflow=5)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._turns: list[_GroupWriter] = []

    async def run(self, work: UnitOfWork[T]) -> T:
        for attempt in range(PG_RETRIES):
            try:
                async with self._sessions.begin() as session:
                    return await session.run_sync(work)
            except (IntegrityError, DBAPIError) as exc:
                if _once_more(exc, attempt):
                    continue
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def turn(self, work: UnitOfWork[T], key: str | None = None) -> T:
        if not self._turns:
            # Made on first use: the CLI, migrations and jobs never take a turn.
            self._turns = [
                _GroupWriter(
                    turn_engine(self.url),
                    f"klubb-pg-turns-{n}",
                    _pg_writes,
                    _retryable_failure,
                    depth=metrics.PG_TURNS_QUEUE,
                    groups=metrics.PG_TURNS_GROUP,
                    ahead=True,
                )
                for n in range(PG_TURN_WRITERS)
            ]
        if key is not None:
            writer = self._turns[hash(key) % len(self._turns)]
        else:
            writer = min(self._turns, key=lambda each: each.jobs.qsize())
        return await writer.run(work)

    async def read(self, work: UnitOfWork[T]) -> T:
        return await self.run(work)

    async def lookup(self, work: Lookup[T]) -> T:
        async with self.engine.connect() as connection, connection.begin():
            return await connection.run_sync(work)

    async def close(self) -> None:
        for writer in self._turns:
            await writer.close()
        with contextlib.suppress(Exception):
            await self.engine.dispose()


# Query parameters of a URL that only asyncpg reads (psycopg refuses them).
_ASYNCPG_ONLY = ("prepared_statement_cache_size", "prepared_statement_name_func")


def turn_engine(url: str) -> Engine:
    """The turns' writer engine for a PostgreSQL URL: psycopg 3 (sync, no greenlet bridge or
    event-loop wake-up per statement), one connection, statements that write counted on it
    (`_pg_writes`)."""
    parsed = make_url(url)
    parsed = parsed.set(
        drivername="postgresql+psycopg",
        query={k: v for k, v in parsed.query.items() if k not in _ASYNCPG_ONLY},
    )
    # No ping before each group (a round trip): a connection found dead fails its group, which
    # runs again apart on a new one (_retryable_failure).
    engine = create_engine(
        parsed,
        pool_size=1,
        max_overflow=0,
        connect_args={"application_name": "klubb-turns"},
    )

    @event.listens_for(engine, "before_cursor_execute")
    def _count_writes(conn: Connection, _cursor: Any, statement: str, *_args: Any) -> None:
        # Anything but a plain SELECT may have written (a CTE too): a refusal after it is a
        # failure, and the group runs again apart (_refused_or_done).
        if statement[:6] != "SELECT":
            conn.info["writes"] = conn.info.get("writes", 0) + 1

    return engine


def _pg_statements_written(session: Session) -> int:
    return int(session.connection().info.get("writes", 0))


def _pg_writes(session: Session) -> int:
    """What the unit wrote so far: statements run and writes kept for the group's end."""
    ahead = session.info.get(_AHEAD)
    return _pg_statements_written(session) + (0 if ahead is None else len(ahead.later))


def _retryable_failure(exc: BaseException) -> bool:
    # A driver's own error too: pipelined reads go to psycopg directly. A connection lost
    # (PostgreSQL restarted) is replaced by the pool when the group runs again.
    lost = isinstance(exc, DBAPIError) and exc.connection_invalidated
    return lost or _is_retryable(exc)


# Threads of ThreadedPostgresDatabase: each holds a connection for its turn, so as many as
# PostgresDatabase's pool lets turns run at once.
PG_THREADS = 10


class ThreadedPostgresDatabase:
    """PostgreSQL through psycopg 3 (`postgresql+psycopg://`): the sync Session in a pool of
    threads, each turn one hop there and back; no greenlet bridge. For measuring against
    PostgresDatabase (README: Benchmarks)."""

    dialect = "postgresql"

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_engine(make_url(url), pool_size=PG_THREADS, max_overflow=0)
        self._threads = ThreadPoolExecutor(PG_THREADS, thread_name_prefix="klubb-pg")

    async def run(self, work: UnitOfWork[T]) -> T:
        return await self._hop(self._run, work)

    async def _hop(self, call: Callable[[Any], T], work: Any) -> T:
        """`call(work)` on one of the threads, in the caller's context variables."""
        context = contextvars.copy_context()
        return await asyncio.get_running_loop().run_in_executor(
            self._threads, context.run, call, work
        )

    def _run(self, work: UnitOfWork[T]) -> T:
        for attempt in range(PG_RETRIES):
            try:
                with Session(self.engine, expire_on_commit=False) as session, session.begin():
                    return work(session)
            except (IntegrityError, DBAPIError) as exc:
                if _once_more(exc, attempt):
                    continue
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def turn(self, work: UnitOfWork[T], key: str | None = None) -> T:
        return await self.run(work)

    async def read(self, work: UnitOfWork[T]) -> T:
        return await self.run(work)

    async def lookup(self, work: Lookup[T]) -> T:
        return await self._hop(self._lookup, work)

    def _lookup(self, work: Lookup[T]) -> T:
        with self.engine.connect() as connection, connection.begin():
            return work(connection)

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._threads.shutdown)
        with contextlib.suppress(Exception):
            self.engine.dispose()


def _once_more(exc: DBAPIError, attempt: int) -> bool:
    """Whether a unit of work that failed so on its `attempt` (0-based) runs again."""
    if attempt + 1 < PG_RETRIES and _is_retryable(exc):
        log.info("retrying a unit of work after %s", type(exc.orig).__name__)
        return True
    return False


def _is_retryable(exc: BaseException) -> bool:
    # unique_violation (two first texts from one new number at once), serialization, deadlock.
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return code in {"23505", "40001", "40P01"}
