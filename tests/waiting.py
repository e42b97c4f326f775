"""The one way tests wait: poll a condition until it holds, within a bound, and say what never came."""

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T | None],
    what: str,
    timeout: float = 10.0,
    pause: Callable[[float], object] = time.sleep,
    details: Callable[[], str] | None = None,
) -> T:
    """Poll `condition` until it returns something truthy, and return that; fail naming `what`.

    `pause` waits between polls: a browser test passes one that lets its driver run. `details`
    adds what helps to find out why (say, a sidecar's log) to the failure."""
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            more = f"\n{details()}" if details is not None else ""
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}{more}")
        pause(0.05)
    return result


@overload
async def eventually(condition: Callable[[], Awaitable[T | None]], what: str, timeout: float = 10.0) -> T: ...


@overload
async def eventually(condition: Callable[[], T | None], what: str, timeout: float = 10.0) -> T: ...


async def eventually(condition: Callable[[], Any], what: str, timeout: float = 10.0) -> Any:
    """wait_until for tests that run in the event loop: polls without blocking it; `condition`
    may be a coroutine function."""
    deadline = time.monotonic() + timeout
    while not (result := await _value_of(condition())):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.02)
    return result


async def _value_of(result: Any) -> Any:
    return await result if inspect.isawaitable(result) else result
