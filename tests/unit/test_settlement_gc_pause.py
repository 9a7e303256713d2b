"""Settlement pauses the cyclic garbage collector while any thread settles, and frees what a
settling function made before the collector comes back (`settlement.period._without_cyclic_gc`)."""

from __future__ import annotations

import gc
import threading
import weakref

from flexearn.services.settlement.period import _without_cyclic_gc


class Plan:
    """Stands for a period's plan: weakly referable, so its death can be watched."""


def test_the_collector_is_paused_while_settling_and_back_after_the_plan_is_freed() -> None:
    seen: dict[str, bool] = {}

    @_without_cyclic_gc
    def settle() -> str:
        plan = Plan()
        weakref.finalize(plan, lambda: seen.setdefault("enabled when the plan died", gc.isenabled()))
        seen["enabled while settling"] = gc.isenabled()
        return "settled"

    assert gc.isenabled()
    assert settle() == "settled"
    assert seen == {"enabled while settling": False, "enabled when the plan died": False}
    assert gc.isenabled()


def test_the_collector_stays_paused_until_the_last_settling_thread_is_done_and_after_a_failure() -> None:
    first_in, second_done, states = threading.Event(), threading.Event(), []

    @_without_cyclic_gc
    def slow() -> None:
        first_in.set()
        second_done.wait(5)
        states.append(("slow, at its end", gc.isenabled()))

    @_without_cyclic_gc
    def failing() -> None:
        raise RuntimeError("a key failed")

    thread = threading.Thread(target=slow)
    thread.start()
    assert first_in.wait(5)
    try:
        failing()
    except RuntimeError:
        states.append(("after the failure, the other still settling", gc.isenabled()))
    second_done.set()
    thread.join(5)
    assert states == [("after the failure, the other still settling", False), ("slow, at its end", False)]
    assert gc.isenabled()


def test_a_collector_disabled_before_stays_disabled() -> None:
    gc.disable()
    try:
        _without_cyclic_gc(lambda: None)()
        assert not gc.isenabled()
    finally:
        gc.enable()
