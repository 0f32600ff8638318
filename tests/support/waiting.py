"""Waiting on a condition instead of sleeping a fixed time."""

from __future__ import annotations

import asyncio
from typing import Any, Callable


async def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Poll ``predicate`` every ``interval`` s until it is truthy (its value is returned);
    an AssertionError after ``timeout`` s."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)
