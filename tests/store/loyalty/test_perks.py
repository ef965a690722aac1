"""What joining, a friend's referral and a birthday give a member; enrolment at the till; the
member's standing at a glance."""

from __future__ import annotations

import asyncio
import datetime as dt

from sqlalchemy import select

from store.database import Database
from store.loyalty import coupons, ledger, perks, tiers
from store.members import enrolment, members
from store.models import Coupon, LedgerEntry, Member, Program
from tests.store.loyalty_helpers import T0, at, buy, club, coupons_of, member, template


def sources(session, member_id: int) -> list[str]:
    return [c.source for c in coupons_of(session, member_id)]


def bonus_points(session, member_id: int) -> list[tuple[int, str | None]]:
    return [
        (e.points, e.reason)
        for e in session.scalars(
            select(LedgerEntry)
            .where(LedgerEntry.member_id == member_id, LedgerEntry.kind == ledger.BONUS)
            .order_by(LedgerEntry.id)
        )
    ]


async def test_joining_gives_a_referral_code_and_the_welcome_coupon_once(
    loyalty_db: Database,
) -> None:
    def work(session) -> tuple:
        program = club(session)
        template(session, program, coupons.WELCOME, valid_days=30, key="welcome")
        m = member(session, program)
        first = perks.on_joined(session, program, m, T0, first_time=True)
        code = m.referral_code
        again = perks.on_joined(session, program, m, T0 + dt.timedelta(days=40), first_time=False)
        return first.welcome, code, m.referral_code, again.welcome, sources(session, m.id), m.id

    first, code, code_again, again, issued, member_id = await loyalty_db.run(work)
    assert first is not None
    assert first.template.key == "welcome"
    assert first.coupon.valid_until == T0 + dt.timedelta(days=30)
    assert len(code) == perks.REFERRAL_CODE_LENGTH
    assert set(code) <= set(coupons.ALPHABET)
    assert code_again == code
    assert again is None  # the one welcome coupon has run out: nothing new is given
    assert issued == [f"welcome:{member_id}"]


async def test_joining_again_shows_the_welcome_coupon_only_while_it_can_be_used(
    loyalty_db: Database,
) -> None:
    def work(session) -> tuple:
        program = club(session)
        template(session, program, coupons.WELCOME, valid_days=30)
        m = member(session, program)
        first = perks.on_joined(session, program, m, T0, first_time=True)
        still = perks.on_joined(session, program, m, T0 + dt.timedelta(days=1), first_time=False)
        coupons.redeem(session, program.id, first.welcome.coupon.code, T0, by="till")
        used = perks.on_joined(session, program, m, T0 + dt.timedelta(days=2), first_time=False)
        return first.welcome.coupon.id, still.welcome and still.welcome.coupon.id, used.welcome

    first, still, used = await loyalty_db.run(work)
    assert still == first
    assert used is None


async def test_a_club_without_a_welcome_coupon_gives_none(loyalty_db: Database) -> None:
    def work(session) -> tuple:
        program = club(session)
        m = member(session, program)
        return perks.on_joined(session, program, m, T0, first_time=True).welcome, m.referral_code

    welcome, code = await loyalty_db.run(work)
    assert welcome is None
    assert code  # the referral code is made all the same


def referral_club(session, trigger: str, points: int = 0, with_coupon: bool = True) -> Program:
    program = club(session, referral_trigger=trigger, referral_points=points)
    if with_coupon:
        template(session, program, coupons.REFERRAL, key="friend")
    return program


def friend_of(session, program: Program) -> Member:
    """An active member who has joined and so has a referral code."""
    friend = member(session, program)
    perks.on_joined(session, program, friend, T0, first_time=True)
    return friend


async def test_a_referral_on_signup_rewards_both_once(loyalty_db: Database) -> None:
    """JOIN with a friend's code (typed in lower case with a dash): both get the referral coupon
    and the club's referral points when the new member joins; joining again and rewarding again
    give nothing more."""

    def work(session) -> tuple:
        program = referral_club(session, perks.ON_SIGNUP, points=200)
        friend = friend_of(session, program)
        new = member(session, program)
        typed = f"{friend.referral_code[:3]}-{friend.referral_code[3:]}".lower()
        perks.on_joined(session, program, new, T0, first_time=True, referral=typed)
        perks.on_joined(session, program, new, T0, first_time=True, referral=typed)
        again = perks.reward_referral(session, program, new.id, T0)
        return (
            new.referred_by_id == friend.id,
            again,
            sources(session, new.id),
            sources(session, friend.id),
            bonus_points(session, new.id),
            bonus_points(session, friend.id),
            ledger.balance(session, friend.id, T0),
            new.id,
            friend.id,
        )

    (
        referred,
        again,
        new_coupons,
        friend_coupons,
        new_points,
        friend_points,
        balance,
        new,
        friend,
    ) = await loyalty_db.run(work)
    assert referred
    assert again is False
    assert new_coupons == [f"referral:{new}"]
    assert friend_coupons == [f"referral:{new}:friend"]
    assert new_points == friend_points == [(200, f"referral:{new}")]
    assert balance == 200
    assert friend != new


