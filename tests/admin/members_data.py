"""A member with a history (consent, a text, points, a coupon) for the members pages' tests."""

from __future__ import annotations

from sqlalchemy.orm import Session

from store import messages
from store.clubs import programs
from store.database import Database
from store.loyalty import coupons, ledger
from store.members import consent
from store.models import Member
from tests.conftest import CLUB_NUMBER, now


async def with_history(db: Database, member_id: int) -> None:
    """A consent given by SMS, a text in, 120 points and a welcome coupon."""

    def work(session: Session) -> None:
        member = session.get(Member, member_id)
        assert member is not None
        program = programs.get(session, member.program_id)
        assert program is not None
        consent.record(
            session,
            member,
            action=consent.GRANT,
            wording_id="join.confirm",
            wording_language="nb",
            wording_text="Velkommen til Torshov Sport! Svar STOPP for å melde deg av.",
            channel="sms",
            evidence="SM-evidence-1",
            now=now(),
        )
        messages.record_inbound(
            session,
            program_id=program.id,
            provider_sid="SM-evidence-1",
            member_id=member.id,
            from_number=member.phone,
            to_number=CLUB_NUMBER,
            body="ja takk",
            intent="yes",
            reply="Velkommen!",
            now=now(),
        )
        ledger.credit(session, program, member.id, 120, ledger.EARN, now())
        template = coupons.create_template(
            session,
            program,
            key="welcome-test",
            kind=coupons.WELCOME,
            benefit={"nb": "10% rabatt", "sv": "10% rabatt", "en": "10% off"},
            valid_days=30,
            discount_percent=10,
        )
        coupons.issue(session, program.id, member.id, template, f"welcome:{member.id}", now())

    await db.run(work)
