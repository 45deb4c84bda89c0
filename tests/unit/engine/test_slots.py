"""The calls-at-once semaphore: free slots taken at once, given back to the longest waiter,
and never lost to a cancelled waiter."""

import asyncio

import pytest

from worker.engine.slots import Slots


async def test_free_slots_are_taken_without_waiting_then_callers_wait() -> None:
    slots = Slots(2)
    assert slots.try_acquire()
    await slots.acquire()
    assert slots.locked()
    assert not slots.try_acquire()
    waiting = asyncio.create_task(slots.acquire())
    await asyncio.sleep(0)
    assert not waiting.done()
    slots.release()
    await waiting
    assert slots.locked()


async def test_a_slot_given_back_goes_to_the_longest_waiter_not_a_late_comer() -> None:
    slots = Slots(1)
    await slots.acquire()
    order: list[str] = []

    async def take(name: str) -> None:
        async with slots:
            order.append(name)

    first = asyncio.create_task(take("first"))
    second = asyncio.create_task(take("second"))
    await asyncio.sleep(0)
    slots.release()
    assert not slots.try_acquire()  # handed to "first", not free for whoever asks next
    await asyncio.gather(first, second)
    assert order == ["first", "second"]
    assert slots.try_acquire()


async def test_a_cancelled_waiter_leaves_the_line_and_takes_no_slot() -> None:
    slots = Slots(1)
    await slots.acquire()
    cancelled = asyncio.create_task(slots.acquire())
    after = asyncio.create_task(slots.acquire())
    await asyncio.sleep(0)
    cancelled.cancel()
    await asyncio.sleep(0)
    slots.release()
    await after
    assert cancelled.cancelled()
    slots.release()
    assert slots.try_acquire()
    assert not slots.try_acquire()


async def test_a_waiter_cancelled_after_it_was_handed_a_slot_passes_it_on() -> None:
    slots = Slots(1)
    await slots.acquire()
    handed = asyncio.create_task(slots.acquire())
    after = asyncio.create_task(slots.acquire())
    await asyncio.sleep(0)
    slots.release()  # "handed" has the slot, but has not run yet
    handed.cancel()
    await asyncio.wait_for(after, timeout=1)
    assert handed.cancelled()
    slots.release()
    assert slots.try_acquire()


async def test_the_block_gives_its_slot_back_when_it_raises() -> None:
    slots = Slots(1)
    with pytest.raises(RuntimeError):
        async with slots:
            raise RuntimeError
    assert slots.try_acquire()


def test_a_negative_count_is_refused() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        Slots(-1)
