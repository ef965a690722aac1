"""The settings page, through the app on SQLite and PostgreSQL: each section's form saves what
the store then holds; a bad field is named beside it and nothing changes; owners only; an API
key's secret is shown once and never logged."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from multidict import MultiDict
from sqlalchemy.orm import Session

from store import apikeys, coupons, programs, tiers
from store.database import Database
from tests.admin.conftest import OTHER_OWNER, OWNER, STAFF, Admin, create_account

pytestmark = pytest.mark.usefixtures("cheap_argon2")

PROGRAM_FIELDS = (
    "name",
    "contact",
    "privacy_url",
    "marketing_per_month",
    "quiet_start",
    "quiet_end",
    "sms_price_minor",
    "earn_points",
    "earn_per_minor",
    "min_purchase_minor",
    "points_lifetime_months",
    "tier_period_months",
    "referral_trigger",
    "referral_points",
)
# Every action of the settings page, with a form that would change something.
ACTIONS: list[tuple[str, dict[str, str]]] = [
    ("/admin/settings/club", {"name": "X", "contact": "x@x.no", "privacy_url": "https://x.no/p"}),
    (
        "/admin/settings/messages",
        {
            "marketing_per_month": "1",
            "quiet_start": "21",
            "quiet_end": "8",
            "sms_price_minor": "0,40",
        },
    ),
    (
        "/admin/settings/earning",
        {
            "earn_points": "2",
            "earn_per_minor": "10",
            "min_purchase_minor": "0",
            "points_lifetime_months": "12",
            "tier_period_months": "12",
        },
    ),
    ("/admin/settings/referral", {"referral_trigger": "purchase", "referral_points": "50"}),
    (
        "/admin/settings/tiers",
        {"rows": "1", "tier0_name_en": "All", "tier0_threshold": "0", "tier0_discount": "0"},
    ),
    (
        "/admin/settings/coupons",
        {"key": "summer", "kind": "campaign", "benefit_en": "10% off", "valid_days": "30"},
    ),
    ("/admin/settings/questions", {"kind": "text", "prompt_en": "Your shoe size?"}),
    ("/admin/settings/questions/{question}", {"prompt_en": "Activities?", "choices_en": "Run"}),
    ("/admin/settings/questions/{question}/move", {"direction": "up"}),
    ("/admin/settings/api-keys", {"name": "till", "scopes": "members:read"}),
    ("/admin/settings/api-keys/{key}/revoke", {}),
]


async def club_state(db: Database, club: int) -> dict[str, Any]:
    """Everything the settings page can change, as the store holds it."""

    def read(session: Session) -> dict[str, Any]:
        program = programs.get(session, club)
        assert program is not None
        return {
            **{field: getattr(program, field) for field in PROGRAM_FIELDS},
            "tiers": [
                (t.name, t.threshold, t.discount_percent) for t in tiers.ladder(session, club)
            ],
            "coupons": [(t.key, t.kind, t.benefit) for t in coupons.templates(session, club)],
            "questions": [(q.key, q.prompt, q.choices) for q in programs.questions(session, club)],
            "keys": [(k.name, k.revoked_at) for k in apikeys.of_club(session, club)],
        }

    return await db.run(read)


async def make_key(db: Database, club: int, name: str = "till") -> int:
    def work(session: Session) -> int:
        key, _ = apikeys.create(session, club, name=name, now=_now())
        return key.id

    return await db.run(work)


def _now() -> Any:
    import datetime as dt

    return dt.datetime.now(dt.UTC)


async def question_ids(db: Database, club: int) -> list[int]:
    return await db.run(lambda s: [q.id for q in programs.questions(s, club)])


async def post_form(admin: Admin, path: str, data: MultiDict[str] | dict[str, str]) -> Any:
    """A form post with the session's CSRF token, fields possibly repeated (checkboxes)."""
    form = MultiDict(data)
    form.add("csrf_token", await admin.csrf())
    return await admin.client.post(path, data=form, allow_redirects=False)


