"""Importing an existing member list from a CSV file, with each member's consent evidence.

Three steps, each usable alone: `read` decodes the upload and splits it into rows (encoding,
delimiter and header found here); `check` validates every row against the column mapping
(pure, no database); `land` checks the rows against the club (already a member, erased) and
plans what lands (`plan`: the two modes decided before anything lands), and `land_batches`
inserts the rows a batch per transaction (one commit each, so a member's text never waits
behind the whole file), each row with a consent event. An interrupted run resumes after its
last committed line, and a row never lands twice: each batch counts the rows a stopped run of
the same import had landed already (members created at the run's `stamp`) instead of
inserting them again.

A bad row is named by its line in the file (the header is line 1) and a reason code; the admin
turns the code into words (admin.transfer.reason.<code>)."""

from __future__ import annotations

import csv
import datetime as dt
import functools
import io
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

import locales
from store.database import Database
from store.members import consent, members, profile
from store.members.phones import NOT_A_NUMBER, mobile_number
from store.models import Member, Program
from store.text import text_only

MAX_BYTES = 20 * 1024 * 1024
MAX_ROWS = 200_000
SAMPLE_ROWS = 10
# How often `check` reports its progress, and lets other threads run (rows).
PROGRESS_EVERY = 2_000
YIELD_EVERY = 10
# Rows landed per transaction: one batch is what a member's text can wait behind. Measured by
# tests/bench/import.py --latency (100,000 rows, SQLite, loaded machine): POINTS p99 while landing
# 46-88 ms at 500 over six runs (one more 143), 22-47 ms at 250, 165 ms at 1,000, 243 ms at
# 2,000; 500 lands in about 1.6 times the one-transaction time (README, Benchmarks).
BATCH = 500
CHANNEL = "import"
WORDING_ID = "import"
# A consent time a little ahead of the server's clock is a clock's error; further is a mistake.
CLOCK_SKEW = dt.timedelta(minutes=5)
ALL_OR_NOTHING = "all"
GOOD_ROWS = "good"
MODES = (ALL_OR_NOTHING, GOOD_ROWS)

# The columns Klubb reads; the first four of them a file must have (mapped).
PHONE = "phone"
FIRST_NAME = "first_name"
LANGUAGE = "language"
BIRTHDAY = "birthday"
CONSENT_AT = "consent_at"
EVIDENCE = "consent_evidence"
WORDING = "consent_text"
# A yes/no column ("Samtykke: ja/nei", a ticked "x"): when mapped, only a clear yes imports.
CONSENTED = "consented"
FIELDS = (PHONE, FIRST_NAME, LANGUAGE, BIRTHDAY, CONSENT_AT, EVIDENCE, WORDING, CONSENTED)
REQUIRED = (PHONE, CONSENT_AT, EVIDENCE)