async def test_a_referral_with_points_only_is_also_given_once(loyalty_db: Database) -> None:
    def work(session) -> tuple:
        program = referral_club(session, perks.ON_SIGNUP, points=150, with_coupon=False)
        friend = friend_of(session, program)
        new = member(session, program)
        perks.on_joined(session, program, new, T0, first_time=True, referral=friend.referral_code)
        rewarded_again = perks.reward_referral(session, program, new.id, T0)
        return (
            rewarded_again,
            bonus_points(session, new.id),
            bonus_points(session, friend.id),
            sources(session, new.id),
        )

    again, new_points, friend_points, new_coupons = await loyalty_db.run(work)
    assert again is False
    assert len(new_points) == len(friend_points) == 1
    assert new_coupons == []


async def test_a_referral_counts_only_on_the_first_join_with_a_real_friends_code(
    loyalty_db: Database,
) -> None:
    """No credit for: a member joining again (JOIN after STOP), a code no one has, the code of
    a friend who has left, or the member's own code."""

    def work(session) -> dict[str, int | None]:
        program = referral_club(session, perks.ON_SIGNUP, points=100)
        friend = friend_of(session, program)
        gone = friend_of(session, program)
        members.set_status(gone, members.STOPPED, T0)
        rejoining = member(session, program)
        unknown = member(session, program)
        left = member(session, program)
        selfish = member(session, program)
        perks.referral_code(session, selfish)
        session.flush()
        perks.on_joined(
            session, program, rejoining, T0, first_time=False, referral=friend.referral_code
        )
        perks.on_joined(session, program, unknown, T0, first_time=True, referral="ZZZZZZ")
        perks.on_joined(session, program, left, T0, first_time=True, referral=gone.referral_code)
        perks.on_joined(
            session, program, selfish, T0, first_time=True, referral=selfish.referral_code
        )
        return {
            "rejoining": rejoining.referred_by_id,
            "unknown": unknown.referred_by_id,
            "left": left.referred_by_id,
            "selfish": selfish.referred_by_id,
            "friend's points": ledger.balance(session, friend.id, T0),
            "selfish's points": ledger.balance(session, selfish.id, T0),
        }

    assert await loyalty_db.run(work) == {
        "rejoining": None,
        "unknown": None,
        "left": None,
        "selfish": None,
        "friend's points": 0,
        "selfish's points": 0,
    }


async def test_a_referral_on_first_purchase_rewards_both_then_and_only_then(
    loyalty_db: Database,
) -> None:
    """With the purchase trigger nothing is given at joining; the new member's first purchase
    rewards both, linked to that purchase; the till sees only the buyer's own coupon."""

    def work(session) -> tuple:
        program = referral_club(session, perks.ON_PURCHASE, points=100)
        friend = friend_of(session, program)
        new = member(session, program)
        perks.on_joined(session, program, new, T0, first_time=True, referral=friend.referral_code)
        at_join = (sources(session, new.id), ledger.balance(session, friend.id, T0))
        first = buy(session, program, new.id, 1000, at(2026, 4, 1))
        second = buy(session, program, new.id, 1000, at(2026, 4, 2))
        issued = {
            c.source: c.purchase_id
            for c in session.scalars(select(Coupon).where(Coupon.program_id == program.id))
            if c.source.startswith("referral")
        }
        return (
            at_join,
            [(h.coupon.member_id, h.coupon.source) for h in first.coupons],
            second.coupons,
            issued,
            first.purchase.id,
            ledger.balance(session, friend.id, at(2026, 4, 2)),
            first.balance,
            new.id,
        )

    (
        at_join,
        till_sees,
        second,
        issued,
        purchase_id,
        friend_balance,
        balance,
        new,
    ) = await loyalty_db.run(work)
    assert at_join == ([], 0)
    assert till_sees == [(new, f"referral:{new}")]
    assert second == []
    assert issued == {f"referral:{new}": purchase_id, f"referral:{new}:friend": purchase_id}
    assert friend_balance == 100
    assert balance == 10 + 100


