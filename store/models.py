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
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
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
    marketing_per_month: Mapped[int] = mapped_column(Integer, default=2)
    min_age: Mapped[int] = mapped_column(Integer, default=13)
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
    """

    __tablename__ = "members"
    __table_args__ = (
        UniqueConstraint("program_id", "phone"),
        Index("ix_members_program_phone_hash", "program_id", "phone_hash"),
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
    __table_args__ = (UniqueConstraint("member_id", "question_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id", ondelete="CASCADE"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    question_id: Mapped[int] = mapped_column(ForeignKey("profile_questions.id", ondelete="CASCADE"))
    value: Mapped[list[Any]]
    answered_at: Mapped[dt.datetime]


class InboundMessage(Base):
    """A text received from a member, with the reply given (replayed if the gateway retries)."""

    __tablename__ = "inbound_messages"
    __table_args__ = (
        UniqueConstraint("program_id", "provider_sid"),
        # Erasure finds the texts a number sent before it was a member.
        Index("ix_inbound_messages_program_from", "program_id", "from_number"),
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


class OutboxMessage(Base):
    """Every SMS Klubb sends, before it is sent.

    kind: reply (answered inline in the webhook), system or marketing.
    status: sent_inline, queued, sending, sent, failed or skipped.
    """

    __tablename__ = "outbox_messages"
    __table_args__ = (
        UniqueConstraint("dedupe_key"),
        Index("ix_outbox_messages_status_due", "status", "send_after"),
        Index("ix_outbox_messages_program_to", "program_id", "to_number"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id", ondelete="CASCADE"))
    member_id: Mapped[int | None] = mapped_column(
        ForeignKey("members.id", ondelete="SET NULL"), index=True
    )
    inbound_id: Mapped[int | None] = mapped_column(
        ForeignKey("inbound_messages.id", ondelete="SET NULL")
    )
    kind: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(12))
    to_number: Mapped[str | None] = mapped_column(String(20))
    from_number: Mapped[str] = mapped_column(String(20))
    body: Mapped[str | None] = mapped_column(Text)
    segments: Mapped[int] = mapped_column(Integer)
    dedupe_key: Mapped[str | None] = mapped_column(String(100))
    provider_id: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[dt.datetime]
    send_after: Mapped[dt.datetime | None]
    sent_at: Mapped[dt.datetime | None]
