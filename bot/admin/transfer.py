"""Import and export (owner only): members from a CSV, and CSV exports streamed."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import datetime as dt
import functools
import io
import json
import logging
import os
import re
import secrets
import shutil
import time
import unicodedata
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import BodyPartReader, web
from aiohttp_session import get_session
from sqlalchemy.orm import Session

from bot.admin.auth import ADMIN, CSRF_HEADER, LANGUAGE, SECURITY_HEADERS, owner_only, upload
from bot.admin.render import page
from bot.keys import DB, IMPORTS, SETTINGS
from locales import text
from store.clock import utc_now
from store.clubs import programs
from store.members import exports, imports
from store.models import Program
from store.states import ImportState

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

# Uploads wait in KLUBB_DATA_DIR's imports folder (Settings.imports_dir) between the preview and
# the run, one folder per random token; the token lives in the admin's session (never the file
# itself: a cookie holds 4 KB). On disk there, not in the process: a restart can resume a run,
# and a preview, its run and its progress may reach different servers that share the folder.
KEEP_UPLOADS = dt.timedelta(days=1)
SESSION_TOKENS = 5  # the admin's latest uploads that stay reachable from their session
SHOW_BAD = 100
CHUNK = 64 * 1024
# A plain form (no JavaScript) carries the file and its fields: room for both.
UPLOAD_OVERHEAD = 64 * 1024
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{20,64}$")
RUNNING, DONE, REFUSED, FAILED = (
    ImportState.RUNNING,
    ImportState.DONE,
    ImportState.REFUSED,
    ImportState.FAILED,
)
# A run stopped by a shutdown or an error can go on from its last committed batch.
RESUMABLE = ("stopped", "other")
# How long a shutdown waits for running imports (100,000 rows take about 20 s) before it
# stops them (each can be resumed from its page).
FINISH_SECONDS = 45.0
# A running import writes its state every batch and every 2,000 rows checked (well under a
# second on 100,000 rows): one silent for this long is no longer running anywhere.
SILENT_SECONDS = 120.0


class UploadRefused(Exception):
    """The upload can't be taken (too large, no file): `code` names why."""

    def __init__(self, code: str, **params: object) -> None:
        super().__init__(code)
        self.code = code
        self.params = params


# --- pages ------------------------------------------------------------------------------------


@routes.get("/transfer")
@owner_only
async def transfer_page(request: web.Request) -> web.StreamResponse:
    return _upload_page(request)


@routes.post("/transfer/import/preview")
@upload(imports.MAX_BYTES + UPLOAD_OVERHEAD)
@owner_only
async def preview(request: web.Request) -> web.StreamResponse:
    """A new upload (multipart) or a changed column mapping for one (a form with its token):
    the file as read, the mapping, and every bad row with its line and reason."""
    if request.content_type == "multipart/form-data":
        try:
            token = await _receive(request)
        except UploadRefused as refused:
            status = 413 if refused.code == "too_large" else 400
            return _upload_page(request, refused.code, refused.params, status=status)
        mapping: imports.Mapping | None = None
    else:
        form = await request.post()
        token = await _owned(request, str(form.get("token", "")))
        mapping = _mapping_from(form)
    job = _Job(_uploads(request), token)
    try:
        shown = await _preview(request, job, mapping)
    except imports.FileRefused as refused:
        return _upload_page(request, refused.code, refused.params, status=422)
    return page(request, "transfer_preview.html", section="transfer", **shown)


