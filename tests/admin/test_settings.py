"""The settings page, through the app on SQLite and PostgreSQL: each section's form saves what
the store then holds; a bad field is named beside it and nothing changes; owners only; an API
key's secret is shown once and never logged; punch cards, bonus points, multiplier periods and
coupons are edited, turned off or removed; a profile question is removed after a confirmation."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from multidict import MultiDict
from sqlalchemy.orm import Session

from bot.keys import CLUBS
from locales.sms import over_one
from store.clubs import apikeys, club_rules, programs
from store.database import Database
from store.loyalty import coupons, tiers
from store.members import members, profile
from store.models import CouponTemplate, ProfileAnswer
from store.outreach import campaigns, journeys, segments
from tests.admin.conftest import OTHER_OWNER, OWNER, STAFF, Admin, create_account, create_member
from tests.conftest import now, replies_in, sign, twilio_form
from tests.store.clubs.test_programs import sms_as_asked

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
    "auto_reply",
    "page_link_in_sms",
    "retention_months",
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
    ("/admin/settings/auto-reply", {"auto_reply_nb": "Hei! {{club}} svarer snart."}),
    ("/admin/settings/page-link", {"page_link_in_sms": "on"}),
    ("/admin/settings/retention", {"retention_months": "6"}),
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
    ("/admin/settings/questions/{question}/remove", {}),
    (
        "/admin/settings/coupons/{coupon}",
        {"benefit_en": "a hat", "points_cost": "9", "valid_days": "9"},
    ),
    ("/admin/settings/coupons/{coupon}/active", {"active": "off"}),
    ("/admin/settings/punch-cards", {"category": "Bolle", "every": "5", "template_id": "{punch}"}),
    (
        "/admin/settings/punch-cards/{card}",
        {"category": "Bolle", "every": "5", "template_id": "{punch}"},
    ),
    ("/admin/settings/punch-cards/{card}/active", {"active": "off"}),
    ("/admin/settings/bonus-rules", {"field": "category", "value": "Sko", "extra_points": "3"}),
    (
        "/admin/settings/bonus-rules/{bonus}",
        {"field": "category", "value": "Sko", "extra_points": "3"},
    ),
    ("/admin/settings/bonus-rules/{bonus}/remove", {}),
    (
        "/admin/settings/multipliers",
        {"name": "Påske", "starts_on": "2026-04-01", "ends_on": "2026-04-06", "multiplier": "3"},
    ),
    (
        "/admin/settings/multipliers/{multiplier}",
        {"name": "Påske", "starts_on": "2026-04-01", "ends_on": "2026-04-06", "multiplier": "3"},
    ),
    ("/admin/settings/multipliers/{multiplier}/remove", {}),
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
            **rules_of(session, club),
        }

    return await db.run(read)


def rules_of(session: Session, club: int) -> dict[str, Any]:
    """The club's coupon templates (retired ones too), punch cards, bonus rules and periods."""
    return {
        "templates": [
            (t.key, t.benefit, t.valid_days, t.points_cost, t.discount_minor, t.active)
            for t in coupons.templates(session, club, retired=True)
        ],
        "cards": [
            (c.category, c.every, c.template_id, c.active)
            for c in club_rules.punch_cards(session, club)
        ],
        "bonuses": [
            (b.field, b.value, b.extra_points) for b in club_rules.bonus_rules(session, club)
        ],
        "multipliers": [
            (m.name, m.starts_on, m.ends_on, m.multiplier)
            for m in club_rules.multipliers(session, club)
        ],
    }


async def seed_rules(db: Database, club: int) -> dict[str, int]:
    """A reward, a punch card with its coupon, a bonus rule and a multiplier period: their ids."""

    def work(session: Session) -> dict[str, int]:
        program = programs.get(session, club)
        assert program is not None
        cap = coupons.create_template(
            session,
            program,
            key="cap",
            kind=coupons.REWARD,
            benefit={"nb": "en caps", "en": "a cap"},
            valid_days=30,
            points_cost=500,
        )
        punch = coupons.create_template(
            session,
            program,
            key="free-coffee",
            kind=coupons.PUNCH,
            benefit={"nb": "gratis kaffe", "en": "a free coffee"},
            valid_days=60,
        )
        card = club_rules.add_punch_card(
            session, program, category="Kaffe", every=10, template_id=punch.id
        )
        bonus = club_rules.add_bonus_rule(
            session, program, field="brand", value="Torshov", extra_points=2
        )
        period = club_rules.add_multiplier(
            session,
            program,
            name="Jul",
            starts_on=dt.date(2026, 12, 1),
            ends_on=dt.date(2026, 12, 24),
            multiplier=2,
        )
        return {
            "coupon": cap.id,
            "punch": punch.id,
            "card": card.id,
            "bonus": bonus.id,
            "multiplier": period.id,
        }

    return await db.run(work)


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


