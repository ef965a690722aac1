"""The segments pages, through the app on SQLite and PostgreSQL: the live count agrees with
outreach.segments, a bad filter is refused naming its path, the builder works without a script,
segments are saved, renamed and deleted, and only the club's owner reaches any of it."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.admin import segments as segment_pages
from locales import text
from store.clubs import programs
from store.database import Database
from store.members import members
from store.models import Segment
from store.outreach import campaigns, segments
from tests.admin.conftest import OTHER_OWNER, OWNER, STAFF, Admin, create_account, create_member
from tests.conftest import now

pytestmark = pytest.mark.usefixtures("cheap_argon2")

AGE = {"field": "age", "op": "gte", "value": 30}
RUNNERS = {"field": "answer", "op": "in", "value": ["running"], "question": "activities"}
TEXTS = {"nb": "Hei", "sv": "Hej", "en": "Hi"}


async def people(db: Database, club: int) -> dict[str, int]:
    """Five members: languages, birthdays, an answer, one who stopped."""
    made = {
        "kari": await create_member(db, club, "+4791000001", "Kari"),
        "ola": await create_member(db, club, "+4791000002", "Ola"),
        "sven": await create_member(db, club, "+46701000003", "Sven"),
        "anna": await create_member(db, club, "+46701000004", "Anna"),
        "per": await create_member(db, club, "+4791000005", "Per", status=members.STOPPED),
    }

    def work(session: Session) -> None:
        from store.members import profile
        from store.models import Member, ProfileQuestion

        data = {
            "kari": ("nb", dt.date(1980, 5, 1)),
            "ola": ("nb", dt.date(2001, 1, 2)),
            "sven": ("sv", dt.date(1990, 5, 3)),
            "anna": ("sv", None),
            "per": ("en", dt.date(1970, 12, 24)),
        }
        for name, (language, birthday) in data.items():
            member = session.get(Member, made[name])
            assert member is not None
            member.language, member.birthday = language, birthday
        question = session.scalar(
            select(ProfileQuestion).where(
                ProfileQuestion.program_id == club, ProfileQuestion.key == "activities"
            )
        )
        assert question is not None
        for name in ("kari", "sven"):
            member = session.get(Member, made[name])
            assert member is not None
            profile.save_answer(session, member, question.id, ["running"], now())

    await db.run(work)
    return made


async def token(admin: Admin) -> str:
    return await admin.csrf()


async def count_api(admin: Admin, body: Any) -> Any:
    return await admin.client.post(
        "/admin/api/segments/count",
        json=body,
        headers={"X-CSRF-Token": await token(admin), "Accept": "application/json"},
    )


async def store_count(db: Database, club: int, filter: dict[str, Any]) -> int:
    def work(session: Session) -> int:
        program = programs.get(session, club)
        assert program is not None
        return segments.count(session, program, filter, now())

    return await db.run(work)


async def saved(db: Database, club: int) -> dict[str, dict[str, Any]]:
    return await db.run(lambda s: {seg.name: seg.filter for seg in segments.all_of(s, club)})


async def save_segment(db: Database, club: int, name: str, filter: dict[str, Any]) -> int:
    def work(session: Session) -> int:
        program = programs.get(session, club)
        assert program is not None
        return segments.save(session, program, name, filter, now()).id

    return await db.run(work)


def shown_count(page: str) -> str:
    found = re.search(r'id="segment-count"[^>]*>\s*([^<]*?)\s*</p>', page, re.S)
    assert found, "no count on the page"
    return found.group(1)


# --- the live count ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "filter",
    [
        {"all": []},
        {"all": [{"field": "consent", "op": "is", "value": True}]},
        {"any": [{"field": "language", "op": "in", "value": ["sv"]}, AGE]},
        {"all": [{"not": AGE}, {"field": "country", "op": "in", "value": ["NO"]}]},
        {"all": [RUNNERS, {"any": [{"field": "birthday_month", "op": "in", "value": [5]}]}]},
        {"not": {"field": "language", "op": "in", "value": ["nb"]}},
    ],
)
async def test_the_count_api_agrees_with_the_store(
    admin: Admin, owner: int, db: Database, club: int, filter: dict[str, Any]
) -> None:
    await people(db, club)
    await admin.signed_in(OWNER)
    response = await count_api(admin, filter)
    assert response.status == 200
    body = await response.json()
    assert body["count"] == await store_count(db, club, filter)
    assert str(body["count"]) in body["text"]


async def test_the_count_api_counts_the_members_picked_by_id(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    made = await people(db, club)
    await admin.signed_in(OWNER)
    picked = {"field": "member", "op": "in", "value": [made["kari"], made["per"]]}
    response = await count_api(
        admin, {"all": [picked, {"field": "consent", "op": "is", "value": True}]}
    )
    assert (await response.json())["count"] == 1


@pytest.mark.parametrize(
    ("filter", "path"),
    [
        ({"all": [AGE, {"field": "age", "op": "gte", "value": "old"}]}, "all[1].value"),
        ({"any": [{"not": {"field": "colour", "op": "in", "value": ["red"]}}]}, "any[0].not.field"),
        ({"all": [{**RUNNERS, "value": ["golf"]}]}, "all[0].value[0]"),
        ({"all": [{**RUNNERS, "question": "shoe_size"}]}, "all[0].question"),
        ([], "filter"),
    ],
)
async def test_a_bad_filter_gets_422_naming_its_path(
    admin: Admin, owner: int, filter: Any, path: str
) -> None:
    await admin.signed_in(OWNER)
    response = await count_api(admin, filter)
    assert response.status == 422
    body = await response.json()
    assert body["path"] == path
    assert body["error"]


@pytest.mark.parametrize(
    ("body", "status"),
    [(b"{not json", 400), (b"\xff\xfe", 400), (b"[" * 100_000, 400), (b" " * 300_000, 413)],
)
async def test_a_body_that_is_not_a_filter_in_json_is_refused(
    admin: Admin, owner: int, body: bytes, status: int
) -> None:
    await admin.signed_in(OWNER)
    response = await admin.client.post(
        "/admin/api/segments/count",
        data=body,
        headers={"X-CSRF-Token": await token(admin), "Content-Type": "application/json"},
    )
    assert response.status == status
    assert (await response.json())["error"]


# --- who may ask ---------------------------------------------------------------------------------


async def test_the_api_without_a_session_is_401(client: TestClient, club: int) -> None:
    response = await client.post("/admin/api/segments/count", json={"all": []})
    assert response.status == 401
    assert (await client.get("/admin/api/segments/1/count")).status == 401


async def test_the_pages_without_a_session_go_to_sign_in(client: TestClient, club: int) -> None:
    response = await client.get("/admin/segments", allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"].startswith("/admin/sign-in")


async def test_staff_get_403_on_every_segment_page_and_action(
    admin: Admin, owner: int, staff: int, db: Database, club: int
) -> None:
    segment = await save_segment(db, club, "Adults", AGE)
    await admin.signed_in(STAFF)
    for path in (
        "/admin/segments",
        "/admin/segments/new",
        f"/admin/segments/{segment}/edit",
        f"/admin/segments/{segment}/rename",
        f"/admin/segments/{segment}/delete",
        f"/admin/api/segments/{segment}/count",
    ):
        assert (await admin.client.get(path)).status == 403, path
    for path, data in (
        ("/admin/segments/new", {"action": "save", "name": "Mine", "mode": "all"}),
        (f"/admin/segments/{segment}/edit", {"action": "save", "name": "Mine", "mode": "all"}),
        (f"/admin/segments/{segment}/rename", {"name": "Mine"}),
        (f"/admin/segments/{segment}/delete", {}),
    ):
        assert (await admin.post(path, data)).status == 403, path
    assert (await count_api(admin, {"all": []})).status == 403
    assert await saved(db, club) == {"Adults": AGE}


async def test_another_clubs_segment_is_404(
    admin: Admin, owner: int, db: Database, club: int, other_club: int
) -> None:
    theirs = await save_segment(db, other_club, "Theirs", AGE)
    await create_account(db, other_club, OTHER_OWNER)
    await admin.signed_in(OWNER)
    for path in (
        f"/admin/segments/{theirs}/edit",
        f"/admin/segments/{theirs}/rename",
        f"/admin/segments/{theirs}/delete",
        f"/admin/api/segments/{theirs}/count",
        "/admin/segments/99999999999999999999999/edit",
    ):
        assert (await admin.client.get(path)).status == 404, path
    for path, data in (
        (f"/admin/segments/{theirs}/edit", {"action": "save", "name": "Mine", "mode": "all"}),
        (f"/admin/segments/{theirs}/rename", {"name": "Mine"}),
        (f"/admin/segments/{theirs}/delete", {}),
    ):
        assert (await admin.post(path, data)).status == 404, path
    assert await saved(db, other_club) == {"Theirs": AGE}
    assert await saved(db, club) == {}
    listing = await (await admin.client.get("/admin/segments")).text()
    assert "Theirs" not in listing


async def test_without_the_csrf_token_nothing_is_saved_renamed_or_deleted(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    segment = await save_segment(db, club, "Adults", AGE)
    await admin.signed_in(OWNER)
    for path, data in (
        ("/admin/segments/new", {"action": "save", "name": "New", "mode": "all"}),
        (f"/admin/segments/{segment}/rename", {"name": "Renamed"}),
        (f"/admin/segments/{segment}/delete", {}),
    ):
        response = await admin.client.post(path, data=data, allow_redirects=False)
        assert response.status == 403, path
    response = await admin.client.post("/admin/api/segments/count", json={"all": []})
    assert response.status == 403
    assert await saved(db, club) == {"Adults": AGE}


# --- the builder without a script ----------------------------------------------------------------


def form(*conditions: dict[str, Any], mode: str = "all", **more: str) -> list[tuple[str, str]]:
    """The builder's fields as a browser posts them: c0.kind, c0.field, c0.value, ..."""
    fields: list[tuple[str, str]] = [("mode", mode)]
    for i, condition in enumerate(conditions):
        prefix = f"c{i}"
        fields.append((f"{prefix}.kind", "leaf"))
        for key, value in condition.items():
            for one in value if isinstance(value, list) else [value]:
                fields.append((f"{prefix}.{key}", str(one)))
    return fields + list(more.items())


