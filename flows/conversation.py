"""One inbound text as one unit of work: find the club and member, route, apply, record, reply.

`handle_text` is synchronous on a store Session; the edge runs it through `Database.run`, so
the whole turn is one transaction and the reply exists only once the turn is committed.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

import locales
from flows import profile, router, understand
from flows.help import FORWARDED
from flows.join import CONSENT_WORDING
from flows.privacy import SUMMARY
from flows.turn import (
    KEEP,
    ClaimReward,
    Club,
    CouponView,
    DiscardPending,
    Erase,
    GrantConsent,
    IssuePageLink,
    LoyaltyView,
    MemberView,
    Outcome,
    PointsView,
    PunchView,
    Question,
    Reply,
    RequestJoin,
    RewardView,
    SaveAnswer,
    SetBirthday,
    SetFirstName,
    SetLanguage,
    SetReceipts,
    ShowReferralCode,
    SkipQuestion,
    State,
    Turn,
    WithdrawConsent,
)
from locales.sms import fit_one, over_one, segments
from store import database, messages
from store.clubs import asking, directory, programs
from store.loyalty import coupons, perks, purchases, receipts, rewards, tiers
from store.members import consent, enrolment, links, members, privacy
from store.members import profile as answers
from store.models import CouponTemplate, Member, ProfileQuestion, Program

log = logging.getLogger(__name__)

# Long texts are kept whole in the log but only this much is read for meaning.
MAX_READ = 1600
DEFAULT_READING_LANGUAGE = locales.DEFAULT_LANGUAGE  # the draft turn's, before it is known
DONE = "profile.done"
DONE_WITH_COUPON = "profile.done.coupon"
# Where the consent wording sent to a member waits for their YES (in the member's flow data).
SHOWN = "wording_shown"
# A page link's token, made by its effect, until the reply's `url` is made of it.
_PAGE_LINK = "page_link"
CLAIMED = "claim.done"
# The welcome SMS (the end of sign-up) and the reward SMS (a claimed reward) in the wording that
# carries the member's page link, used when the club turns Program.page_link_in_sms on. Each is
# written to stay one SMS with a 60-character club name (tests/flows/test_page_link_sms.py).
WITH_PAGE_LINK = {
    DONE: "profile.done.link",
    DONE_WITH_COUPON: "profile.done.coupon.link",
    CLAIMED: "claim.done.link",
}


class UnknownClub(LookupError):
    """No club answers on the number the text was sent to."""

    def __init__(self, number: str) -> None:
        super().__init__(number)
        self.number = number


@dataclass(frozen=True, slots=True)
class InboundText:
    """A text as the gateway delivered it (From already normalised to E.164)."""

    provider_sid: str
    from_number: str
    to_number: str
    body: str
    received_at: dt.datetime


@dataclass(frozen=True, slots=True)
class TurnResult:
    reply: str | None  # None: nothing is sent back (a number that texted STOP)
    replayed: bool
    program_id: int
    # What the text was read as (an intent's name; None: nothing), and whether Klubb could not
    # tell what it meant: for the edge's metrics (bot.metrics), never stored from here.
    intent: str | None = None
    not_understood: bool = False


def handle_text(
    session: Session,
    text: InboundText,
    clubs: directory.ClubDirectory | None = None,
    *,
    public_url: str = "",
) -> TurnResult:
    """Apply one inbound text. A text seen before (same provider id) gets its stored reply,
    with no effect twice; one recorded by a concurrent turn since the lookup raises
    SeenBefore, and the caller's transaction is rolled back; `replay` then gives the reply.

    `clubs` serves the club and its questions from memory (the webhook passes its own);
    `public_url` is where the app is reached (a member's page link is made on it)."""
    clubs = clubs or directory.ClubDirectory(ttl=0)
    program = clubs.by_number(session, text.to_number)
    if program is None:
        raise UnknownClub(text.to_number)

    # Most texts (HELP, chatter, a balance) change nothing about the member: they are read as a
    # plain row, and the ORM object is loaded only for a turn that changes something.
    # A retry is looked up first (an index lookup on the unique key), after the member's lock so
    # that on PostgreSQL a retry racing its first delivery sees it committed: no turn work.
    row, seen = members.state_for_turn(session, program.id, text.from_number, text.provider_sid)
    if seen is not None:
        return TurnResult(seen.reply, replayed=True, program_id=program.id)
    turn = _turn(session, program, row, text, clubs)
    outcome = router.route(turn)
    member = None
    if row is not None and (outcome.effects or outcome.state is not KEEP or _shows_data(outcome)):
        member = members.take(session, row)
    produced: dict[str, Any] = {}
    member = _apply(session, program, member, outcome, turn, text, produced, clubs)
    with_link = _carries_page_link(program, member, outcome)
    if with_link and member is not None and _PAGE_LINK not in produced:
        produced[_PAGE_LINK] = links.issue(session, member, text.received_at)
    if _PAGE_LINK in produced:
        produced["url"] = locales.sms_url(links.page_url(public_url, produced.pop(_PAGE_LINK)))
    language = outcome.language or turn.language
    if member is not None and member.language and member.status != members.ERASED:
        language = member.language
    produced["number"] = text.to_number
    body = _render(session, program, member, outcome, language, produced, with_link=with_link)
    if body is not None and row is not None and profile.may_put(turn, outcome):
        member, body = _put_added(session, program, row, member, turn, language, body, clubs, text)
    if member is not None:
        members.save(session, member)
    # The turns of a group share a session: the next one must read this one's changes.
    session.flush()

    forget = _forgets(outcome, member)
    if member is not None:
        member_id: int | None = member.id
    else:
        member_id = row.id if row is not None and not forget else None
    messages.record_inbound(
        session,
        program_id=program.id,
        provider_sid=text.provider_sid,
        member_id=member_id,
        from_number=None if forget else text.from_number,
        to_number=text.to_number,
        body=None if forget else text.body,
        intent=turn.intent.name if turn.intent else None,
        reply=body,
        now=text.received_at,
        not_understood=outcome.not_understood,
        # The reply's outbox row in the same statement on PostgreSQL (a round trip less).
        reply_segments=segments(body).segments if body is not None else None,
    )
    return TurnResult(
        body,
        replayed=False,
        program_id=program.id,
        intent=turn.intent.name if turn.intent else None,
        not_understood=outcome.not_understood,
    )


def turn_reads(
    session: Session, text: InboundText, clubs: directory.ClubDirectory
) -> database.Reads | None:
    """The reads `handle_text` makes first (the sender's member locked, the retry looked up),
    for a writer of turns to make a group's at once; None for a number no club answers on."""
    program = clubs.by_number(session, text.to_number)
    if program is None:
        return None
    return members.turn_reads(program.id, text.from_number, text.provider_sid)


def replay(session: Session, text: InboundText) -> TurnResult:
    """The reply given to a text received before (the gateway retried it)."""
    program = programs.by_number(session, text.to_number)
    if program is None:
        raise UnknownClub(text.to_number)
    seen = messages.find_inbound(session, program.id, text.provider_sid)
    if seen is None:  # SeenBefore said it was recorded; only a concurrent erasure could remove it
        return TurnResult(None, replayed=True, program_id=program.id)
    return TurnResult(seen.reply, replayed=True, program_id=program.id)


def _put_added(
    session: Session,
    program: Program,
    row: members.MemberState,
    member: Member | None,
    turn: Turn,
    language: str,
    body: str,
    clubs: directory.ClubDirectory,
    text: InboundText,
) -> tuple[Member | None, str]:
    """The reply with a question the club added after it, one this member (who joined before
    it) was never put, when both fit one SMS (flows.profile.may_put says after which texts).
    Their next text answers it (or SKIPs it, remembered); it is recorded as put, never to be put
    again. When the two would not fit, the reply goes alone and nothing is recorded: a later
    reply with room takes it. So the question is never a message of its own (nothing unasked
    for is sent), never during a flow, and never for a member who texted STOP (no reply).

    The hot path: the club's added questions come from memory, and the one query (which of them
    the member answered or was put) is made only when the reply leaves room for one of them."""
    added = [q for q in clubs.questions(session, program.id) if q.kind in profile.ADDED_KINDS]
    if not added:
        return member, body
    asked = {q.id: _asked(q, language) for q in added}
    if all(over_one(f"{body} {each}") for each in asked.values()):
        return member, body
    found = answers.first_unasked(session, row.id, [q.id for q in added])
    if found is None or over_one(f"{body} {asked[found]}"):
        return member, body
    if member is None:
        member = members.take(session, row)
    state = profile.put(found)
    member.flow, member.step, member.flow_data = state.flow, state.step, None
    member.updated_at = text.received_at
    answers.put(session, member, found, text.received_at)
    return member, f"{body} {asked[found]}"


def _asked(question: ProfileQuestion, language: str) -> str:
    """A question of the club's as asked in the language (store.clubs.asking.asked)."""
    message_id, params = asking.asked(question.kind, question.prompt, question.choices, language)
    return _asked_text(message_id, language, tuple(params.items()))


@functools.lru_cache(maxsize=1024)
def _asked_text(message_id: str, language: str, params: tuple[tuple[str, str], ...]) -> str:
    # Rendered once per wording: the question is measured against every reply it may follow.
    return locales.render(message_id, language, **dict(params))


def _carries_page_link(program: Program, member: Member | None, outcome: Outcome) -> bool:
    """The club sends the page link in the welcome and reward SMS, and this reply is one of
    them, to a member who has a page (active)."""
    return (
        program.page_link_in_sms
        and member is not None
        and member.status == members.ACTIVE
        and any(item.id in WITH_PAGE_LINK for item in outcome.replies)
    )


def _shows_data(outcome: Outcome) -> bool:
    return any(item.id == SUMMARY for item in outcome.replies)


def club_of(program: Program) -> Club:
    return Club(
        id=program.id,
        name=program.name,
        contact=program.contact,
        privacy_url=program.privacy_url,
        per_month=program.marketing_per_month,
        min_age=program.min_age,
        timezone=program.timezone,
    )


def _turn(
    session: Session,
    program: Program,
    member: members.MemberState | None,
    text: InboundText,
    clubs: directory.ClubDirectory,
) -> Turn:
    view = None
    questions: tuple[Question, ...] = ()
    if member is not None:
        view = MemberView(
            joined=member.joined,
            status=member.status,
            language=member.language,
            first_name=member.first_name,
            flow=member.flow,
            step=member.step,
            data=member.flow_data or {},
            has_birthday=member.columns.get("birthday") is not None,
            birthday=member.columns.get("birthday"),
            birthday_locked=not answers.may_change_birthday(
                member.columns.get("birthday_changed_at"), text.received_at
            ),
        )
        if member.flow == "join" or member.flow in profile.QUESTION_FLOWS:
            questions = _questions(session, program, clubs)
    today = text.received_at.astimezone(ZoneInfo(program.timezone)).date()
    draft = Turn(
        text=text.body[:MAX_READ],
        intent=None,
        member=view,
        club=club_of(program),
        language=DEFAULT_READING_LANGUAGE,
        today=today,
        questions=questions,
    )
    # Read in the state of the question open: at the first-name question "Joan" is a name, not
    # a typo of JOIN, while "Avslutt" still stops.
    reading = understand.understand(draft.text, state=router.reading_state(draft))
    intent = reading.intent
    # A language the member chose wins; else, at first contact, the language the text is
    # clearly written in (a Swede on a +44 number: kept on the member it makes); else the
    # number's country.
    language = (member.language if member else reading.language) or locales.language_for_phone(
        text.from_number
    )
    log.debug(
        "text %s read as %s (%s)", text.provider_sid, intent.name if intent else None, reading.why
    )
    given = None
    editing = member is not None and (
        member.flow == profile.EDIT_FLOW or (intent is not None and intent.name == "profile")
    )
    if editing and member is not None and member.status == members.ACTIVE:
        # PROFIL shows each current answer: read for it alone.
        questions = questions or _questions(session, program, clubs)
        given = {q: tuple(v) for q, v in answers.answered(session, member.id).items()}
    loyalty_view = None
    parts = router.LOYALTY.get(intent.name) if intent is not None else None
    if parts is not None and member is not None and member.status == members.ACTIVE:
        loyalty_view = _loyalty(session, program, member, language, text.received_at, clubs, parts)
    return Turn(
        text=draft.text,
        intent=intent,
        member=view,
        club=draft.club,
        language=language,
        today=today,
        questions=questions,
        loyalty=loyalty_view,
        why=reading.why,
        written_in=reading.language if member is None else None,
        answers=given,
    )


def _questions(
    session: Session, program: Program, clubs: directory.ClubDirectory
) -> tuple[Question, ...]:
    return tuple(
        Question(q.id, q.key, q.kind, q.prompt or {}, tuple(q.choices or ()))
        for q in clubs.questions(session, program.id)
    )


def _loyalty(
    session: Session,
    program: Program,
    member: members.MemberState,
    language: str,
    now: dt.datetime,
    clubs: directory.ClubDirectory,
    parts: frozenset[str] = router.LOYALTY["points"],
) -> LoyaltyView:
    """What POINTS, COUPONS, CLAIM and INVITE answer from: read only for those texts, and only
    the `parts` the keyword answers from (router.LOYALTY)."""
    zone = ZoneInfo(program.timezone)
    setup = clubs.loyalty(session, program)
    points_view = coupons_view = rewards_view = None
    if router.POINTS in parts:
        points = perks.summary(
            session, program, member.id, member.columns["tier_id"], now, setup.ladder
        )
        standing, expiry = points.standing, points.expiry
        points_view = PointsView(
            balance=points.balance,
            tier=tiers.name(standing.tier, language) if standing.tier else None,
            next_tier=tiers.name(standing.next, language) if standing.next else None,
            to_next=standing.to_next,
            expiry_points=expiry.points if expiry else 0,
            expiry_date=last_day(expiry.at, zone) if expiry else None,
            # A member who has never bought has no punch: nothing to read.
            punch=_punch_view(session, program, member.id, setup.cards, language)
            if member.columns.get("last_purchase_at") is not None
            else None,
        )
    if router.COUPONS in parts:
        coupons_view = tuple(
            CouponView(
                coupons.display(valid.code),
                _benefit(setup.templates.by_id[valid.template_id], language, program),
                last_day(valid.valid_until, zone),
            )
            for valid in coupons.valid_codes(session, member.id, now)
            if valid.template_id in setup.templates.by_id
        )
    if router.REWARDS in parts:
        rewards_view = tuple(
            RewardView(n, t.id, _benefit(t, language, program), t.points_cost or 0)
            for n, t in enumerate(setup.rewards, start=1)
        )
    return LoyaltyView(
        points=points_view,
        coupons=coupons_view,
        rewards=rewards_view,
        referral_reward=program.referral_trigger if setup.rewards_referral else None,
    )


def _punch_view(
    session: Session,
    program: Program,
    member_id: int,
    cards: tuple[purchases.Card, ...],
    language: str,
) -> PunchView | None:
    """The punch card nearest to full that has a punch (one SMS has room for one card); read
    only when the club has an active card."""
    started = [p for p in purchases.punches(session, cards, member_id) if p.count]
    if not started:
        return None
    nearest = min(started, key=lambda p: p.card.every - p.count)
    assert nearest.card.template is not None  # punches() leaves out cards that give nothing
    benefit = _benefit(nearest.card.template, language, program)
    return PunchView(nearest.count, nearest.card.every, benefit) if benefit else None


def _benefit(template: CouponTemplate, language: str, program: Program) -> str:
    """What a coupon gives, its {amount} written as money in the member's language."""
    text = coupons.benefit_of(template, language)
    return locales.benefit(
        text, language, amount_minor=template.discount_minor, currency=program.currency
    )


def last_day(instant: dt.datetime, zone: ZoneInfo) -> dt.date:
    """The last local day something ending at `instant` (exclusive) can be used."""
    return (instant - dt.timedelta(microseconds=1)).astimezone(zone).date()


def _apply(
    session: Session,
    program: Program,
    member: Member | None,
    outcome: Outcome,
    turn: Turn,
    text: InboundText,
    produced: dict[str, Any],
    clubs: directory.ClubDirectory,
) -> Member | None:
    """Apply the effects in order; what they make for the reply (a coupon code) goes into
    `produced`."""
    now = text.received_at
    signing_up = member is not None and member.flow == profile.FLOW
    for effect in outcome.effects:
        member = _apply_one(session, program, member, effect, turn, text, now, produced, clubs)
    if member is not None and member.status != members.ERASED and outcome.state is not KEEP:
        state: State | None = outcome.state
        member.flow = state.flow if state else None
        member.step = state.step if state else None
        member.flow_data = dict(state.data) if state and state.data else None
        member.updated_at = now
    joined = any(isinstance(effect, GrantConsent) for effect in outcome.effects)
    if member is not None and member.referred_by_id is not None and (signing_up or joined):
        # A friend's referral waits for the age check (perks.signed_up): never for someone
        # the birthday question turns away.
        perks.signed_up(session, program, member, now, in_questions=member.flow == profile.FLOW)
    return member


def _apply_one(
    session: Session,
    program: Program,
    member: Member | None,
    effect: Any,
    turn: Turn,
    text: InboundText,
    now: dt.datetime,
    produced: dict[str, Any],
    clubs: directory.ClubDirectory,
) -> Member | None:
    match effect:
        case RequestJoin():
            if member is None:
                # Inserted at the end of the turn with its conversation state: one statement.
                member = members.new(program, text.from_number, status=members.PENDING, now=now)
                # A first text clearly in one language sets the member's ("jag vill gå med").
                member.language = turn.written_in
            else:
                members.set_status(member, members.PENDING, now)
        case GrantConsent(wording_id=wording_id):
            assert member is not None, "consent needs a member"
            language, wording = _wording_shown(program, member, wording_id, turn.language)
            # The same joining as the till's (store.members.enrolment.join).
            enrolment.join(
                session,
                program,
                member,
                wording_id=wording_id,
                wording_language=language,
                wording_text=wording,
                channel="sms",
                evidence=text.provider_sid,
                now=now,
                referral=(member.flow_data or {}).get("referral_code"),
                templates=clubs.loyalty(session, program).templates,
                asks_birthday=any(q.kind == "birthday" for q in turn.questions),
            )
        case ClaimReward(template_id=template_id) if member is not None:
            claimed = rewards.claim(session, program, member.id, template_id, now, actor="sms")
            zone = ZoneInfo(program.timezone)
            produced["code"] = coupons.display(claimed.held.coupon.code)
            produced["date"] = last_day(claimed.held.coupon.valid_until, zone)
            produced["count"] = claimed.balance
        case ShowReferralCode() if member is not None:
            produced["code"] = perks.referral_code(session, member)
        case IssuePageLink() if member is not None:
            produced[_PAGE_LINK] = links.issue(session, member, now)
        case WithdrawConsent(reason=reason):
            if member is None:
                member = members.new(program, text.from_number, status=members.STOPPED, now=now)
                members.save(session, member)  # the consent log needs its id
            _withdraw(session, member, f"keyword.{reason}", turn, text)
        case SetFirstName(name=name) if member is not None:
            member.first_name = name
        case SetBirthday(birthday=birthday) if member is not None and birthday is not None:
            # The flow asked the same rule first (MemberView.birthday_locked): kept if refused.
            answers.set_birthday(member, birthday, now)
        case SaveAnswer(question_id=question_id, value=value, free_text=free_text) if (
            member is not None
        ):
            answers.save_answer(session, member, question_id, value, now, free_text=free_text)
        case SkipQuestion(question_id=question_id) if member is not None:
            answers.skipped(session, member, question_id, now)
        case SetLanguage(language=language) if member is not None:
            member.language = language
        case SetReceipts(on=on) if member is not None:
            receipts.set_receipts(session, member, on, now)
        case Erase(reason=reason) if member is not None:
            privacy.erase(
                session,
                member,
                now,
                wording_id=f"erase.{reason}",
                wording_language=member.language or turn.language,
                wording_text=text.body[:500],
                channel="sms",
                evidence=text.provider_sid,
            )
        case DiscardPending() if member is not None:
            if members.discard(session, member, now):
                member = None
        case _:
            raise TypeError(f"effect {effect!r} does not apply here")
    return member


def _withdraw(
    session: Session, member: Member, wording_id: str, turn: Turn, text: InboundText
) -> None:
    """STOP (consent.withdraw, the member stopped), logged in the member's own words (their
    text) with its message id."""
    consent.withdraw(
        session,
        member,
        wording_id=wording_id,
        wording_language=member.language or turn.language,
        wording_text=text.body[:500],
        channel="sms",
        evidence=text.provider_sid,
        now=text.received_at,
    )


def _forgets(outcome: Outcome, member: Member | None) -> bool:
    """Whether the turn's own text is recorded without number or words: an erasure, or a NO
    to joining that forgot the number (one with a past is kept, stopped: members.discard)."""
    return any(
        isinstance(e, Erase) or (isinstance(e, DiscardPending) and member is None)
        for e in outcome.effects
    )


def _wording_shown(
    program: Program, member: Member, wording_id: str, language: str
) -> tuple[str, str]:
    """The language and exact text of the consent wording the member was sent."""
    shown = (member.flow_data or {}).get(SHOWN)
    if wording_id == CONSENT_WORDING and shown:
        return shown["language"], shown["text"]
    # START: the wording is the reply of this very turn, rendered the same way below.
    language = member.language or language
    return language, locales.render(wording_id, language, **club_params(program))


def club_params(program: Program) -> dict[str, Any]:
    """The club's own placeholders, which every message may use (store.clubs.programs.sms_values:
    the till's enrolment SMS uses the same)."""
    return programs.sms_values(program)


def _render(
    session: Session,
    program: Program,
    member: Member | None,
    outcome: Outcome,
    language: str,
    produced: dict[str, Any],
    *,
    with_link: bool = False,
) -> str | None:
    if not outcome.replies:
        return None
    common = {**club_params(program), **produced}
    parts: list[tuple[str, bool]] = []
    for item in outcome.replies:
        if item.id == DONE and member is not None:
            item = _with_welcome_coupon(session, program, member, language) or item
        if with_link and item.id in WITH_PAGE_LINK:
            item = Reply(WITH_PAGE_LINK[item.id], item.params, item.optional)
        params = {**common, **item.params}
        if item.id == SUMMARY and member is not None:
            params.update(_summary_params(session, member, language))
        own = programs.auto_reply(program, language) if item.id == FORWARDED else None
        text = own or _render_one(item.id, language, params)
        if item.id == CONSENT_WORDING and member is not None:
            # The consent logged at YES is these exact words, not a later re-rendering.
            shown = {"language": language, "text": text}
            member.flow_data = {**(member.flow_data or {}), SHOWN: shown}
        parts.append((text, item.optional))
    return fit_one(parts)


def _render_one(message_id: str, language: str, params: dict[str, Any]) -> str:
    """A message whose params may be lists of messages themselves (a list of coupons)."""
    flat = {name: value for name, value in params.items() if not _is_list(value)}
    for name, value in params.items():
        if _is_list(value):
            flat[name] = "; ".join(
                locales.render(part.id, language, **{**flat, **part.params}) for part in value
            )
    return locales.render(message_id, language, **flat)


def _is_list(value: Any) -> bool:
    return isinstance(value, tuple) and bool(value) and isinstance(value[0], Reply)


def _with_welcome_coupon(
    session: Session, program: Program, member: Member, language: str
) -> Reply | None:
    """The end of sign-up names the welcome coupon, while it is there to be used."""
    held = coupons.welcome_of(session, program.id, member.id)
    if held is None:
        return None
    until = last_day(held.coupon.valid_until, ZoneInfo(program.timezone))
    return Reply(
        DONE_WITH_COUPON,
        {
            "code": coupons.display(held.coupon.code),
            "benefit": _benefit(held.template, language, program),
            "date": until,
        },
    )


def _summary_params(session: Session, member: Member, language: str) -> dict[str, Any]:
    none = locales.render("mydata.none", language)
    since = consent.marketing_since(session, member)
    return {
        "phone": member.phone or none,
        "first_name": member.first_name or none,
        "birthday": member.birthday or none,
        "language": locales.render("lang.name", language),
        "joined": member.joined_at.date() if member.joined_at else none,
        "consent": (
            locales.render("mydata.consent.yes", language, date=since.date())
            if since
            else locales.render("mydata.consent.no", language)
        ),
        "answers": locales.render(
            "mydata.answers", language, count=answers.answer_count(session, member.id)
        ),
    }


__all__ = ["CONSENT_WORDING", "InboundText", "TurnResult", "UnknownClub", "handle_text"]