def sms_over(kind: str, prompt: dict[str, str], choices: list[str]) -> int:
    """By how much the longest SMS the demo club would ask this question in passes 160."""
    made = [{"key": c, "label": {"nb": c}} for c in choices]
    return max(over_one(text) for text in sms_as_asked("Torshov Sport", kind, prompt, made))


async def test_a_question_too_long_for_one_sms_is_refused_saying_by_how_much(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    """New wording, or an edit, that asked by SMS would take two: 422, named beside the
    language's wording with how many characters too long; nothing changes."""
    await admin.signed_in(OWNER)
    before = await club_state(db, club)
    wording = "Hvilken av butikkene våre handler du oftest i, og hvor ofte er du innom? " * 2
    over = sms_over("choice", {"nb": wording.strip()}, ["Torshov", "Grünerløkka"])
    assert over > 0
    response = await admin.post(
        "/admin/settings/questions",
        {
            "kind": "choice",
            "prompt_nb": wording,
            "prompt_sv": "",
            "prompt_en": "",
            "choices_nb": "Torshov\nGrünerløkka",
            "choices_sv": "",
            "choices_en": "",
        },
    )
    assert response.status == 422
    page = await response.text()
    assert 'id="question-new-prompt_nb-error"' in page
    assert f"er det {over} tegn for langt for én melding" in page
    assert await club_state(db, club) == before
    question = (await question_ids(db, club))[-1]
    long_sv = "Vilka aktiviteter gillar du mest av allt att hålla på med på helgerna? " * 2
    response = await admin.post(
        f"/admin/settings/questions/{question}",
        {
            "prompt_nb": "Aktiviteter?",
            "prompt_sv": long_sv,
            "prompt_en": "",
            "choices_nb": "Løping\nSki",
            "choices_sv": "",
            "choices_en": "",
        },
    )
    assert response.status == 422
    page = await response.text()
    over = sms_over("multichoice", {"nb": "Aktiviteter?", "sv": long_sv.strip()}, ["Løping", "Ski"])
    assert f'id="question-{question}-prompt_sv-error"' in page
    assert f"er det {over} tegn for langt for én melding" in page
    assert await club_state(db, club) == before


async def test_a_club_name_that_would_push_a_question_over_one_sms_is_refused(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    """A question that just fits after the welcome naming the club: a longer name is refused
    beside the name, naming the question and by how much; nothing changes."""
    await admin.signed_in(OWNER)
    choices = ["Torshov", "Grünerløkka"]
    wording = "x" * 200
    wording = wording[: len(wording) - sms_over("choice", {"nb": wording}, choices)]
    form = {"kind": "choice", "prompt_nb": wording, "prompt_sv": "", "prompt_en": ""}
    form |= {"choices_nb": "\n".join(choices), "choices_sv": "", "choices_en": ""}
    assert (await admin.post("/admin/settings/questions", form)).status == 303
    key = (await club_state(db, club))["questions"][-1][0]
    before = await club_state(db, club)
    response = await admin.post(
        "/admin/settings/club",
        {
            "name": "Torshov Sport!",
            "contact": "post@torshovsport.no",
            "privacy_url": "https://x.no/p",
        },
    )
    assert response.status == 422
    page = await response.text()
    assert 'id="club-name-error"' in page
    assert f"blir spørsmålet {key} 1 tegn for langt for én SMS" in page
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
    # The refused section's form is open; the others stay folded under their values.
    section = field.split("-")[0]
    assert folds(page)[section] == "open"
    assert [sec for sec, state in folds(page).items() if state == "open"] == [section]


def folds(page: str) -> dict[str, str]:
    """Each section with a folded form ("club", "messages", ...) and whether it is open."""
    found: dict[str, str] = {}
    for part in page.split('<section class="card" id="')[1:]:
        section, body = part.split('"', 1)
        body = body.split("</section>")[0]
        if '<details class="edit" open>' in body:
            found[section] = "open"
        elif '<details class="edit">' in body:
            found[section] = "folded"
    return found


async def test_each_section_shows_its_values_with_its_form_folded(admin: Admin, owner: int) -> None:
    await admin.signed_in(OWNER)
    page = await (await admin.client.get("/admin/settings")).text()
    assert folds(page) == dict.fromkeys(
        ("club", "messages", "auto-reply", "earning", "tiers", "referral", "retention"), "folded"
    )
    messages = page.split('id="messages"')[1].split("</section>")[0]
    assert "Markedsføringsmeldinger per medlem:</span> 2 per 30 dager" in messages
    assert "Stilletid:</span> 20:00–9:00" in messages


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
    # Nor its random part (which may itself hold "_": it is everything after the prefix).
    assert secret.split("_", 2)[2] not in listing
    assert secret not in caplog.text
    # Reloading the list (or the creation's address) never shows it again.
    again = await admin.client.get("/admin/settings/api-keys", allow_redirects=False)
    assert secret not in await again.text()
    # Unused so far; once a till has used it, the list says when (in the club's time).
    assert "Ikke brukt ennå" in listing
    used = dt.datetime(2026, 11, 23, 13, 5, tzinfo=dt.UTC)
    await db.run(lambda s: apikeys.verify(s, secret, used))
    listing = await (await admin.client.get("/admin/settings")).text()
    assert "Sist brukt 23.11.2026 14:05" in listing


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
    ids = {
        "question": (await question_ids(db, club))[-1],
        "key": await make_key(db, club),
        **await seed_rules(db, club),
    }
    return [
        (path.format(**ids), {name: value.format(**ids) for name, value in data.items()})
        for path, data in ACTIONS
    ]


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


# --- punch cards, bonus points, multiplier periods ---------------------------------------------


async def rules(db: Database, club: int) -> dict[str, Any]:
    return await db.run(lambda s: rules_of(s, club))


def error_beside(page: str, field: str) -> str:
    """The error shown under the field with this id."""
    return page.split(f'id="{field}-error">')[1].split("</p>")[0]


async def test_punch_cards_are_added_edited_and_turned_off_and_on(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    ids = await seed_rules(db, club)
    await admin.signed_in(OWNER)
    response = await admin.post(
        "/admin/settings/punch-cards",
        {"category": " Bolle ", "every": "6", "template_id": str(ids["punch"])},
    )
    assert response.status == 303, await response.text()
    assert response.headers["Location"] == "/admin/settings?saved=punch-cards#punch-cards"
    assert (await rules(db, club))["cards"][-1] == ("Bolle", 6, ids["punch"], True)
    page = await (await admin.client.get("/admin/settings")).text()
    assert "Hvert 6. kjøp i Bolle gir: gratis kaffe" in page

    card = ids["card"]
    response = await admin.post(
        f"/admin/settings/punch-cards/{card}",
        {"category": "Kaffe", "every": "8", "template_id": str(ids["punch"])},
    )
    assert response.headers["Location"] == f"/admin/settings?saved=card-{card}#card-{card}"
    assert (await rules(db, club))["cards"][0] == ("Kaffe", 8, ids["punch"], True)

    await admin.post(f"/admin/settings/punch-cards/{card}/active", {"active": "off"})
    assert (await rules(db, club))["cards"][0][3] is False
    page = await (await admin.client.get("/admin/settings")).text()
    article = page.split(f'id="card-{card}"')[1].split("</article>")[0]
    assert "Slå på" in article
    await admin.post(f"/admin/settings/punch-cards/{card}/active", {"active": "on"})
    assert (await rules(db, club))["cards"][0][3] is True


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"every": "1"}, "every", "fra 2 til 50"),
        ({"every": "tre"}, "every", "fra 2 til 50"),
        ({"every": "²"}, "every", "fra 2 til 50"),  # a digit, but not a number
        ({"category": "  "}, "category", "Skriv en kategori"),
        ({"template_id": "{coupon}"}, "template_id", "klippekortkupong"),
    ],
)
async def test_a_bad_punch_card_field_is_named_beside_it_and_nothing_changes(
    admin: Admin,
    owner: int,
    db: Database,
    club: int,
    changes: dict[str, str],
    field: str,
    message: str,
) -> None:
    ids = await seed_rules(db, club)
    await admin.signed_in(OWNER)
    before = await club_state(db, club)
    form = {"category": "Bolle", "every": "5", "template_id": str(ids["punch"])}
    form |= {name: value.format(coupon=ids["coupon"]) for name, value in changes.items()}
    for path, section in [
        ("/admin/settings/punch-cards", "card-new"),
        (f"/admin/settings/punch-cards/{ids['card']}", f"card-{ids['card']}"),
    ]:
        response = await admin.post(path, form)
        assert response.status == 422
        page = await response.text()
        assert message in error_beside(page, f"{section}-{field}")
        assert 'role="alert"' in page
    assert await club_state(db, club) == before


