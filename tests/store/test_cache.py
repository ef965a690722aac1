"""TtlCache: a value is served for less than its max age after it was put, then forgotten."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from store.cache import TtlCache


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_value_is_served_until_its_max_age() -> None:
    clock = Clock()
    cache: TtlCache[str, int] = TtlCache(5, clock)
    cache.put("a", 1)
    clock.now = 4.9
    assert cache.get("a") == 1
    clock.now = 5.0
    assert cache.get("a") is None
    assert len(cache) == 0


def test_putting_again_starts_the_age_afresh() -> None:
    clock = Clock()
    cache: TtlCache[str, int] = TtlCache(5, clock)
    cache.put("a", 1)
    clock.now = 4
    cache.put("a", 2)
    clock.now = 8
    assert cache.get("a") == 2


def test_a_max_age_of_zero_keeps_nothing() -> None:
    cache: TtlCache[str, int] = TtlCache(0, Clock())
    cache.put("a", 1)
    assert cache.get("a") is None


def test_invalidate_forgets_one_value_or_all() -> None:
    cache: TtlCache[str, int] = TtlCache(60, Clock())
    cache.put("a", 1)
    cache.put("b", 2)
    cache.invalidate("a")
    cache.invalidate("never put")
    assert (cache.get("a"), cache.get("b")) == (None, 2)
    cache.invalidate()
    assert cache.get("b") is None


def test_a_full_cache_forgets_everything_before_a_new_key() -> None:
    cache: TtlCache[str, int] = TtlCache(60, Clock(), size=2)
    cache.put("a", 1)
    cache.put("b", 2)
    cache.put("b", 3)  # an old key: nothing is forgotten
    assert (cache.get("a"), cache.get("b")) == (1, 3)
    cache.put("c", 4)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (None, None, 4)


STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("put"), st.sampled_from("abc"), st.integers()),
        st.tuples(st.just("wait"), st.floats(0, 4, allow_nan=False)),
        st.tuples(st.just("invalidate"), st.sampled_from(["a", "b", "c", None])),
    ),
    max_size=40,
)


@given(STEPS)
def test_get_answers_the_last_value_put_less_than_max_age_ago(steps: list[tuple]) -> None:
    """Whatever the puts, waits and invalidations, get() answers what a plain record of the
    last put of each key (and when) says."""
    clock = Clock()
    cache: TtlCache[str, int] = TtlCache(5, clock)
    record: dict[str, tuple[float, int]] = {}
    for step in steps:
        if step[0] == "put":
            cache.put(step[1], step[2])
            record[step[1]] = (clock.now, step[2])
        elif step[0] == "wait":
            clock.now += step[1]
        elif step[1] is None:
            cache.invalidate()
            record.clear()
        else:
            cache.invalidate(step[1])
            record.pop(step[1], None)
        for key in "abc":
            put = record.get(key)
            expected = put[1] if put is not None and clock.now - put[0] < 5 else None
            assert cache.get(key) == expected
