"""Waiting helpers for tests: poll a condition against a deadline.

Tests must never ``sleep`` as synchronisation; wait for the condition instead::

    from tests.helpers import wait_until, async_wait_until

    out = wait_until(lambda: path.read_text() or None, timeout=5, message="output file")
    state = await async_wait_until(job_state_is_done, timeout=60, message="job done")

Both return the predicate's first truthy value and raise ``TimeoutError``
(with ``message`` and the last value / exception seen) when the deadline
passes.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = ["wait_until", "async_wait_until"]


def _timeout_error(message: str | None, timeout: float, last: Any, exc: BaseException | None) -> TimeoutError:
    text = f"timed out after {timeout:g}s waiting for {message or 'condition'}"
    if exc is not None:
        text += f"; last error: {exc!r}"
    else:
        text += f"; last value: {last!r}"
    err = TimeoutError(text)
    if exc is not None:
        err.__cause__ = exc
    return err


def wait_until(
    predicate: Callable[[], T],
    timeout: float = 10.0,
    interval: float = 0.05,
    message: str | None = None,
    *,
    ignore_exceptions: tuple[type[BaseException], ...] = (),
) -> T:
    """Call ``predicate()`` every ``interval`` s until it returns something truthy.

    Returns that value. Exceptions listed in ``ignore_exceptions`` count as
    "not yet" (the last one is reported on timeout); others propagate.
    The predicate is always evaluated at least once, and once more at the deadline.
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    last_exc: BaseException | None = None
    while True:
        final = time.monotonic() >= deadline
        try:
            last = predicate()
            last_exc = None
            if last:
                return last
        except ignore_exceptions as exc:  # type: ignore[misc]
            last_exc = exc
        if final:
            raise _timeout_error(message, timeout, last, last_exc)
        time.sleep(max(0.0, min(interval, deadline - time.monotonic())))


async def async_wait_until(
    predicate: Callable[[], T | Awaitable[T]],
    timeout: float = 10.0,
    interval: float = 0.05,
    message: str | None = None,
    *,
    ignore_exceptions: tuple[type[BaseException], ...] = (),
) -> T:
    """Async twin of :func:`wait_until`; ``predicate`` may be sync or async.

    Each call of an async predicate is itself bounded by the remaining time
    (a hung call counts as a timeout).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: Any = None
    last_exc: BaseException | None = None
    while True:
        final = loop.time() >= deadline
        try:
            result = predicate()
            if inspect.isawaitable(result):
                remaining = max(deadline - loop.time(), 0.0) + interval
                result = await asyncio.wait_for(result, remaining)
            last = result
            last_exc = None
            if last:
                return last
        except TimeoutError as exc:
            if loop.time() >= deadline:  # our bound on a hung call expired
                last_exc = exc
                final = True
            elif isinstance(exc, ignore_exceptions):
                last_exc = exc
            else:
                raise
        except ignore_exceptions as exc:  # type: ignore[misc]
            last_exc = exc
        if final:
            raise _timeout_error(message, timeout, last, last_exc)
        await asyncio.sleep(max(0.0, min(interval, deadline - loop.time())))