async def test_bonus_rules_are_added_edited_and_removed(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    ids = await seed_rules(db, club)
    await admin.signed_in(OWNER)
    response = await admin.post(
        "/admin/settings/bonus-rules", {"field": "category", "value": "Sko", "extra_points": "3"}
    )
    assert response.headers["Location"] == "/admin/settings?saved=bonus-rules#bonus-rules"
    assert (await rules(db, club))["bonuses"] == [("category", "Sko", 3), ("brand", "Torshov", 2)]
    page = await (await admin.client.get("/admin/settings")).text()
    assert "Kategori Sko: 3 ekstra poeng per 1,00 NOK" in page

    bonus = ids["bonus"]
    response = await admin.post(
        f"/admin/settings/bonus-rules/{bonus}",
        {"field": "brand", "value": "Kari", "extra_points": "10"},
    )
    assert response.status == 303
    assert ("brand", "Kari", 10) in (await rules(db, club))["bonuses"]
    response = await admin.post(f"/admin/settings/bonus-rules/{bonus}/remove")
    assert response.status == 303
    assert (await rules(db, club))["bonuses"] == [("category", "Sko", 3)]


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"extra_points": "0"}, "extra_points", "fra 1 til 1\xa0000"),
        ({"extra_points": "1001"}, "extra_points", "fra 1 til 1\xa0000"),
        ({"value": ""}, "value", "kategorien eller merket"),
        ({"field": "sku"}, "field", "kategori eller merke"),
    ],
)
async def test_a_bad_bonus_field_is_named_beside_it_and_nothing_changes(
    admin: Admin,
    owner: int,
    db: Database,
    club: int,
    changes: dict[str, str],
    field: str,
    message: str,
) -> None:
    ids = await seed_rules(db, club)
    await admin.signed_in(OWNER)
    before = await club_state(db, club)
    form = {"field": "category", "value": "Sko", "extra_points": "3", **changes}
    for path, section in [
        ("/admin/settings/bonus-rules", "bonus-new"),
        (f"/admin/settings/bonus-rules/{ids['bonus']}", f"bonus-{ids['bonus']}"),
    ]:
        response = await admin.post(path, form)
        assert response.status == 422
        assert message in error_beside(await response.text(), f"{section}-{field}")
    assert await club_state(db, club) == before


