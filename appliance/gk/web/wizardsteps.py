"""The first-boot wizard as data: its steps, their order and their routes (``gk.web.wizard`` serves them).

``CORE_STEPS`` are the web UI's own; a feature's step (``AI_STEP``, ``CHAT_STEP``,
``FAMILY_STEP``) is named by its entry in ``gk.features`` and added before the summary
(``with_step``). A step's handler is ``lazy("module:function")`` like every page's
(``gk.web.routes``): an idle server whose wizard is long done, the usual case, never imports the
wizard's module (nor ``zoneinfo``, the claim's code guard, the TLS helpers it uses); the first
request to ``/wizard…`` does. ``install`` serves the steps on a ``Web``: the routes, the paths
owner recovery keeps open, the page a plain-HTTP request gets while HTTPS is on.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gk.locale import N_
from gk.web.app import SETUP, Route, lazy

if TYPE_CHECKING:
    from gk.web.app import Web


class Needs(enum.Enum):
    """Who may open a wizard step (inside the claim gate, which only LAN clients pass)."""

    VISITOR = "visitor"  # any browser: the claim step
    CLAIMANT = "claimant"  # the browser that claimed the server; others are sent to the claim step
    ADMIN = "admin"  # the claimant signed in as an administrator; else sent to the admin step


@dataclass(frozen=True)
class WizardStep:
    """One step: ``/wizard/<id>`` (GET shows it, POST saves it) answered by ``handler(web)``."""

    id: str
    title: str  # the catalog text (N_); "" shows "Owner recovery"
    handler: Callable[[Web], str]
    needs: Needs = Needs.ADMIN
    setup: bool = True  # one of the first-boot steps
    recovery: bool = False  # served while owner recovery is open
    skippable: bool = False  # the wizard does not send the owner back to it while not done
    extra: tuple[Route, ...] = ()  # more routes of this step (the claim page's button poll)
    # the step's line on the summary page (its title as the label), lazy as the handler
    summary: Callable[[Web], str] | None = None

    @property
    def path(self) -> str:
        return f"/wizard/{self.id}"


@dataclass(frozen=True)
class Steps:
    """The steps a ``Web`` serves (``install``); ``gk.web.wizard.wizard`` builds its state from them."""

    steps: tuple[WizardStep, ...]


def _step(name: str) -> Callable[[Web], str]:
    return lazy(f"gk.web.wizard:{name}")


CORE_STEPS: tuple[WizardStep, ...] = (  # the web UI's own; features add theirs (gk.features)
    WizardStep(
        "claim",
        N_("Claim this server"),
        _step("claim_step"),
        needs=Needs.VISITOR,
        recovery=True,
        extra=(Route("POST", "/wizard/claim/button", _step("claim_button"), SETUP),),
    ),
    WizardStep("password", "", _step("password_step"), needs=Needs.CLAIMANT, setup=False, recovery=True),
    WizardStep("admin", N_("Administrator account"), _step("admin_step"), needs=Needs.CLAIMANT),
    WizardStep("host", N_("Host name and mail domain"), _step("host_step")),
    WizardStep("timezone", N_("Time zone"), _step("timezone_step")),
    WizardStep("tls", N_("Certificate"), _step("tls_step")),
    WizardStep("users", N_("Users"), _step("users_step")),
    WizardStep("dns", N_("DNS records to publish"), _step("dns_step")),
    WizardStep("outgoing", N_("Outgoing mail"), _step("outgoing_step")),
    WizardStep("summary", N_("Summary"), _step("summary_step")),
)
# the features' steps: each declared by its entry in gk.features (shown when the feature runs)
AI_STEP = WizardStep("ai", N_("AI model"), _step("ai_step"), summary=_step("ai_summary"))
CHAT_STEP = WizardStep(
    "chat",
    N_("Chat rooms"),
    lazy("gk.web.roomsadmin:chat_step"),
    skippable=True,
    summary=lazy("gk.web.roomsadmin:chat_summary"),
)
FAMILY_STEP = WizardStep(
    "family",
    N_("Family calendar"),
    lazy("gk.dav.web:family_step"),
    skippable=True,
    summary=lazy("gk.dav.web:family_summary"),
)


def with_step(steps: Sequence[WizardStep], step: WizardStep) -> tuple[WizardStep, ...]:
    """``steps`` with a feature's ``step`` added just before the summary (which stays last)."""
    *before, last = steps
    return (*before, step, last) if last.id == "summary" else (*steps, step)


STEPS: tuple[WizardStep, ...] = with_step(CORE_STEPS, AI_STEP)  # every step, as a default box shows them

_SERVE: Callable[..., str] = lazy(
    "gk.web.wizard:serve"
)  # every step's route: who may open it (``step.needs``), then its handler


def routes(steps: Sequence[WizardStep] = STEPS) -> list[Route]:
    """The wizard's route table: its entry, then each step's page and extra routes."""
    home = _step("home")
    table = [Route("GET", "/wizard", home, SETUP), Route("GET", "/wizard/", home, SETUP)]
    for step in steps:
        table.append(Route(("GET", "POST"), step.path, functools.partial(_SERVE, step=step), SETUP))
        table.extend(step.extra)
    return table


def install(web: Web, steps: Sequence[WizardStep] = STEPS) -> None:
    web.attach(Steps(tuple(steps)))
    web.setup_over_http = _step("over_http")
    web.recovery_paths = ("/wizard", "/wizard/") + tuple(
        path for s in steps if s.recovery for path in (s.path, *(r.path for r in s.extra))
    )
    web.add_routes(routes(steps))
