"""Calling gevent code from aiosmtpd coroutines without blocking the hub (DESIGN.md rules).

``await in_greenlet(fn, *args)`` runs ``fn`` in a new greenlet and resumes the coroutine when it
ends. The result is handed back with ``loop.call_soon_threadsafe`` — it writes to the loop's
self-pipe, so the selector wakes at once (a plain ``future.set_result`` from another greenlet
would wait for the next I/O event). ``asyncio_gevent.sync_to_async`` is not used: it joins the
greenlet through the default executor, which caps concurrent calls at a handful of workers.

A cancelled coroutine (client gone) does not kill the greenlet when ``shield`` is true: a
delivery that has started finishes, so a message is never half-delivered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

import gevent

T = TypeVar("T")


def _settle(fut: asyncio.Future, glet: gevent.Greenlet) -> None:
    if fut.done():
        return
    if glet.successful():
        fut.set_result(glet.value)
    else:
        exc = glet.exception
        fut.set_exception(exc if isinstance(exc, Exception) else RuntimeError(repr(exc)))


async def in_greenlet(fn: Callable[..., T], *args: Any, shield: bool = False) -> T:
    loop = asyncio.get_running_loop()
    fut: asyncio.Future = loop.create_future()
    glet = gevent.spawn(fn, *args)
    glet.link(lambda g: loop.call_soon_threadsafe(_settle, fut, g))
    try:
        return await fut
    except asyncio.CancelledError:
        if not shield:
            glet.kill(block=False)
        raise