async def test_multiplier_periods_are_added_edited_and_removed(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    """Days as a Norwegian types them (23.11.2026), or ISO as older forms sent them."""
    ids = await seed_rules(db, club)
    await admin.signed_in(OWNER)
    response = await admin.post(
        "/admin/settings/multipliers",
        {
            "name": "Black Week",
            "starts_on": "23.11.2026",
            "ends_on": "2026-11-29",
            "multiplier": "3",
        },
    )
    assert response.headers["Location"] == "/admin/settings?saved=multipliers#multipliers"
    periods = (await rules(db, club))["multipliers"]
    assert ("Black Week", dt.date(2026, 11, 23), dt.date(2026, 11, 29), 3) in periods
    page = await (await admin.client.get("/admin/settings")).text()
    assert "Black Week: 3 ganger poengene fra 23.11.2026 til 29.11.2026" in page
    # The date fields show the club's format (not a browser's picker, whose order varies).
    assert 'value="23.11.2026"' in page
    assert 'value="2026-11-23"' not in page
    assert 'name="starts_on" type="text" value="23.11.2026" class="date"' in page

    period = ids["multiplier"]
    response = await admin.post(
        f"/admin/settings/multipliers/{period}",
        {"name": "Jul", "starts_on": "2026-12-20", "ends_on": "2026-12-20", "multiplier": "5"},
    )
    assert response.status == 303
    assert ("Jul", dt.date(2026, 12, 20), dt.date(2026, 12, 20), 5) in (await rules(db, club))[
        "multipliers"
    ]
    assert (await admin.post(f"/admin/settings/multipliers/{period}/remove")).status == 303
    assert [m[0] for m in (await rules(db, club))["multipliers"]] == ["Black Week"]


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"ends_on": "2026-03-31"}, "ends_on", "før første dag"),
        ({"starts_on": "i morgen"}, "starts_on", "Skriv en dato"),
        ({"ends_on": "31.02.2026"}, "ends_on", "Skriv en dato"),
        ({"multiplier": "6"}, "multiplier", "fra 2 til 5"),
        ({"name": ""}, "name", "Gi perioden et navn"),
    ],
)
async def test_a_bad_period_field_is_named_beside_it_and_nothing_changes(
    admin: Admin,
    owner: int,
    db: Database,
    club: int,
    changes: dict[str, str],
    field: str,
    message: str,
) -> None:
    ids = await seed_rules(db, club)
    await admin.signed_in(OWNER)
    before = await club_state(db, club)
    form = {"name": "Påske", "starts_on": "2026-04-01", "ends_on": "2026-04-06", "multiplier": "3"}
    form |= changes
    for path, section in [
        ("/admin/settings/multipliers", "multiplier-new"),
        (f"/admin/settings/multipliers/{ids['multiplier']}", f"multiplier-{ids['multiplier']}"),
    ]:
        response = await admin.post(path, form)
        assert response.status == 422
        page = await response.text()
        assert message in error_beside(page, f"{section}-{field}")
        assert f'value="{next(iter(changes.values()))}"' in page
    assert await club_state(db, club) == before