@routes.post("/transfer/import/run")
@owner_only
async def run(request: web.Request) -> web.StreamResponse:
    """Start the import in the background and show its progress."""
    form = await request.post()
    token = await _owned(request, str(form.get("token", "")))
    mode = str(form.get("mode", ""))
    job = _Job(_uploads(request), token)
    mapping = _mapping_from(form)
    if mode not in imports.MODES or imports.missing_required(mapping):
        shown = await _preview(request, job, mapping, error="mode")
        return page(request, "transfer_preview.html", status=422, section="transfer", **shown)
    if job.state() is None:  # a second click on "Import" shows the first run, not a second
        _start(
            request,
            job,
            {
                "state": RUNNING,
                "phase": "checking",
                "done": 0,
                "total": 0,
                "mode": mode,
                "mapping": mapping,
                "stamp": utc_now().isoformat(),
                "landed": 0,
                "through": 0,
            },
        )
    raise web.HTTPSeeOther(f"/admin/transfer/import/{token}")


@routes.post("/transfer/import/{token}/resume")
@owner_only
async def resume(request: web.Request) -> web.StreamResponse:
    """Go on with an import the server stopped (or an error did) after its last committed
    batch; an import that is not resumable (running, done, refused) is just shown."""
    job = _Job(_uploads(request), await _owned(request, request.match_info["token"]))
    state = _current(request, job)
    if state is None:
        raise web.HTTPNotFound()
    if resumable(state):
        _start(request, job, {**state, "state": RUNNING})
    raise web.HTTPSeeOther(f"/admin/transfer/import/{job.token}")


def resumable(state: dict[str, Any]) -> bool:
    """A run that stopped before its end and knows how it was started (runs from before
    batches kept no mode) can be resumed."""
    return state.get("state") == FAILED and state.get("error") in RESUMABLE and "mode" in state


def _current(request: web.Request, job: _Job) -> dict[str, Any] | None:
    """The run's state as stored, except that a run said to be running which no task of this
    process runs and whose state has not been written for SILENT_SECONDS was cut off (a crash,
    a kill): it is shown as stopped by the server, and can be resumed."""
    state = job.state()
    if (
        state is not None
        and state.get("state") == RUNNING
        and f"import:{job.token}" not in {task.get_name() for task in request.config_dict[IMPORTS]}
        and job.silent_for() > SILENT_SECONDS
    ):
        return {**state, "state": FAILED, "error": "stopped"}
    return state


def _start(request: web.Request, job: _Job, state: dict[str, Any]) -> None:
    job.write_state(state)
    task = asyncio.create_task(
        _import(request.config_dict[DB], job, request[ADMIN].program_id, state),
        name=f"import:{job.token}",
    )
    running = request.config_dict[IMPORTS]
    running.add(task)
    task.add_done_callback(running.discard)


@routes.get("/transfer/import/{token}")
@owner_only
async def progress_page(request: web.Request) -> web.StreamResponse:
    job = _Job(_uploads(request), await _owned(request, request.match_info["token"]))
    state = _current(request, job)
    if state is None:
        raise web.HTTPNotFound()
    language = request[LANGUAGE]
    bad = [_shown_bad(language, row) for row in job.bad()[:SHOW_BAD]]
    return page(
        request,
        "transfer_progress.html",
        section="transfer",
        token=job.token,
        job=state,
        resumable=resumable(state),
        bad=bad,
        filename=job.meta().get("filename", ""),
    )


@routes.get("/transfer/import/{token}/report.csv")
@owner_only
async def report(request: web.Request) -> web.StreamResponse:
    """The bad rows of a run as CSV: line, number as written, reason in the admin's words."""
    job = _Job(_uploads(request), await _owned(request, request.match_info["token"]))
    language = request[LANGUAGE]
    out = io.StringIO()
    writer = csv.writer(out, delimiter=exports.DELIMITER, lineterminator="\r\n")
    writer.writerow([text(REPORT + column, language) for column in _REPORT_COLUMNS])
    for row in job.bad():
        shown = _shown_bad(language, row)
        writer.writerow([row.line, exports.cell(row.phone), shown["reason"]])
    name = f"{_slug(request[ADMIN].club)}-import-report-{_today(request)}.csv"
    return web.Response(
        body=(exports.BOM + out.getvalue()).encode(),
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": _attachment(name)},
    )


