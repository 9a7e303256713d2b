"""Which request timestamps are timely: the wall clock's window always; on a simulated clock also
the band a client that set its clock by the server's business time signs in (ccxt's
adjustForTimeDifference), and for how long such a signature must be remembered against replay."""

from __future__ import annotations

from flexearn.adapters.clock import REAL, ClockState
from flexearn.api.auth import SYNCED_REPLAY_MS, WINDOW_MS, accepted_until
from flexearn.domain.money import D

WALL = 1_800_000_000_000
HOUR = 3_600_000
# A demo clock set an hour behind the wall clock at WALL, running an hour per 10 s (360×).
FAST = ClockState("simulated", WALL - HOUR, WALL, D(360))


def synced_client(clock: ClockState, read_at: int, now: int) -> int:
    """What ccxt signs with at wall time `now` after reading the server's time at `read_at`."""
    return clock.now(read_at) + (now - read_at)


def test_a_real_clock_accepts_the_wall_window_only() -> None:
    assert accepted_until(REAL, WALL + WINDOW_MS, WALL, WINDOW_MS) == WALL + 2 * WINDOW_MS
    assert accepted_until(REAL, WALL + WINDOW_MS + 1, WALL, WINDOW_MS) is None
    assert accepted_until(REAL, WALL - WINDOW_MS - 1, WALL, WINDOW_MS) is None


def test_a_client_signing_with_its_own_wall_clock_is_timely_on_a_simulated_clock() -> None:
    now = WALL + 60_000
    assert accepted_until(FAST, now - 5_000, now, WINDOW_MS) is not None


def test_a_client_set_by_the_business_clock_is_timely_whenever_it_read_it() -> None:
    now = WALL + 600_000  # ten minutes of wall time: 60 business hours
    for read_at in (WALL, WALL + 1_000, WALL + 300_000, now):
        sent = synced_client(FAST, read_at, now)
        assert accepted_until(FAST, sent, now, WINDOW_MS) is not None, read_at


def test_timestamps_beyond_the_business_clock_or_before_the_clock_was_set_are_refused() -> None:
    now = WALL + 600_000
    assert accepted_until(FAST, FAST.now(now) + WINDOW_MS + 1, now, WINDOW_MS) is None
    assert accepted_until(FAST, now - HOUR - WINDOW_MS - 1, now, WINDOW_MS) is None


def test_a_synced_signature_is_remembered_while_it_could_still_verify() -> None:
    now = WALL + 600_000
    sent = synced_client(FAST, now, now)  # 59 business hours ahead of the wall clock
    until = accepted_until(FAST, sent, now, WINDOW_MS)
    assert until is not None
    later = until + 1  # by then the band's lower edge has passed it
    assert accepted_until(FAST, sent, later, WINDOW_MS) is None
    assert accepted_until(FAST, sent, until - 1, WINDOW_MS) is not None
    standing = ClockState("simulated", WALL + HOUR, WALL, D(0))  # a clock standing still
    assert accepted_until(standing, WALL + HOUR, WALL + 60_000, WINDOW_MS) == WALL + 60_000 + SYNCED_REPLAY_MS
