"""The demo club that `klubb init --demo` creates: a sports shop in Oslo with three questions,
coupons, rewards for points, a punch card and a referral reward, and (fill_demo) a few hundred
members with a year of purchases and one finished campaign, so every page has something to show."""

from __future__ import annotations

import datetime as dt
import heapq
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

import locales
from flows.conversation import club_params
from flows.join import CONSENT_WORDING
from store import states
from store.loyalty import coupons, purchases
from store.loyalty.earning import Line
from store.members import consent, enrolment, members, profile
from store.models import (
    BonusRule,
    Campaign,
    Member,
    OutboxMessage,
    ProfileQuestion,
    Program,
    PunchCard,
)
from store.outreach import campaigns, journeys
from store.states import OutboxStatus

DEMO_CLUB = {
    "name": "Torshov Sport",
    "numbers": ["2020"],
    "country": "NO",
    "contact": "post@torshovsport.no",
    "privacy_url": "https://example.com/privacy",
}
# The demo club's owner account in the web admin; `klubb init --demo` prints its password once.
DEMO_ADMIN = "owner@demo.klubb"
DEMO_QUESTIONS: list[dict[str, Any]] = [
    {"key": "first_name", "kind": "first_name"},
    {"key": "birthday", "kind": "birthday"},
    {
        "key": "activities",
        "kind": "multichoice",
        "prompt": {
            "nb": "Hvilke aktiviteter liker du?",
            "sv": "Vilka aktiviteter gillar du?",
            "en": "Which activities interest you?",
        },
        "choices": [
            {"key": "running", "label": {"nb": "Løping", "sv": "Löpning", "en": "Running"}},
            {"key": "cycling", "label": {"nb": "Sykling", "sv": "Cykling", "en": "Cycling"}},
            {"key": "skiing", "label": {"nb": "Ski", "sv": "Skidor", "en": "Skiing"}},
        ],
    },
]

# The demo club's coupon templates, in the order COUPONS lists rewards. Each whose benefit
# the till can compute carries it as an offer (store.loyalty.offers: POST /baskets/evaluate
# and a sale's coupon_codes apply it); a free item is text for the cashier (no offer).
DEMO_COUPONS: list[dict[str, Any]] = [
    {
        "key": "welcome",
        "kind": "welcome",
        "benefit": {"nb": "10% rabatt", "sv": "10% rabatt", "en": "10% off"},
        "valid_days": 60,
        "discount_percent": 10,
        "offer": {"type": "percent", "value": 10, "scope": "basket"},
    },
    {
        "key": "birthday",
        "kind": "birthday",
        "benefit": {"nb": "20% på sko", "sv": "20% på skor", "en": "20% off shoes"},
        "valid_days": 30,
        "discount_percent": 20,
        "offer": {"type": "percent", "value": 20, "scope": "categories", "items": ["shoes"]},
    },
    {
        "key": "reward-100",
        "kind": "reward",
        "benefit": {"nb": "{amount} rabatt", "sv": "{amount} rabatt", "en": "{amount} off"},
        "valid_days": 90,
        "points_cost": 1000,
        "discount_minor": 10000,
        "offer": {"type": "amount", "value": 10000, "scope": "basket"},
    },
    {
        "key": "reward-bottle",
        "kind": "reward",
        "benefit": {"nb": "en drikkeflaske", "sv": "en vattenflaska", "en": "a water bottle"},
        "valid_days": 90,
        "points_cost": 300,
    },
    {
        "key": "referral",
        "kind": "referral",
        "benefit": {"nb": "{amount} rabatt", "sv": "{amount} rabatt", "en": "{amount} off"},
        "valid_days": 60,
        "discount_minor": 5000,
        "offer": {"type": "amount", "value": 5000, "scope": "basket"},
    },
    {
        "key": "free-waxing",
        "kind": "punch",
        "benefit": {
            "nb": "gratis skismøring",
            "sv": "gratis skidvallning",
            "en": "a free ski waxing",
        },
        "valid_days": 90,
    },
    {
        "key": "three-for-two",
        "kind": "campaign",
        "benefit": {
            "nb": "3 for 2 på løpeutstyr",
            "sv": "3 för 2 på löparutrustning",
            "en": "3 for 2 on running gear",
        },
        "valid_days": 30,
        "offer": {
            "type": "buy_n_pay_m",
            "buy": 3,
            "pay": 2,
            "scope": "categories",
            "items": ["running"],
        },
    },
]


def set_up_loyalty(session: Session, program: Program) -> None:
    """Coupons, rewards, a punch card (every 5th ski service is free), extra points on the
    shop's own brand and three journeys, so every loyalty keyword has something to show."""
    made = {}
    for position, template in enumerate(DEMO_COUPONS):
        made[template["key"]] = coupons.create_template(
            session, program, **template, position=position
        )
    session.add(
        PunchCard(
            program_id=program.id,
            category="service",
            every=5,
            template_id=made["free-waxing"].id,
            active=True,
        )
    )
    session.add(BonusRule(program_id=program.id, field="brand", value="Torshov", extra_points=1))
    session.flush()
    # The journeys a shop turns on first (in the catalog's wording): a birthday greeting with
    # the birthday coupon, a reminder before points expire, and a win-back after six months.
    journeys.create(session, program, trigger="birthday", coupon="birthday", now=program.created_at)
    for trigger in ("expiring", "winback"):
        journeys.create(session, program, trigger=trigger, now=program.created_at)


