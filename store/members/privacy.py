"""A member's rights over their data: everything the club holds (access, GDPR art. 15/20) and
erasure (art. 17), whichever way it is asked for (SMS DELETE or the admin)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    ColumnElement,
    and_,
    bindparam,
    func,
    literal_column,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.orm import Session

from store import retention
from store.loyalty import coupons, ledger, tiers
from store.members import consent, links, members
from store.models import (
    ClickLink,
    Coupon,
    CouponTemplate,
    InboundMessage,
    LedgerEntry,
    LinkClick,
    Member,
    OutboxMessage,
    ProfileAnswer,
    ProfilePrompt,
    ProfileQuestion,
    Program,
    Purchase,
    PurchaseLine,
    Refund,
)

EXPORT_VERSION = 1
# An erased member's campaign links name no one any more: their taps still count for the
# campaign (clicks and unique clickers by message), not for the person. Through the model, not
# store.outreach (members may not import outreach).
_UNNAME_LINKS = (
    update(ClickLink.__table__)
    .where(ClickLink.__table__.c.member_id == bindparam("erased"))
    .values(member_id=None)
)


def erase(
    session: Session,
    member: Member,
    now: dt.datetime,
    *,
    wording_id: str,
    wording_language: str,
    wording_text: str,
    channel: str,
    evidence: str,
) -> None:
    """Erase the member: a marketing consent they still hold is withdrawn first, as STOP
    withdraws it (logged with the words and evidence of the request), then everything personal
    is removed; the consent log (without the member's own words), ledger and purchases stay as
    anonymous figures."""
    if consent.may_market(session, member):
        consent.withdraw(
            session,
            member,
            wording_id=wording_id,
            wording_language=wording_language,
            wording_text=wording_text,
            channel=channel,
            evidence=evidence,
            now=now,
        )
    links.end_all(session, [member.id], now)
    session.connection().execute(_UNNAME_LINKS, {"erased": member.id})
    members.erase(session, member, now)
    consent.forget_own_words(session, member.id)


def export(session: Session, program: Program, member: Member, now: dt.datetime) -> dict[str, Any]:
    """Everything held about the member, as JSON-ready data: the profile and its answers, the
    consent log, the points ledger, coupons, purchases (with lines and refunds), every text
    to or from the member's number, and the campaign links sent to them with their taps."""
    standing = tiers.standing(session, program, member.id, member.tier_id, now)
    expiry = ledger.next_expiry(session, member.id, now)
    return {
        "format": "klubb-member-export",
        "version": EXPORT_VERSION,
        "exported_at": _when(now),
        "club": {
            "name": program.name,
            "contact": program.contact,
            "privacy": program.privacy_url,
            # How long message texts are kept; an older one's "text" is null (store.retention).
            "message_retention_months": program.retention_months,
        },
        "member": {
            "id": member.id,
            "phone": member.phone,
            "first_name": member.first_name,
            "birthday": member.birthday.isoformat() if member.birthday else None,
            "language": member.language,
            "status": member.status,
            "joined_at": _when(member.joined_at),
            "created_at": _when(member.created_at),
            "updated_at": _when(member.updated_at),
            "store": member.store,
            "referral_code": member.referral_code,
            "referred_by_member_id": member.referred_by_id,
            "tier": standing.tier.name if standing.tier is not None else None,
            "tier_until": member.tier_until.isoformat() if member.tier_until else None,
            "undeliverable_at": _when(member.undeliverable_at),
            # A receipt SMS after each purchase (KVITTERING PÅ / AV): the member's own choice.
            "receipts": member.receipts,
        },
        "points": {
            "balance": ledger.balance(session, member.id, now),
            "next_expiry": (
                {"points": expiry.points, "at": _when(expiry.at)} if expiry is not None else None
            ),
        },
        "profile_answers": _answers(session, member),
        "profile_questions_put": _prompts(session, member),
        "birthday_changed_at": _when(member.birthday_changed_at),
        "consent": [
            {
                "purpose": event.purpose,
                "action": event.action,
                "wording_id": event.wording_id,
                "wording_language": event.wording_language,
                "wording_text": event.wording_text,
                "channel": event.channel,
                "evidence": event.evidence,
                "at": _when(event.created_at),
            }
            for event in consent.history(session, member.id)
        ],
        "ledger": [
            {
                "kind": entry.kind,
                "points": entry.points,
                "reason": entry.reason,
                "actor": entry.actor,
                "purchase_id": entry.purchase_id,
                "coupon_id": entry.coupon_id,
                "expires_at": _when(entry.expires_at),
                "at": _when(entry.created_at),
            }
            for entry in session.scalars(
                select(LedgerEntry)
                .where(LedgerEntry.member_id == member.id)
                .order_by(LedgerEntry.id)
            )
        ],
        "coupons": _coupons(session, member, now),
        "purchases": _purchases(session, member),
        "messages": _messages(session, member, program, now),
        "link_taps": _taps(session, member),
    }


def _taps(session: Session, member: Member) -> list[dict[str, Any]]:
    """The campaign links sent to the member and when each was tapped (the tokens themselves
    are not kept, only their hashes, so none is shown)."""
    found: dict[int, dict[str, Any]] = {}
    for link, tapped_at in session.execute(
        select(ClickLink, LinkClick.clicked_at)
        .outerjoin(LinkClick, LinkClick.link_id == ClickLink.id)
        .where(ClickLink.member_id == member.id)
        .order_by(ClickLink.id, LinkClick.id)
    ):
        entry = found.setdefault(
            link.id,
            {
                "campaign_id": link.campaign_id,
                "url": link.url,
                "sent_at": _when(link.created_at),
                "tapped_at": [],
            },
        )
        if tapped_at is not None:
            entry["tapped_at"].append(_when(tapped_at))
    return list(found.values())


def _when(moment: dt.datetime | None) -> str | None:
    return moment.astimezone(dt.UTC).isoformat() if moment is not None else None


def answers_of(session: Session, member: Member) -> list[tuple[ProfileAnswer, ProfileQuestion]]:
    """The member's answers with their questions, in the order they are asked (also answers to
    a question the club has since turned off)."""
    rows = session.execute(
        select(ProfileAnswer, ProfileQuestion)
        .join(ProfileQuestion, ProfileQuestion.id == ProfileAnswer.question_id)
        .where(ProfileAnswer.member_id == member.id)
        .order_by(ProfileQuestion.position, ProfileQuestion.id)
    ).all()
    return [(answer, question) for answer, question in rows]


def coupons_of(session: Session, member: Member) -> list[coupons.Held]:
    """Every coupon the member was issued, with what it gives, oldest first."""
    rows = session.execute(
        select(Coupon, CouponTemplate)
        .join(CouponTemplate, Coupon.template_id == CouponTemplate.id)
        .where(Coupon.member_id == member.id)
        .order_by(Coupon.id)
    ).all()
    return [coupons.Held(coupon, template) for coupon, template in rows]


def _answers(session: Session, member: Member) -> list[dict[str, Any]]:
    return [
        {
            "question": question.key,
            "prompt": question.prompt,
            "answer": answer.value,
            "at": _when(answer.answered_at),
        }
        for answer, question in answers_of(session, member)
    ]


def _prompts(session: Session, member: Member) -> list[dict[str, Any]]:
    """Questions the club added later and put to the member, and whether they skipped them."""
    return [
        {"question": key, "asked_at": _when(asked), "skipped_at": _when(skipped)}
        for key, asked, skipped in session.execute(
            select(ProfileQuestion.key, ProfilePrompt.asked_at, ProfilePrompt.skipped_at)
            .join(ProfileQuestion, ProfileQuestion.id == ProfilePrompt.question_id)
            .where(ProfilePrompt.member_id == member.id)
            .order_by(ProfilePrompt.id)
        )
    ]


def _coupons(session: Session, member: Member, now: dt.datetime) -> list[dict[str, Any]]:
    return [
        {
            "code": coupons.display(held.coupon.code),
            "kind": held.template.kind,
            "benefit": held.template.benefit,
            "state": coupons.state(held.coupon, now),
            "issued_at": _when(held.coupon.issued_at),
            "valid_from": _when(held.coupon.valid_from),
            "valid_until": _when(held.coupon.valid_until),
            "redeemed_at": _when(held.coupon.redeemed_at),
            "redeemed_by": held.coupon.redeemed_by,
        }
        for held in coupons_of(session, member)
    ]


def _purchases(session: Session, member: Member) -> list[dict[str, Any]]:
    bought = session.scalars(
        select(Purchase).where(Purchase.member_id == member.id).order_by(Purchase.occurred_at)
    ).all()
    ids = [p.id for p in bought]
    lines: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
    refunds: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
    if ids:
        for line in session.scalars(
            select(PurchaseLine)
            .where(PurchaseLine.purchase_id.in_(ids))
            .order_by(PurchaseLine.purchase_id, PurchaseLine.line_no)
        ):
            lines[line.purchase_id].append(
                {
                    "line": line.line_no,
                    "sku": line.sku,
                    "category": line.category,
                    "brand": line.brand,
                    "qty": line.qty,
                    "amount_minor": line.amount_minor,
                    "points": line.points,
                }
            )
        for refund in session.scalars(
            select(Refund).where(Refund.purchase_id.in_(ids)).order_by(Refund.id)
        ):
            refunds[refund.purchase_id].append(
                {
                    "refund_id": refund.refund_id,
                    "amount_minor": refund.amount_minor,
                    "points_taken": refund.points_taken,
                    "at": _when(refund.created_at),
                }
            )
    return [
        {
            "transaction_id": p.transaction_id,
            "store": p.store,
            "currency": p.currency,
            "total_minor": p.total_minor,
            "points": p.points,
            "at": _when(p.occurred_at),
            "lines": lines[p.id],
            "refunds": refunds[p.id],
        }
        for p in bought
    ]


def texts_of(
    session: Session, member: Member, limit: int | None = None
) -> tuple[list[InboundMessage], list[OutboxMessage]]:
    """The texts from and to the member, newest first (`limit` of each): the same texts erasure
    blanks, those of the member and those of the number before it was a member (they carry the
    number, not the member's id)."""
    of_inbound, of_outbound = _texts_where(member)
    inbound = session.scalars(
        select(InboundMessage).where(of_inbound).order_by(InboundMessage.id.desc()).limit(limit)
    ).all()
    outbound = session.scalars(
        select(OutboxMessage).where(of_outbound).order_by(OutboxMessage.id.desc()).limit(limit)
    ).all()
    return list(inbound), list(outbound)


def texts_page(
    session: Session, member: Member, *, offset: int, limit: int
) -> list[InboundMessage | OutboxMessage]:
    """The texts of `texts_of`, both ways in one list newest first (a text sent by when it was
    sent, else made), `limit` of them from `offset`: two reads however far back the page is."""
    of_inbound, of_outbound = _texts_where(member)
    # Plain SQL literals, not parameters: PostgreSQL can't type a parameter in a UNION.
    inbound = select(
        literal_column("'in'").label("way"),
        InboundMessage.id.label("id"),
        InboundMessage.received_at.label("at"),
    ).where(of_inbound)
    outbound = select(
        literal_column("'out'").label("way"),
        OutboxMessage.id.label("id"),
        func.coalesce(OutboxMessage.sent_at, OutboxMessage.created_at).label("at"),
    ).where(of_outbound)
    both = union_all(inbound, outbound).subquery()
    picked = session.execute(
        select(both.c.way, both.c.id)
        .order_by(both.c.at.desc(), both.c.way, both.c.id.desc())
        .offset(offset)
        .limit(limit)
    ).all()
    wanted = {way: [row_id for w, row_id in picked if w == way] for way in ("in", "out")}
    rows: dict[tuple[str, int], InboundMessage | OutboxMessage] = {}
    for model, way in ((InboundMessage, "in"), (OutboxMessage, "out")):
        if wanted[way]:
            for row in session.scalars(select(model).where(model.id.in_(wanted[way]))):
                rows[(way, row.id)] = row
    return [rows[(way, row_id)] for way, row_id in picked]


def _texts_where(member: Member) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    """Which inbound and which outbox rows are the member's texts."""
    of_inbound = [InboundMessage.member_id == member.id]
    of_outbound = [OutboxMessage.member_id == member.id]
    # Without a number (never, for a member not erased) `== None` would match every blanked
    # text: left out.
    if member.phone is not None:
        of_inbound.append(
            and_(
                InboundMessage.program_id == member.program_id,
                InboundMessage.from_number == member.phone,
            )
        )
        of_outbound.append(
            and_(
                OutboxMessage.program_id == member.program_id,
                OutboxMessage.to_number == member.phone,
            )
        )
    return or_(*of_inbound), or_(*of_outbound)


def _messages(
    session: Session, member: Member, program: Program, now: dt.datetime
) -> dict[str, list[dict[str, Any]]]:
    inbound, outbound = texts_of(session, member)

    def removed(body: str | None, at: dt.datetime, status: str | None) -> int | None:
        """The months after which the text was emptied by data retention, else None."""
        gone = body is None and retention.removed(program, now, at, status)
        return program.retention_months if gone else None

    return {
        "inbound": [
            {
                "from": m.from_number,
                "to": m.to_number,
                "text": m.body,
                "reply": m.reply,
                "removed_after_months": removed(m.body, m.received_at, None),
                "at": _when(m.received_at),
            }
            for m in reversed(inbound)
        ],
        "outbound": [
            {
                "to": m.to_number,
                "from": m.from_number,
                "kind": m.kind,
                "text": m.body,
                "removed_after_months": removed(m.body, m.created_at, m.status),
                "status": m.status,
                "delivery": m.delivery,
                "created_at": _when(m.created_at),
                "sent_at": _when(m.sent_at),
            }
            for m in reversed(outbound)
        ],
    }