async def test_a_purchase_through_the_api_earns_by_the_rules_the_page_set(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    """A bonus and a multiplier edited on the page, then a sale at the till: 100 kr of the
    brand at triple points with 4 extra per krone is 700 points."""
    ids = await seed_rules(db, club)
    await admin.signed_in(OWNER)
    # The club's day (Oslo): between midnight there and in UTC the two dates differ.
    today = dt.datetime.now(ZoneInfo("Europe/Oslo")).date().isoformat()
    await admin.post(
        f"/admin/settings/multipliers/{ids['multiplier']}",
        {"name": "I dag", "starts_on": today, "ends_on": today, "multiplier": "3"},
    )
    await admin.post(
        f"/admin/settings/bonus-rules/{ids['bonus']}",
        {"field": "brand", "value": "torshov", "extra_points": "4"},
    )
    await admin.post(
        f"/admin/settings/punch-cards/{ids['card']}",
        {"category": "Sko", "every": "2", "template_id": str(ids["punch"])},
    )
    await create_member(db, club, "+4791234567", "Kari")
    _, secret = await db.run(
        lambda s: apikeys.create(s, club, name="till", scopes=["purchases:write"], now=_now())
    )
    line = {"qty": 1, "amount_minor": 10000, "brand": "Torshov", "category": "sko"}
    answers = []
    for n in (1, 2):
        response = await admin.client.post(
            "/api/v1/purchases",
            json={"phone": "+4791234567", "transaction_id": f"T{n}", "lines": [line]},
            headers={"Authorization": f"Bearer {secret}"},
        )
        assert response.status in (200, 201), await response.text()
        answers.append(await response.json())
    assert [a["points"] for a in answers] == [700, 700]
    assert [len(a["coupons"]) for a in answers] == [0, 1]


# --- coupons edited and retired ----------------------------------------------------------------


async def test_a_coupon_is_edited_retired_and_brought_back(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    ids = await seed_rules(db, club)
    cap = ids["coupon"]
    await admin.signed_in(OWNER)
    response = await admin.post(
        f"/admin/settings/coupons/{cap}",
        {
            "benefit_nb": "en lue",
            "benefit_en": "{amount} off a beanie",
            "amount": "50",
            "points_cost": "800",
            "valid_days": "14",
        },
    )
    assert response.status == 303, await response.text()
    assert response.headers["Location"] == f"/admin/settings?saved=coupon-{cap}#coupon-{cap}"
    edited = next(t for t in (await rules(db, club))["templates"] if t[0] == "cap")
    assert edited == ("cap", {"nb": "en lue", "en": "{amount} off a beanie"}, 14, 800, 5000, True)

    response = await admin.post(f"/admin/settings/coupons/{cap}/active", {"active": "off"})
    assert response.status == 303
    assert "cap" not in [t.key for t in await db.run(lambda s: coupons.rewards(s, club))]
    page = await (await admin.client.get("/admin/settings")).text()
    article = page.split(f'id="coupon-{cap}"')[1].split("</article>")[0]
    assert "Trukket tilbake" in article
    assert "Ta i bruk igjen" in article
    await admin.post(f"/admin/settings/coupons/{cap}/active", {"active": "on"})
    assert "cap" in [t.key for t in await db.run(lambda s: coupons.rewards(s, club))]


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"valid_days": "0"}, "valid_days", "1–3660"),
        ({"valid_days": "ti"}, "valid_days", "helt tall"),
        ({"points_cost": ""}, "points_cost", "En belønning koster poeng"),
        ({"discount_percent": "101"}, "discount_percent", "fra 1 til 100"),
        ({"amount": "0"}, "amount", "over 0"),
        ({"benefit_nb": "{amount} rabatt"}, "benefit", "{amount} trenger et beløp"),
    ],
)
async def test_a_bad_coupon_field_is_named_beside_it_and_nothing_changes(
    admin: Admin,
    owner: int,
    db: Database,
    club: int,
    changes: dict[str, str],
    field: str,
    message: str,
) -> None:
    cap = (await seed_rules(db, club))["coupon"]
    await admin.signed_in(OWNER)
    before = await club_state(db, club)
    form = {"benefit_nb": "en lue", "points_cost": "800", "valid_days": "14", **changes}
    response = await admin.post(f"/admin/settings/coupons/{cap}", form)
    assert response.status == 422
    page = await response.text()
    assert message in error_beside(page, f"coupon-{cap}-{field}")
    assert await club_state(db, club) == before


