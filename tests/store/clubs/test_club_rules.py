"""The club's extra earning rules: punch cards, bonus rules and multiplier periods are added,
edited, turned off or removed only within the club, every bad field named at once, and a
purchase earns by the rules as they are after an edit."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy.orm import Session

from store.clubs import club_rules
from store.clubs.programs import InvalidSettings
from store.database import Database
from store.errors import NotFound
from store.loyalty import coupons, ledger
from store.loyalty.earning import Line
from tests.store.loyalty_helpers import at, buy, club, error_of, member, template

T = at(2026, 6, 10)
DAY = dt.date(2026, 6, 10)


def problems_of(call: Any) -> dict[str, str] | None:
    """The problems an InvalidSettings named (None: the call went through)."""
    exc = error_of(call)
    if exc is None:
        return None
    assert isinstance(exc, InvalidSettings), exc
    return exc.problems


class TestPunchCards:
    async def test_a_card_is_added_edited_and_turned_off_and_on(self, loyalty_db: Database) -> None:
        def work(session: Session) -> list[tuple[str, int, str, bool]]:
            program = club(session)
            coffee = template(session, program, coupons.PUNCH, key="free-coffee")
            bun = template(session, program, coupons.PUNCH, key="free-bun")
            keys = {coffee.id: coffee.key, bun.id: bun.key}

            def cards() -> list[tuple[str, int, str, bool]]:
                return [
                    (c.category, c.every, keys[c.template_id], c.active)
                    for c in club_rules.punch_cards(session, program.id)
                ]

            card = club_rules.add_punch_card(
                session, program, category=" Kaffe ", every=10, template_id=coffee.id
            )
            seen = cards()
            club_rules.edit_punch_card(
                session, program.id, card.id, category="Bolle", every=5, template_id=bun.id
            )
            club_rules.set_punch_card_active(session, program.id, card.id, active=False)
            seen += cards()
            club_rules.set_punch_card_active(session, program.id, card.id, active=True)
            return seen + cards()

        assert await loyalty_db.run(work) == [
            ("Kaffe", 10, "free-coffee", True),
            ("Bolle", 5, "free-bun", False),
            ("Bolle", 5, "free-bun", True),
        ]

    @pytest.mark.parametrize(
        ("changes", "field"),
        [
            ({"category": "  "}, "category"),
            ({"category": "x" * 61}, "category"),
            ({"every": 1}, "every"),
            ({"every": 51}, "every"),
            ({"every": None}, "every"),
            ({"template_id": None}, "template_id"),
            ({"template_id": "welcome"}, "template_id"),
            ({"template_id": "retired"}, "template_id"),
            ({"template_id": "other club"}, "template_id"),
        ],
    )
    async def test_each_bad_field_is_named_and_nothing_changes(
        self, loyalty_db: Database, changes: dict[str, Any], field: str
    ) -> None:
        def work(session: Session) -> tuple[Any, Any, list[tuple[str, int]]]:
            program = club(session)
            elsewhere = club(session)
            templates = {
                "welcome": template(session, program, coupons.WELCOME).id,
                "retired": template(session, program, coupons.PUNCH).id,
                "other club": template(session, elsewhere, coupons.PUNCH).id,
            }
            session.get(coupons.CouponTemplate, templates["retired"]).active = False
            good = template(session, program, coupons.PUNCH)
            card = club_rules.add_punch_card(
                session, program, category="Kaffe", every=10, template_id=good.id
            )
            values: dict[str, Any] = {"category": "Kaffe", "every": 8, "template_id": good.id}
            values |= {k: templates.get(v, v) for k, v in changes.items()}
            added = problems_of(lambda: club_rules.add_punch_card(session, program, **values))
            edited = problems_of(
                lambda: club_rules.edit_punch_card(session, program.id, card.id, **values)
            )
            cards = [(c.category, c.every) for c in club_rules.punch_cards(session, program.id)]
            return added, edited, cards

        added, edited, cards = await loyalty_db.run(work)
        assert added is not None
        assert list(added) == [field]
        assert edited == added
        assert cards == [("Kaffe", 10)]

    async def test_every_bad_field_is_named_at_once(self, loyalty_db: Database) -> None:
        def work(session: Session) -> dict[str, str] | None:
            program = club(session)
            return problems_of(
                lambda: club_rules.add_punch_card(
                    session, program, category="", every=0, template_id=None
                )
            )

        problems = await loyalty_db.run(work)
        assert problems is not None
        assert set(problems) == {"category", "every", "template_id"}
        assert "2 to 50" in problems["every"]

    async def test_a_card_whose_coupon_is_retired_is_not_turned_on(
        self, loyalty_db: Database
    ) -> None:
        """It would punch and give nothing: refused, naming the coupon, until it is back."""

        def work(session: Session) -> tuple[dict[str, str] | None, bool, bool]:
            program = club(session)
            free = template(session, program, coupons.PUNCH)
            card = club_rules.add_punch_card(
                session, program, category="Kaffe", every=10, template_id=free.id
            )
            club_rules.set_punch_card_active(session, program.id, card.id, active=False)
            coupons.set_template_active(session, program.id, free.id, active=False)
            refused = problems_of(
                lambda: club_rules.set_punch_card_active(session, program.id, card.id, active=True)
            )
            still_off = card.active
            coupons.set_template_active(session, program.id, free.id, active=True)
            club_rules.set_punch_card_active(session, program.id, card.id, active=True)
            return refused, still_off, card.active

        refused, still_off, on = await loyalty_db.run(work)
        assert refused is not None
        assert list(refused) == ["template_id"]
        assert (still_off, on) == (False, True)

    async def test_another_clubs_card_is_not_found(self, loyalty_db: Database) -> None:
        def work(session: Session) -> list[Exception | None]:
            program, elsewhere = club(session), club(session)
            free = template(session, elsewhere, coupons.PUNCH)
            card = club_rules.add_punch_card(
                session, elsewhere, category="Kaffe", every=10, template_id=free.id
            )
            return [
                error_of(
                    lambda: club_rules.edit_punch_card(
                        session, program.id, card.id, category="X", every=2, template_id=free.id
                    )
                ),
                error_of(
                    lambda: club_rules.set_punch_card_active(
                        session, program.id, card.id, active=False
                    )
                ),
                error_of(
                    lambda: club_rules.set_punch_card_active(session, program.id, 0, active=False)
                ),
            ]

        assert all(isinstance(e, NotFound) for e in await loyalty_db.run(work))

    async def test_purchases_punch_by_the_edited_card_and_not_while_it_is_off(
        self, loyalty_db: Database
    ) -> None:
        """Every 3rd coffee after the card is edited from every 10th; none while it's off."""

        def work(session: Session) -> list[int]:
            program = club(session)
            buyer = member(session, program)
            free = template(session, program, coupons.PUNCH)
            card = club_rules.add_punch_card(
                session, program, category="Kaffe", every=10, template_id=free.id
            )
            coffee = [Line(qty=1, amount_minor=4000, category="kaffe")]
            issued = [len(buy(session, program, buyer.id, coffee, T).coupons) for _ in range(2)]
            club_rules.edit_punch_card(
                session, program.id, card.id, category="KAFFE", every=3, template_id=free.id
            )
            issued.append(len(buy(session, program, buyer.id, coffee, T).coupons))
            club_rules.set_punch_card_active(session, program.id, card.id, active=False)
            issued += [len(buy(session, program, buyer.id, coffee, T).coupons) for _ in range(3)]
            return issued

        assert await loyalty_db.run(work) == [0, 0, 1, 0, 0, 0]