# --- the demo club's people and what they did ---------------------------------------------------

DEMO_SEED = 2020
DEMO_MEMBERS = 300
DEMO_STORES = ("Torshov", "Majorstuen", "Nettbutikk")
DEMO_CATEGORIES = ("running", "cycling", "skiing", "service", "shoes", "jackets")
DEMO_CAMPAIGN = {
    "name": "Vintersalg",
    "texts": {
        "nb": "Hei {first_name}! Vintersalg i {club}: 30% på ski og jakker denne uka.",
        "sv": "Hej {first_name}! Vinterrea hos {club}: 30% på skidor och jackor denna vecka.",
        "en": "Hi {first_name}! Winter sale at {club}: 30% off skis and jackets this week.",
    },
}
_NAMES = {
    "nb": ("Kari", "Ola", "Ingrid", "Lars", "Nora", "Jonas", "Sofie", "Emil", "Marte", "Henrik"),
    "sv": ("Anna", "Erik", "Maja", "Oskar", "Elsa", "Lukas", "Ebba", "Axel"),
    "en": ("Emma", "James", "Olivia", "Jack", "Amelia", "Harry"),
}
_LANGUAGES = (("nb", 70), ("sv", 20), ("en", 10))


@dataclass(frozen=True, slots=True)
class Filled:
    members: int
    purchases: int
    campaign_id: int | None


def fill_demo(
    session: Session,
    program: Program,
    now: dt.datetime,
    *,
    count: int = DEMO_MEMBERS,
    seed: int = DEMO_SEED,
) -> Filled:
    """Members (with names, languages, birthdays, answers and consent events) who joined over
    the last 14 months, their purchases, some STOPs, and one finished broadcast with a 10 %
    control group 25 days ago (inside the dashboard's default 30 days), all through the
    store's own functions in the order they happened, so points, the ledger, coupons and
    consent history are as the real flows leave them. The same for the same seed; a club with
    the demo campaign already is left alone."""
    done = select(Campaign.id).where(
        Campaign.program_id == program.id, Campaign.name == DEMO_CAMPAIGN["name"]
    )
    if session.scalar(done.limit(1)) is not None:
        return Filled(0, 0, None)
    # A seeded generator for a repeatable demo, not for secrets.
    return _Story(session, program, now, random.Random(seed)).tell(count)  # noqa: S311