# --- each section saves -------------------------------------------------------------------------


async def test_the_page_shows_every_section(admin: Admin, owner: int) -> None:
    await admin.signed_in(OWNER)
    response = await admin.client.get("/admin/settings")
    assert response.status == 200
    page = await response.text()
    for action, _ in ACTIONS[:7]:
        assert f'action="{action}#' in page
    assert 'value="Torshov Sport"' in page
    assert 'value="0,50"' in page  # the SMS price in kroner, as a Norwegian types it


async def test_the_club_section_saves(admin: Admin, owner: int, db: Database, club: int) -> None:
    await admin.signed_in(OWNER)
    response = await admin.post(
        "/admin/settings/club",
        {"name": " Torshov Løp ", "contact": "hei@torshov.no", "privacy_url": "https://t.no/p"},
    )
    assert response.status == 303
    assert response.headers["Location"] == "/admin/settings?saved=club#club"
    state = await club_state(db, club)
    assert (state["name"], state["contact"], state["privacy_url"]) == (
        "Torshov Løp",
        "hei@torshov.no",
        "https://t.no/p",
    )


async def test_the_messages_section_sets_the_cap_quiet_hours_and_price(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    await admin.signed_in(OWNER)
    response = await admin.post(
        "/admin/settings/messages",
        {
            "marketing_per_month": "1",
            "quiet_start": "21",
            "quiet_end": "8",
            "sms_price_minor": "0,45",
        },
    )
    assert response.status == 303
    state = await club_state(db, club)
    assert state["marketing_per_month"] == 1
    assert (state["quiet_start"], state["quiet_end"], state["sms_price_minor"]) == (21, 8, 45)
    page = await (await admin.client.get("/admin/settings?saved=messages")).text()
    assert 'value="0,45"' in page
    assert 'role="status"' in page


async def test_the_earning_section_saves(admin: Admin, owner: int, db: Database, club: int) -> None:
    await admin.signed_in(OWNER)
    response = await admin.post(
        "/admin/settings/earning",
        {
            "earn_points": "3",
            "earn_per_minor": "10.5",
            "min_purchase_minor": "50",
            "points_lifetime_months": "36",
            "tier_period_months": "6",
        },
    )
    assert response.status == 303
    state = await club_state(db, club)
    assert [state[f] for f in PROGRAM_FIELDS[7:12]] == [3, 1050, 5000, 36, 6]


async def test_the_referral_reward_saves(admin: Admin, owner: int, db: Database, club: int) -> None:
    await admin.signed_in(OWNER)
    response = await admin.post(
        "/admin/settings/referral", {"referral_trigger": "purchase", "referral_points": "100"}
    )
    assert response.status == 303
    state = await club_state(db, club)
    assert (state["referral_trigger"], state["referral_points"]) == ("purchase", 100)


async def test_the_ladder_is_renamed_and_a_tier_added(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    await admin.signed_in(OWNER)
    form = {"rows": "4"}
    rows = [
        ("Bronse", "0", "5"),
        ("Sølv", "2000", "10"),
        ("Gull", "5000", "15"),
        ("Platina", "9000", "20"),
    ]
    for n, (name, threshold, discount) in enumerate(rows):
        form |= {
            f"tier{n}_name_nb": name,
            f"tier{n}_threshold": threshold,
            f"tier{n}_discount": discount,
        }
    response = await admin.post("/admin/settings/tiers", form)
    assert response.status == 303, await response.text()
    ladder = (await club_state(db, club))["tiers"]
    assert [(n["nb"], t, d) for n, t, d in ladder] == [
        ("Bronse", 0, 5),
        ("Sølv", 2000, 10),
        ("Gull", 5000, 15),
        ("Platina", 9000, 20),
    ]


async def test_a_ladder_not_starting_at_zero_is_refused(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    await admin.signed_in(OWNER)
    before = await club_state(db, club)
    response = await admin.post(
        "/admin/settings/tiers",
        {"rows": "1", "tier0_name_nb": "Alle", "tier0_threshold": "10", "tier0_discount": "0"},
    )
    assert response.status == 422
    assert "Første nivå starter på 0 poeng" in await response.text()
    assert await club_state(db, club) == before


async def test_a_coupon_template_is_added(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    await admin.signed_in(OWNER)
    response = await admin.post(
        "/admin/settings/coupons",
        {
            "key": "summer",
            "kind": "campaign",
            "benefit_nb": "{amount} rabatt",
            "benefit_en": "{amount} off",
            "amount": "50",
            "valid_days": "30",
        },
    )
    assert response.status == 303, await response.text()
    assert ("summer", "campaign", {"nb": "{amount} rabatt", "en": "{amount} off"}) in (
        await club_state(db, club)
    )["coupons"]


async def test_a_reward_without_a_cost_is_named_beside_the_cost(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    await admin.signed_in(OWNER)
    response = await admin.post(
        "/admin/settings/coupons",
        {"key": "cap", "kind": "reward", "benefit_en": "a cap", "valid_days": "30"},
    )
    assert response.status == 422
    page = await response.text()
    assert 'id="coupons-points_cost-error"' in page
    assert "summer" not in str((await club_state(db, club))["coupons"])


async def test_questions_are_added_edited_and_reordered(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    await admin.signed_in(OWNER)
    response = await admin.post(
        "/admin/settings/questions",
        {
            "kind": "choice",
            "prompt_nb": "Favorittsport?",
            "prompt_en": "Favourite sport?",
            "choices_nb": "Fotball\nTennis",
            "choices_en": "Football\nTennis",
        },
    )
    assert response.status == 303, await response.text()
    state = await club_state(db, club)
    key, prompt, choices = state["questions"][-1]
    assert key == "favourite_sport"
    assert prompt == {"nb": "Favorittsport?", "en": "Favourite sport?"}
    assert [c["label"] for c in choices] == [
        {"nb": "Fotball", "en": "Football"},
        {"nb": "Tennis", "en": "Tennis"},
    ]
    ids = await question_ids(db, club)
    new = ids[-1]
    response = await admin.post(
        f"/admin/settings/questions/{new}",
        {"prompt_nb": "Hvilken sport?", "choices_nb": "Fotball\nTennis\nSki"},
    )
    assert response.status == 303
    key, prompt, choices = (await club_state(db, club))["questions"][-1]
    assert prompt == {"nb": "Hvilken sport?"}
    # The first two keep their keys: answers already given keep their meaning.
    assert [c["key"] for c in choices][:2] == ["football", "tennis"]
    assert len(choices) == 3
    await admin.post(f"/admin/settings/questions/{new}/move", {"direction": "up"})
    assert (await question_ids(db, club)) == [*ids[:-2], new, ids[-2]]
    await admin.post(f"/admin/settings/questions/{new}/move", {"direction": "down"})
    assert (await question_ids(db, club)) == ids


async def test_a_question_without_wording_is_refused(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    await admin.signed_in(OWNER)
    before = await club_state(db, club)
    response = await admin.post("/admin/settings/questions", {"kind": "text", "prompt_en": " "})
    assert response.status == 422
    assert 'id="question-new-prompt_nb-error"' in await response.text()
    assert await club_state(db, club) == before


async def test_another_clubs_question_or_key_is_not_found(
    admin: Admin, owner: int, db: Database, other_club: int
) -> None:
    theirs = (await question_ids(db, other_club))[0]
    key = await make_key(db, other_club)
    await admin.signed_in(OWNER)
    before = await club_state(db, other_club)
    for path, data in [
        (f"/admin/settings/questions/{theirs}", {"prompt_en": "Hacked?"}),
        (f"/admin/settings/questions/{theirs}/move", {"direction": "down"}),
        (f"/admin/settings/api-keys/{key}/revoke", {}),
    ]:
        assert (await admin.post(path, data)).status == 404
    assert (await admin.client.get(f"/admin/settings/api-keys/{key}/revoke")).status == 404
    assert await club_state(db, other_club) == before


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "data", "field", "message"),
    [
        (
            "/admin/settings/messages",
            {"marketing_per_month": "4"},
            "messages-marketing_per_month",
            "fra 1 til 3",
        ),
        ("/admin/settings/messages", {"quiet_start": "25"}, "messages-quiet_start", "fra 0 til 23"),
        (
            "/admin/settings/messages",
            {"sms_price_minor": "abc"},
            "messages-sms_price_minor",
            "Skriv et beløp",
        ),
        (
            "/admin/settings/messages",
            {"sms_price_minor": "0,555"},
            "messages-sms_price_minor",
            "høyst 2 desimaler",
        ),
        (
            "/admin/settings/club",
            {"privacy_url": "http://example.com/p"},
            "club-privacy_url",
            "https://",
        ),
        ("/admin/settings/club", {"name": "  "}, "club-name", "klubbens navn"),
        ("/admin/settings/earning", {"earn_per_minor": "0"}, "earning-earn_per_minor", "beløp fra"),
        (
            "/admin/settings/earning",
            {"points_lifetime_months": "x"},
            "earning-points_lifetime_months",
            "helt tall",
        ),
    ],
)
async def test_a_bad_field_is_named_beside_it_and_nothing_changes(
    admin: Admin,
    owner: int,
    db: Database,
    club: int,
    path: str,
    data: dict[str, str],
    field: str,
    message: str,
) -> None:
    await admin.signed_in(OWNER)
    page = await (await admin.client.get("/admin/settings")).text()
    good = {
        "name": "Torshov Sport",
        "contact": "post@torshovsport.no",
        "privacy_url": "https://example.com/privacy",
        "marketing_per_month": "2",
        "quiet_start": "20",
        "quiet_end": "9",
        "sms_price_minor": "0,50",
        "earn_points": "1",
        "earn_per_minor": "1,00",
        "min_purchase_minor": "0,00",
        "points_lifetime_months": "24",
        "tier_period_months": "12",
    }
    assert "Torshov Sport" in page
    before = await club_state(db, club)
    response = await admin.post(path, {**good, **data})
    assert response.status == 422
    page = await response.text()
    error = page.split(f'id="{field}-error">')[1].split("</p>")[0]
    assert message in error
    assert f'id="{field}"' in page
    # What was typed stays in the form, beside its error.
    typed = next(iter(data.values()))
    assert f'value="{typed}"' in page
    assert 'role="alert"' in page
    assert await club_state(db, club) == before


async def test_every_bad_field_of_a_section_is_named_at_once(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    await admin.signed_in(OWNER)
    before = await club_state(db, club)
    response = await admin.post(
        "/admin/settings/messages",
        {
            "marketing_per_month": "4",
            "quiet_start": "25",
            "quiet_end": "9",
            "sms_price_minor": "abc",
        },
    )
    page = await response.text()
    for field in ("marketing_per_month", "sms_price_minor"):
        assert f'id="messages-{field}-error"' in page
    assert await club_state(db, club) == before
    # The range check too: both numbers out of range named, once the price reads.
    response = await admin.post(
        "/admin/settings/messages",
        {
            "marketing_per_month": "4",
            "quiet_start": "25",
            "quiet_end": "9",
            "sms_price_minor": "0,50",
        },
    )
    page = await response.text()
    for field in ("marketing_per_month", "quiet_start"):
        assert f'id="messages-{field}-error"' in page
    assert await club_state(db, club) == before


# --- API keys -----------------------------------------------------------------------------------


async def test_a_keys_secret_is_in_exactly_one_response_and_no_log(
    admin: Admin, owner: int, db: Database, club: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await admin.signed_in(OWNER)
    response = await post_form(
        admin,
        "/admin/settings/api-keys",
        MultiDict(
            [
                ("name", "Kasse 1"),
                ("store", "Torshov"),
                ("scopes", "members:read"),
                ("scopes", "purchases:write"),
            ]
        ),
    )
    assert response.status == 200
    created = await response.text()
    secret = created.split('id="secret" type="text" value="')[1].split('"')[0]
    caller = await db.run(lambda s: apikeys.verify(s, secret))
    assert caller is not None
    assert caller.scopes == {"members:read", "purchases:write"}
    assert caller.store == "Torshov"
    listing = await (await admin.client.get("/admin/settings")).text()
    assert "Kasse 1" in listing
    assert secret not in listing
    assert secret.split("_")[2] not in listing  # nor its random part
    assert secret not in caplog.text
    # Reloading the list (or the creation's address) never shows it again.
    again = await admin.client.get("/admin/settings/api-keys", allow_redirects=False)
    assert secret not in await again.text()


async def test_a_key_without_scopes_or_name_is_refused_beside_the_field(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    await admin.signed_in(OWNER)
    response = await post_form(admin, "/admin/settings/api-keys", {"name": "till"})
    assert response.status == 422
    assert 'id="api-keys-scopes-error"' in await response.text()
    response = await post_form(
        admin, "/admin/settings/api-keys", {"name": " ", "scopes": "members:read"}
    )
    assert 'id="api-keys-name-error"' in await response.text()
    assert (await club_state(db, club))["keys"] == []


async def test_revoking_asks_first_then_revokes(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    key = await make_key(db, club)
    await admin.signed_in(OWNER)
    confirm = await admin.client.get(f"/admin/settings/api-keys/{key}/revoke")
    assert confirm.status == 200
    assert "Trekke tilbake nøkkelen till?" in await confirm.text()
    assert (await club_state(db, club))["keys"][0][1] is None
    response = await admin.post(f"/admin/settings/api-keys/{key}/revoke")
    assert response.status == 303
    assert (await club_state(db, club))["keys"][0][1] is not None
    page = await (await admin.client.get("/admin/settings")).text()
    assert "Trukket tilbake" in page


# --- who may ------------------------------------------------------------------------------------


async def _paths(db: Database, club: int) -> list[tuple[str, dict[str, str]]]:
    question = (await question_ids(db, club))[-1]
    key = await make_key(db, club)
    return [(path.format(question=question, key=key), data) for path, data in ACTIONS]


async def test_staff_get_403_on_every_page_and_action(
    admin: Admin, staff: int, db: Database, club: int
) -> None:
    actions = await _paths(db, club)
    await admin.signed_in(STAFF)
    for path in ("/admin/settings", actions[-1][0]):
        assert (await admin.client.get(path)).status == 403, path
    before = await club_state(db, club)
    for path, data in actions:
        assert (await admin.post(path, data)).status == 403, path
    assert await club_state(db, club) == before


async def test_without_the_csrf_token_every_action_is_403_and_nothing_changes(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    actions = await _paths(db, club)
    await admin.signed_in(OWNER)
    before = await club_state(db, club)
    for path, data in actions:
        response = await admin.client.post(path, data=data, allow_redirects=False)
        assert response.status == 403, path
        wrong = await admin.client.post(
            path, data={**data, "csrf_token": "not-the-token"}, allow_redirects=False
        )
        assert wrong.status == 403, path
    assert await club_state(db, club) == before


async def test_another_clubs_owner_changes_only_their_own_club(
    admin: Admin, db: Database, club: int, other_club: int
) -> None:
    await create_account(db, other_club, OTHER_OWNER)
    before = await club_state(db, club)
    await admin.signed_in(OTHER_OWNER)
    response = await admin.post(
        "/admin/settings/messages",
        {
            "marketing_per_month": "3",
            "quiet_start": "22",
            "quiet_end": "7",
            "sms_price_minor": "0,60",
        },
    )
    assert response.status == 303
    assert (await club_state(db, other_club))["marketing_per_month"] == 3
    assert await club_state(db, club) == before
