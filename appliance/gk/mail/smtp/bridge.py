"""Calling gevent code from aiosmtpd coroutines without blocking the hub (DESIGN.md rules).

``await in_greenlet(fn, *args)`` runs ``fn`` in a new greenlet and resumes the coroutine when it
ends. The result is handed back with ``loop.call_soon`` and the loop's gevent selector is woken
by setting its ready event (``wake``): both greenlets run on the one OS thread, so no lock is
needed, and a plain ``future.set_result`` from another greenlet would wait for the next I/O
event. ``call_soon_threadsafe`` did the same through the loop's self-pipe: a ``send`` and a
``recv`` system call and one more selector round per message, ~4 % of the hub's time under
SMTP load (py-spy). A loop whose selector is not gevent's falls back to it.
``asyncio_gevent.sync_to_async`` is not used: it joins the greenlet through the default
executor, which caps concurrent calls at a handful of workers.

A cancelled coroutine (client gone) does not kill the greenlet when ``shield`` is true: a
delivery that has started finishes, so a message is never half-delivered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

import gevent
import gevent.event
import gevent.selectors

T = TypeVar("T")


def _settle(fut: asyncio.Future, glet: gevent.Greenlet) -> None:
    if fut.done():
        return
    if glet.successful():
        fut.set_result(glet.value)
    else:
        exc = glet.exception
        fut.set_exception(exc if isinstance(exc, Exception) else RuntimeError(repr(exc)))


def _waker(loop: asyncio.AbstractEventLoop) -> Callable[[Callable[..., object], Any, Any], object]:
    """How to schedule a callback on ``loop`` from another greenlet of this thread and wake it."""
    selector = getattr(loop, "_selector", None)
    ready = getattr(selector, "_ready", None)  # gevent.selectors.GeventSelector's wake-up event
    if not isinstance(selector, gevent.selectors.GeventSelector) or not isinstance(ready, gevent.event.Event):
        return loop.call_soon_threadsafe

    def call_and_wake(callback: Callable[..., object], *args: Any) -> object:
        handle = loop.call_soon(callback, *args)
        ready.set()
        return handle

    return call_and_wake


async def in_greenlet(fn: Callable[..., T], *args: Any, shield: bool = False) -> T:
    loop = asyncio.get_running_loop()
    fut: asyncio.Future = loop.create_future()
    glet = gevent.spawn(fn, *args)
    schedule = _waker(loop)
    glet.link(lambda g: schedule(_settle, fut, g))
    try:
        return await fut
    except asyncio.CancelledError:
        if not shield:
            glet.kill(block=False)
        raise