async def test_a_member_nobody_referred_gets_no_referral_reward(loyalty_db: Database) -> None:
    def work(session) -> bool:
        program = referral_club(session, perks.ON_PURCHASE, points=100)
        return perks.reward_referral(session, program, member(session, program).id, T0)

    assert await loyalty_db.run(work) is False


async def test_concurrent_first_purchases_reward_a_referral_once(loyalty_db: Database) -> None:
    def setup(session) -> tuple[int, int, int]:
        program = referral_club(session, perks.ON_PURCHASE, points=100)
        friend = friend_of(session, program)
        new = member(session, program)
        perks.on_joined(session, program, new, T0, first_time=True, referral=friend.referral_code)
        return program.id, new.id, friend.id

    program_id, new_id, friend_id = await loyalty_db.run(setup)

    def purchase(n: int):
        def work(session) -> None:
            program = session.get(Program, program_id)
            buy(session, program, new_id, 1000, at(2026, 4, 1), transaction_id=f"T{n}")

        return work

    await asyncio.gather(*(loyalty_db.run(purchase(n)) for n in range(4)))

    def read(session) -> tuple:
        return (
            bonus_points(session, new_id),
            bonus_points(session, friend_id),
            len(coupons_of(session, friend_id)),
        )

    new_points, friend_points, friend_coupons = await loyalty_db.run(read)
    assert new_points == friend_points == [(100, f"referral:{new_id}")]
    assert friend_coupons == 1


def birthday_club(session, zone: str | None = None) -> Program:
    program = club(session, timezone=zone)
    template(session, program, coupons.BIRTHDAY, key="cake")
    return program


async def test_a_birthday_coupon_once_a_year_on_the_day_in_the_clubs_zone(
    loyalty_db: Database,
) -> None:
    def work(session) -> dict[str, int]:
        program = birthday_club(session)
        today = member(session, program, birthday=dt.date(1990, 3, 12))
        member(session, program, birthday=dt.date(1990, 3, 13))
        member(session, program, birthday=dt.date(1990, 3, 12), status=members.STOPPED)
        member(session, program)  # no birthday given
        runs = {
            # 22:30 UTC on the 11th is 23:30 in Oslo: not yet.
            "day before": perks.birthday_coupons(session, program, at(2026, 3, 11, 22, 30)),
            # 23:30 UTC on the 11th is already the 12th in Oslo.
            "midnight": perks.birthday_coupons(session, program, at(2026, 3, 11, 23, 30)),
            "same day": perks.birthday_coupons(session, program, at(2026, 3, 11, 23, 30)),
            "later that day": perks.birthday_coupons(session, program, at(2026, 3, 12, 20)),
            "next year": perks.birthday_coupons(session, program, at(2027, 3, 12, 9)),
        }
        runs["held"] = len(coupons_of(session, today.id))
        return runs

    assert await loyalty_db.run(work) == {
        "day before": 0,
        "midnight": 1,
        "same day": 0,
        "later that day": 0,
        "next year": 1,
        "held": 2,
    }


async def test_a_29_february_birthday_is_kept_on_the_28th_in_other_years(
    loyalty_db: Database,
) -> None:
    def work(session) -> tuple:
        program = birthday_club(session)
        leapling = member(session, program, birthday=dt.date(2000, 2, 29))
        member(session, program, birthday=dt.date(2001, 2, 28))
        given = {
            "28 Feb 2026": perks.birthday_coupons(session, program, at(2026, 2, 28, 9)),
            "1 Mar 2026": perks.birthday_coupons(session, program, at(2026, 3, 1, 9)),
            "28 Feb 2028": perks.birthday_coupons(session, program, at(2028, 2, 28, 9)),
            "29 Feb 2028": perks.birthday_coupons(session, program, at(2028, 2, 29, 9)),
        }
        return given, sources(session, leapling.id), leapling.id

    given, leapling_coupons, leapling = await loyalty_db.run(work)
    # 2026: both on the 28th; 2028 is a leap year: the 28th for one, the 29th for the other.
    assert given == {"28 Feb 2026": 2, "1 Mar 2026": 0, "28 Feb 2028": 1, "29 Feb 2028": 1}
    assert leapling_coupons == [f"birthday:{leapling}:2026", f"birthday:{leapling}:2028"]


async def test_no_birthday_template_means_no_birthday_coupons(loyalty_db: Database) -> None:
    def work(session) -> int:
        program = club(session)
        member(session, program, birthday=dt.date(1990, 3, 12))
        return perks.birthday_coupons(session, program, at(2026, 3, 12))

    assert await loyalty_db.run(work) == 0


