"""SQLAlchemy 2 typed models: the tables every club's data lives in."""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.ext.asyncio import AsyncAttrs
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Named constraints so Alembic migrations are the same on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only autoincrements a column declared exactly INTEGER PRIMARY KEY.
Id = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timezone-aware datetime stored as UTC; SQLite drops the zone, so it is put back."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


class Base(AsyncAttrs, DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dt.datetime: UTCDateTime(),
        dict[str, Any]: JSON,
        list[Any]: JSON,
    }


class Program(Base):
    """A club: its name, rules for messaging and the numbers members text."""

    __tablename__ = "programs"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(60))
    country: Mapped[str] = mapped_column(String(2))
    timezone: Mapped[str] = mapped_column(String(40))
    currency: Mapped[str] = mapped_column(String(3))
    contact: Mapped[str] = mapped_column(String(200))
    privacy_url: Mapped[str] = mapped_column(String(300))
    # The cap: marketing SMS per member per rolling 30 days (1-3).
    marketing_per_month: Mapped[int] = mapped_column(Integer, default=2)
    # Quiet hours in the member's zone (hours 0-23): marketing waits from start until end.
    quiet_start: Mapped[int] = mapped_column(Integer, default=20, server_default="20")
    quiet_end: Mapped[int] = mapped_column(Integer, default=9, server_default="9")
    # What one SMS segment costs the club, in minor units of its currency (for estimates).
    sms_price_minor: Mapped[int] = mapped_column(Integer, default=50, server_default="50")
    min_age: Mapped[int] = mapped_column(Integer, default=13)
    # Earning: `earn_points` points for every `earn_per_minor` minor units (1 per 100 = 1 per kr).
    earn_points: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    earn_per_minor: Mapped[int] = mapped_column(Integer, default=100, server_default="100")
    min_purchase_minor: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    points_lifetime_months: Mapped[int] = mapped_column(Integer, default=24, server_default="24")
    tier_period_months: Mapped[int] = mapped_column(Integer, default=12, server_default="12")
    # Refer a friend: rewarded when the friend has joined ("signup") or first bought ("purchase").
    referral_trigger: Mapped[str] = mapped_column(
        String(10), default="signup", server_default="signup"
    )
    referral_points: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The automatic reply to a member's text not understood, by language ({"nb": "..."}); a
    # language without one gets the catalog's (unknown.forwarded).
    auto_reply: Mapped[dict[str, Any] | None]
    # Whether the welcome and reward SMS carry the member's page link (off by default: it costs
    # about 40 characters, often a second segment).
    page_link_in_sms: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Message bodies older than this many months are emptied (data minimisation); counts,
    # consent events and the ledger stay.
    retention_months: Mapped[int] = mapped_column(Integer, default=13, server_default="13")
    # Salt for the hashed phone numbers kept after erasure (suppression without the number).
    hash_salt: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime]


class ProgramNumber(Base):
    """A number (long number or short code) that reaches one club."""

    __tablename__ = "program_numbers"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id", ondelete="CASCADE"))
    number: Mapped[str] = mapped_column(String(20), unique=True)


