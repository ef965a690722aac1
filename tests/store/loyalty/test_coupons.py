"""Coupons: codes that cannot be misread, issued once per reason, valid in a window, used once."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from store.clubs import club_rules
from store.database import Database
from store.errors import Conflict, InvalidSetting, NotFound
from store.loyalty import coupons, ledger, perks, rewards
from tests.store.loyalty_helpers import at, club, coupons_of, error_of, member, template

T = at(2026, 5, 1)


def test_a_code_is_shown_in_two_halves() -> None:
    assert coupons.display("ABCD2345") == "ABCD-2345"
    assert coupons.display("SHORT") == "SHORT"


@pytest.mark.parametrize(
    "typed", ["ABCD2345", "abcd-2345", " abcd 2345 ", "Abcd_2345", "ab.cd-23 45"]
)
def test_what_is_typed_is_read_as_the_stored_code(typed: str) -> None:
    assert coupons.normalize(typed) == "ABCD2345"


def test_the_alphabet_has_no_characters_that_are_easily_misread() -> None:
    assert not set("01OIL") & set(coupons.ALPHABET)
    assert len(set(coupons.ALPHABET)) == len(coupons.ALPHABET)


async def test_issued_codes_are_unique_and_in_the_alphabet(loyalty_db: Database) -> None:
    def work(session) -> list[str]:
        program = club(session)
        m = member(session, program)
        welcome = template(session, program, coupons.CAMPAIGN)
        return [
            coupons.issue(session, program.id, m.id, welcome, f"campaign:{i}", T).code
            for i in range(60)
        ]

    codes = await loyalty_db.run(work)
    assert len(set(codes)) == 60
    for code in codes:
        assert len(code) == coupons.CODE_LENGTH
        assert set(code) <= set(coupons.ALPHABET)


async def test_issuing_for_the_same_reason_again_returns_the_first_coupon(
    loyalty_db: Database,
) -> None:
    def work(session) -> tuple:
        program = club(session)
        m = member(session, program)
        welcome = template(session, program, coupons.WELCOME, valid_days=30)
        first = coupons.issue(session, program.id, m.id, welcome, f"welcome:{m.id}", T)
        again = coupons.issue(
            session, program.id, m.id, welcome, f"welcome:{m.id}", T + dt.timedelta(days=3)
        )
        other = coupons.issue(session, program.id, m.id, welcome, "campaign:spring", T)
        return (
            (first.id, first.code, first.valid_from, first.valid_until),
            (again.id, again.code, again.valid_from, again.valid_until),
            other.id,
            len(coupons_of(session, m.id)),
        )

    first, again, other, held = await loyalty_db.run(work)
    assert again == first
    assert first[2:] == (T, T + dt.timedelta(days=30))
    assert other != first[0]
    assert held == 2


async def test_a_coupon_is_valid_within_its_window_until_redeemed(loyalty_db: Database) -> None:
    """valid_for lists the usable coupons, soonest to end first: not before they start, not at
    or after their end, not once redeemed."""

    def work(session) -> dict[str, list[str]]:
        program = club(session)
        m = member(session, program)
        short = template(session, program, coupons.CAMPAIGN, valid_days=7, key="short")
        long = template(session, program, coupons.CAMPAIGN, valid_days=30, key="long")
        redeemed = template(session, program, coupons.CAMPAIGN, valid_days=30, key="redeemed")
        coupons.issue(session, program.id, m.id, long, "a", T)
        coupons.issue(session, program.id, m.id, short, "b", T)
        used = coupons.issue(session, program.id, m.id, redeemed, "c", T)
        coupons.redeem(session, program.id, used.code, T + dt.timedelta(days=1), by="till 1")

        def keys(now: dt.datetime) -> list[str]:
            return [h.template.key for h in coupons.valid_for(session, m.id, now)]

        return {
            "before": keys(T - dt.timedelta(seconds=1)),
            "start": keys(T),
            "day 6": keys(T + dt.timedelta(days=6, hours=23)),
            "day 7": keys(T + dt.timedelta(days=7)),
            "day 30": keys(T + dt.timedelta(days=30)),
        }

    seen = await loyalty_db.run(work)
    assert seen == {
        "before": [],
        "start": ["short", "long"],
        "day 6": ["short", "long"],
        "day 7": ["long"],
        "day 30": [],
    }


async def test_redeeming_records_who_and_when_and_accepts_typed_codes(loyalty_db: Database) -> None:
    def work(session) -> tuple:
        program = club(session)
        m = member(session, program)
        coupon = coupons.issue(
            session, program.id, m.id, template(session, program, coupons.WELCOME), "w", T
        )
        typed = coupons.display(coupon.code).lower()
        held = coupons.redeem(
            session, program.id, typed, T + dt.timedelta(hours=1), by="till 4", ref="R9"
        )
        return (
            held.coupon.code == coupon.code,
            held.coupon.redeemed_at,
            held.coupon.redeemed_by,
            held.coupon.redeemed_ref,
            coupons.state(held.coupon, T + dt.timedelta(hours=2)),
            held.benefit("nb"),
            held.benefit("sv"),
        )

    same, redeemed_at, by, ref, state, nb, sv = await loyalty_db.run(work)
    assert same
    assert (redeemed_at, by, ref, state) == (T + dt.timedelta(hours=1), "till 4", "R9", "redeemed")
    assert (nb, sv) == ("en welcome-godbit", "a welcome treat")  # no Swedish: English


async def test_a_coupon_is_redeemed_once_and_only_while_valid(loyalty_db: Database) -> None:
    def work(session) -> dict[str, object]:
        program = club(session)
        other_club = club(session)
        m = member(session, program)
        kind = template(session, program, coupons.CAMPAIGN, valid_days=10)
        once = coupons.issue(session, program.id, m.id, kind, "once", T)
        late = coupons.issue(session, program.id, m.id, kind, "late", T)
        early = coupons.issue(session, program.id, m.id, kind, "early", T + dt.timedelta(days=1))
        coupons.redeem(session, program.id, once.code, T, by="till")
        refused = {
            name: error_of(
                lambda code=code, now=now, program_id=program_id: coupons.redeem(
                    session, program_id, code, now, by="till"
                )
            )
            for name, code, now, program_id in (
                ("again", once.code, T, program.id),
                ("late", late.code, T + dt.timedelta(days=10), program.id),
                ("early", early.code, T, program.id),
                ("unknown", "ZZZZ-ZZZZ", T, program.id),
                ("other club", late.code, T, other_club.id),
            )
        }
        # The failed attempts changed nothing: the late coupon is still just expired.
        refused["late state"] = coupons.state(
            coupons.find(session, program.id, late.code).coupon, T + dt.timedelta(days=10)
        )
        return refused

    refused = await loyalty_db.run(work)
    assert {
        name: (type(e).__name__, getattr(e, "reason", None))
        for name, e in refused.items()
        if name != "late state"
    } == {
        "again": ("Conflict", "coupon_redeemed"),
        "late": ("Conflict", "coupon_expired"),
        "early": ("Conflict", "coupon_not_yet_valid"),
        "unknown": ("NotFound", None),
        "other club": ("NotFound", None),
    }
    assert refused["late state"] == "expired"


async def test_concurrent_redemptions_of_one_code_succeed_exactly_once(
    loyalty_db: Database,
) -> None:
    """Eight tills redeem the same code at once: one gets the coupon, seven get Conflict (on
    PostgreSQL each attempt is its own transaction; the conditional UPDATE decides)."""

    def setup(session) -> tuple[int, str]:
        program = club(session)
        m = member(session, program)
        coupon = coupons.issue(
            session, program.id, m.id, template(session, program, coupons.WELCOME), "w", T
        )
        return program.id, coupon.code

    program_id, code = await loyalty_db.run(setup)
    results = await asyncio.gather(
        *(
            loyalty_db.run(
                lambda s, till=till: coupons.redeem(s, program_id, code, T, by=f"till {till}")
            )
            for till in range(8)
        ),
        return_exceptions=True,
    )
    won = [r for r in results if isinstance(r, coupons.Held)]
    lost = [r for r in results if isinstance(r, Conflict)]
    assert len(won) == 1
    assert len(lost) == 7
    assert {e.reason for e in lost} == {"coupon_redeemed"}
    redeemed_by = await loyalty_db.run(
        lambda s: coupons.find(s, program_id, code).coupon.redeemed_by
    )
    assert redeemed_by == won[0].coupon.redeemed_by


async def test_templates_are_checked(loyalty_db: Database) -> None:
    def work(session) -> list[Exception | None]:
        program = club(session)
        refused = []
        for kwargs in (
            {"kind": "voucher"},
            {"kind": coupons.REWARD},
            {"kind": coupons.REWARD, "points_cost": 0},
            {"kind": coupons.WELCOME, "points_cost": 100},
            {"kind": coupons.WELCOME, "valid_days": 0},
            {"kind": coupons.WELCOME, "valid_days": 3661},
            {"kind": coupons.WELCOME, "benefit": {}},
            {"kind": coupons.WELCOME, "benefit": {"en": "{amount} off"}},
        ):
            args = {"key": "k", "benefit": {"en": "10% off"}, "valid_days": 30, **kwargs}
            refused.append(
                error_of(lambda args=args: coupons.create_template(session, program, **args))
            )
        return refused

    refused = await loyalty_db.run(work)
    assert all(isinstance(e, InvalidSetting) for e in refused)
    assert [e.field for e in refused] == [
        "kind",
        "points_cost",
        "points_cost",
        "points_cost",
        "valid_days",
        "valid_days",
        "benefit",
        "benefit",
    ]


async def test_rewards_are_listed_by_position_then_cost_and_only_active(
    loyalty_db: Database,
) -> None:
    def work(session) -> tuple[list[str], str | None, str | None]:
        program = club(session)
        template(session, program, coupons.REWARD, key="500", points_cost=500)
        template(session, program, coupons.REWARD, key="100", points_cost=100)
        template(session, program, coupons.REWARD, key="first", points_cost=900, position=-1)
        template(session, program, coupons.REWARD, key="gone", points_cost=50).active = False
        template(session, program, coupons.WELCOME, key="welcome")
        session.flush()
        birthday = coupons.template_for(session, program.id, coupons.BIRTHDAY)
        welcome = coupons.template_for(session, program.id, coupons.WELCOME)
        return (
            [t.key for t in coupons.rewards(session, program.id)],
            birthday.key if birthday else None,
            welcome.key if welcome else None,
        )

    assert await loyalty_db.run(work) == (["first", "100", "500"], None, "welcome")


# --- editing and retiring templates -----------------------------------------------------------


async def test_an_edited_template_gives_new_coupons_its_terms_and_old_ones_keep_theirs(
    loyalty_db: Database,
) -> None:
    """Benefit, discount, cost and validity change; key and kind stay; a coupon issued before
    keeps its end date and reads with the new wording."""

    def work(session) -> tuple:
        program = club(session)
        m = member(session, program)
        cap = template(session, program, coupons.REWARD, key="cap", points_cost=500)
        coupons.issue(session, program.id, m.id, cap, "reward:before", T)
        coupons.edit_template(
            session,
            program.id,
            cap.id,
            benefit={"nb": " en lue ", "en": "a beanie", "sv": ""},
            valid_days=10,
            discount_minor=5000,
            points_cost=800,
        )
        after = coupons.issue(session, program.id, m.id, cap, "reward:after", T)
        held = {h.coupon.source: h for h in coupons.valid_for(session, m.id, T)}
        return (
            (cap.key, cap.kind, cap.benefit, cap.discount_minor, cap.points_cost),
            held["reward:before"].coupon.valid_until - T,
            after.valid_until - T,
            held["reward:before"].benefit("nb"),
            [t.points_cost for t in coupons.rewards(session, program.id)],
        )

    edited, old_validity, new_validity, wording, costs = await loyalty_db.run(work)
    assert edited == ("cap", "reward", {"nb": "en lue", "en": "a beanie"}, 5000, 800)
    assert old_validity == dt.timedelta(days=30)
    assert new_validity == dt.timedelta(days=10)
    assert wording == "en lue"
    assert costs == [800]


@pytest.mark.parametrize(
    ("kind", "changes", "field"),
    [
        (coupons.REWARD, {"points_cost": None}, "points_cost"),
        (coupons.WELCOME, {"points_cost": 10}, "points_cost"),
        (coupons.WELCOME, {"valid_days": 0}, "valid_days"),
        (coupons.WELCOME, {"discount_percent": 0}, "discount_percent"),
        (coupons.WELCOME, {"discount_percent": 101}, "discount_percent"),
        (coupons.WELCOME, {"discount_minor": 0}, "discount_minor"),
        (coupons.WELCOME, {"benefit": {"en": " "}}, "benefit"),
        (coupons.WELCOME, {"benefit": {"en": "{amount} off"}}, "benefit"),
    ],
)
async def test_an_edit_with_a_bad_field_names_it_and_changes_nothing(
    loyalty_db: Database, kind: str, changes: dict, field: str
) -> None:
    def work(session) -> tuple:
        program = club(session)
        cost = 100 if kind == coupons.REWARD else None
        made = template(session, program, kind, points_cost=cost)
        values = {"benefit": {"en": "new"}, "valid_days": 5, "points_cost": cost, **changes}
        refused = error_of(lambda: coupons.edit_template(session, program.id, made.id, **values))
        session.refresh(made)
        return refused, (made.benefit, made.valid_days, made.points_cost)

    refused, after = await loyalty_db.run(work)
    assert isinstance(refused, InvalidSetting)
    assert refused.field == field
    assert after[1:] == (30, 100 if kind == coupons.REWARD else None)
    assert after[0]["en"] == f"a {kind} treat"


async def test_another_clubs_template_is_not_found(loyalty_db: Database) -> None:
    def work(session) -> list[Exception | None]:
        program, elsewhere = club(session), club(session)
        theirs = template(session, elsewhere, coupons.WELCOME)
        return [
            error_of(
                lambda: coupons.edit_template(
                    session, program.id, theirs.id, benefit={"en": "x"}, valid_days=5
                )
            ),
            error_of(
                lambda: coupons.set_template_active(session, program.id, theirs.id, active=False)
            ),
        ]

    assert all(isinstance(e, NotFound) for e in await loyalty_db.run(work))


async def test_a_retired_template_is_neither_issued_nor_claimable_until_it_is_back(
    loyalty_db: Database,
) -> None:
    """Retired: no welcome coupon on joining, no reward to list or claim, no birthday coupon;
    a coupon issued before stays valid. Brought back, all of it again."""

    def work(session) -> tuple:
        program = club(session)
        birthday = T.date().replace(year=1990)
        m = member(session, program, birthday=birthday)
        welcome = template(session, program, coupons.WELCOME)
        cap = template(session, program, coupons.REWARD, key="cap", points_cost=10)
        gift = template(session, program, coupons.BIRTHDAY)
        ledger.credit(session, program, m.id, 100, ledger.BONUS, T, reason="test")
        kept = coupons.issue(session, program.id, m.id, cap, "reward:kept", T)
        for made in (welcome, cap, gift):
            coupons.set_template_active(session, program.id, made.id, active=False)
        retired = (
            perks.on_joined(session, program, m, T, first_time=True).welcome,
            coupons.rewards(session, program.id),
            coupons.club_templates(session, program.id).first_of_kind,
            error_of(lambda: rewards.claim(session, program, m.id, cap.id, T)),
            perks.birthday_coupons(session, program, T),
            [v.code for v in coupons.valid_codes(session, m.id, T)],
        )
        for made in (welcome, cap, gift):
            coupons.set_template_active(session, program.id, made.id, active=True)
        back = (
            perks.on_joined(session, program, m, T, first_time=True).welcome is not None,
            [t.key for t in coupons.rewards(session, program.id)],
            rewards.claim(session, program, m.id, cap.id, T).held.template.key,
            perks.birthday_coupons(session, program, T),
        )
        return kept.code, retired, back

    kept, retired, back = await loyalty_db.run(work)
    welcome, listed, first_of_kind, claimed, birthdays, valid = retired
    assert (welcome, listed, first_of_kind, birthdays) == (None, [], {}, 0)
    assert isinstance(claimed, NotFound)
    assert valid == [kept]
    assert back == (True, ["cap"], "cap", 1)


async def test_the_coupon_of_an_active_punch_card_is_not_retired(loyalty_db: Database) -> None:
    """Refused while a card that is on gives it (the card would punch for nothing); once the
    card is off, retired."""

    def work(session) -> tuple:
        program = club(session)
        free = template(session, program, coupons.PUNCH)
        card = club_rules.add_punch_card(
            session, program, category="Kaffe", every=5, template_id=free.id
        )
        refused = error_of(
            lambda: coupons.set_template_active(session, program.id, free.id, active=False)
        )
        still = free.active
        club_rules.set_punch_card_active(session, program.id, card.id, active=False)
        coupons.set_template_active(session, program.id, free.id, active=False)
        return refused, still, free.active

    refused, still, after = await loyalty_db.run(work)
    assert isinstance(refused, InvalidSetting)
    assert refused.field == "active"
    assert (still, after) == (True, False)


async def test_a_templates_key_is_unique_in_the_club(loyalty_db: Database) -> None:
    def work(session) -> tuple:
        program, elsewhere = club(session), club(session)
        template(session, program, coupons.WELCOME, key="hello")
        same_elsewhere = template(session, elsewhere, coupons.WELCOME, key="hello").key
        return same_elsewhere, error_of(
            lambda: template(session, program, coupons.CAMPAIGN, key="hello")
        )

    same_elsewhere, refused = await loyalty_db.run(work)
    assert same_elsewhere == "hello"
    assert isinstance(refused, InvalidSetting)
    assert refused.field == "key"


async def test_a_code_drawn_twice_is_drawn_again_and_a_reason_seen_before_returns_its_coupon(
    loyalty_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The insert tells the two apart: the same source gives back the first coupon; a new
    source whose random code is taken gets another code."""
    draws = iter("A" * 8 * 3 + "B" * 8)  # the third draw is the first one's code again
    monkeypatch.setattr(coupons.secrets, "choice", lambda alphabet: next(draws))

    def work(session) -> tuple:
        program = club(session)
        gift = template(session, program, coupons.CAMPAIGN)
        first = member(session, program)
        second = member(session, program)
        one = coupons.issue(session, program.id, first.id, gift, "test:1", at(2026, 3, 1))
        again = coupons.issue(session, program.id, first.id, gift, "test:1", at(2026, 3, 2))
        other = coupons.issue(session, program.id, second.id, gift, "test:2", at(2026, 3, 1))
        return one.id, one.code, again.id, again.code, other.code, other.member_id, second.id

    one_id, one_code, again_id, again_code, other_code, other_member, second = await loyalty_db.run(
        work
    )
    assert (again_id, again_code) == (one_id, one_code)
    assert one_code == "A" * coupons.CODE_LENGTH
    assert other_code == "B" * coupons.CODE_LENGTH
    assert other_member == second