class TestBonusRules:
    async def test_a_rule_is_added_edited_and_removed(self, loyalty_db: Database) -> None:
        def work(session: Session) -> list[list[tuple[str, str, int]]]:
            program = club(session)

            def rules() -> list[tuple[str, str, int]]:
                return [
                    (r.field, r.value, r.extra_points)
                    for r in club_rules.bonus_rules(session, program.id)
                ]

            rule = club_rules.add_bonus_rule(
                session, program, field="brand", value=" Torshov ", extra_points=2
            )
            club_rules.add_bonus_rule(
                session, program, field="category", value="Sko", extra_points=1
            )
            seen = [rules()]
            club_rules.edit_bonus_rule(
                session, program.id, rule.id, field="category", value="Ski", extra_points=5
            )
            seen.append(rules())
            club_rules.remove_bonus_rule(session, program.id, rule.id)
            seen.append(rules())
            return seen

        assert await loyalty_db.run(work) == [
            [("category", "Sko", 1), ("brand", "Torshov", 2)],
            [("category", "Ski", 5), ("category", "Sko", 1)],
            [("category", "Sko", 1)],
        ]

    @pytest.mark.parametrize(
        ("changes", "field"),
        [
            ({"field": "sku"}, "field"),
            ({"value": " "}, "value"),
            ({"value": "x" * 61}, "value"),
            ({"extra_points": 0}, "extra_points"),
            ({"extra_points": 1001}, "extra_points"),
            ({"extra_points": None}, "extra_points"),
        ],
    )
    async def test_each_bad_field_is_named_and_nothing_changes(
        self, loyalty_db: Database, changes: dict[str, Any], field: str
    ) -> None:
        def work(session: Session) -> tuple[Any, Any, list[tuple[str, str, int]]]:
            program = club(session)
            rule = club_rules.add_bonus_rule(
                session, program, field="brand", value="Torshov", extra_points=2
            )
            values = {"field": "category", "value": "Sko", "extra_points": 3, **changes}
            added = problems_of(lambda: club_rules.add_bonus_rule(session, program, **values))
            edited = problems_of(
                lambda: club_rules.edit_bonus_rule(session, program.id, rule.id, **values)
            )
            rules = [
                (r.field, r.value, r.extra_points)
                for r in club_rules.bonus_rules(session, program.id)
            ]
            return added, edited, rules

        added, edited, rules = await loyalty_db.run(work)
        assert added is not None
        assert list(added) == [field]
        assert edited == added
        assert rules == [("brand", "Torshov", 2)]

    async def test_another_clubs_rule_is_not_found(self, loyalty_db: Database) -> None:
        def work(session: Session) -> list[Exception | None]:
            program, elsewhere = club(session), club(session)
            rule = club_rules.add_bonus_rule(
                session, elsewhere, field="brand", value="Kari", extra_points=1
            )
            return [
                error_of(
                    lambda: club_rules.edit_bonus_rule(
                        session, program.id, rule.id, field="brand", value="X", extra_points=1
                    )
                ),
                error_of(lambda: club_rules.remove_bonus_rule(session, program.id, rule.id)),
            ]

        assert all(isinstance(e, NotFound) for e in await loyalty_db.run(work))

    async def test_a_purchase_earns_by_the_edited_rule(self, loyalty_db: Database) -> None:
        """1 point per krone, +2 on the brand, then +4 after the edit; nothing once removed."""

        def work(session: Session) -> list[int]:
            program = club(session)
            buyer = member(session, program)
            rule = club_rules.add_bonus_rule(
                session, program, field="brand", value="Torshov", extra_points=2
            )
            line = [Line(qty=1, amount_minor=10000, brand="TORSHOV")]
            earned = [buy(session, program, buyer.id, line, T).purchase.points]
            club_rules.edit_bonus_rule(
                session, program.id, rule.id, field="brand", value="torshov", extra_points=4
            )
            earned.append(buy(session, program, buyer.id, line, T).purchase.points)
            club_rules.remove_bonus_rule(session, program.id, rule.id)
            earned.append(buy(session, program, buyer.id, line, T).purchase.points)
            return earned

        assert await loyalty_db.run(work) == [300, 500, 100]


