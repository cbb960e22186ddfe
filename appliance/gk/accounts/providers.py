"""The big public mail providers: domains a household's box must never treat as its own.

Making ``gmail.com`` a local domain would swallow every mail the household sends to anyone
there (the box would deliver it locally, or bounce it as an unknown user). So a user or an
alias on one of these domains is refused with a message saying why. The list names the
providers most mailboxes in Europe and North America are at; it is a guard against a slip of
the admin's keyboard, not a registry (a domain missing here can still be added on purpose).
"""

from __future__ import annotations

PUBLIC_PROVIDERS: frozenset[str] = frozenset(
    """
    gmail.com googlemail.com
    outlook.com outlook.fr outlook.de outlook.es outlook.it hotmail.com hotmail.fr hotmail.co.uk
    hotmail.de hotmail.es hotmail.it hotmail.be live.com live.fr live.co.uk live.de live.be
    live.ca msn.com passport.com
    yahoo.com yahoo.fr yahoo.co.uk yahoo.de yahoo.es yahoo.it yahoo.ca yahoo.co.jp ymail.com
    rocketmail.com aol.com aol.fr aim.com verizon.net
    icloud.com me.com mac.com
    gmx.com gmx.de gmx.net gmx.fr gmx.at gmx.ch web.de t-online.de freenet.de
    orange.fr wanadoo.fr free.fr laposte.net sfr.fr neuf.fr bbox.fr numericable.fr
    proton.me protonmail.com protonmail.ch pm.me tutanota.com tutanota.de tuta.io tuta.com
    yandex.ru yandex.com ya.ru mail.ru inbox.ru list.ru bk.ru
    zoho.com zohomail.com fastmail.com fastmail.fm hey.com mail.com
    qq.com 163.com 126.com sina.com naver.com daum.net
    comcast.net att.net sbcglobal.net bellsouth.net cox.net charter.net btinternet.com
    sky.com virginmedia.com libero.it virgilio.it tiscali.it alice.it seznam.cz wp.pl o2.pl
    interia.pl onet.pl telenet.be skynet.be bluewin.ch sunrise.ch shaw.ca rogers.com
    """.split()
)


def is_public_provider(domain: str) -> bool:
    """``domain`` (lower-case, IDNA) or a parent of it is a public provider's."""
    labels = domain.lower().rstrip(".").split(".")
    return any(".".join(labels[i:]) in PUBLIC_PROVIDERS for i in range(len(labels) - 1))
