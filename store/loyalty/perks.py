"""What joining, a birthday and a friend's referral give a member, and their standing at a
glance (the POINTS and COUPONS answers)."""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import and_, bindparam, exists, func, select
from sqlalchemy.orm import Session

from store.database import plain_rows
from store.loyalty import coupons, ledger, tiers
from store.models import LedgerEntry, Member, Program
from store.states import MemberStatus

ON_SIGNUP = "signup"
ON_PURCHASE = "purchase"
REFERRAL_TRIGGERS = (ON_SIGNUP, ON_PURCHASE)
REFERRAL_CODE_LENGTH = 6


def tier_id_of(session: Session, member_id: int) -> int | None:
    return session.connection().execute(_TIER_ID, {"member_id": member_id}).scalar()


_TIER_ID = select(Member.__table__.c.tier_id).where(Member.__table__.c.id == bindparam("member_id"))


def referral_code(session: Session, member: Member) -> str:
    """The member's own code for friends (JOIN CODE), made the first time it is needed."""
    if member.referral_code:
        return member.referral_code
    conn = session.connection()
    while True:
        code = "".join(secrets.choice(coupons.ALPHABET) for _ in range(REFERRAL_CODE_LENGTH))
        if not plain_rows(conn, _CODE_TAKEN, {"program_id": member.program_id, "code": code}):
            member.referral_code = code
            return code


_CODE_TAKEN = select(Member.__table__.c.id).where(
    Member.__table__.c.program_id == bindparam("program_id"),
    Member.__table__.c.referral_code == bindparam("code"),
)


def referrer(session: Session, program_id: int, code: str) -> int | None:
    """The active member whose referral code this is."""
    return session.scalar(
        select(Member.id).where(
            Member.program_id == program_id,
            Member.referral_code == coupons.normalize(code),
            Member.status == MemberStatus.ACTIVE,
        )
    )


@dataclass(frozen=True, slots=True)
class Perks:
    """What joining gave: the welcome coupon, if the club has one."""

    welcome: coupons.Held | None


def on_joined(
    session: Session,
    program: Program,
    member: Member,
    now: dt.datetime,
    *,
    first_time: bool,
    referral: str | None = None,
    templates: coupons.ClubTemplates | None = None,
    asks_birthday: bool = False,
) -> Perks:
    """A member gave consent: the welcome coupon (once per member, ever), their referral code,
    and the referral credited when a friend's code came with the JOIN.

    `templates`: the club's coupon templates, if the caller keeps them in memory.
    `asks_birthday`: the sign-up questions that follow (by SMS) ask the birthday, whose answer
    may still turn the member away as under the club's minimum age: the referral then waits
    for `signed_up`."""
    referral_code(session, member)
    if first_time and referral and member.referred_by_id is None:
        friend = referrer(session, program.id, referral)
        if friend is not None and friend != member.id:
            member.referred_by_id = friend
    welcome = None
    if templates is None:
        template = coupons.template_for(session, program.id, coupons.WELCOME)
    else:
        template = templates.first_of_kind.get(coupons.WELCOME)
    if template is not None:
        source = f"welcome:{member.id}"
        coupon = coupons.issue(session, program.id, member.id, template, source, now)
        if coupon.redeemed_at is None and coupon.valid_until > now:
            welcome = coupons.Held(coupon, template)
    if not (asks_birthday and member.birthday is None):
        signed_up(session, program, member, now, in_questions=False)
    return Perks(welcome)


def signed_up(
    session: Session, program: Program, member: Member, now: dt.datetime, *, in_questions: bool
) -> bool:
    """A friend's sign-up rewarded (referral on signup), once they are a member who stays:
    active, and past the age check if they are still in the sign-up questions (`in_questions`)
    with no birthday given yet, since an answer under the club's minimum age erases them
    instead. Idempotent; True if it rewarded now."""
    friend = member.referred_by_id
    if (
        program.referral_trigger != ON_SIGNUP
        or friend is None
        or member.status != MemberStatus.ACTIVE
    ):
        return False
    if in_questions and member.birthday is None:
        return False
    # The friend is given, not read back: the member's row may not be written yet (a turn
    # writes its member once, at its end: members.save).
    return _reward_referral(session, program, member.id, friend, now)