async def test_the_coupon_of_a_punch_card_that_is_on_is_not_retired(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    ids = await seed_rules(db, club)
    await admin.signed_in(OWNER)
    before = await club_state(db, club)
    response = await admin.post(f"/admin/settings/coupons/{ids['punch']}/active", {"active": "off"})
    assert response.status == 422
    error = error_beside(await response.text(), f"coupon-{ids['punch']}-active-active")
    assert "Slå av kortet" in error
    assert await club_state(db, club) == before


async def test_a_coupon_a_journey_or_a_planned_campaign_gives_is_not_retired(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    """Their texts promise a code: the refusal names them (the journey as the journeys page
    calls it); once the journey is off and the campaign cancelled, it is retired."""
    later = now() + dt.timedelta(days=3)

    def work(session: Session) -> tuple[int, int]:
        program = programs.get(session, club)
        assert program is not None
        gift = coupons.create_template(
            session,
            program,
            key="jul",
            kind=coupons.CAMPAIGN,
            benefit={"nb": "20 % rabatt"},
            valid_days=14,
            discount_percent=20,
        )
        journeys.update(session, program, "birthday", now=now(), active=True, coupon="jul")
        broadcast = campaigns.create_broadcast(
            session,
            program,
            name="Julesalg",
            texts={"nb": "God jul! {coupon_code}"},
            segment=None,
            now=now(),
            send_at=later,
            coupon="jul",
        )
        return gift.id, broadcast.id

    gift, broadcast = await db.run(work)
    await admin.signed_in(OWNER)
    before = await club_state(db, club)
    response = await admin.post(f"/admin/settings/coupons/{gift}/active", {"active": "off"})
    assert response.status == 422
    error = error_beside(await response.text(), f"coupon-{gift}-active-active")
    assert "Bursdag, Julesalg" in error
    assert await club_state(db, club) == before

    def stop_them(session: Session) -> None:
        program = programs.get(session, club)
        assert program is not None
        journeys.update(session, program, "birthday", now=now(), active=False)
        campaigns.cancel(session, club, broadcast, now())

    await db.run(stop_them)
    response = await admin.post(f"/admin/settings/coupons/{gift}/active", {"active": "off"})
    assert response.status == 303
    assert not await db.run(lambda s: s.get(CouponTemplate, gift).active)


async def test_a_card_whose_coupon_is_retired_is_not_turned_on(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    ids = await seed_rules(db, club)
    await admin.signed_in(OWNER)
    card = ids["card"]
    await admin.post(f"/admin/settings/punch-cards/{card}/active", {"active": "off"})
    await admin.post(f"/admin/settings/coupons/{ids['punch']}/active", {"active": "off"})
    before = await club_state(db, club)
    response = await admin.post(f"/admin/settings/punch-cards/{card}/active", {"active": "on"})
    assert response.status == 422
    assert "trukket tilbake" in error_beside(await response.text(), f"card-{card}-active-active")
    assert await club_state(db, club) == before


# --- profile questions removed ------------------------------------------------------------------


async def answer(db: Database, club: int, key: str, count: int) -> None:
    """`count` members answer the question `key`."""

    def work(session: Session) -> None:
        program = programs.get(session, club)
        assert program is not None
        question = next(q.id for q in programs.questions(session, club) if q.key == key)
        for n in range(count):
            member = members.create(
                session, program, f"+479900{n:04d}", status=members.ACTIVE, now=_now()
            )
            profile.save_answer(session, member, question, ["running"], _now())

    await db.run(work)


async def test_a_question_is_removed_after_a_page_that_says_who_answered_it(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    await answer(db, club, "activities", 2)
    question = (await question_ids(db, club))[-1]
    await admin.signed_in(OWNER)
    page = await (await admin.client.get("/admin/settings")).text()
    assert f'href="/admin/settings/questions/{question}/remove"' in page
    confirm = await admin.client.get(f"/admin/settings/questions/{question}/remove")
    assert confirm.status == 200
    text = await confirm.text()
    assert "Hvilke aktiviteter liker du?" in text
    assert "2 medlemmer har svart på det" in text
    assert len(await question_ids(db, club)) == 3
    response = await admin.post(f"/admin/settings/questions/{question}/remove")
    assert response.status == 303
    assert response.headers["Location"] == "/admin/settings?saved=questions#questions"
    assert [q[0] for q in (await club_state(db, club))["questions"]] == ["first_name", "birthday"]
    # Its answers stay with the members.
    answers = await db.run(
        lambda s: s.scalar(sa.select(sa.func.count()).select_from(ProfileAnswer))
    )
    assert answers == 2
    # Removed, it is gone from the page and can't be removed again.
    assert (await admin.client.get(f"/admin/settings/questions/{question}/remove")).status == 404


async def test_the_first_name_and_birthday_questions_are_not_removed(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    first_name, birthday = (await question_ids(db, club))[:2]
    await admin.signed_in(OWNER)
    page = await (await admin.client.get("/admin/settings")).text()
    assert f"/admin/settings/questions/{first_name}/remove" not in page
    before = await club_state(db, club)
    for question in (first_name, birthday):
        confirm = await (
            await admin.client.get(f"/admin/settings/questions/{question}/remove")
        ).text()
        assert "kan ikke fjernes" in confirm
        assert 'class="danger"' not in confirm
        response = await admin.post(f"/admin/settings/questions/{question}/remove")
        assert response.status == 422
        assert "kan ikke fjernes" in await response.text()
    assert await club_state(db, club) == before


async def test_a_question_a_segment_filters_on_is_not_removed(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    runners = {"field": "answer", "question": "activities", "op": "in", "value": ["running"]}

    def save(session: Session) -> None:
        program = programs.get(session, club)
        assert program is not None
        segments.save(session, program, "Løpere", runners, _now())

    await db.run(save)
    question = (await question_ids(db, club))[-1]
    await admin.signed_in(OWNER)
    confirm = await (await admin.client.get(f"/admin/settings/questions/{question}/remove")).text()
    assert "<li>Løpere</li>" in confirm
    assert 'class="danger"' not in confirm
    before = await club_state(db, club)
    response = await admin.post(f"/admin/settings/questions/{question}/remove")
    assert response.status == 422
    assert await club_state(db, club) == before


async def test_a_member_answering_a_removed_question_carries_on(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    """Mid-way through the questions when the owner removes the one being answered: the
    answer is not saved to it, and the conversation goes on with the first question the
    member has not answered (here none: done) without an error."""

    async def text(body: str) -> str:
        form = twilio_form("+4791234567", body)
        response = await admin.client.post(
            "/sms/twilio",
            data=form,
            headers={"X-Twilio-Signature": sign("http://127.0.0.1:8080/sms/twilio", form)},
        )
        assert response.status == 200, await response.text()
        return " ".join(replies_in(await response.text()))

    await text("BLI MED")
    await text("JA")
    await text("Kari")
    asked = await text("12.03.1990")
    assert "Hvilke aktiviteter liker du?" in asked
    question = (await question_ids(db, club))[-1]
    await admin.signed_in(OWNER)
    assert (await admin.post(f"/admin/settings/questions/{question}/remove")).status == 303
    # The app would see the change within seconds; the test doesn't wait for it.
    admin.client.app[CLUBS].ttl = 0
    # Name and birthday are given and no question is left: done, nothing asked again.
    done = await text("1 3")
    assert "Alt klart" in done, done
    assert "fornavn" not in done
    assert "bursdag" not in done
    answers = await db.run(
        lambda s: s.scalar(sa.select(sa.func.count()).select_from(ProfileAnswer))
    )
    assert answers == 0


# --- another club's rows -----------------------------------------------------------------------


async def test_another_clubs_coupons_cards_rules_and_periods_are_not_found(
    admin: Admin, owner: int, db: Database, club: int, other_club: int
) -> None:
    ids = await seed_rules(db, other_club)
    theirs = (await question_ids(db, other_club))[-1]
    await admin.signed_in(OWNER)
    before = await club_state(db, other_club)
    for path, data in ACTIONS:
        if "{" not in path or "{key}" in path:
            continue
        path = path.format(question=theirs, **ids)
        response = await admin.post(path, {k: v.format(**ids) for k, v in data.items()})
        assert response.status == 404, path
    assert (await admin.client.get(f"/admin/settings/questions/{theirs}/remove")).status == 404
    assert await club_state(db, other_club) == before


async def test_staff_cannot_see_the_page_that_removes_a_question(
    admin: Admin, staff: int, db: Database, club: int
) -> None:
    question = (await question_ids(db, club))[-1]
    await admin.signed_in(STAFF)
    assert (await admin.client.get(f"/admin/settings/questions/{question}/remove")).status == 403


async def test_a_coupon_is_headed_by_what_it_gives_as_a_member_reads_it(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    def work(session: Session) -> None:
        program = programs.get(session, club)
        assert program is not None
        coupons.create_template(
            session,
            program,
            key="hundred",
            kind=coupons.CAMPAIGN,
            benefit={"nb": "{amount} rabatt", "en": "{amount} off"},
            valid_days=30,
            discount_minor=10000,
        )

    await db.run(work)
    await admin.signed_in(OWNER)
    page = await (await admin.client.get("/admin/settings")).text()
    # Word for word the member's SMS ("100 kr rabatt", locales.benefit), the space no-break.
    assert "<h3>100\xa0kr rabatt</h3>" in page
    assert "{amount}" not in page.split('id="coupons"')[1].split("<form")[0]


# --- the automatic reply to a text not understood ---------------------------------------------


async def _sms(admin: Admin, body: str, sender: str = "+4791234567") -> str:
    form = twilio_form(sender, body)
    response = await admin.client.post(
        "/sms/twilio",
        data=form,
        headers={"X-Twilio-Signature": sign("http://127.0.0.1:8080/sms/twilio", form)},
    )
    assert response.status == 200, await response.text()
    return " ".join(replies_in(await response.text()))


async def _join(admin: Admin, sender: str = "+4791234567") -> None:
    for body in ("BLI MED", "JA", "Kari", "12.03.1990", "1 3"):
        await _sms(admin, body, sender)


async def test_the_owners_automatic_reply_is_what_a_member_gets(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    """The owner words the nb reply; a member's question then gets it with the club's name,
    and emptied again, the catalog's default."""
    admin.client.app[CLUBS].ttl = 0
    await _join(admin)
    await admin.signed_in(OWNER)
    page = await (await admin.client.get("/admin/settings")).text()
    assert 'id="auto-reply"' in page
    assert "Takk! Vi har sendt meldingen din til Torshov Sport" in page  # the default, shown
    wording = "Takk! {club} har fått meldingen din og svarer i morgen."
    response = await admin.post(
        "/admin/settings/auto-reply",
        {"auto_reply_nb": wording, "auto_reply_sv": "", "auto_reply_en": ""},
    )
    assert response.status == 303
    assert response.headers["Location"] == "/admin/settings?saved=auto-reply#auto-reply"
    assert (await club_state(db, club))["auto_reply"] == {"nb": wording}
    page = await (await admin.client.get("/admin/settings?saved=auto-reply")).text()
    assert "Takk! {club} har fått meldingen din og svarer i morgen.</textarea>" in page
    reply = await _sms(admin, "har dere åpent på søndag?")
    assert reply == "Takk! Torshov Sport har fått meldingen din og svarer i morgen."
    assert (await admin.post("/admin/settings/auto-reply", {"auto_reply_nb": "  "})).status == 303
    assert (await club_state(db, club))["auto_reply"] is None
    reply = await _sms(admin, "har dere åpent på lørdag?")
    assert reply.startswith("Takk! Vi har sendt meldingen din til Torshov Sport, og svarer")


async def test_an_automatic_reply_too_long_for_one_sms_is_refused_by_how_much(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    """Measured with the club's name at its longest (60 characters): 422, the error beside
    the language's field with how many characters too long, what was typed kept, nothing
    saved (the other languages either)."""
    await admin.signed_in(OWNER)
    before = await club_state(db, club)
    wording = "Thanks for writing to {club}! Someone from the shop reads every message " * 2
    longest = "Torshov Sport".ljust(programs.MAX_NAME, "x")
    over = over_one(" ".join(wording.split()).replace("{club}", longest))
    assert over > 0
    response = await admin.post(
        "/admin/settings/auto-reply",
        {"auto_reply_nb": "Hei fra {club}!", "auto_reply_sv": "", "auto_reply_en": wording},
    )
    assert response.status == 422
    page = await response.text()
    assert 'id="auto-reply-auto_reply_en-error"' in page
    assert f"er svaret {over} tegn for langt for én SMS" in page
    assert 'id="auto-reply-auto_reply_nb-error"' not in page
    assert "Hei fra {club}!</textarea>" in page  # what was typed, kept
    assert await club_state(db, club) == before


@pytest.mark.parametrize("wording", ["Hei {first_name}!", "Hei {club", "Pris: {0} kr", "{}"])
async def test_an_automatic_reply_with_another_placeholder_is_refused(
    admin: Admin, owner: int, db: Database, club: int, wording: str
) -> None:
    await admin.signed_in(OWNER)
    before = await club_state(db, club)
    response = await admin.post("/admin/settings/auto-reply", {"auto_reply_sv": wording})
    assert response.status == 422
    page = await response.text()
    assert 'id="auto-reply-auto_reply_sv-error"' in page
    assert await club_state(db, club) == before


async def test_staff_cannot_change_the_automatic_reply(
    admin: Admin, staff: int, db: Database, club: int
) -> None:
    await admin.signed_in(STAFF)
    before = await club_state(db, club)
    response = await admin.post("/admin/settings/auto-reply", {"auto_reply_nb": "Hei!"})
    assert response.status == 403
    assert await club_state(db, club) == before