# Header names as merchants' systems and Nordic Excel sheets write them (compared after
# `_header_key`: lower case, letters and digits only, æøåäö kept).
ALIASES: dict[str, tuple[str, ...]] = {
    PHONE: (
        "phone", "phonenumber", "mobile", "mobilephone", "mobilenumber", "cell", "msisdn",
        "telefon", "telefonnummer", "telefonnr", "tlf", "tlfnr", "tel", "mobil", "mobilnummer",
        "mobilnr", "mobiltelefon", "nummer",
    ),
    FIRST_NAME: (
        "firstname", "givenname", "name", "fornavn", "förnamn", "navn", "namn", "tilltalsnamn",
    ),
    LANGUAGE: ("language", "lang", "locale", "språk", "sprak", "målform"),
    BIRTHDAY: (
        "birthday", "birthdate", "dateofbirth", "dob", "fødselsdag", "fødselsdato", "fodselsdato",
        "fødd", "født", "födelsedag", "födelsedatum", "fodelsedatum", "född",
    ),
    CONSENT_AT: (
        "consentat", "consentdate", "consenttime", "consentgiven", "consented", "consentedat",
        "optin", "optinat", "optindate", "samtykkedato", "samtykketidspunkt", "samtykket",
        "samtykkegitt", "samtyckesdatum", "samtyckedatum", "samtycketidpunkt", "samtyckt",
        "samtyckegivet",
    ),
    EVIDENCE: (
        "consentevidence", "evidence", "consentchannel", "consentsource", "channel", "source",
        "optinsource", "samtykkekilde", "samtykkebevis", "bevis", "kilde", "kanal",
        "samtyckeskälla", "samtyckesbevis", "källa", "dokumentasjon", "dokumentation",
    ),
    WORDING: (
        "consenttext", "consentwording", "wording", "samtykketekst", "samtyckestext", "tekst",
        "text",
    ),
    CONSENTED: (
        "consent", "marketingconsent", "smsconsent", "samtykke", "smssamtykke",
        "samtykkemarkedsføring", "markedsføring", "samtycke", "smssamtycke", "marknadsföring",
    ),
}  # fmt: skip
# A consent column's yes: consent is only ever given by a clear yes (PRODUCT.md), so anything
# else, an empty cell too (an unticked box), leaves the row out.
_YES_WORDS = frozenset({"ja", "j", "yes", "y", "x", "1", "true", "sant", "✓", "✔"})

_LANGUAGE_WORDS = {
    "nb": "nb", "no": "nb", "nn": "nb", "nob": "nb", "norsk": "nb", "bokmål": "nb",
    "bokmal": "nb", "norwegian": "nb", "sv": "sv", "se": "sv", "swe": "sv", "svenska": "sv",
    "svensk": "sv", "swedish": "sv", "en": "en", "eng": "en", "engelsk": "en",
    "engelska": "en", "english": "en",
}  # fmt: skip
_ISO_DATE = re.compile(r"^(\d{4})-?(\d{2})-?(\d{2})$")
_NORDIC_DATE = re.compile(r"^(\d{1,2})[./-](\d{1,2})[./-](\d{4})$")
_TIME_FORMATS = ("%H:%M", "%H:%M:%S", "%H.%M", "%H:%M:%S.%f")
_CONTROL = re.compile(rb"[\x00-\x08\x0e-\x1a\x1c-\x1f]")
_DELIMITERS = (";", ",", "\t")
# Excel's own first line naming the separator ("sep=;"), written for Excel to read the file back.
_SEPARATOR_LINE = re.compile(r"^\s*sep=(.)\s*$", re.IGNORECASE)
# A number Excel showed in scientific notation (4.79123E+10, 4,79123E+10): its digits are lost.
_SCIENTIFIC = re.compile(r"^\d[.,]\d+E\+?\d+$", re.IGNORECASE)


class FileRefused(ValueError):
    """The file as a whole can't be read (too big, not text, empty, no data rows, a
    required column unmapped); `code` names why (admin.transfer.refused.<code>)."""

    def __init__(self, code: str, **params: object) -> None:
        super().__init__(code)
        self.code = code
        self.params = params


@dataclass(frozen=True, slots=True)
class Table:
    """The file as read: how it was decoded, its header and its rows with their line numbers."""

    encoding: str  # utf-8, utf-8-sig (with a BOM), utf-16 or windows-1252
    delimiter: str
    headers: list[str]
    rows: list[tuple[int, list[str]]]  # (line number in the file, cells)

    @property
    def sample(self) -> list[tuple[int, list[str]]]:
        return self.rows[:SAMPLE_ROWS]


Mapping = dict[str, int | None]  # field -> column index in the file, None when not mapped


@dataclass(frozen=True, slots=True)
class Bad:
    """A row that can't be imported: its line in the file, the number as written, and why."""

    line: int
    phone: str
    reason: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Row:
    """A row ready to land: the number in E.164 and the consent it carries."""

    line: int
    phone: str
    raw_phone: str
    first_name: str | None
    language: str | None
    birthday: dt.date | None
    consent_at: dt.datetime
    evidence: str
    wording: str | None


