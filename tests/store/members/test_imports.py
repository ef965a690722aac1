"""members.imports: reading a member list (encodings, delimiters, header, line numbers), checking
every row, and landing the good ones with their consent, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from store.clubs import programs
from store.database import Database
from store.members import consent, imports, members
from store.models import ConsentEvent, Member, Program
from tests.conftest import create_club, now

NOW = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
OSLO = ZoneInfo("Europe/Oslo")


def check(content: str, **options: object) -> imports.Checked:
    table = imports.read(content.encode())
    settings = {"country": "NO", "timezone": "Europe/Oslo", "min_age": 13, "now": NOW}
    return imports.check(table, imports.guess_mapping(table.headers), **{**settings, **options})


class TestReading:
    @pytest.mark.parametrize(
        ("data", "encoding"),
        [
            ("telefon;förnamn\n1;Åsa\n".encode(), "utf-8"),
            ("\ufefftelefon;förnamn\n1;Åsa\n".encode(), "utf-8-sig"),
            ("telefon;förnamn\n1;Åsa\n".encode("cp1252"), "windows-1252"),
            ("telefon\tförnamn\n1\tÅsa\n".encode("utf-16"), "utf-16"),
        ],
    )
    def test_the_encoding_is_found_and_the_text_read_right(self, data: bytes, encoding: str):
        table = imports.read(data)
        assert table.encoding == encoding
        assert table.rows == [(2, ["1", "Åsa"])]

    @pytest.mark.parametrize(
        ("header", "delimiter"),
        [("a;b,c;d", ";"), ("a,b,c", ","), ("a\tb\tc", "\t"), ('"x;y",b,c', ",")],
    )
    def test_the_delimiter_is_the_one_the_header_uses(self, header: str, delimiter: str):
        assert imports.sniff_delimiter(header) == delimiter

    def test_line_numbers_count_the_header_blank_lines_and_quoted_line_breaks(self):
        table = imports.read(b'\nphone;name\n1;"Kari\nNordmann"\n\n2;Ola\n')
        assert table.headers == ["phone", "name"]
        assert [line for line, _ in table.rows] == [3, 6]

    @pytest.mark.parametrize(
        ("data", "code"),
        [
            (b"", "empty"),
            (b" \r\n\r\n", "empty"),
            (b"phone;consent_at\r\n", "no_rows"),
            (b"\x00\x01\x02binary", "binary"),
            (b"\xff\xfe\x00\xd8", "binary"),  # a UTF-16 BOM, then half a surrogate pair
        ],
    )
    def test_a_file_that_is_no_member_list_is_refused_with_why(self, data: bytes, code: str):
        with pytest.raises(imports.FileRefused) as refused:
            imports.read(data)
        assert refused.value.code == code

    def test_more_rows_than_the_limit_are_refused(self):
        data = b"phone\n" + b"1\n" * (imports.MAX_ROWS + 1)
        with pytest.raises(imports.FileRefused) as refused:
            imports.read(data)
        assert refused.value.code == "too_many_rows"

    def test_more_bytes_than_the_limit_are_refused_before_decoding(self):
        with pytest.raises(imports.FileRefused) as refused:
            imports.read(b"x" * (imports.MAX_BYTES + 1))
        assert refused.value.code == "too_large"

    @pytest.mark.parametrize(
        "headers",
        [
            ["Telefon", "Fornavn", "Fødselsdato", "Samtykkedato", "Kilde", "Språk"],
            ["Mobilnummer", "Förnamn", "Födelsedatum", "Samtyckesdatum", "Källa", "Språk"],
            ["Phone Number", "First name", "Date of birth", "Consent date", "Evidence", "Lang"],
        ],
    )
    def test_the_mapping_is_guessed_from_nb_sv_and_en_headers(self, headers: list[str]):
        assert imports.guess_mapping(headers) == {
            "phone": 0,
            "first_name": 1,
            "birthday": 2,
            "consent_at": 3,
            "consent_evidence": 4,
            "language": 5,
            "consent_text": None,
            "consented": None,
        }


class TestChecking:
    HEADER = "phone;first_name;language;birthday;consent_at;consent_evidence\n"

    @pytest.mark.parametrize(
        ("row", "reason"),
        [
            (";Kari;;;2024-01-01;form", "phone_missing"),
            ("12;Kari;;;2024-01-01;form", "phone"),
            # Possible in Norway as far as length goes, but no one's number.
            ("12345;Kari;;;2024-01-01;form", "phone"),
            ("+47 12345;Kari;;;2024-01-01;form", "phone"),
            ("+447700900123;Kari;;;2024-01-01;form", "phone"),  # fiction's range: not real
            # Landlines: an SMS never reaches them.
            ("22 33 44 55;Kari;;;2024-01-01;form", "not_mobile"),
            ("+46 8 123 456 78;Kari;;;2024-01-01;form", "not_mobile"),
            ("91234567;Kari;;;;", "consent_missing"),
            ("91234567;Kari;;;2024-01-01;", "evidence_missing"),
            ("91234567;Kari;;;;form", "consent_at_missing"),
            ("91234567;Kari;;;i fjor;form", "consent_at"),
            ("91234567;Kari;;;2027-01-01;form", "consent_at_future"),
            ("91234567;Kari;de;;2024-01-01;form", "language"),
            ("91234567;Kari;;31.02.1990;2024-01-01;form", "birthday"),
            ("91234567;Kari;;01.06.2012;2024-01-01;form", "too_young"),
        ],
    )
    def test_a_bad_row_is_named_with_its_line_and_reason(self, row: str, reason: str):
        checked = check(self.HEADER + row + "\n")
        assert checked.good == []
        assert [(b.line, b.reason) for b in checked.bad] == [(2, reason)]

    @pytest.mark.parametrize(
        "written",
        ["91234567", "+4741234567", "0046 70 123 45 67", "+45 41 23 45 67", "+358 40 1234567"],
    )
    def test_a_mobile_number_of_any_nordic_country_is_taken(self, written: str):
        """Denmark's plan does not tell mobiles from landlines: fixed-line-or-mobile joins."""
        checked = check(self.HEADER + f"{written};Kari;;;2024-01-01;form\n")
        assert [r.line for r in checked.good] == [2], checked.bad

    def test_the_same_number_twice_names_the_first_line(self):
        checked = check(self.HEADER + "912 34 567;;;;2024-01-01;a\n+47 91234567;;;;2024-01-01;b\n")
        assert [r.line for r in checked.good] == [2]
        assert checked.bad == [imports.Bad(3, "+47 91234567", "duplicate", {"line": 2})]

    @pytest.mark.parametrize(
        ("written", "instant"),
        [
            ("2024-02-01", dt.datetime(2024, 2, 1, tzinfo=OSLO)),
            ("01.02.2024", dt.datetime(2024, 2, 1, tzinfo=OSLO)),
            ("01.02.2024 10:30", dt.datetime(2024, 2, 1, 10, 30, tzinfo=OSLO)),
            ("2024-02-01T10:30:00Z", dt.datetime(2024, 2, 1, 10, 30, tzinfo=dt.UTC)),
            ("2024-02-01 10:30+01:00", dt.datetime(2024, 2, 1, 9, 30, tzinfo=dt.UTC)),
        ],
    )
    def test_consent_times_without_a_zone_are_the_clubs_local_time(
        self, written: str, instant: dt.datetime
    ):
        checked = check(self.HEADER + f"91234567;;;;{written};form\n")
        assert checked.good[0].consent_at == instant

    def test_a_missing_required_column_refuses_the_file(self):
        with pytest.raises(imports.FileRefused) as refused:
            check("phone;first_name\n91234567;Kari\n")
        assert refused.value.code == "missing_columns"
        assert refused.value.params == {"columns": "consent_at, consent_evidence"}