def reward_referral(
    session: Session,
    program: Program,
    member_id: int,
    now: dt.datetime,
    *,
    purchase_id: int | None = None,
) -> bool:
    """Reward a referred member and their friend, once per referred member; True if it did."""
    friend = session.scalar(select(Member.referred_by_id).where(Member.id == member_id))
    if friend is None:
        return False
    return _reward_referral(session, program, member_id, friend, now, purchase_id=purchase_id)


def _reward_referral(
    session: Session,
    program: Program,
    member_id: int,
    friend: int,
    now: dt.datetime,
    *,
    purchase_id: int | None = None,
) -> bool:
    source = f"referral:{member_id}"
    if _rewarded(session, program.id, member_id, source):
        return False
    template = coupons.template_for(session, program.id, coupons.REFERRAL)
    if template is not None:
        for who, suffix in ((member_id, ""), (friend, ":friend")):
            coupons.issue(
                session, program.id, who, template, source + suffix, now, purchase_id=purchase_id
            )
    if program.referral_points > 0:
        for who in (member_id, friend):
            ledger.lock_member(session, who)
            ledger.credit(
                session, program, who, program.referral_points, ledger.BONUS, now, reason=source
            )
    return template is not None or program.referral_points > 0


def _rewarded(session: Session, program_id: int, member_id: int, source: str) -> bool:
    coupon = exists().where(
        and_(coupons.Coupon.program_id == program_id, coupons.Coupon.source == source)
    )
    points = exists().where(and_(LedgerEntry.member_id == member_id, LedgerEntry.reason == source))
    return bool(session.scalar(select(coupon | points)))


def birthday_coupons(session: Session, program: Program, now: dt.datetime) -> int:
    """The daily job: a birthday coupon to every active member whose birthday is today in the
    club's time zone (29 February is celebrated on the 28th in other years). Returns how many
    were issued; running it twice on one day issues nothing more."""
    template = coupons.template_for(session, program.id, coupons.BIRTHDAY)
    if template is None:
        return 0
    today = now.astimezone(ZoneInfo(program.timezone)).date()
    days = [today.strftime("%m-%d")]
    if today.month == 2 and today.day == 28 and not _leap(today.year):
        days.append("02-29")
    if session.get_bind().dialect.name == "sqlite":
        month_day = func.strftime("%m-%d", Member.birthday)
    else:
        month_day = func.to_char(Member.birthday, "MM-DD")
    found = session.scalars(
        select(Member.id).where(
            Member.program_id == program.id,
            Member.status == MemberStatus.ACTIVE,
            Member.birthday.is_not(None),
            month_day.in_(days),
        )
    ).all()
    sources = {member_id: f"birthday:{member_id}:{today.year}" for member_id in found}
    already = set(
        session.scalars(
            select(coupons.Coupon.source).where(
                coupons.Coupon.program_id == program.id,
                coupons.Coupon.source.in_(list(sources.values())),
            )
        )
    )
    issued = 0
    for member_id, source in sources.items():
        if source not in already:
            coupons.issue(session, program.id, member_id, template, source, now)
            issued += 1
    return issued


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


@dataclass(frozen=True, slots=True)
class Summary:
    """A member's points at a glance."""

    balance: int
    standing: tiers.Standing
    expiry: ledger.Expiry | None


def summary(
    session: Session,
    program: Program,
    member_id: int,
    tier_id: int | None,
    now: dt.datetime,
    ladder: list[tiers.Tier] | None = None,
) -> Summary:
    """Balance, tier and next expiry: the open lots grouped by their end give both the balance
    and the next expiry, and come in one read with the points that decide the tier. `ladder`:
    the club's, if the caller keeps it in memory."""
    steps = ladder if ladder is not None else tiers.ladder(session, program.id)
    if steps:
        since = tiers.qualification_start(program, now)
        lots, qualifying = ledger.open_lots_and_earned(session, member_id, now, since)
    else:  # no ladder: no tier to work out
        lots, qualifying = ledger.open_lots(session, member_id, now), 0
    return Summary(
        balance=sum(points for _, points in lots),
        standing=tiers.standing_of(steps, tier_id, qualifying),
        expiry=ledger.Expiry(lots[0][1], lots[0][0]) if lots else None,
    )