@dataclass(slots=True)
class Checked:
    good: list[Row]
    bad: list[Bad]

    @property
    def total(self) -> int:
        return len(self.good) + len(self.bad)


@dataclass(frozen=True, slots=True)
class Landed:
    """What `land` did: how many members it created and the rows it left out (with why)."""

    imported: int
    bad: list[Bad]
    refused: bool  # all-or-nothing and a row was bad: nothing landed


@dataclass(frozen=True, slots=True)
class Plan:
    """What a run will land, decided before anything lands: the rows (by line), the bad rows,
    and whether all-or-nothing refused the file."""

    rows: list[Row]
    bad: list[Bad]
    refused: bool


@dataclass(frozen=True, slots=True)
class Step:
    """One committed batch: the rows now landed by this run (created here, or by a stopped run
    of the same import), the batch's last line, and rows the club came to know since the plan
    (a member who joined by SMS meanwhile; never inserted)."""

    landed: int
    through: int
    bad: list[Bad]


Progress = Callable[[int], None]
_T = TypeVar("_T")


# --- reading the file -------------------------------------------------------------------------


def read(data: bytes) -> Table:
    """Decode an upload and split it into a header and rows; FileRefused when it can't be."""
    if len(data) > MAX_BYTES:
        raise FileRefused("too_large", limit=MAX_BYTES // (1024 * 1024))
    encoding, text = decode(data)
    if not text.strip():
        raise FileRefused("empty")
    lines = text.splitlines()
    first = next((i for i, line in enumerate(lines) if line.strip()), 0)
    named = _SEPARATOR_LINE.match(lines[first])
    if named is not None:
        # Excel's "sep=;" line is no header: the separator it names, and the next line is one.
        delimiter = named.group(1)
        first += 1
    else:
        delimiter = sniff_delimiter(lines[first])
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    headers: list[str] | None = None
    rows: list[tuple[int, list[str]]] = []
    line = 1
    try:
        for cells in reader:
            start, line = line, reader.line_num + 1
            if start <= first or not any(cell.strip() for cell in cells):
                continue  # blank lines between rows are not rows (nor Excel's "sep=" line)
            if headers is None:
                headers = [cell.strip() for cell in cells]
                continue
            if _swallows_rows(cells, delimiter, headers):
                raise FileRefused("unreadable", line=start)
            if len(rows) >= MAX_ROWS:
                raise FileRefused("too_many_rows", limit=MAX_ROWS)
            rows.append((start, cells))
    except csv.Error as exc:
        raise FileRefused("unreadable", line=line) from exc
    if headers is None:
        raise FileRefused("empty")
    if not rows:
        raise FileRefused("no_rows")
    return Table(encoding, delimiter, headers, rows)


def _swallows_rows(cells: list[str], delimiter: str, headers: list[str]) -> bool:
    """Whether a quoted cell runs over lines that are rows of their own: a stray quote (`"Kari`)
    that never closes on its line takes the following rows into one cell, which would lose them
    without a word. A line inside a cell with a separator for every column is such a row; an
    address or consent text over two lines is not."""
    columns = sum(1 for header in headers if header)
    if columns < 2:
        return False
    return any(
        piece.count(delimiter) >= columns - 1
        for cell in cells
        if "\n" in cell or "\r" in cell
        for piece in cell.splitlines()[1:]
    )


def decode(data: bytes) -> tuple[str, str]:
    """(encoding, text): UTF-8 with or without a BOM, UTF-16 with its BOM (Excel's "Unicode
    text"), else Windows-1252 (what older Nordic Excel writes; Latin-1 for the five bytes it
    leaves undefined). Binary data (NUL and other control bytes) is refused."""
    if data.startswith(b"\xef\xbb\xbf"):
        return "utf-8-sig", _strict(data, "utf-8-sig")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16", _strict(data, "utf-16")
    if _CONTROL.search(data[:65536]) is not None:
        raise FileRefused("binary")
    try:
        return "utf-8", data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return "windows-1252", data.decode("cp1252")
    except UnicodeDecodeError:
        return "windows-1252", data.decode("latin-1")


def _strict(data: bytes, encoding: str) -> str:
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise FileRefused("binary") from exc
    if "\x00" in text:
        raise FileRefused("binary")
    return text


def sniff_delimiter(header: str) -> str:
    """Semicolon (Nordic Excel, whose decimal comma takes the comma), comma or tab: the one
    the header line uses most, outside quotes."""
    unquoted = re.sub(r'"[^"]*"', "", header)
    counts = {d: unquoted.count(d) for d in _DELIMITERS}
    best = max(_DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


def guess_mapping(headers: Sequence[str]) -> Mapping:
    """Each field's column, from the header's words in nb, sv or en; None if none fits."""
    keys = [_header_key(h) for h in headers]
    mapping: Mapping = {}
    taken: set[int] = set()
    for name in FIELDS:
        wanted = (_header_key(name), *ALIASES[name])
        found = next(
            (
                i
                for alias in wanted
                for i, key in enumerate(keys)
                if key == alias and i not in taken
            ),
            None,
        )
        if found is not None:
            taken.add(found)
        mapping[name] = found
    return mapping


def _header_key(header: str) -> str:
    return "".join(ch for ch in header.strip().lower() if ch.isalnum())


def missing_required(mapping: Mapping) -> list[str]:
    return [name for name in REQUIRED if mapping.get(name) is None]


# --- checking the rows ------------------------------------------------------------------------


def check(
    table: Table,
    mapping: Mapping,
    *,
    country: str,
    timezone: str,
    min_age: int,
    now: dt.datetime,
    progress: Progress | None = None,
) -> Checked:
    """Every row against the rules that need no database: a mobile number of its country
    (phones.mobile_number), consent evidence and time, dates, language, the club's minimum age,
    and the same number twice in the file."""
    missing = missing_required(mapping)
    if missing:
        raise FileRefused("missing_columns", columns=", ".join(missing))
    zone = ZoneInfo(timezone)
    seen: dict[str, int] = {}
    good: list[Row] = []
    bad: list[Bad] = []
    for index, (line, cells) in enumerate(table.rows, 1):
        row = _check_row(line, cells, mapping, country, zone, min_age, now)
        if isinstance(row, Row):
            first = seen.get(row.phone)
            if first is not None:
                row = Bad(line, row.raw_phone, "duplicate", {"line": first})
            else:
                seen[row.phone] = line
        (good if isinstance(row, Row) else bad).append(row)  # type: ignore[arg-type]
        if index % YIELD_EVERY == 0:
            # Let go of the GIL now and then: a check runs in a worker thread beside the event
            # loop and the writer, which would otherwise wait up to 5 ms for it at every hop
            # (a member's text makes a dozen of them).
            time.sleep(0)
        if progress is not None and index % PROGRESS_EVERY == 0:
            progress(index)
    return Checked(good, bad)


def _cell(cells: list[str], index: int | None) -> str:
    if index is None or index >= len(cells):
        return ""
    return cells[index].strip()


def _check_row(
    line: int,
    cells: list[str],
    mapping: Mapping,
    country: str,
    zone: ZoneInfo,
    min_age: int,
    now: dt.datetime,
) -> Row | Bad:
    raw = _cell(cells, mapping[PHONE])
    if not raw:
        return Bad(line, raw, "phone_missing")
    phone, why = mobile_number(raw, country)
    if phone is None:
        return Bad(line, raw, _why_not_a_number(raw, why))
    if mapping.get(CONSENTED) is not None:
        said = _cell(cells, mapping[CONSENTED])
        if said.lower() not in _YES_WORDS:
            return Bad(line, raw, "consent_not_given", {"value": said[:20]})
    evidence = _cell(cells, mapping[EVIDENCE])
    written = _cell(cells, mapping[CONSENT_AT])
    if not evidence and not written:
        # Both named at once: the owner fixes the row once, not twice.
        return Bad(line, raw, "consent_missing")
    if not evidence:
        return Bad(line, raw, "evidence_missing")
    if not written:
        return Bad(line, raw, "consent_at_missing")
    consent_at = parse_moment(written, zone)
    if consent_at is None:
        return Bad(line, raw, "consent_at", {"value": written[:40]})
    if consent_at > now + CLOCK_SKEW:
        return Bad(line, raw, "consent_at_future", {"value": written[:40]})
    language: str | None = None
    written_language = _cell(cells, mapping.get(LANGUAGE))
    if written_language:
        language = _LANGUAGE_WORDS.get(written_language.lower().replace("_", "-").split("-")[0])
        if language is None:
            return Bad(line, raw, "language", {"value": written_language[:20]})
    birthday: dt.date | None = None
    written_birthday = _cell(cells, mapping.get(BIRTHDAY))
    if written_birthday:
        birthday = parse_date(written_birthday)
        if birthday is None or birthday > now.date() or birthday.year < 1900:
            return Bad(line, raw, "birthday", {"value": written_birthday[:40]})
        if profile.too_young(birthday, consent_at.astimezone(zone).date(), min_age):
            return Bad(line, raw, "too_young", {"age": min_age})
    # A name over two lines of a quoted cell, or with a control character, is one line of
    # text in a greeting SMS.
    first_name = " ".join(text_only(_cell(cells, mapping.get(FIRST_NAME))).split())[:60] or None
    wording = _cell(cells, mapping.get(WORDING)) or None
    return Row(line, phone, raw, first_name, language, birthday, consent_at, evidence, wording)


def _why_not_a_number(raw: str, why: str | None) -> str:
    """Why a number was refused: Excel's scientific notation is named (its digits are lost, the
    column must be text), else phones.mobile_number's reason."""
    if _SCIENTIFIC.match(raw.replace(" ", "")):
        return "excel_number"
    return why or NOT_A_NUMBER


def parse_date(text: str) -> dt.date | None:
    """A calendar date as Nordic and ISO files write it (12.03.1990, 1990-03-12, 12/03/1990,
    19900312). Matched by pattern, not strptime: a 100,000-row file has two dates a row."""
    text = text.strip()
    found = _ISO_DATE.match(text)
    if found is not None:
        year, month, day = found.groups()
    else:
        found = _NORDIC_DATE.match(text)
        if found is None:
            return None
        day, month, year = found.groups()
    try:
        return dt.date(int(year), int(month), int(day))
    except ValueError:
        return None


def parse_moment(text: str, zone: ZoneInfo) -> dt.datetime | None:
    """A date, or a date and time, as a UTC instant; a time without an offset is the club's
    local time, and a date alone is its midnight."""
    text = text.strip()
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        moment = None
    if moment is None:
        date_part, _, time_part = text.partition(" ")
        day = parse_date(date_part)
        if day is None:
            return None
        moment = dt.datetime.combine(day, dt.time())
        if time_part.strip():
            clock = _parse_time(time_part.strip())
            if clock is None:
                return None
            moment = dt.datetime.combine(day, clock)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(dt.UTC)


def _parse_time(text: str) -> dt.time | None:
    for pattern in _TIME_FORMATS:
        try:
            return dt.datetime.strptime(text, pattern).time()  # noqa: DTZ007 (a clock time)
        except ValueError:
            continue
    return None


# --- landing the rows -------------------------------------------------------------------------


def against_club(session: Session, program: Program, rows: Sequence[Row]) -> list[Bad]:
    """The rows whose number the club knows already (a member, pending or stopped: an import
    can't override a STOP) or that asked to be erased (only the salted hash is left)."""
    known: dict[str, str] = {}
    for chunk in _chunks([row.phone for row in rows], 500):
        found = session.execute(
            select(Member.phone, Member.status).where(
                Member.program_id == program.id, Member.phone.in_(chunk)
            )
        )
        known.update({row[0]: row[1] for row in found})
    erased = members.erased_among(session, program, [row.phone for row in rows])
    bad: list[Bad] = []
    for row in rows:
        status = known.get(row.phone)
        if status is not None:
            bad.append(Bad(row.line, row.raw_phone, "known", {"status": status}))
        elif row.phone in erased:
            bad.append(Bad(row.line, row.raw_phone, "erased"))
    return bad


def plan(session: Session, program: Program, checked: Checked, *, mode: str) -> Plan:
    """The rule of the two modes, applied before anything lands. All-or-nothing: every row is
    checked first (the file's rules and the club's: known, erased) and one bad row refuses the
    whole file, so nothing lands; only then do the rows land, in batches, and an interruption
    mid-landing is resumed (never half a file left as the end). Good rows: the bad ones are
    left out and named."""
    if mode not in MODES:
        raise ValueError(f"unknown import mode {mode!r}")
    bad = sorted([*checked.bad, *against_club(session, program, checked.good)], key=_line)
    if bad and mode == ALL_OR_NOTHING:
        return Plan([], bad, refused=True)
    skipped = {b.line for b in bad}
    return Plan([row for row in checked.good if row.line not in skipped], bad, refused=False)


def land(
    session: Session,
    program: Program,
    checked: Checked,
    *,
    mode: str,
    source: str,
    now: dt.datetime,
    progress: Progress | None = None,
) -> Landed:
    """`plan`, then every batch in the caller's one transaction (a caller without a Database:
    the admin and the bench land through `land_batches`, one commit a batch)."""
    planned = plan(session, program, checked, mode=mode)
    if planned.refused:
        return Landed(0, planned.bad, refused=True)
    done = 0
    bad = list(planned.bad)
    for chunk in _chunks(planned.rows, BATCH):
        step = land_batch(session, program, chunk, source=source, stamp=now)
        done += step.landed
        bad.extend(step.bad)
        if progress is not None:
            progress(done)
    return Landed(done, sorted(bad, key=_line), refused=False)


async def land_batches(
    db: Database,
    program: Program,
    rows: Sequence[Row],
    *,
    source: str,
    stamp: dt.datetime,
    after: int = 0,
    size: int | None = None,
    step: Callable[[Step], None] | None = None,
) -> tuple[int, list[Bad]]:
    """Land the planned rows whose line is after `after` (0: all of them), `size` rows per
    unit of work (BATCH unless given), each committed before the next starts, so texts are
    answered in between. `stamp` is the run's start, the same on every resumption of it.
    `step` hears of each committed batch (to keep the run's progress: resume with `after` =
    its last `through`).
    Returns (rows landed, rows found known since the plan); `program` may be detached."""
    landed = 0
    bad: list[Bad] = []
    for chunk in _chunks([row for row in rows if row.line > after], size or BATCH):
        done = await db.run(
            functools.partial(
                _land_detached, program=program, rows=chunk, source=source, stamp=stamp
            )
        )
        landed += done.landed
        bad.extend(done.bad)
        if step is not None:
            step(done)
    return landed, bad


def _land_detached(
    session: Session, *, program: Program, rows: Sequence[Row], source: str, stamp: dt.datetime
) -> Step:
    return land_batch(session, program, rows, source=source, stamp=stamp)


def land_batch(
    session: Session, program: Program, rows: Sequence[Row], *, source: str, stamp: dt.datetime
) -> Step:
    """One batch in the caller's transaction. The rows are inserted but for erased numbers, and
    the club's unique key on the number turns away a number it knows (no lookup of every
    number first: on a club without statistics yet, PostgreSQL scanned the table for each).
    Of the numbers turned away (and the erased), a member created at `stamp` was landed by this
    run before it was stopped and counts as landed (its consent event is there already); any
    other (one who joined by SMS since the plan) is left out and named. Consent is written for
    the inserted rows only, so once per landed row."""
    erased = members.erased_among(session, program, [row.phone for row in rows])
    ids = _insert(session, program, [row for row in rows if row.phone not in erased], source, stamp)
    left = [row for row in rows if row.phone not in ids]
    known: dict[str, tuple[str, dt.datetime]] = {}
    for chunk in _chunks([row.phone for row in left], 500):
        found = session.execute(
            select(Member.phone, Member.status, Member.created_at).where(
                Member.program_id == program.id, Member.phone.in_(chunk)
            )
        )
        known.update({row[0]: (row[1], row[2]) for row in found})
    bad: list[Bad] = []
    ours = 0
    for row in left:
        found = known.get(row.phone)
        if found is not None and found[1] == stamp:
            ours += 1
        elif found is not None:
            bad.append(Bad(row.line, row.raw_phone, "known", {"status": found[0]}))
        else:
            bad.append(Bad(row.line, row.raw_phone, "erased"))
    return Step(ours + len(ids), rows[-1].line if rows else 0, bad)


_MEMBERS = Member.__table__
# A number the club knows already is turned away by its unique key, not inserted twice.
_NEW_MEMBERS = {
    "sqlite": sqlite.insert(_MEMBERS)
    .on_conflict_do_nothing(index_elements=["program_id", "phone"])
    .returning(_MEMBERS.c.id, _MEMBERS.c.phone),
    "postgresql": postgresql.insert(_MEMBERS)
    .on_conflict_do_nothing(index_elements=["program_id", "phone"])
    .returning(_MEMBERS.c.id, _MEMBERS.c.phone),
}


def _insert(
    session: Session, program: Program, rows: Sequence[Row], source: str, now: dt.datetime
) -> dict[str, int]:
    """One batch: the members (as store.members.members.create makes them, active and joined when
    they consented, as store.members.members.set_status would) but for the numbers the club knows,
    then a consent grant for each member inserted. Returns the inserted {number: member id}."""
    if not rows:
        return {}
    created = session.connection().execute(
        _NEW_MEMBERS[session.get_bind().dialect.name],
        [member_values(program, row, now) for row in rows],
    )
    ids = {row[1]: row[0] for row in created}
    consent.record_many(
        session,
        [
            consent.Grant(
                program_id=program.id,
                member_id=ids[row.phone],
                wording_id=WORDING_ID,
                wording_language=row.language or locales.language_for_phone(row.phone),
                wording_text=row.wording or row.evidence,
                evidence=f"{source}, line {row.line}: {row.evidence}"[:200],
                created_at=row.consent_at,
            )
            for row in rows
            if row.phone in ids
        ],
        channel=CHANNEL,
    )
    return ids


def member_values(program: Program, row: Row, now: dt.datetime) -> dict[str, Any]:
    """A row's member as an import inserts it: as consent.grant leaves a member (GRANTED), in
    bulk (its grant is appended by consent.record_many), and joined when they consented."""
    return {
        "program_id": program.id,
        "phone": row.phone,
        "phone_hash": members.hash_phone(program, row.phone),
        "status": consent.GRANTED,
        "first_name": row.first_name,
        "language": row.language,
        "birthday": row.birthday,
        # Joined when they consented: the reports' "new members" and the welcome
        # journey see an old member as old, not as 100,000 new ones today.
        "joined_at": row.consent_at,
        "created_at": now,
        "updated_at": now,
        "delivery_failures": 0,
    }


def _line(bad: Bad) -> int:
    return bad.line


def _chunks(items: Sequence[_T], size: int) -> Iterator[Sequence[_T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