async def test_good_rows_land_as_active_members_with_a_consent_grant(db: Database) -> None:
    club = await create_club(db)
    checked = check(
        "telefon;fornavn;språk;samtykkedato;kilde\n"
        "912 34 567;Kari;nb;01.02.2024;papirskjema\n"
        "+46 70 123 45 67;Åsa;;2024-02-03;webbutik\n"
    )

    def land(session: Session) -> imports.Landed:
        program = programs.get(session, club)
        assert program is not None
        return imports.land(
            session, program, checked, mode=imports.ALL_OR_NOTHING, source="f.csv", now=now()
        )

    landed = await db.run(land)
    assert (landed.imported, landed.bad, landed.refused) == (2, [], False)

    def read(session: Session) -> list[tuple[object, ...]]:
        rows = session.execute(
            select(
                Member.phone,
                Member.status,
                Member.language,
                ConsentEvent.wording_language,
                ConsentEvent.channel,
                ConsentEvent.evidence,
            )
            .join(ConsentEvent, ConsentEvent.member_id == Member.id)
            .order_by(Member.id)
        )
        return [tuple(r) for r in rows]

    assert await db.run(read) == [
        ("+4791234567", members.ACTIVE, "nb", "nb", "import", "f.csv, line 2: papirskjema"),
        ("+46701234567", members.ACTIVE, None, "sv", "import", "f.csv, line 3: webbutik"),
    ]

    def may_send(session: Session) -> list[bool]:
        found = session.scalars(select(Member).where(Member.program_id == club)).all()
        return [consent.marketing_since(session, m) is not None for m in found]

    assert await db.run(may_send) == [True, True]