@routes.get("/api/transfer/import/{token}")
@owner_only
async def progress(request: web.Request) -> web.StreamResponse:
    """{state, phase, done, total, imported, skipped} of a run, for the progress bar."""
    job = _Job(_uploads(request), await _owned(request, request.match_info["token"]))
    state = _current(request, job)
    if state is None:
        raise web.HTTPNotFound(text="no such import")
    return web.json_response(state)


@routes.get("/transfer/export/{kind}.csv")
@owner_only
async def export(request: web.Request) -> web.StreamResponse:
    """One of the club's tables as CSV, streamed a page at a time (any size, little memory)."""
    kind = request.match_info["kind"]
    if kind not in exports.KINDS:
        raise web.HTTPNotFound()
    admin = request[ADMIN]
    db = request.config_dict[DB]
    name = f"{_slug(admin.club)}-{kind}-{_today(request)}.csv"
    response = web.StreamResponse(
        headers={**SECURITY_HEADERS, "Content-Disposition": _attachment(name)}
    )
    response.content_type = "text/csv"
    response.charset = "utf-8"
    await response.prepare(request)
    await response.write(exports.BOM.encode() + exports.encode([exports.header(kind)]))
    cursor: tuple[int, int] | None = (0, 0)
    while cursor is not None:
        chunk = await db.read(
            functools.partial(_export_page, program_id=admin.program_id, kind=kind, cursor=cursor)
        )
        if chunk.rows:
            await response.write(exports.encode(chunk.rows))
        cursor = chunk.cursor
    await response.write_eof()
    return response


def _export_page(
    session: Session, *, program_id: int, kind: str, cursor: tuple[int, int]
) -> exports.Page:
    return exports.page(session, program_id, kind, cursor)


# --- the upload -------------------------------------------------------------------------------