class _Story:
    """Events on one timeline (a heap by moment): joining, buying, STOP, the campaign."""

    def __init__(
        self, session: Session, program: Program, now: dt.datetime, rng: random.Random
    ) -> None:
        self.session, self.program, self.now, self.rng = session, program, now, rng
        self.events: list[tuple[dt.datetime, int, Callable[[dt.datetime], None]]] = []
        self.order = itertools.count()
        self.purchases = 0
        self.joined: dict[int, Member] = {}  # by index
        self.campaign_id: int | None = None
        # The club's earning rules read once, as the API's cache keeps them: the demo's rules
        # don't change while it is told.
        self.rules = purchases.club_rules(session, program.id)
        self.activities = session.scalar(
            select(ProfileQuestion.id).where(
                ProfileQuestion.program_id == program.id, ProfileQuestion.key == "activities"
            )
        )

    def at(self, moment: dt.datetime, event: Callable[[dt.datetime], None]) -> None:
        if moment < self.now:
            heapq.heappush(self.events, (moment, next(self.order), event))

    def shop_hours(self, day: dt.datetime) -> dt.datetime:
        """A moment of the day while the shop is open (10 to 19 in Oslo, roughly)."""
        start = day.replace(hour=8, minute=0, second=0, microsecond=0)
        return start + dt.timedelta(minutes=self.rng.randrange(9 * 60))

    def tell(self, count: int) -> Filled:
        rng = self.rng
        for index in range(count):
            # More joined lately than long ago, as a club grows.
            days_ago = int(420 * rng.random() ** 1.6)
            self.at(self.shop_hours(self.now - dt.timedelta(days=days_ago)), self.joiner(index))
        moment = (self.now - dt.timedelta(days=25)).replace(
            hour=9, minute=0, second=0, microsecond=0
        )
        self.at(moment, self.broadcast)
        while self.events:
            when, _, event = heapq.heappop(self.events)
            event(when)
        return Filled(count, self.purchases, self.campaign_id)

    def joiner(self, index: int) -> Callable[[dt.datetime], None]:
        def join(when: dt.datetime) -> None:
            rng, session, program = self.rng, self.session, self.program
            language = rng.choices([k for k, _ in _LANGUAGES], [w for _, w in _LANGUAGES])[0]
            phone = {
                "nb": f"+4741{index:06d}",
                "sv": f"+4673{index:07d}",
                "en": f"+447700{900000 + index}",
            }[language]
            name = rng.choice(_NAMES[language])
            if rng.random() < 0.04:  # asked to confirm joining, never answered
                members.create(session, program, phone, status=members.PENDING, now=when)
                return
            at_till = rng.random() < 0.45
            store = rng.choice(DEMO_STORES[:2]) if at_till else None
            wording = locales.render(CONSENT_WORDING, language, **club_params(program))
            member = enrolment.enrol(
                session,
                program,
                phone,
                wording_id=CONSENT_WORDING,
                wording_language=language,
                wording_text=wording,
                channel="pos" if at_till else "sms",
                evidence=f"demo-{'till' if at_till else 'SM'}-{index:05d}",
                now=when,
                language=language,
                first_name=name if rng.random() < 0.9 else None,
                store=store,
            ).member
            if rng.random() < 0.85:
                age_days = rng.randrange(16 * 365, 75 * 365)
                member.birthday = (self.now - dt.timedelta(days=age_days)).date()
            if self.activities is not None and rng.random() < 0.6:
                picked = rng.sample(("running", "cycling", "skiing"), rng.choice((1, 1, 2, 3)))
                profile.save_answer(session, member, self.activities, picked, when)
            self.joined[index] = member
            # Three in four buy: a few times, some often, spread from joining to now.
            if rng.random() < 0.75:
                span = (self.now - when).total_seconds()
                for _ in range(min(12, 1 + int(rng.expovariate(0.45)))):
                    later = when + dt.timedelta(seconds=span * rng.random())
                    self.at(self.shop_hours(later), self.buyer(member.id))
            if rng.random() < 0.08:
                gone = when + dt.timedelta(days=rng.randrange(1, 300))
                self.at(gone, self.stopper(member))

        return join

    def buyer(self, member_id: int) -> Callable[[dt.datetime], None]:
        def buy(when: dt.datetime) -> None:
            rng = self.rng
            lines = [
                Line(
                    qty=1,
                    amount_minor=int(rng.lognormvariate(11.2, 0.8)) // 100 * 100,
                    category=rng.choice(DEMO_CATEGORIES),
                    brand="Torshov" if rng.random() < 0.2 else None,
                )
                for _ in range(rng.choice((1, 1, 2, 3)))
            ]
            self.purchases += 1
            number = f"demo-{self.purchases:05d}"
            purchases.record(
                self.session,
                self.program,
                member_id,
                transaction_id=number,
                lines=lines,
                occurred_at=when,
                fingerprint=number,
                now=when,
                store=rng.choice(DEMO_STORES),
                rules=self.rules,
            )

        return buy

    def stopper(self, member: Member) -> Callable[[dt.datetime], None]:
        def stop(when: dt.datetime) -> None:
            if member.status != members.ACTIVE:
                return
            consent.withdraw(
                self.session,
                member,
                wording_id="stop.confirmed",
                wording_language=member.language or "nb",
                wording_text="STOPP",
                channel="sms",
                evidence=f"demo-stop-{member.id}",
                now=when,
            )

        return stop

    def broadcast(self, when: dt.datetime) -> None:
        """The winter sale to every member with consent, one in ten held out: planned as the
        scheduler plans it, then sent (most delivered), and each side's purchases after it."""
        session, rng = self.session, self.rng
        campaign = campaigns.create_broadcast(
            session, self.program, segment=None, now=when, control_percent=10, **DEMO_CAMPAIGN
        )
        self.campaign_id = campaign.id
        while not campaigns.plan_chunk(session, campaign.id, when).done:
            pass
        rows = session.scalars(
            select(OutboxMessage).where(OutboxMessage.campaign_id == campaign.id)
        ).all()
        for row in rows:
            sent = row.status == OutboxStatus.QUEUED
            if sent:
                member = session.get(Member, row.member_id)
                assert member is not None
                language = campaigns.text_language(campaign.texts, member.language or "nb")
                body = campaign.texts[language].format(
                    first_name=member.first_name or "", club=self.program.name
                )
                # The demo replays the lifecycle the sender would: claimed, then sent.
                claimed = states.move("outbox", row.status, OutboxStatus.SENDING, what=row.id)
                row.status = states.move("outbox", claimed, OutboxStatus.SENT, what=row.id)
                row.body = campaigns.compose(body, language, self.program.name)
                row.segments = 1
                row.attempts = 1
                row.sent_at = row.send_after
                row.provider_id = f"SMdemo{row.id:08d}"
                draw = rng.random()
                row.delivery = (
                    "delivered" if draw < 0.93 else "undelivered" if draw < 0.97 else "failed"
                )
                if rng.random() < 0.03:  # the sale reminded a few that they get texts
                    self.at(when + dt.timedelta(hours=rng.randrange(1, 72)), self.stopper(member))
            # Recipients came in more often than the control group in the weeks after.
            if rng.random() < (0.35 if sent else 0.15) and row.member_id is not None:
                later = when + dt.timedelta(days=rng.randrange(1, 21))
                self.at(self.shop_hours(later), self.buyer(row.member_id))
        session.flush()
        campaigns.finish_sent(session, when + dt.timedelta(hours=1))