@pytest.mark.parametrize(("mode", "imported"), [("all", 0), ("good", 1)])
async def test_a_known_or_erased_number_is_bad_and_the_mode_decides(
    db: Database, mode: str, imported: int
) -> None:
    club = await create_club(db)

    def setup(session: Session) -> None:
        program = programs.get(session, club)
        assert program is not None
        members.create(session, program, "+4791234567", status=members.STOPPED, now=now())
        gone = members.create(session, program, "+4798765432", status=members.ACTIVE, now=now())
        members.erase(session, gone, now())

    await db.run(setup)
    checked = check(
        "telefon;samtykkedato;kilde\n"
        "91234567;2024-01-01;a\n98765432;2024-01-01;b\n41234567;2024-01-01;c\n"
    )

    def land(session: Session) -> imports.Landed:
        program = programs.get(session, club)
        assert program is not None
        return imports.land(session, program, checked, mode=mode, source="f.csv", now=now())

    landed = await db.run(land)
    assert [(b.line, b.reason, b.params) for b in landed.bad] == [
        (2, "known", {"status": "stopped"}),
        (3, "erased", {}),
    ]
    assert (landed.imported, landed.refused) == (imported, mode == "all")
    count = await db.run(lambda s: s.scalar(select(func.count()).select_from(ConsentEvent)) or 0)
    assert count == imported


async def test_erased_among_is_was_erased_for_many_numbers(db: Database) -> None:
    club = await create_club(db)
    phones = ["+4791234567", "+4798765432", "+4741234567", "+4741234568"]

    def work(session: Session) -> tuple[set[str], list[bool]]:
        program = programs.get(session, club)
        assert program is not None
        members.create(session, program, phones[0], status=members.STOPPED, now=now())
        for phone in phones[1:3]:
            gone = members.create(session, program, phone, status=members.ACTIVE, now=now())
            members.erase(session, gone, now())
        among = members.erased_among(session, program, phones)
        return among, [members.was_erased(session, program, p) for p in phones]

    among, one_by_one = await db.run(work)
    assert among == {phones[1], phones[2]}
    assert one_by_one == [p in among for p in phones]


async def test_record_many_writes_what_record_writes(db: Database) -> None:
    club = await create_club(db)
    at = now()

    def work(session: Session) -> list[tuple[object, ...]]:
        program = programs.get(session, club)
        assert program is not None
        kari = members.create(session, program, "+4791234567", status=members.ACTIVE, now=at)
        ola = members.create(session, program, "+4798765432", status=members.ACTIVE, now=at)
        session.flush()
        words = {"wording_id": "w1", "wording_language": "nb", "wording_text": "ja"}
        consent.record(
            session, kari, action=consent.GRANT, channel="import", evidence="e", now=at, **words
        )
        grant = consent.Grant(program.id, ola.id, evidence="e", created_at=at, **words)
        consent.record_many(session, [grant], channel="import")
        consent.record_many(session, [], channel="import")
        with pytest.raises(ValueError, match="channel"):
            consent.record_many(session, [grant], channel="fax")
        events = session.scalars(select(ConsentEvent).order_by(ConsentEvent.id)).all()
        columns = [
            c.key for c in ConsentEvent.__table__.columns if c.key not in ("id", "member_id")
        ]
        return [tuple(getattr(e, c) for c in columns) for e in events]

    first, second = await db.run(work)
    assert first == second


# --- landing in batches -----------------------------------------------------------------------

_FIRST_PHONE = itertools.count(0, 100)


def numbered(count: int) -> imports.Checked:
    """`count` good rows with numbers no other example of this module used."""
    first = next(_FIRST_PHONE)
    lines = "".join(f"+4791{first + i:06d};2024-01-01;skjema\n" for i in range(count))
    return check("telefon;samtykkedato;kilde\n" + lines)