async def post_form(admin: Admin, path: str, fields: list[tuple[str, str]]) -> Any:
    return await admin.client.post(
        path, data=[("csrf_token", await token(admin)), *fields], allow_redirects=False
    )


async def test_the_builder_counts_and_saves_without_a_script(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    await people(db, club)
    await admin.signed_in(OWNER)
    page = await (await admin.client.get("/admin/segments/new")).text()
    assert shown_count(page) == "5 medlemmer"
    swedes = {"field": "language", "op": "in", "value": ["sv"]}
    older = {"field": "age", "op": "between", "value": "30", "high": "50", "not": "1"}
    fields = form(swedes, older, action="count")
    response = await post_form(admin, "/admin/segments/new", fields)
    assert response.status == 200
    filter = {
        "all": [
            {"field": "language", "op": "in", "value": ["sv"]},
            {"not": {"field": "age", "op": "between", "value": [30, 50]}},
        ]
    }
    expected = await store_count(db, club, filter)
    words = text("admin.segments.count", "nb", count=expected)
    assert shown_count(await response.text()) == words
    response = await post_form(
        admin, "/admin/segments/new", form(swedes, older, action="save", name=" Young Swedes ")
    )
    assert response.status == 303
    assert response.headers["Location"].startswith("/admin/segments?done=saved")
    assert await saved(db, club) == {"Young Swedes": filter}
    listing = await (await admin.client.get(response.headers["Location"])).text()
    assert "Young Swedes" in listing
    assert words in listing


async def test_buttons_add_a_condition_and_a_group_and_remove_them(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    await admin.signed_in(OWNER)
    adult = {"field": "age", "op": "gte", "value": "18"}
    page = await (await post_form(admin, "/admin/segments/new", form(adult, action="add"))).text()
    assert 'name="c1.field"' in page
    assert 'value="18"' in page
    page = await (
        await post_form(admin, "/admin/segments/new", form(adult, action="add_group"))
    ).text()
    assert 'name="c1.mode"' in page
    assert 'name="c1-0.field"' in page
    page = await (
        await post_form(admin, "/admin/segments/new", form(adult, action="remove:c0"))
    ).text()
    assert 'name="c0.field"' not in page


async def test_a_condition_just_added_is_not_in_error_until_the_form_is_submitted(
    admin: Admin, owner: int
) -> None:
    """Adding a condition checks none still untouched; counting or saving checks them all."""
    await admin.signed_in(OWNER)
    adult = {"field": "age", "op": "gte", "value": "18"}
    added = await post_form(admin, "/admin/segments/new", form(adult, action="add"))
    assert added.status == 200
    page = await added.text()
    assert 'name="c1.field"' in page
    assert "has-error" not in page
    assert '<p class="field-error" data-error>' not in page  # each one is hidden
    untouched = {"field": "consent", "op": "is"}
    counted = await post_form(admin, "/admin/segments/new", form(adult, untouched, action="count"))
    assert counted.status == 422
    before, after = (await counted.text()).split('data-prefix="c1"')
    assert "has-error" in before.rsplit("<li", 1)[1]
    assert '<p class="field-error" data-error>Velg minst én.</p>' in after.split("</li>")[0]


async def test_a_group_with_not_is_saved_as_the_filter_it_shows(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    await admin.signed_in(OWNER)
    fields = [
        ("mode", "any"),
        ("c0.kind", "leaf"),
        ("c0.field", "consent"),
        ("c0.op", "is"),
        ("c0.value", "true"),
        ("c1.kind", "group"),
        ("c1.mode", "all"),
        ("c1.not", "1"),
        ("c1-0.kind", "leaf"),
        ("c1-0.field", "answer:activities"),
        ("c1-0.op", "in"),
        ("c1-0.value", "running"),
        ("c1-0.value", "skiing"),
        ("c1-1.kind", "leaf"),
        ("c1-1.field", "purchase_amount"),
        ("c1-1.op", "gte"),
        ("c1-1.value", "149,50"),
        ("c1-1.days", "30"),
        ("action", "save"),
        ("name", "Mixed"),
    ]
    response = await post_form(admin, "/admin/segments/new", fields)
    assert response.status == 303, await response.text()
    filter = {
        "any": [
            {"field": "consent", "op": "is", "value": True},
            {
                "not": {
                    "all": [
                        {**RUNNERS, "value": ["running", "skiing"]},
                        {"field": "purchase_amount", "op": "gte", "value": 14950, "days": 30},
                    ]
                }
            },
        ]
    }
    assert await saved(db, club) == {"Mixed": filter}
    segment = await db.run(lambda s: segments.get(s, club, "Mixed").id)
    page = await (await admin.client.get(f"/admin/segments/{segment}/edit")).text()
    # The saved filter comes back into the form it was built in.
    assert 'name="c1-1.value" value="149,50"' in page
    assert re.search(r'name="c1.not" value="1" checked', page)
    assert re.search(r'value="skiing" checked', page)


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ({"field": "age", "op": "gte", "value": "many"}, "Skriv et tall."),
        ({"field": "language", "op": "in"}, "Velg minst én."),
        ({"field": "store", "op": "in", "value": " , "}, "Skriv minst én verdi."),
        (
            {"field": "age", "op": "between", "value": "50", "high": "30"},
            "Den første verdien kan ikke være større enn den andre.",
        ),
        (
            {"field": "age", "op": "gte", "value": "151"},
            'Denne betingelsen kan ikke brukes <span class="detail">(age must be between',
        ),
    ],
)
async def test_a_wrong_condition_is_shown_again_with_its_error_and_nothing_saved(
    admin: Admin, owner: int, db: Database, club: int, condition: dict[str, Any], message: str
) -> None:
    await admin.signed_in(OWNER)
    response = await post_form(
        admin, "/admin/segments/new", form(condition, action="save", name="Bad")
    )
    assert response.status == 422
    page = await response.text()
    assert message in page
    assert 'class="condition has-error"' in page
    assert await saved(db, club) == {}


async def test_a_name_is_required_and_unique_in_the_club(
    admin: Admin, owner: int, db: Database, club: int, other_club: int
) -> None:
    await save_segment(db, club, "Adults", AGE)
    await save_segment(db, other_club, "Elsewhere", AGE)
    await admin.signed_in(OWNER)
    adult = {"field": "age", "op": "gte", "value": "18"}
    blank = await post_form(admin, "/admin/segments/new", form(adult, action="save", name=" "))
    assert blank.status == 422
    assert "trenger et navn" in await blank.text()
    taken = await post_form(admin, "/admin/segments/new", form(adult, action="save", name="Adults"))
    assert taken.status == 422
    assert "har allerede et segment med dette navnet" in await taken.text()
    elsewhere = await post_form(
        admin, "/admin/segments/new", form(adult, action="save", name="Elsewhere")
    )
    assert elsewhere.status == 303
    assert await saved(db, club) == {
        "Adults": AGE,
        "Elsewhere": {"all": [{"field": "age", "op": "gte", "value": 18}]},
    }


async def test_editing_a_segment_replaces_its_filter_and_may_rename_it(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    segment = await save_segment(db, club, "Adults", {"all": [AGE]})
    await admin.signed_in(OWNER)
    page = await (await admin.client.get(f"/admin/segments/{segment}/edit")).text()
    assert 'name="c0.value" value="30"' in page
    older = {"field": "age", "op": "gte", "value": "40"}
    response = await post_form(
        admin, f"/admin/segments/{segment}/edit", form(older, action="save", name="Over 40")
    )
    assert response.status == 303
    assert await saved(db, club) == {"Over 40": {"all": [{**AGE, "value": 40}]}}


async def test_a_filter_the_builder_cant_show_is_shown_as_json(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    deep = {"all": [{"any": [{"all": [AGE, RUNNERS]}]}]}
    segment = await save_segment(db, club, "Deep", deep)
    await admin.signed_in(OWNER)
    response = await admin.client.get(f"/admin/segments/{segment}/edit")
    page = await response.text()
    assert response.status == 200
    assert "byggeren ikke kan vise" in page
    assert "&#34;question&#34;: &#34;activities&#34;" in page


# --- the list, rename and delete -----------------------------------------------------------------


async def test_the_list_shows_each_segment_with_its_count(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    await people(db, club)
    await save_segment(db, club, "Swedes", {"field": "language", "op": "in", "value": ["sv"]})
    await save_segment(db, club, "Everyone", {"all": []})
    await admin.signed_in(OWNER)
    page = await (await admin.client.get("/admin/segments")).text()
    assert page.index("Everyone") < page.index("Swedes")
    assert "5 medlemmer" in page
    assert "2 medlemmer" in page


async def test_a_big_clubs_list_leaves_counts_to_the_script(
    admin: Admin, owner: int, db: Database, club: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    await people(db, club)
    segment = await save_segment(
        db, club, "Swedes", {"field": "language", "op": "in", "value": ["sv"]}
    )
    monkeypatch.setattr(segment_pages, "LIST_BUDGET_SECONDS", 0)
    await admin.signed_in(OWNER)
    page = await (await admin.client.get("/admin/segments")).text()
    assert f'data-count-url="/admin/api/segments/{segment}/count"' in page
    assert "2 medlemmer" not in page
    response = await admin.client.get(f"/admin/api/segments/{segment}/count")
    assert await response.json() == {"count": 2, "text": "2 medlemmer"}


async def test_a_segment_is_renamed_unless_the_name_is_taken(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    segment = await save_segment(db, club, "Adults", AGE)
    await save_segment(db, club, "Runners", RUNNERS)
    await admin.signed_in(OWNER)
    page = await (await admin.client.get(f"/admin/segments/{segment}/rename")).text()
    assert 'value="Adults"' in page
    taken = await admin.post(f"/admin/segments/{segment}/rename", {"name": "Runners"})
    assert taken.status == 422
    assert "har allerede et segment" in await taken.text()
    empty = await admin.post(f"/admin/segments/{segment}/rename", {"name": ""})
    assert empty.status == 422
    done = await admin.post(f"/admin/segments/{segment}/rename", {"name": "Grown-ups"})
    assert done.status == 303
    assert await saved(db, club) == {"Grown-ups": AGE, "Runners": RUNNERS}
    listing = await (await admin.client.get(done.headers["Location"])).text()
    assert "Segmentet heter nå «Grown-ups»." in listing


async def test_deleting_names_the_campaigns_that_keep_its_filter(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    segment = await save_segment(db, club, "Adults", AGE)

    def schedule(session: Session) -> int:
        program = programs.get(session, club)
        assert program is not None
        return campaigns.create_broadcast(
            session,
            program,
            name="Spring sale",
            texts=TEXTS,
            segment="Adults",
            now=now(),
            send_at=now() + dt.timedelta(days=3),
        ).id

    campaign = await db.run(schedule)
    await admin.signed_in(OWNER)
    page = await (await admin.client.get(f"/admin/segments/{segment}/delete")).text()
    assert "Spring sale" in page
    assert "beholder filteret den ble laget med" in page
    response = await admin.post(f"/admin/segments/{segment}/delete")
    assert response.status == 303
    assert await saved(db, club) == {}
    kept = await db.run(lambda s: campaigns.get(s, club, campaign).filter)
    assert kept == AGE
    listing = await (await admin.client.get(response.headers["Location"])).text()
    assert "Segmentet «Adults» er slettet." in listing
    assert (await admin.client.get(f"/admin/segments/{segment}/edit")).status == 404
    left = await db.run(lambda s: s.scalar(select(func.count()).select_from(Segment)))
    assert left == 0


async def test_a_swedish_club_builds_its_segments_in_swedish(
    admin: Admin, db: Database, other_club: int
) -> None:
    await create_account(db, other_club, OTHER_OWNER)
    await create_member(db, other_club, "+46701000001", "Sven")
    await admin.signed_in(OTHER_OWNER)
    builder = await (await admin.client.get("/admin/segments/new")).text()
    assert "Lägg till villkor" in builder
    assert "Födelsedagsmånad" in builder
    assert "maj" in builder.lower()  # the months are Babel's, in Swedish
    assert shown_count(builder) == "1 medlem"
    response = await count_api(admin, {"all": []})
    assert await response.json() == {"count": 1, "text": "1 medlem"}