class Member(Base):
    """A phone number known to a club, with its conversation state.

    status: pending (asked to confirm joining), active, stopped (texted STOP: nothing is sent
    until START or JOIN) or erased (personal data removed; only the salted hash remains).
    The values and the changes allowed between them: store.states (MemberStatus, "member").
    """

    __tablename__ = "members"
    __table_args__ = (
        UniqueConstraint("program_id", "phone"),
        UniqueConstraint("program_id", "referral_code"),
        Index("ix_members_program_phone_hash", "program_id", "phone_hash"),
        # The daily tier review finds the members whose tier is due for a check.
        Index("ix_members_tier_until", "tier_until"),
        Index("ix_members_program_language", "program_id", "language"),
        # Reports: members by status, joined in a period, at a store, without reading the rows
        # (1M members: 5 s -> 0.1 s on SQLite).
        Index("ix_members_program_status_joined", "program_id", "status", "joined_at", "store"),
        # The newest members first (the admin's lists), without sorting the club's members. On
        # PostgreSQL with the status beside (migration 0013): a segment's grouped set over
        # purchases or lines is merged with the club's members in id order from this index
        # alone, erased ones told apart, instead of a scan of every member's row.
        Index("ix_members_program_id", "program_id", "id", postgresql_include=["status"]),
        # Reports: members by days since their last purchase, as ranges of this index.
        Index(
            "ix_members_program_status_last_purchase", "program_id", "status", "last_purchase_at"
        ),
        # PostgreSQL: the same key with every other column a segment's leaves read on the
        # member's row (migration 0018). A count planned without statistics (a restored or
        # bulk-filled database before autovacuum's ANALYZE) takes the club for 0.5 % of the
        # table, and read a million rows through a bitmap or, for a recent buyer, through
        # the index above out of table order; from this index alone it reads none
        # (tests/bench/segments.py, 1M members: the campaign shape 401 -> 143 ms, a tier 350
        # -> 205, points 315 -> 176). With statistics a whole club is a scan of the table.
        # The narrow index stays: its ranges are a third of this one's pages.
        Index(
            "ix_members_segments",
            "program_id",
            "status",
            "last_purchase_at",
            postgresql_include=[
                "id",
                "tier_id",
                "open_points",
                "open_points_until",
                "previous_purchase_at",
                "purchase_count",
                "purchase_total_minor",
                "joined_at",
                "birthday",
                "language",
            ],
        ).ddl_if(dialect="postgresql"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id", ondelete="CASCADE"))
    phone: Mapped[str | None] = mapped_column(String(20))
    phone_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(10))
    language: Mapped[str | None] = mapped_column(String(5))
    first_name: Mapped[str | None] = mapped_column(String(60))
    birthday: Mapped[dt.date | None] = mapped_column(Date)
    flow: Mapped[str | None] = mapped_column(String(20))
    step: Mapped[str | None] = mapped_column(String(40))
    flow_data: Mapped[dict[str, Any] | None]
    joined_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]
    # Loyalty: the code a friend texts (JOIN CODE), who referred this member, the tier held and
    # until when it holds without a new qualification check.
    referral_code: Mapped[str | None] = mapped_column(String(12))
    referred_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("members.id", ondelete="SET NULL")
    )
    tier_id: Mapped[int | None] = mapped_column(ForeignKey("tiers.id", ondelete="SET NULL"))
    tier_until: Mapped[dt.date | None] = mapped_column(Date)
    # The store where the member joined (a till's API key names its store).
    store: Mapped[str | None] = mapped_column(String(40))
    # Delivery: failures in a row, and when the number was flagged as unreachable (the carrier
    # says opted out or invalid, or it kept failing); a flagged number gets no marketing.
    delivery_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    undeliverable_at: Mapped[dt.datetime | None]
    # When the member last bought (the latest purchase's occurred_at), kept by
    # purchases.record: the dashboard's recency counts read it instead of every purchase.
    last_purchase_at: Mapped[dt.datetime | None]
    # And the purchase before it (the second latest occurred_at; the same instant if two were
    # made at once), kept with it: a segment's "at least two purchases" (in a window) or "at
    # most one" reads it instead of counting every member's purchases.
    previous_purchase_at: Mapped[dt.datetime | None]
    # And how many purchases the member made, for how much in all (minor units of the club's
    # currency), kept with them: a segment's purchase count or amount over the member's whole
    # membership reads the row instead of grouping every purchase of the club (migration 0017).
    purchase_count: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    purchase_total_minor: Mapped[int] = mapped_column(
        BigInteger, default=0, server_default=text("0")
    )
    # Receipts by SMS after each purchase (a service message the member turns on: KVITTERING PÅ).
    receipts: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # When the member last changed their birthday themselves (it may move once a year).
    birthday_changed_at: Mapped[dt.datetime | None]
    # Kept by store.loyalty.ledger with every lot it writes: the points of the member's lots not
    # yet settled (remaining > 0) and the earliest end among them. While that end is ahead, the
    # balance is open_points without reading a lot (segments' points at 1M members).
    open_points: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))
    open_points_until: Mapped[dt.datetime | None]


