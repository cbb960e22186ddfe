"""The assistant's answers as safe HTML: CommonMark (markdown-it-py, raw HTML off) then nh3.

A model's text is untrusted (it may repeat a mail it read, or be steered by one): raw HTML in it
is shown as text, the HTML produced is cleaned again by nh3 against a short list of tags, and
nothing in an answer loads anything by itself. An image becomes a link to click (no remote image
is fetched: that would tell a sender the mail was read); a link opens only on a click, in a new
tab without referrer, and its address is written beside its text when the two differ, so a
reader sees where it goes. Only http, https and mailto links are kept.

Cost: markdown-it-py is imported on the first answer rendered (~1.5 MB); an answer of a few KB
renders in about a millisecond, so a streamed answer is re-rendered whole at each update.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

TAGS = {
    "p", "br", "em", "strong", "code", "pre", "ul", "ol", "li", "blockquote", "h1", "h2", "h3", "h4",
    "h5", "h6", "a", "table", "thead", "tbody", "tr", "th", "td", "hr", "s", "span",
}  # fmt: skip
ATTRIBUTES = {"a": {"href", "title"}, "span": {"class"}, "ol": {"start"}, "th": {"style"}, "td": {"style"}}
SCHEMES = {"http", "https", "mailto"}


def _link_close(renderer: Any, tokens: Sequence[Any], idx: int, options: Any, env: Any) -> str:
    """``</a>`` plus the address when the text shown is not the address itself."""
    import html

    depth, i = 0, idx
    while i > 0:
        i -= 1
        if tokens[i].type == "link_close":
            depth += 1
        elif tokens[i].type == "link_open":
            if depth == 0:
                break
            depth -= 1
    href = str(tokens[i].attrGet("href") or "")
    text = "".join(t.content for t in tokens[i + 1 : idx])
    shown = href.removeprefix("mailto:")
    if not href or text.strip() in (href, shown):
        return "</a>"
    return f'</a> <span class="href">({html.escape(shown)})</span>'


def _image(renderer: Any, tokens: Sequence[Any], idx: int, options: Any, env: Any) -> str:
    """An image as a link to it: nothing is fetched until the reader clicks."""
    import html

    tok = tokens[idx]
    src = str(tok.attrGet("src") or "")
    alt = "".join(c.content for c in tok.children or []) or src
    return f'<a href="{html.escape(src)}">{html.escape("🖼 " + alt)}</a>'


@cache
def _parser() -> Any:
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False, "breaks": True}).enable(["table", "strikethrough"])
    md.add_render_rule("link_close", _link_close)
    md.add_render_rule("image", _image)
    return md


def render(text: str) -> str:
    """``text`` (Markdown from the model) as HTML that is safe to put in a page."""
    import nh3

    raw = _parser().render(text)
    return nh3.clean(
        raw,
        tags=TAGS,
        attributes=ATTRIBUTES,
        url_schemes=SCHEMES,
        link_rel="noopener noreferrer nofollow",
        set_tag_attribute_values={"a": {"target": "_blank"}},
        filter_style_properties={"text-align"},
    )
