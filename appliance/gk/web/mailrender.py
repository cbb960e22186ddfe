"""Showing stored HTML mail safely in the webmail: sanitize it, find its remote images.

Reading a message (which body to show, its text, its attachments) is the mailbox's job
(``gk.mail.mailbox.reading``); this module only makes an HTML body fit for the browser.

HTML mail goes through nh3 (ammonia, a maintained allow-list sanitizer): scripts, styles,
event-handler attributes, forms and ``javascript:`` URLs are removed; remote images are
dropped unless the reader chose "show images". The result is served from its own URL into
a sandboxed iframe (no ``allow-scripts``) with its own CSP (``default-src 'none'``, so no
script source at all), so even a sanitizer bug could not run script in the UI's origin. The
sandbox keeps ``allow-same-origin`` only so the reader page's own script (static/mailframe.js)
can measure the mail and size the frame to it; without ``allow-scripts`` and with that CSP the
mail document itself runs nothing. nh3 (1.4 MB of RSS) is imported on
the first HTML body shown, not at start.
"""

from __future__ import annotations

import re

ALLOWED_SCHEMES = {"http", "https", "mailto"}


URL_ATTRIBUTES = {"href", "src", "cite", "longdesc", "action", "formaction", "background", "poster", "srcset", "ping"}


def _url_value(value: str) -> str:
    """A URL attribute as a browser reads it: white space and control characters inside ignored."""
    return "".join(ch for ch in value if ch > " " and ch != "\x7f").lower()


# the mail's own look survives: <style> sheets, style attributes (filtered to the properties
# below) and the presentational attributes newsletters still use. Safe because the frame has its
# own CSP: no script, fonts or @import at all, url() images only once the reader shows images.
STYLE_PROPERTIES = {
    *("color", "background", "background-color", "background-image", "background-position"),
    *("background-repeat", "background-size", "border", "border-top", "border-right", "border-bottom"),
    *("border-left", "border-color", "border-style", "border-width", "border-radius", "border-collapse"),
    *("border-spacing", "margin", "margin-top", "margin-right", "margin-bottom", "margin-left"),
    *("padding", "padding-top", "padding-right", "padding-bottom", "padding-left", "width", "min-width"),
    *("max-width", "height", "min-height", "max-height", "font", "font-family", "font-size"),
    *("font-style", "font-weight", "line-height", "letter-spacing", "text-align", "text-decoration"),
    *("text-transform", "text-indent", "vertical-align", "white-space", "word-break", "word-wrap"),
    *("overflow-wrap", "display", "float", "clear", "list-style", "list-style-type", "table-layout"),
    *("opacity", "box-sizing", "direction", "overflow", "mso-line-height-rule"),
}
# "*" replaces ammonia's generic attributes, so its defaults (lang, title) are listed again
PRESENTATION_ATTRIBUTES = {
    "lang",
    "title",
    "style",
    "class",
    "id",
    "align",
    "valign",
    "bgcolor",
    "width",
    "height",
    "dir",
}
EXTRA_TAG_ATTRIBUTES = {
    "table": {"border", "cellpadding", "cellspacing", "background"},
    "td": {"nowrap", "background"},
    "th": {"nowrap", "background"},
    "font": {"color", "face", "size"},
    "img": {"border", "hspace", "vspace"},
}
# sane defaults before the mail's own sheet (which overrides them): readable text, images that
# fit the frame, long words that wrap on a phone
BASE_STYLE = (
    "<style>html{color-scheme:light}body{margin:.6rem;font:15px/1.45 system-ui,sans-serif;"
    "overflow-wrap:anywhere}img{max-width:100%;height:auto}table{max-width:100%}</style>"
)


def sanitize_html(html: str, show_images: bool) -> str:
    """Clean HTML mail, keeping its styling (see ``STYLE_PROPERTIES``). ``data:`` is allowed in
    ``img src`` only (``data:image/…``): a ``data:`` link (``data:text/html,…``) opens attacker
    HTML in a new tab, outside the sandboxed frame."""

    def keep(tag: str, attr: str, value: str) -> str | None:
        v = _url_value(value)
        if tag == "img" and attr == "src":
            if v.startswith("data:image/"):
                return value
            if show_images and v.startswith(("http://", "https://")):
                return value
            return None
        if attr in URL_ATTRIBUTES and v.startswith("data:"):
            return None
        if attr == "background" and not (show_images and v.startswith(("http://", "https://"))):
            return None
        return value

    import nh3

    attributes = {tag: set(names) for tag, names in nh3.ALLOWED_ATTRIBUTES.items()}
    attributes["*"] = attributes.get("*", set()) | PRESENTATION_ATTRIBUTES
    for tag, names in EXTRA_TAG_ATTRIBUTES.items():
        attributes[tag] = attributes.get(tag, set()) | names
    schemes = set(ALLOWED_SCHEMES) | {"data"}  # for img src; every other data: URL is dropped in keep()
    return nh3.clean(
        html,
        tags=set(nh3.ALLOWED_TAGS) | {"style", "font", "center"},
        clean_content_tags={"script", "noscript", "template", "title", "xmp", "noembed", "noframes"},
        attributes=attributes,
        url_schemes=schemes,
        link_rel="noopener noreferrer nofollow",
        attribute_filter=keep,
        set_tag_attribute_values={"a": {"target": "_blank"}},
        filter_style_properties=STYLE_PROPERTIES,
    )


def has_remote_images(html: str) -> bool:
    return bool(
        re.search(r"<img\b[^>]*\bsrc\s*=\s*[\"']?\s*https?:", html, re.I)
        or re.search(r"url\(\s*[\"']?\s*https?:|\bbackground\s*=\s*[\"']?\s*https?:", html, re.I)
    )
