"""Scheduler leadership: of two processes on one database only one leads, and the other takes
over when the leader lets go (or dies: the lock is the server's or the kernel's)."""

from __future__ import annotations

from scheduler.leader import Leadership


async def test_one_leader_at_a_time_and_the_next_takes_over(database_url):
    first, second = Leadership(database_url), Leadership(database_url)
    try:
        assert await first.try_acquire()
        assert not await second.try_acquire()
        assert await first.try_acquire()  # asking again while leading keeps it
        await first.release()
        assert await second.try_acquire()
        assert not await first.try_acquire()
    finally:
        await first.release()
        await second.release()