def landed_of(session: Session, program_id: int, phones: list[str]) -> tuple[int, int, int]:
    """(members with these numbers, their consent events, the distinct members among those)."""
    found = session.execute(
        select(Member.id, ConsentEvent.id)
        .outerjoin(ConsentEvent, ConsentEvent.member_id == Member.id)
        .where(Member.program_id == program_id, Member.phone.in_(phones))
    ).all()
    member_ids = {m for m, _ in found}
    events = [e for _, e in found if e is not None]
    return len(found), len(events), len(member_ids)


class _Stop(Exception):
    """The server stopping the run (a restart) right after a commit."""


def test_a_run_stopped_after_any_batch_and_resumed_lands_every_row_exactly_once(
    loop_and_db: tuple[asyncio.AbstractEventLoop, Database],
) -> None:
    """For any rows, batch size and stop point, and whether the progress of the last committed
    batch was written before the stop or lost with it: the resumed run lands every row once,
    with one consent event each, and the two runs together count every row as landed once."""
    loop, db = loop_and_db
    club = loop.run_until_complete(create_club(db))
    program = loop.run_until_complete(db.run(lambda s: _detached(s, club)))

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.integers(1, 9), st.integers(1, 4), st.integers(0, 9), st.booleans())
    def run(count: int, size: int, stop_after: int, lost: bool) -> None:
        rows = numbered(count).good
        stamp = now()
        steps: list[imports.Step] = []

        def committed(step: imports.Step) -> None:
            steps.append(step)
            if len(steps) >= stop_after:
                raise _Stop

        async def first_run() -> None:
            with contextlib.suppress(_Stop):
                await imports.land_batches(
                    db, program, rows, source="f.csv", stamp=stamp, size=size, step=committed
                )

        loop.run_until_complete(first_run())
        phones = [row.phone for row in rows]
        # Every batch was committed on its own: the ones before the stop stay landed.
        committed_rows = sum(step.landed for step in steps)
        assert loop.run_until_complete(db.run(lambda s: landed_of(s, club, phones)))[0] == (
            committed_rows
        )
        # What the run's stored state says: the last step it wrote (or the one before it,
        # when the stop came between the commit and the write).
        recorded = steps[:-1] if lost and steps else steps
        through = recorded[-1].through if recorded else 0
        before = sum(step.landed for step in recorded)
        again, bad = loop.run_until_complete(
            imports.land_batches(
                db, program, rows, source="f.csv", stamp=stamp, size=size, after=through
            )
        )
        assert bad == []
        assert before + again == count
        assert loop.run_until_complete(db.run(lambda s: landed_of(s, club, phones))) == (
            count,
            count,
            count,
        )

    run()


def _detached(session: Session, program_id: int) -> Program:
    program = programs.get(session, program_id)
    assert program is not None
    session.expunge(program)
    return program


async def test_a_number_that_joined_while_the_import_ran_is_left_out_and_named(
    db: Database,
) -> None:
    club = await create_club(db)
    program = await db.run(lambda s: _detached(s, club))
    rows = numbered(3).good

    def joins(session: Session) -> None:
        members.create(
            session, programs.get(session, club), rows[1].phone, status=members.ACTIVE, now=now()
        )

    await db.run(joins)
    landed, bad = await imports.land_batches(db, program, rows, source="f.csv", stamp=now(), size=1)
    assert landed == 2
    assert [(b.line, b.reason) for b in bad] == [(rows[1].line, "known")]
    phones = [row.phone for row in rows]
    # The member who joined keeps their own consent (none here); the import added none for them.
    assert await db.run(lambda s: landed_of(s, club, phones)) == (3, 2, 3)


async def test_all_or_nothing_with_a_bad_row_plans_nothing_to_land(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bad row is found before any batch lands (the last row here): nothing lands."""
    monkeypatch.setattr(imports, "BATCH", 1)
    club = await create_club(db)
    checked = check(
        "telefon;samtykkedato;kilde\n"
        "91234567;2024-01-01;a\n41234567;2024-01-01;b\nring meg;2024-01-01;c\n"
    )

    def work(session: Session) -> imports.Plan:
        program = programs.get(session, club)
        assert program is not None
        return imports.plan(session, program, checked, mode=imports.ALL_OR_NOTHING)

    planned = await db.run(work)
    assert (planned.rows, planned.refused) == ([], True)
    assert [(b.line, b.reason) for b in planned.bad] == [(4, "phone")]
    program = await db.run(lambda s: _detached(s, club))
    assert await imports.land_batches(db, program, planned.rows, source="f", stamp=now()) == (
        0,
        [],
    )
    count = await db.run(lambda s: s.scalar(select(func.count()).select_from(Member)) or 0)
    assert count == 0