async def _receive(request: web.Request) -> str:
    """Store the uploaded file under a new token (kept in the admin's session) and return it.

    Without a CSRF header (a plain form post) the guard has read the form already, within the
    app's request limit; with one (transfer.js), the file is read here as a stream, never more
    than imports.MAX_BYTES of it, whatever the request claims."""
    length = request.content_length
    if length is not None and length > imports.MAX_BYTES + CHUNK:
        raise UploadRefused("too_large", limit=imports.MAX_BYTES // (1024 * 1024))
    uploads = _uploads(request)
    _sweep(uploads)
    job = _Job.new(uploads)
    try:
        if CSRF_HEADER in request.headers:
            filename = await _stream_file(request, job.upload)
        else:
            filename = await _form_file(request, job.upload)
    except BaseException:
        job.remove()
        raise
    admin = request[ADMIN]
    job.write_meta(
        {"program_id": admin.program_id, "account_id": admin.account_id, "filename": filename}
    )
    session = await get_session(request)
    tokens = [t for t in session.get("imports", []) if isinstance(t, str)]
    session["imports"] = [*tokens, job.token][-SESSION_TOKENS:]
    return job.token


async def _stream_file(request: web.Request, target: Path) -> str:
    reader = await request.multipart()
    async for part in reader:
        if not isinstance(part, BodyPartReader) or part.name != "file":
            continue
        if not part.filename:
            raise UploadRefused("no_file")
        size = 0
        with target.open("wb") as out:
            while chunk := await part.read_chunk(CHUNK):
                size += len(chunk)
                if size > imports.MAX_BYTES:
                    raise UploadRefused("too_large", limit=imports.MAX_BYTES // (1024 * 1024))
                out.write(chunk)
        return _clean_name(part.filename)
    raise UploadRefused("no_file")


async def _form_file(request: web.Request, target: Path) -> str:
    form = await request.post()
    upload = form.get("file")
    if not isinstance(upload, web.FileField) or not upload.filename:
        raise UploadRefused("no_file")
    with target.open("wb") as out:
        shutil.copyfileobj(upload.file, out, CHUNK)
        size = out.tell()
    if size > imports.MAX_BYTES:
        raise UploadRefused("too_large", limit=imports.MAX_BYTES // (1024 * 1024))
    return _clean_name(upload.filename)


def _clean_name(filename: str) -> str:
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    return "".join(ch for ch in name if ch.isprintable())[:80] or "upload.csv"


async def _owned(request: web.Request, token: str) -> str:
    """The token if this admin uploaded it in this session (and it is still on disk); 404
    otherwise, so one admin can't look at or run another's file."""
    session = await get_session(request)
    if not _TOKEN.match(token) or token not in session.get("imports", []):
        raise web.HTTPNotFound()
    job = _Job(_uploads(request), token)
    if job.meta().get("program_id") != request[ADMIN].program_id:
        raise web.HTTPNotFound()
    return token


def _uploads(request: web.Request) -> Path:
    """The folder of this Klubb's uploads, from its settings (KLUBB_DATA_DIR)."""
    return request.config_dict[SETTINGS].imports_dir


def _sweep(uploads: Path) -> None:
    """Forget uploads older than a day (each new upload tidies up after the old ones)."""
    if not uploads.exists():
        return
    cutoff = time.time() - KEEP_UPLOADS.total_seconds()
    for folder in uploads.iterdir():
        with contextlib.suppress(OSError):
            if folder.stat().st_mtime < cutoff:
                shutil.rmtree(folder, ignore_errors=True)


@dataclass(frozen=True, slots=True)
class _Job:
    """One upload's folder in `uploads`: the file, who uploaded it, and a run's state and bad
    rows."""

    uploads: Path
    token: str

    @classmethod
    def new(cls, uploads: Path) -> _Job:
        job = cls(uploads, secrets.token_urlsafe(24))
        job.folder.mkdir(parents=True, mode=0o700)
        return job

    @property
    def folder(self) -> Path:
        return self.uploads / self.token

    @property
    def upload(self) -> Path:
        return self.folder / "upload.csv"

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def meta(self) -> dict[str, Any]:
        return self._read("meta.json") or {}

    def write_meta(self, meta: dict[str, Any]) -> None:
        self._write("meta.json", meta)

    def state(self) -> dict[str, Any] | None:
        return self._read("state.json")

    def write_state(self, state: dict[str, Any]) -> None:
        self._write("state.json", state)

    def silent_for(self) -> float:
        """Seconds since the state was last written."""
        try:
            return time.time() - (self.folder / "state.json").stat().st_mtime
        except OSError:
            return 0.0

    def bad(self) -> list[imports.Bad]:
        rows = self._read("bad.json") or []
        return [imports.Bad(r["line"], r["phone"], r["reason"], r["params"]) for r in rows]

    def write_bad(self, bad: list[imports.Bad]) -> None:
        rows = [
            {"line": b.line, "phone": b.phone, "reason": b.reason, "params": b.params} for b in bad
        ]
        self._write("bad.json", rows)

    def _read(self, name: str) -> Any:
        try:
            return json.loads((self.folder / name).read_text())
        except (OSError, ValueError):
            return None

    def _write(self, name: str, value: Any) -> None:
        # Written whole and renamed: a poll never reads half a file.
        part = self.folder / f".{name}.part"
        part.write_text(json.dumps(value))
        os.replace(part, self.folder / name)


# --- preview and run --------------------------------------------------------------------------


async def _preview(
    request: web.Request,
    job: _Job,
    mapping: imports.Mapping | None,
    error: str | None = None,
) -> dict[str, Any]:
    admin = request[ADMIN]
    loop = asyncio.get_running_loop()
    table = await loop.run_in_executor(None, _read_table, job.upload)
    if mapping is None:
        mapping = imports.guess_mapping(table.headers)
    mapping = {k: (v if v is None or v < len(table.headers) else None) for k, v in mapping.items()}
    program = await request.config_dict[DB].run(
        functools.partial(_program, program_id=admin.program_id)
    )
    missing = imports.missing_required(mapping)
    bad: list[imports.Bad] = []
    good = 0
    if not missing:
        checked = await _check(table, mapping, program, utc_now())
        known = await request.config_dict[DB].read(
            functools.partial(_against_club, program_id=admin.program_id, rows=checked.good)
        )
        bad = sorted([*checked.bad, *known], key=lambda b: b.line)
        good = len(checked.good) - len(known)
    language = request[LANGUAGE]
    width = len(table.headers)
    return {
        "token": job.token,
        "filename": job.meta().get("filename", ""),
        "table": table,
        "sample": [(line, (cells + [""] * width)[:width]) for line, cells in table.sample],
        "encoding": table.encoding,
        "delimiter": {";": "semicolon", ",": "comma", "\t": "tab"}[table.delimiter],
        "fields": imports.FIELDS,
        "required": imports.REQUIRED,
        "mapping": mapping,
        "missing": missing,
        "good": good,
        "bad_count": len(bad),
        "bad": [_shown_bad(language, b) for b in bad[:SHOW_BAD]],
        "error": error,
        "max_rows": imports.MAX_ROWS,
    }


def _read_table(path: Path) -> imports.Table:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise web.HTTPNotFound() from exc
    return imports.read(data)


def _program(session: Session, *, program_id: int) -> Program:
    program = programs.get(session, program_id)
    if program is None:
        raise web.HTTPNotFound()
    session.expunge(program)
    return program


def _against_club(
    session: Session, *, program_id: int, rows: list[imports.Row]
) -> list[imports.Bad]:
    program = programs.get(session, program_id)
    assert program is not None
    return imports.against_club(session, program, rows)


def _mapping_from(form: Any) -> imports.Mapping:
    mapping: imports.Mapping = {}
    for name in imports.FIELDS:
        value = str(form.get(f"map_{name}", ""))
        mapping[name] = int(value) if value.isdigit() and len(value) < 4 else None
    return mapping


async def _check(
    table: imports.Table,
    mapping: imports.Mapping,
    program: Program,
    now: dt.datetime,
    progress: imports.Progress | None = None,
) -> imports.Checked:
    """The rows checked against the club's rules in a worker thread (phone parsing is slow:
    the event loop stays free), as the preview and the run both do."""
    check = functools.partial(
        imports.check,
        table,
        mapping,
        country=program.country,
        timezone=program.timezone,
        min_age=program.min_age,
        now=now,
        progress=progress,
    )
    return await asyncio.get_running_loop().run_in_executor(None, check)


async def _import(db: Any, job: _Job, program_id: int, started: dict[str, Any]) -> None:
    """The run (or its resumption): read and check the file in a worker thread (the event loop
    stays free), plan what lands, then land it a batch per commit. The state file keeps how it
    was started (mode, mapping, `stamp`) and, after each commit, the rows landed and the last
    line committed (`through`): a resumption plans the same rows and lands those after it."""
    loop = asyncio.get_running_loop()
    state = dict(started)
    now = dt.datetime.fromisoformat(state["stamp"])
    mapping: imports.Mapping = state["mapping"]
    resuming = state.get("phase") == "importing"
    state.pop("error", None)
    state.pop("error_params", None)
    try:
        table = await loop.run_in_executor(None, _read_table, job.upload)
        if not resuming:
            state.update(phase="checking", done=0, total=len(table.rows))
            job.write_state(state)

        def checked_so_far(done: int) -> None:
            if not resuming:
                job.write_state({**state, "done": done})

        program = await db.run(functools.partial(_program, program_id=program_id))
        checked = await _check(table, mapping, program, now, checked_so_far)
        if resuming:
            # The plan as it was made: the bad rows were kept, and the numbers this run has
            # landed are members now (a second plan would call them known).
            bad = job.bad()
            skipped = {b.line for b in bad}
            rows = [row for row in checked.good if row.line not in skipped]
        else:
            # Only reads (the club's numbers, the erased): beside the writer on SQLite, so texts
            # don't wait behind 100,000 lookups; a number that joins later is caught per batch.
            planned = await db.read(
                functools.partial(_plan, program_id=program_id, checked=checked, mode=state["mode"])
            )
            bad, rows = planned.bad, planned.rows
            job.write_bad(bad)
            if planned.refused:
                state.update(state=REFUSED, done=0, imported=0, skipped=len(bad))
                job.write_state(state)
                return
            state.update(phase="importing", done=0, total=len(rows), landed=0, through=0)
            job.write_state(state)

        def committed(step: imports.Step) -> None:
            # Written after the commit: a stop between the two is caught by the next batch,
            # which counts the rows of this run it finds (land_batch) instead of landing them.
            state.update(landed=state["landed"] + step.landed, through=step.through)
            state["done"] = state["landed"]
            if step.bad:
                bad.extend(step.bad)
                bad.sort(key=lambda b: b.line)
                job.write_bad(bad)
            job.write_state(state)

        await imports.land_batches(
            db,
            program,
            rows,
            source=job.meta().get("filename", "import"),
            stamp=now,
            after=state["through"],
            step=committed,
        )
        state.update(state=DONE, done=state["landed"], imported=state["landed"], skipped=len(bad))
    except imports.FileRefused as refused:
        state.update(state=FAILED, error=refused.code, error_params=refused.params)
    except asyncio.CancelledError:
        # The server is shutting down (running_imports gave it its time): say so, then stop.
        job.write_state({**state, "state": FAILED, "error": "stopped"})
        raise
    except Exception:
        log.exception("member import %s failed", job.token)
        state.update(state=FAILED, error="other")
    job.write_state(state)


def _plan(
    session: Session, *, program_id: int, checked: imports.Checked, mode: str
) -> imports.Plan:
    program = programs.get(session, program_id)
    assert program is not None
    return imports.plan(session, program, checked, mode=mode)


async def running_imports(app: web.Application) -> AsyncIterator[None]:
    """A cleanup context holding the imports this process runs (app[IMPORTS]). At shutdown,
    before the database closes, the running imports get FINISH_SECONDS to end; the rest are
    stopped (a batch under way commits or rolls back whole), and their pages say the server
    stopped them and offer to resume the import."""
    app[IMPORTS] = set()
    yield
    running = set(app[IMPORTS])
    if not running:
        return
    _, late = await asyncio.wait(running, timeout=FINISH_SECONDS)
    for task in late:
        log.warning("stopping a member import at shutdown")
        task.cancel()
    await asyncio.gather(*late, return_exceptions=True)


# --- helpers ----------------------------------------------------------------------------------

_REPORT_COLUMNS = ("line", "phone", "reason")
# Catalog ids completed at run time (tests/locales/test_admin_catalogs.py reads the prefixes).
REASON = "admin.transfer.reason."
REPORT = "admin.transfer.report."
STATUS = "admin.status."


def _shown_bad(language: str, bad: imports.Bad) -> dict[str, Any]:
    params = dict(bad.params)
    if bad.reason == "known":
        params["status"] = text(STATUS + str(params.get("status")), language)
    return {
        "line": bad.line,
        "phone": bad.phone,
        "reason": text(REASON + bad.reason, language, **params),
    }


def _upload_page(
    request: web.Request,
    error: str | None = None,
    params: dict[str, object] | None = None,
    status: int = 200,
) -> web.Response:
    return page(
        request,
        "transfer.html",
        status=status,
        section="transfer",
        error=error,
        error_params=params or {},
        kinds=exports.KINDS,
        max_mb=imports.MAX_BYTES // (1024 * 1024),
        max_rows=imports.MAX_ROWS,
        fields=imports.FIELDS,
        required=imports.REQUIRED,
    )


def _slug(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-") or "klubb"


def _today(request: web.Request) -> str:
    return utc_now().astimezone(ZoneInfo(request[ADMIN].timezone)).date().isoformat()


def _attachment(name: str) -> str:
    return f'attachment; filename="{name}"'