async def test_the_summary_gives_balance_tier_and_next_expiry(loyalty_db: Database) -> None:
    def work(session) -> perks.Summary:
        program = club(session, points_lifetime_months=12)
        tiers.set_ladder(session, program, tiers.DEFAULT_LADDER)
        m = member(session, program)
        buy(session, program, m.id, 125000, at(2026, 1, 10))
        buy(session, program, m.id, 30000, at(2026, 2, 10))
        return perks.summary(session, program, m.id, perks.tier_id_of(session, m.id), T0)

    summary = await loyalty_db.run(work)
    assert summary.balance == 1550
    assert summary.standing.qualifying == 1550
    assert summary.standing.tier.threshold == 0
    assert summary.standing.to_next == 450
    assert summary.expiry == ledger.Expiry(1250, dt.datetime(2027, 1, 31, 23, tzinfo=dt.UTC))


def enrol(session, program_id: int, phone: str, now: dt.datetime, **extra) -> enrolment.Enrolled:
    return enrolment.enrol(
        session,
        session.get(Program, program_id),
        phone,
        wording_id="pos_consent",
        wording_language="nb",
        wording_text="Ja takk til SMS fra Torshov Sport",
        channel="pos",
        evidence="till 3, receipt 991",
        now=now,
        **extra,
    )


async def test_enrolment_at_the_till_joins_once_with_the_welcome_coupon(
    loyalty_db: Database,
) -> None:
    def setup(session) -> int:
        program = club(session)
        template(session, program, coupons.WELCOME, key="welcome")
        return program.id

    program_id = await loyalty_db.run(setup)

    def first(session) -> tuple:
        enrolled = enrol(session, program_id, "+4790000001", T0, language="nb", first_name="Kari")
        m = enrolled.member
        return (
            enrolled.joined_now,
            enrolled.perks.welcome.template.key,
            (m.status, m.language, m.first_name, m.joined_at),
            bool(m.referral_code),
        )

    def again(session) -> tuple:
        enrolled = enrol(session, program_id, "+4790000001", T0 + dt.timedelta(days=1))
        return enrolled.joined_now, enrolled.perks, enrolled.member.joined_at

    assert await loyalty_db.run(first) == (True, "welcome", ("active", "nb", "Kari", T0), True)
    assert await loyalty_db.run(again) == (False, None, T0)


async def test_enrolment_after_stop_rejoins_without_a_second_referral(loyalty_db: Database) -> None:
    def work(session) -> tuple:
        program = referral_club(session, perks.ON_SIGNUP, points=100)
        friend = friend_of(session, program)
        returning = member(session, program)
        perks.on_joined(session, program, returning, T0, first_time=True)
        members.set_status(returning, members.STOPPED, T0 + dt.timedelta(days=1))
        session.flush()
        enrolled = enrol(
            session,
            program.id,
            returning.phone,
            T0 + dt.timedelta(days=2),
            referral=friend.referral_code,
        )
        return (
            enrolled.joined_now,
            enrolled.member.status,
            enrolled.member.referred_by_id,
            ledger.balance(session, friend.id, T0 + dt.timedelta(days=2)),
        )

    assert await loyalty_db.run(work) == (True, "active", None, 0)


async def test_enrolment_with_a_friends_code_credits_the_friend(loyalty_db: Database) -> None:
    def work(session) -> tuple:
        program = referral_club(session, perks.ON_SIGNUP, points=100)
        friend = friend_of(session, program)
        enrolled = enrol(session, program.id, "+4790000002", T0, referral=friend.referral_code)
        return enrolled.member.referred_by_id == friend.id, ledger.balance(session, friend.id, T0)

    assert await loyalty_db.run(work) == (True, 100)


async def test_concurrent_enrolments_of_one_number_make_one_member(loyalty_db: Database) -> None:
    """Tills enrolling the same number at once: one member, one joins now, one welcome."""
    attempts = 4

    def setup(session) -> int:
        program = club(session)
        template(session, program, coupons.WELCOME)
        return program.id

    program_id = await loyalty_db.run(setup)
    results = await asyncio.gather(
        *(
            loyalty_db.run(lambda s: enrol(s, program_id, "+4790000003", T0).joined_now)
            for _ in range(attempts)
        )
    )

    def read(session) -> tuple[int, int]:
        found = session.scalars(
            select(Member).where(Member.program_id == program_id, Member.phone == "+4790000003")
        ).all()
        return len(found), len(coupons_of(session, found[0].id))

    assert sorted(results) == [False] * (attempts - 1) + [True]
    assert await loyalty_db.run(read) == (1, 1)