class TestMultipliers:
    async def test_a_period_is_added_edited_and_removed(self, loyalty_db: Database) -> None:
        def work(session: Session) -> list[list[tuple[str, dt.date, dt.date, int]]]:
            program = club(session)

            def periods() -> list[tuple[str, dt.date, dt.date, int]]:
                return [
                    (m.name, m.starts_on, m.ends_on, m.multiplier)
                    for m in club_rules.multipliers(session, program.id)
                ]

            period = club_rules.add_multiplier(
                session,
                program,
                name=" Black Week ",
                starts_on=dt.date(2026, 11, 23),
                ends_on=dt.date(2026, 11, 29),
                multiplier=2,
            )
            one_day = dt.date(2026, 5, 17)
            club_rules.add_multiplier(
                session, program, name="17. mai", starts_on=one_day, ends_on=one_day, multiplier=3
            )
            seen = [periods()]
            club_rules.edit_multiplier(
                session,
                program.id,
                period.id,
                name="Black Friday",
                starts_on=dt.date(2026, 11, 27),
                ends_on=dt.date(2026, 11, 27),
                multiplier=5,
            )
            seen.append(periods())
            club_rules.remove_multiplier(session, program.id, period.id)
            seen.append(periods())
            return seen

        may, black_week = dt.date(2026, 5, 17), (dt.date(2026, 11, 23), dt.date(2026, 11, 29))
        friday = dt.date(2026, 11, 27)
        assert await loyalty_db.run(work) == [
            [("Black Week", *black_week, 2), ("17. mai", may, may, 3)],
            [("Black Friday", friday, friday, 5), ("17. mai", may, may, 3)],
            [("17. mai", may, may, 3)],
        ]

    @pytest.mark.parametrize(
        ("changes", "field"),
        [
            ({"name": ""}, "name"),
            ({"name": "x" * 61}, "name"),
            ({"starts_on": None}, "starts_on"),
            ({"ends_on": None}, "ends_on"),
            ({"ends_on": dt.date(2026, 6, 9)}, "ends_on"),
            ({"multiplier": 1}, "multiplier"),
            ({"multiplier": 6}, "multiplier"),
            ({"multiplier": None}, "multiplier"),
        ],
    )
    async def test_each_bad_field_is_named_and_nothing_changes(
        self, loyalty_db: Database, changes: dict[str, Any], field: str
    ) -> None:
        def work(session: Session) -> tuple[Any, Any, list[tuple[str, int]]]:
            program = club(session)
            period = club_rules.add_multiplier(
                session, program, name="Sommer", starts_on=DAY, ends_on=DAY, multiplier=2
            )
            values = {
                "name": "Jul",
                "starts_on": DAY,
                "ends_on": DAY + dt.timedelta(days=3),
                "multiplier": 3,
                **changes,
            }
            added = problems_of(lambda: club_rules.add_multiplier(session, program, **values))
            edited = problems_of(
                lambda: club_rules.edit_multiplier(session, program.id, period.id, **values)
            )
            periods = [(m.name, m.multiplier) for m in club_rules.multipliers(session, program.id)]
            return added, edited, periods

        added, edited, periods = await loyalty_db.run(work)
        assert added is not None
        assert list(added) == [field]
        assert edited == added
        assert periods == [("Sommer", 2)]

    async def test_another_clubs_period_is_not_found(self, loyalty_db: Database) -> None:
        def work(session: Session) -> list[Exception | None]:
            program, elsewhere = club(session), club(session)
            period = club_rules.add_multiplier(
                session, elsewhere, name="Jul", starts_on=DAY, ends_on=DAY, multiplier=2
            )
            return [
                error_of(
                    lambda: club_rules.edit_multiplier(
                        session,
                        program.id,
                        period.id,
                        name="X",
                        starts_on=DAY,
                        ends_on=DAY,
                        multiplier=2,
                    )
                ),
                error_of(lambda: club_rules.remove_multiplier(session, program.id, period.id)),
            ]

        assert all(isinstance(e, NotFound) for e in await loyalty_db.run(work))

    async def test_a_purchase_earns_by_the_edited_period(self, loyalty_db: Database) -> None:
        """Double points on the day, then triple once edited; the day after, plain points."""

        def work(session: Session) -> list[int]:
            program = club(session)
            buyer = member(session, program)
            period = club_rules.add_multiplier(
                session, program, name="Dag", starts_on=DAY, ends_on=DAY, multiplier=2
            )
            earned = [buy(session, program, buyer.id, 10000, T).purchase.points]
            club_rules.edit_multiplier(
                session, program.id, period.id, name="Dag", starts_on=DAY, ends_on=DAY, multiplier=3
            )
            earned.append(buy(session, program, buyer.id, 10000, T).purchase.points)
            earned.append(
                buy(session, program, buyer.id, 10000, T + dt.timedelta(days=1)).purchase.points
            )
            earned.append(ledger.balance(session, buyer.id, T + dt.timedelta(days=1)))
            return earned

        assert await loyalty_db.run(work) == [200, 300, 100, 600]
