"""Calling gevent code from aiosmtpd coroutines without blocking the hub (DESIGN.md rules).

``await in_greenlet(fn, *args)`` runs ``fn`` in a new greenlet and resumes the coroutine when it
ends. When it ends, the greenlet's link (run by the hub, on this same OS thread, while the
loop's greenlet waits in its selector) settles the future itself and wakes the loop's gevent
selector by setting its ready event (``wake``): the future's done-callback (the coroutine's
wake-up) is then run by the very next loop iteration. Handing ``_settle`` to the loop with
``call_soon`` instead cost one more loop iteration (a selector round and a hub switch) per
delivery; ``call_soon_threadsafe`` cost that plus the self-pipe's ``send`` and ``recv``
(~4 % of the hub's time under SMTP load, py-spy). No lock is needed: both greenlets run on
the one OS thread, and a future is only touched by one of them at a time. A loop whose
selector is not gevent's falls back to ``call_soon_threadsafe``.
``asyncio_gevent.sync_to_async`` is not used: it joins the greenlet through the default
executor, which caps concurrent calls at a handful of workers.

A cancelled coroutine (client gone) does not kill the greenlet when ``shield`` is true: a
delivery that has started finishes, so a message is never half-delivered.
"""

from __future__ import annotations

import asyncio
import functools
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


def _waker(loop: asyncio.AbstractEventLoop) -> Callable[[asyncio.Future, gevent.Greenlet], None]:
    """How another greenlet of this thread settles a future of ``loop`` and wakes the loop
    (made once per loop and kept on it)."""
    found: Callable[[asyncio.Future, gevent.Greenlet], None] | None = getattr(loop, "_gk_waker", None)
    if found is not None:
        return found
    selector = getattr(loop, "_selector", None)
    ready = getattr(selector, "_ready", None)  # gevent.selectors.GeventSelector's wake-up event
    if not isinstance(selector, gevent.selectors.GeventSelector) or not isinstance(ready, gevent.event.Event):

        def via_pipe(fut: asyncio.Future, glet: gevent.Greenlet) -> None:
            loop.call_soon_threadsafe(_settle, fut, glet)

        waker = via_pipe
    else:

        def settle_and_wake(fut: asyncio.Future, glet: gevent.Greenlet) -> None:
            if loop.is_closed():
                return
            _settle(fut, glet)  # schedules the coroutine's wake-up with the loop's call_soon
            ready.set()

        waker = settle_and_wake
    setattr(loop, "_gk_waker", waker)  # noqa: B010 (an attribute asyncio's loop does not declare)
    return waker


async def in_greenlet(fn: Callable[..., T], *args: Any, shield: bool = False) -> T:
    loop = asyncio.get_running_loop()
    fut: asyncio.Future = loop.create_future()
    glet = gevent.spawn(fn, *args)
    glet.link(functools.partial(_waker(loop), fut))
    try:
        return await fut
    except asyncio.CancelledError:
        if not shield:
            glet.kill(block=False)
        raise