class ConsentEvent(Base):
    """One grant or withdrawal of consent, appended and never changed."""

    __tablename__ = "consent_events"
    __table_args__ = (Index("ix_consent_events_member", "member_id", "id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id", ondelete="CASCADE"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    purpose: Mapped[str] = mapped_column(String(20))
    action: Mapped[str] = mapped_column(String(10))
    # The exact words the member was shown (message id, language and rendered text).
    wording_id: Mapped[str] = mapped_column(String(40))
    wording_language: Mapped[str] = mapped_column(String(5))
    wording_text: Mapped[str] = mapped_column(Text)
    channel: Mapped[str] = mapped_column(String(10))
    evidence: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime]


class ProfileQuestion(Base):
    """A question asked after joining; kind is first_name, birthday, choice, multichoice or text."""

    __tablename__ = "profile_questions"
    __table_args__ = (UniqueConstraint("program_id", "key"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(40))
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(12))
    # {"nb": "...", "sv": "...", "en": "..."}; built-in kinds may leave it empty.
    prompt: Mapped[dict[str, Any] | None]
    # [{"key": "running", "label": {"nb": "Løping", ...}}, ...] for choice kinds.
    choices: Mapped[list[Any] | None]
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class ProfileAnswer(Base):
    """A member's answer to one profile question."""

    __tablename__ = "profile_answers"
    __table_args__ = (
        UniqueConstraint("member_id", "question_id"),
        # Segments: one question's answers in member order ("answered" from the index alone).
        Index("ix_profile_answers_question", "question_id", "member_id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id", ondelete="CASCADE"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    question_id: Mapped[int] = mapped_column(ForeignKey("profile_questions.id", ondelete="CASCADE"))
    value: Mapped[list[Any]]
    answered_at: Mapped[dt.datetime]


class AnswerChoice(Base):
    """One choice key of a member's answer to a choice or multichoice question.

    Kept by store.members.profile.save_answer beside the answer's JSON list, so a segment's
    "answered any of these choices" is one range of this table's key in member order, where
    it searched the JSON text of every answer to the question (tests/bench/segments.py). The
    rows go with their answer (erasure, a question deleted, a member discarded). Clustered by
    key on SQLite (WITHOUT ROWID)."""

    __tablename__ = "answer_choices"
    __table_args__ = (
        # An answer replaced or deleted finds its rows.
        Index("ix_answer_choices_answer_id", "answer_id"),
        {"sqlite_with_rowid": False},
    )

    question_id: Mapped[int] = mapped_column(
        ForeignKey("profile_questions.id", ondelete="CASCADE"), primary_key=True
    )
    choice: Mapped[str] = mapped_column(Text, primary_key=True)
    member_id: Mapped[int] = mapped_column(Id, primary_key=True)
    answer_id: Mapped[int] = mapped_column(ForeignKey("profile_answers.id", ondelete="CASCADE"))


class InboundMessage(Base):
    """A text received from a member, with the reply given (replayed if the gateway retries)."""

    __tablename__ = "inbound_messages"
    __table_args__ = (
        UniqueConstraint("program_id", "provider_sid"),
        # Erasure finds the texts a number sent before it was a member.
        Index("ix_inbound_messages_program_from", "program_id", "from_number"),
        # The texts Klubb could not answer, counted per period (dashboard) and listed (inbox).
        Index(
            "ix_inbound_messages_program_not_understood",
            "program_id",
            "not_understood",
            "received_at",
        ),
        # The inbox (store.outreach.inbox): those texts per number, read from the index alone
        # (not_understood in it too, so SQLite sees it covers the query); partial, so the texts
        # that were understood (nearly all) cost it nothing.
        Index(
            "ix_inbound_messages_inbox",
            "program_id",
            "not_understood",
            "from_number",
            "received_at",
            "id",
            sqlite_where=text("not_understood = 1"),
            postgresql_where=text("not_understood"),
        ),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id", ondelete="CASCADE"))
    provider_sid: Mapped[str] = mapped_column(String(64))
    member_id: Mapped[int | None] = mapped_column(
        ForeignKey("members.id", ondelete="SET NULL"), index=True
    )
    from_number: Mapped[str | None] = mapped_column(String(20))
    to_number: Mapped[str] = mapped_column(String(20))
    body: Mapped[str | None] = mapped_column(Text)
    intent: Mapped[str | None] = mapped_column(String(20))
    reply: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[dt.datetime]
    # Klubb could not tell what the text asked for and answered with what a member can text.
    not_understood: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class OutboxMessage(Base):
    """Every SMS Klubb sends, before it is sent.

    kind: reply (answered inline in the webhook), system or marketing.
    status: sent_inline, queued, sending, sent, failed, skipped (a guard rail held it back at
    sending; `error` says which) or held_out (the campaign's control group: recorded, not sent);
    store.states.OutboxStatus and its "outbox" table.
    delivery: what the carrier said afterwards (delivered, undelivered, failed), via callbacks.

    A campaign's row is unique per (campaign, member, occasion): planning twice plans once, and
    a journey sends once per occasion (a birthday's year, a purchase, a tier).
    """

    __tablename__ = "outbox_messages"
    __table_args__ = (
        UniqueConstraint("dedupe_key"),
        UniqueConstraint("campaign_id", "member_id", "occasion"),
        Index("ix_outbox_messages_status_due", "status", "send_after"),
        Index("ix_outbox_messages_program_to", "program_id", "to_number"),
        Index("ix_outbox_messages_provider_id", "provider_id"),
        # The cap, read from the index alone: per member for a planning chunk or a sending
        # batch (this one also serves erasure's lookup by member), per club for a preview.
        Index("ix_outbox_messages_member_kind", "member_id", "kind", "send_after", "status"),
        Index(
            "ix_outbox_messages_marketing",
            "program_id",
            "kind",
            "send_after",
            "member_id",
            "status",
        ),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id", ondelete="CASCADE"))
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id", ondelete="SET NULL"))
    inbound_id: Mapped[int | None] = mapped_column(
        ForeignKey("inbound_messages.id", ondelete="SET NULL")
    )
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    occasion: Mapped[str] = mapped_column(String(40), default="", server_default="")
    # The sender process that claimed the row (sender_heartbeats.id): a row in doubt whose
    # sender has stopped beating is settled at once, not after KLUBB_IN_DOUBT_AFTER.
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(12))
    to_number: Mapped[str | None] = mapped_column(String(20))
    from_number: Mapped[str] = mapped_column(String(20))
    # A campaign's rows are planned without a body: it is written when the row is claimed,
    # with the member's name, points and coupon as they are then.
    body: Mapped[str | None] = mapped_column(Text)
    segments: Mapped[int] = mapped_column(Integer)
    dedupe_key: Mapped[str | None] = mapped_column(String(100))
    provider_id: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(String(200))
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[dt.datetime]
    send_after: Mapped[dt.datetime | None]
    claimed_at: Mapped[dt.datetime | None]
    sent_at: Mapped[dt.datetime | None]
    delivery: Mapped[str | None] = mapped_column(String(12))
    delivery_error: Mapped[str | None] = mapped_column(String(10))
    delivered_at: Mapped[dt.datetime | None]


class DeliveryReceipt(Base):
    """A status callback from the gateway, appended once per (message, status).

    Kept as a log (a callback may arrive before the sender has written the provider's id on
    its outbox row; the sender applies the ones that are waiting)."""

    __tablename__ = "delivery_receipts"
    __table_args__ = (UniqueConstraint("provider_id", "status"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id", ondelete="CASCADE"))
    provider_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(12))
    error_code: Mapped[str | None] = mapped_column(String(10))
    received_at: Mapped[dt.datetime]


class Segment(Base):
    """A saved filter over the club's members, stored as data (see store.outreach.segments)."""

    __tablename__ = "segments"
    __table_args__ = (UniqueConstraint("program_id", "name"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(60))
    filter: Mapped[dict[str, Any]]
    created_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]


class Campaign(Base):
    """A broadcast (sent once, to a segment) or a journey (sent by a trigger, once per occasion).

    texts: the message per language, with placeholders; a journey without texts uses the
    catalog's wording for its trigger. filter: the segment's filter as it was when the
    campaign was planned (a segment edited later doesn't change who a sent campaign reached).
    status: broadcasts go scheduled -> planning -> sending -> done, or cancelled; journeys are
    active or paused (store.states: CampaignStatus, the "broadcast" and "journey" tables).
    """

    __tablename__ = "campaigns"
    __table_args__ = (
        UniqueConstraint("program_id", "trigger"),
        Index("ix_campaigns_status_send_at", "status", "send_at"),
        Index("ix_campaigns_parent_occurrence", "parent_id", "occurrence", unique=True),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(80))
    kind: Mapped[str] = mapped_column(String(10))
    trigger: Mapped[str | None] = mapped_column(String(20))
    settings: Mapped[dict[str, Any] | None]
    texts: Mapped[dict[str, Any] | None]
    segment_id: Mapped[int | None] = mapped_column(ForeignKey("segments.id", ondelete="SET NULL"))
    filter: Mapped[dict[str, Any] | None]
    coupon_template_id: Mapped[int | None] = mapped_column(ForeignKey("coupon_templates.id"))
    control_percent: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    status: Mapped[str] = mapped_column(String(12))
    send_at: Mapped[dt.datetime | None]
    # Planning goes through the members in id order, a chunk per commit; this is how far it got.
    planned_through: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    created_by: Mapped[str | None] = mapped_column(String(60))
    created_at: Mapped[dt.datetime]
    planned_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]
    # A broadcast's report as store.reports last counted it, and when: the dashboard reads it
    # instead of counting every message again (see reports.campaign_results).
    results: Mapped[dict[str, Any] | None]
    results_at: Mapped[dt.datetime | None]
    # A recurring broadcast: {"every": "month", "day": 15} or {"every": "year", "month": 12,
    # "day": 1}; each occurrence is a campaign of its own with parent_id and its occurrence date.
    recurrence: Mapped[dict[str, Any] | None]
    parent_id: Mapped[int | None] = mapped_column(Id)
    occurrence: Mapped[str | None] = mapped_column(String(20))


class Tier(Base):
    """A step of the club's ladder: reached by points earned within the qualification period."""

    __tablename__ = "tiers"
    __table_args__ = (UniqueConstraint("program_id", "position"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[dict[str, Any]]  # per language
    threshold: Mapped[int] = mapped_column(Integer)
    discount_percent: Mapped[int] = mapped_column(Integer, default=0)
    benefit: Mapped[dict[str, Any] | None]  # per language


class PointMultiplier(Base):
    """Double or triple points on every purchase between two dates (in the club's time zone)."""

    __tablename__ = "point_multipliers"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    program_id: Mapped[int] = mapped_column(
        ForeignKey("programs.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(60))
    starts_on: Mapped[dt.date] = mapped_column(Date)
    ends_on: Mapped[dt.date] = mapped_column(Date)
    multiplier: Mapped[int] = mapped_column(Integer)


class BonusRule(Base):
    """Extra points on lines of a category or brand, per earning unit (on top of the base)."""

    __tablename__ = "bonus_rules"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    program_id: Mapped[int] = mapped_column(
        ForeignKey("programs.id", ondelete="CASCADE"), index=True
    )
    field: Mapped[str] = mapped_column(String(10))  # category or brand
    value: Mapped[str] = mapped_column(String(60))
    extra_points: Mapped[int] = mapped_column(Integer)


class Purchase(Base):
    """A purchase recorded by a till or web shop, once per its own transaction id."""

    __tablename__ = "purchases"
    __table_args__ = (
        UniqueConstraint("program_id", "transaction_id"),
        Index("ix_purchases_member_occurred", "member_id", "occurred_at"),
        # Segments: who bought within a period; reports: a period's purchases, revenue, buyers
        # and top customers, from the index alone.
        Index(
            "ix_purchases_program_occurred_total",
            "program_id",
            "occurred_at",
            "member_id",
            "total_minor",
        ),
        # Segments: each member's purchases in one run (count, amount, last purchase, store),
        # grouped by member without a sort or a read of the rows (store/segments.py).
        Index(
            "ix_purchases_program_member",
            "program_id",
            "member_id",
            "occurred_at",
            "total_minor",
            "store",
        ),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id", ondelete="CASCADE"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    transaction_id: Mapped[str] = mapped_column(String(64))
    store: Mapped[str | None] = mapped_column(String(40))
    currency: Mapped[str] = mapped_column(String(3))
    total_minor: Mapped[int] = mapped_column(BigInteger)
    points: Mapped[int] = mapped_column(Integer)
    # A digest of the request: the same transaction id with different contents is a conflict.
    fingerprint: Mapped[str] = mapped_column(String(64))
    occurred_at: Mapped[dt.datetime]
    created_at: Mapped[dt.datetime]


class PurchaseMonth(Base):
    """A member's purchases in one month of their club's time zone, as counted and summed when
    each was recorded (store.loyalty.purchases.record): the dashboard's buyers of a month are
    its rows (on SQLite), without making a year of purchases distinct.

    The month is its first instant and the next month's, in seconds since 1970: the zone's
    months as they were when the purchase was recorded, so a club that changes its zone has
    rows of both, and a report finds a month's rows wanting and counts it from the purchases.
    Clustered by month on SQLite (WITHOUT ROWID): a month's rows, with their figures, are one
    range of the table."""

    __tablename__ = "purchase_months"
    __table_args__ = (
        # A member's rows go with them (the purchases do): found by member, not by scanning.
        Index("ix_purchase_months_member_id", "member_id"),
        {"sqlite_with_rowid": False},
    )

    program_id: Mapped[int] = mapped_column(
        ForeignKey("programs.id", ondelete="CASCADE"), primary_key=True
    )
    month_start: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    month_end: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    member_id: Mapped[int] = mapped_column(
        ForeignKey("members.id", ondelete="CASCADE"), primary_key=True
    )
    purchases: Mapped[int] = mapped_column(Integer)
    revenue_minor: Mapped[int] = mapped_column(BigInteger)  # refunds not deducted


class PurchaseLine(Base):
    """One line of a purchase and the points it earned (what a refund of it takes back)."""

    __tablename__ = "purchase_lines"
    __table_args__ = (
        UniqueConstraint("purchase_id", "line_no"),
        Index("ix_purchase_lines_member_category", "member_id", "category"),
        # Segments: the club's lines of a category, without reading the others.
        Index("ix_purchase_lines_program_category", "program_id", "category", "member_id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id", ondelete="CASCADE"))
    purchase_id: Mapped[int] = mapped_column(ForeignKey("purchases.id", ondelete="CASCADE"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    line_no: Mapped[int] = mapped_column(Integer)
    sku: Mapped[str | None] = mapped_column(String(64))
    category: Mapped[str | None] = mapped_column(String(60))
    brand: Mapped[str | None] = mapped_column(String(60))
    qty: Mapped[int] = mapped_column(Integer)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    discounted: Mapped[bool] = mapped_column(Boolean)
    points: Mapped[int] = mapped_column(Integer)


class MemberMark(Base):
    """Where a member joined and bought, and what: one row for the store they joined at
    (kind "joined"), per store they bought at ("store") and per category they bought a line of
    ("category"), with the moment they joined or of the latest such purchase.

    Kept in the same transaction by the writers of what they mark (store.members.enrolment
    sets the store a member joined at, store.loyalty.purchases.record writes purchases), so a
    segment's store or category is one range of this table's key in member order, where it
    grouped the club's purchases or lines and read every member's store
    (tests/bench/segments.py). A refund leaves the purchase and its row as they were; the rows
    go with their member. Clustered by key on SQLite (WITHOUT ROWID): a range holds each
    row's `last_at`."""

    __tablename__ = "member_marks"
    __table_args__ = (
        # On PostgreSQL the key carries last_at (migration 0016): a window of days is read
        # from the key's range alone, not from the rows (1M members, category in a 90-day
        # window after ANALYZE: the marks' part 130 -> 38 ms).
        PrimaryKeyConstraint(
            "program_id", "kind", "name", "member_id", postgresql_include=["last_at"]
        ),
        # A member's rows go with them: found by member, not by scanning.
        Index("ix_member_marks_member_id", "member_id"),
        {"sqlite_with_rowid": False},
    )

    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(8))  # joined, store, category
    name: Mapped[str] = mapped_column(String(60))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    last_at: Mapped[dt.datetime]


class Refund(Base):
    """A refund of a purchase, whole or by lines, once per the till's refund id."""

    __tablename__ = "refunds"
    __table_args__ = (UniqueConstraint("program_id", "refund_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id", ondelete="CASCADE"))
    purchase_id: Mapped[int] = mapped_column(
        ForeignKey("purchases.id", ondelete="CASCADE"), index=True
    )
    refund_id: Mapped[str] = mapped_column(String(64))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    points: Mapped[int] = mapped_column(Integer)  # points the refunded lines had earned
    points_taken: Mapped[int] = mapped_column(Integer)  # less when they were already spent
    fingerprint: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime]


class RefundLine(Base):
    """How much of one purchase line a refund returned, and the points that took back."""

    __tablename__ = "refund_lines"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    refund_id: Mapped[int] = mapped_column(ForeignKey("refunds.id", ondelete="CASCADE"))
    line_id: Mapped[int] = mapped_column(
        ForeignKey("purchase_lines.id", ondelete="CASCADE"), index=True
    )
    qty: Mapped[int] = mapped_column(Integer)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    points: Mapped[int] = mapped_column(Integer)


class LedgerEntry(Base):
    """One change to a member's points, appended and never changed.

    kind: earn (a purchase), refund (a refund takes its points back), spend (a reward claimed),
    expire (a lot reached its end), adjust (staff, with a reason) or bonus (referral, campaign).
    """

    __tablename__ = "ledger_entries"
    # Covers the tier's sum (points earned in the qualification period) without reading rows.
    __table_args__ = (
        Index("ix_ledger_entries_member_created", "member_id", "created_at", "tier_points"),
        # A member's spends counted without reading their earns (journeys' balance triggers).
        Index("ix_ledger_entries_member_kind", "member_id", "kind"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id", ondelete="CASCADE"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(10))
    points: Mapped[int] = mapped_column(Integer)
    # What the entry counts towards a tier: an earn its points, a refund minus the points its
    # lines had earned (in full, even when fewer could be taken back), anything else 0.
    tier_points: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    purchase_id: Mapped[int | None] = mapped_column(ForeignKey("purchases.id", ondelete="SET NULL"))
    refund_id: Mapped[int | None] = mapped_column(ForeignKey("refunds.id", ondelete="SET NULL"))
    coupon_id: Mapped[int | None] = mapped_column(ForeignKey("coupons.id", ondelete="SET NULL"))
    lot_id: Mapped[int | None] = mapped_column(Id)  # the lot an expire entry closes
    reason: Mapped[str | None] = mapped_column(String(200))
    actor: Mapped[str | None] = mapped_column(String(60))
    expires_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime]


class PointLot(Base):
    """What is left of one earning entry: spending and expiry take from the oldest lots first.

    Derived from the ledger (it is the ledger's entries allocated oldest first); kept as rows so
    the balance and the next expiry are read from the few open lots, whatever the ledger's
    length. The balance at any instant is the sum of open lots that have not reached their end.
    """

    __tablename__ = "point_lots"
    __table_args__ = (
        # Covering (remaining is in it): the balance and the next expiry are read from the
        # index alone (tests/bench/points.py: 3.1 -> 0.9 ms for a member with 5,500 open lots).
        Index(
            "ix_point_lots_open",
            "member_id",
            "expires_at",
            "remaining",
            sqlite_where=text("remaining > 0"),
            postgresql_where=text("remaining > 0"),
        ),
        Index(
            "ix_point_lots_due",
            "expires_at",
            sqlite_where=text("remaining > 0"),
            postgresql_where=text("remaining > 0"),
        ),
    )

    entry_id: Mapped[int] = mapped_column(
        ForeignKey("ledger_entries.id", ondelete="CASCADE"), primary_key=True
    )
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id", ondelete="CASCADE"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    points: Mapped[int] = mapped_column(Integer)
    remaining: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[dt.datetime]


class CouponTemplate(Base):
    """What a kind of coupon gives and for how long.

    kind: welcome, birthday, campaign, reward (costs `points_cost`, claimed by SMS), referral or
    punch (the free item a punch card gives). benefit: what it gives, per language.
    """

    __tablename__ = "coupon_templates"
    __table_args__ = (UniqueConstraint("program_id", "key"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(10))
    benefit: Mapped[dict[str, Any]]
    discount_percent: Mapped[int | None] = mapped_column(Integer)
    discount_minor: Mapped[int | None] = mapped_column(BigInteger)
    points_cost: Mapped[int | None] = mapped_column(Integer)
    valid_days: Mapped[int] = mapped_column(Integer)
    position: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # What the till computes: {"type": "percent"|"amount"|"buy_n_pay_m", ..., "scope": ...,
    # "min_basket_minor": ...} (store.loyalty.offers); None: the benefit is text for the cashier.
    offer: Mapped[dict[str, Any] | None]
    # A bonus cheque: a reward issued by itself once the balance reaches points_cost.
    automatic: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class Coupon(Base):
    """An issued coupon: a unique code, valid between two instants, redeemed at most once.

    source: why it was issued ("welcome:12", "birthday:12:2026", "punch:3:12:10": the 10th
    punch on card 3 of member 12); unique, so issuing twice for the same reason issues once.
    """

    __tablename__ = "coupons"
    __table_args__ = (
        UniqueConstraint("program_id", "code"),
        UniqueConstraint("program_id", "source"),
        Index("ix_coupons_member_valid", "member_id", "valid_until"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id", ondelete="CASCADE"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    template_id: Mapped[int] = mapped_column(ForeignKey("coupon_templates.id"))
    code: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(80))
    # The purchase that issued it (a punch card's free item, a referral reward on first purchase).
    purchase_id: Mapped[int | None] = mapped_column(
        ForeignKey("purchases.id", ondelete="SET NULL"), index=True
    )
    issued_at: Mapped[dt.datetime]
    valid_from: Mapped[dt.datetime]
    valid_until: Mapped[dt.datetime]
    redeemed_at: Mapped[dt.datetime | None]
    redeemed_by: Mapped[str | None] = mapped_column(String(60))
    redeemed_ref: Mapped[str | None] = mapped_column(String(64))


class PunchCard(Base):
    """Every `every`th purchase in a category issues the free-item coupon of `template_id`."""

    __tablename__ = "punch_cards"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    program_id: Mapped[int] = mapped_column(
        ForeignKey("programs.id", ondelete="CASCADE"), index=True
    )
    category: Mapped[str] = mapped_column(String(60))
    every: Mapped[int] = mapped_column(Integer)
    template_id: Mapped[int] = mapped_column(ForeignKey("coupon_templates.id"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class ApiKey(Base):
    """A till's or web shop's key: limited to one club and its scopes; only a hash is kept."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(60))
    store: Mapped[str | None] = mapped_column(String(40))
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[list[Any]]
    created_at: Mapped[dt.datetime]
    revoked_at: Mapped[dt.datetime | None]
    # Set by apikeys.verify at most once a minute (a write per API call would be too many).
    last_used_at: Mapped[dt.datetime | None]


class AdminAccount(Base):
    """A person who signs in to the web admin of one club; only an argon2 hash of the password.

    The email is unique across clubs, so signing in asks for nothing but email and password.
    role: owner (everything) or staff (members and adjustments; no broadcasts, export, settings).
    """

    __tablename__ = "admin_accounts"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    program_id: Mapped[int] = mapped_column(
        ForeignKey("programs.id", ondelete="CASCADE"), index=True
    )
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(10))
    created_at: Mapped[dt.datetime]
    last_sign_in_at: Mapped[dt.datetime | None]
    # Where it last signed in from: failures elsewhere don't lock it out there (store.clubs.admins).
    last_sign_in_address: Mapped[str | None] = mapped_column(String(64))


class AdminSession(Base):
    """A signed-in browser, kept on the server so sign-out, "sign out everywhere", a new
    password and a removed account end it at once; the (encrypted) cookie holds a random
    token, and only its SHA-256 is kept here. expires_at is the sooner of its idle and its
    absolute end (clubs.admins), so one indexed test finds live sessions and prunes ended ones."""

    __tablename__ = "admin_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("admin_accounts.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[dt.datetime]
    last_seen_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)
    address: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(200))


class AdminSignInFailure(Base):
    """A failed sign-in, kept for the failure window: counted per email (whether or not an
    account has it, so a refusal tells nothing about which emails exist) and per address."""

    __tablename__ = "admin_sign_in_failures"
    __table_args__ = (
        Index("ix_admin_sign_in_failures_email", "email", "created_at"),
        Index("ix_admin_sign_in_failures_address", "address", "created_at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    email: Mapped[str] = mapped_column(String(254))
    address: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime]


class MemberLink(Base):
    """A link a member taps (purpose "page": their own page), reached by a random token of
    which only the SHA-256 is kept. It works until expires_at, or until ended_at: erasure,
    leaving and a number flagged undeliverable end a member's links at once (members.links)."""

    __tablename__ = "member_links"
    __table_args__ = (Index("ix_member_links_member_purpose", "member_id", "purpose"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id", ondelete="CASCADE"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    purpose: Mapped[str] = mapped_column(String(20))
    # The unique index on the hash is the one lookup a tap makes.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime]
    ended_at: Mapped[dt.datetime | None]


class InboxConversation(Base):
    """What staff did with the texts one number sent that Klubb could not answer: when they last
    replied and when they marked it done (store.outreach.inbox works the conversation's state out
    from these and its texts). Anchored on the number's first text not understood, which is also
    the conversation's id in the admin: erasure blanks that text's number, so nothing here names
    anyone afterwards."""

    __tablename__ = "inbox_conversations"
    __table_args__ = (Index("ix_inbox_conversations_program_updated", "program_id", "updated_at"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id", ondelete="CASCADE"))
    first_inbound_id: Mapped[int] = mapped_column(
        ForeignKey("inbound_messages.id", ondelete="CASCADE"), unique=True
    )
    answered_at: Mapped[dt.datetime | None]
    done_at: Mapped[dt.datetime | None]
    updated_at: Mapped[dt.datetime]


class StaffReply(Base):
    """Who at the club sent an outbox row answering a member's text (kind "staff"). The account
    becomes NULL when it is removed: the thread then says "removed account"."""

    __tablename__ = "staff_replies"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id", ondelete="CASCADE"))
    outbox_id: Mapped[int] = mapped_column(
        ForeignKey("outbox_messages.id", ondelete="CASCADE"), unique=True
    )
    account_id: Mapped[int | None] = mapped_column(
        ForeignKey("admin_accounts.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[dt.datetime]


class ClickLink(Base):
    """A short link put in one campaign or journey message in place of a URL in its text: a
    random token (only its SHA-256 kept) that redirects to `url` and counts the tap. Erasure
    blanks member_id; the link's clicks still count for the campaign (store.outreach.clicks)."""

    __tablename__ = "click_links"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id", ondelete="CASCADE"))
    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), index=True
    )
    # The message the link went out in: one recipient, so unique clickers survive erasure.
    message_id: Mapped[int | None] = mapped_column(
        ForeignKey("outbox_messages.id", ondelete="SET NULL"), index=True
    )
    member_id: Mapped[int | None] = mapped_column(
        ForeignKey("members.id", ondelete="SET NULL"), index=True
    )
    url: Mapped[str] = mapped_column(Text)
    # The unique index on the hash is the one lookup a tap makes.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime]


class LinkClick(Base):
    """One counted tap on a click link (a person's GET; previews and HEAD are not counted)."""

    __tablename__ = "link_clicks"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    link_id: Mapped[int] = mapped_column(
        ForeignKey("click_links.id", ondelete="CASCADE"), index=True
    )
    clicked_at: Mapped[dt.datetime]


class MessageTemplate(Base):
    """A saved text the owner words once per language: `purpose` "reply" for the inbox's staff
    replies, "broadcast" for campaigns. Placeholders are checked when it is saved."""

    __tablename__ = "message_templates"
    __table_args__ = (UniqueConstraint("program_id", "purpose", "name"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id", ondelete="CASCADE"))
    purpose: Mapped[str] = mapped_column(String(10))
    name: Mapped[str] = mapped_column(String(80))
    # {"nb": "...", "en": "..."}
    texts: Mapped[dict[str, Any]]
    created_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]


class ProfilePrompt(Base):
    """A profile question put to a member who joined before the club added it: asked once, at
    their next text to the club (never as a message of its own); skipped_at when they skipped it."""

    __tablename__ = "profile_prompts"
    __table_args__ = (UniqueConstraint("member_id", "question_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id", ondelete="CASCADE"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    question_id: Mapped[int] = mapped_column(ForeignKey("profile_questions.id", ondelete="CASCADE"))
    asked_at: Mapped[dt.datetime]
    skipped_at: Mapped[dt.datetime | None]


class SenderHeartbeat(Base):
    """A running sender: it beats while it runs; rows it claimed are in doubt only while it does."""

    __tablename__ = "sender_heartbeats"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    host: Mapped[str] = mapped_column(String(100))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[dt.datetime]
    seen_at: Mapped[dt.datetime]
