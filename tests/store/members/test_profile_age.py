"""The age rule, once: members.profile.age_on and too_young, and the SMS sign-up and the import
both refusing exactly whom it calls too young (29 February birthdays included)."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flows import profile as profile_flow
from flows import router
from flows.turn import Club, MemberView, Question, Reply, SetBirthday, Turn
from flows.understand import understand
from store.members import imports
from store.members.profile import age_on, too_young
from store.states import MemberStatus

LEAP_YEARS = [y for y in range(1904, 2097, 4) if y != 1900]
ordinary_birthdays = st.dates(dt.date(1906, 1, 1), dt.date(2096, 12, 31))
leap_day_birthdays = st.sampled_from(LEAP_YEARS).map(lambda year: dt.date(year, 2, 29))
birthdays = st.one_of(ordinary_birthdays, leap_day_birthdays)


def anniversary(birthday: dt.date, year: int) -> dt.date:
    """The day someone turns a year older in `year`: 1 March for 29 February in a common year."""
    try:
        return birthday.replace(year=year)
    except ValueError:
        return dt.date(year, 3, 1)


@st.composite
def birthdays_and_days(draw: st.DrawFn) -> tuple[dt.date, dt.date]:
    """A birthday and a day near one of its anniversaries (where the rule can go wrong)."""
    birthday = draw(birthdays)
    years = draw(st.integers(0, min(30, 2099 - birthday.year)))
    day = anniversary(birthday, birthday.year + years) + dt.timedelta(draw(st.integers(-3, 3)))
    return birthday, max(day, birthday)


@pytest.mark.parametrize(
    ("born", "day", "age"),
    [
        (dt.date(2013, 5, 14), dt.date(2026, 5, 14), 13),
        (dt.date(2013, 5, 15), dt.date(2026, 5, 14), 12),
        (dt.date(2013, 6, 1), dt.date(2026, 5, 14), 12),
        (dt.date(2013, 1, 1), dt.date(2026, 5, 14), 13),
        (dt.date(1990, 3, 12), dt.date(2026, 5, 14), 36),
        (dt.date(2026, 5, 14), dt.date(2026, 5, 14), 0),
        (dt.date(2000, 2, 29), dt.date(2013, 2, 28), 12),
        (dt.date(2000, 2, 29), dt.date(2013, 3, 1), 13),
        (dt.date(2000, 2, 29), dt.date(2016, 2, 28), 15),
        (dt.date(2000, 2, 29), dt.date(2016, 2, 29), 16),
    ],
)
def test_age_in_whole_years(born: dt.date, day: dt.date, age: int) -> None:
    """Birthdays, the day before, and 29 February (a year older on 1 March)."""
    assert age_on(born, day) == age


@given(birthdays_and_days())
def test_age_counts_the_anniversaries_passed(born_and_day: tuple[dt.date, dt.date]) -> None:
    born, day = born_and_day
    passed = sum(anniversary(born, y) <= day for y in range(born.year + 1, day.year + 1))
    assert age_on(born, day) == passed


@given(birthdays_and_days(), st.integers(13, 18))
def test_too_young_until_the_day_of_the_minimum_age(
    born_and_day: tuple[dt.date, dt.date], min_age: int
) -> None:
    born, day = born_and_day
    assert too_young(born, day, min_age) == (day < anniversary(born, born.year + min_age))


@given(leap_day_birthdays.filter(lambda d: d.year <= 2070), st.integers(13, 18))
def test_a_29_february_birthday_is_old_enough_on_1_march_of_a_common_year(
    born: dt.date, min_age: int
) -> None:
    year = born.year + min_age
    if year % 4 == 0:
        assert not too_young(born, dt.date(year, 2, 29), min_age)
        assert too_young(born, dt.date(year, 2, 28), min_age)
    else:
        assert too_young(born, dt.date(year, 2, 28), min_age)
        assert not too_young(born, dt.date(year, 3, 1), min_age)


# --- the SMS sign-up and the import ask the same rule --------------------------------------

BIRTHDAY = Question(2, "birthday", "birthday", {})
CLUB = Club(1, "Torshov Sport", "post@torshovsport.no", "https://example.com/p", 2, 13, "UTC")
AT_BIRTHDAY = MemberView(
    status=MemberStatus.ACTIVE,
    language="nb",
    first_name="Kari",
    flow=profile_flow.FLOW,
    step=profile_flow.state_for(BIRTHDAY).step,
    data={},
    joined=True,
)
HEADER = "phone;first_name;birthday;consent_at;consent_evidence\n"


def sms_says_too_young(born: dt.date, day: dt.date, min_age: int) -> bool:
    draft = Turn(
        born.isoformat(), None, AT_BIRTHDAY, replace(CLUB, min_age=min_age), "nb", day, (BIRTHDAY,)
    )
    reading = understand(draft.text, state=router.reading_state(draft))
    outcome = router.route(replace(draft, intent=reading.intent, why=reading.why))
    if outcome.replies == (Reply("profile.too_young", {"min_age": min_age}),):
        return True
    assert outcome.effects == (SetBirthday(born),)
    return False


def import_says_too_young(born: dt.date, day: dt.date, min_age: int) -> bool:
    """A row whose consent was given on `day` (the import asks the age on that day)."""
    table = imports.read(f"{HEADER}91234567;Kari;{born:%d.%m.%Y};{day.isoformat()};form\n".encode())
    checked = imports.check(
        table,
        imports.guess_mapping(table.headers),
        country="NO",
        timezone="UTC",
        min_age=min_age,
        now=dt.datetime.combine(day, dt.time(12), tzinfo=dt.UTC) + dt.timedelta(days=1),
    )
    reasons = [bad.reason for bad in checked.bad]
    assert reasons in ([], ["too_young"])
    return reasons == ["too_young"]


@given(
    birthdays_and_days().filter(lambda bd: bd[0].year >= 1950 and bd[1].year <= 2090),
    st.integers(13, 18),
)
def test_the_sms_sign_up_and_the_import_refuse_the_same_members(
    born_and_day: tuple[dt.date, dt.date], min_age: int
) -> None:
    born, day = born_and_day
    expected = too_young(born, day, min_age)
    assert sms_says_too_young(born, day, min_age) == expected
    assert import_says_too_young(born, day, min_age) == expected
