"""The assistant's answers rendered as HTML (gk.web.assistant_markdown) and its system prompt."""

from __future__ import annotations

from gk.web.assistant import system_prompt
from gk.web.assistant_markdown import render


def test_markdown_is_rendered():
    html = render("# Title\n\n**bold** and `code`\n\n- one\n- two\n\n```\nx = 1\n```")
    assert "<h1>Title</h1>" in html and "<strong>bold</strong>" in html and "<code>code</code>" in html
    assert "<li>one</li>" in html and "<pre><code>x = 1\n</code></pre>" in html


def test_raw_html_from_the_model_is_text():
    html = render('<script>alert(1)</script><img src=x onerror="alert(2)"> <b>hi</b>')
    assert "<script" not in html and "<img" not in html and "<b>" not in html
    assert "&lt;script&gt;" in html


def test_images_are_links_not_loaded():
    html = render("![tracker](https://evil.example/pixel.gif)")
    assert "<img" not in html
    assert 'href="https://evil.example/pixel.gif"' in html and "tracker" in html


def test_links_open_on_a_click_only_and_show_where_they_go():
    html = render("[your bank](https://evil.example/login) and <https://gk.example/>")
    assert 'rel="noopener noreferrer nofollow"' in html and 'target="_blank"' in html
    assert "(https://evil.example/login)" in html  # the real address beside the text
    assert html.count("(https://gk.example/)") == 0  # the text already is the address


def test_dangerous_schemes_are_dropped():
    html = render("[x](javascript:alert(1)) [y](data:text/html,hi) [mail](mailto:a@b.example)")
    assert 'href="javascript' not in html and 'href="data:' not in html
    assert 'href="mailto:a@b.example"' in html


def test_a_partial_answer_renders():
    assert "<pre><code>" in render("Here:\n```python\nprint(")


def test_the_system_prompt_is_in_the_readers_language():
    assert system_prompt("fr").startswith("Tu es l'assistant privé") and "Réponds en français" in system_prompt("fr")
    assert system_prompt("en").startswith("You are the private assistant") and "in English" in system_prompt("en")


def test_a_tool_call_in_an_answer_is_shown_as_a_request_not_as_markup():
    from gk.web.assistant import render_answer

    qwen = 'Let me look.\n<tool_call>\n{"name": "search_mail", "arguments": {"query": "<b>facture</b>"}}\n</tool_call>'
    html = render_answer(qwen, "qwen", "fr")
    assert "<tool_call>" not in html and "&lt;tool_call&gt;" not in html
    assert "search_mail" in html and "&lt;b&gt;facture&lt;/b&gt;" in html and "<b>" not in html
    assert "Let me look." in html and "rien n'a été fait" in html.replace("&#x27;", "'").replace("&#39;", "'")
    llama = '{"name": "get_weather", "parameters": {"city": "Lyon"}}'
    assert 'class="tool-call"' in render_answer(llama, "llama3", "en")
    # for a model without a call syntax, a JSON answer is just an answer
    assert 'class="tool-call"' not in render_answer(llama, "none", "en")
    assert render_answer("plain **text**", "qwen", "en") == render("plain **text**")


def test_the_oldest_turn_is_dropped_whole_and_the_last_question_kept():
    from gk.web.assistant import drop_oldest_turn

    system = {"role": "system", "content": "s"}
    msgs = [system, {"role": "user", "content": "q1"}, {"role": "assistant", "content": "a1"},
            {"role": "tool", "content": "t1"}, {"role": "user", "content": "q2"},
            {"role": "assistant", "content": "a2"}, {"role": "user", "content": "q3"}]  # fmt: skip
    assert drop_oldest_turn(msgs) and [m["content"] for m in msgs] == ["s", "q2", "a2", "q3"]
    assert drop_oldest_turn(msgs) and [m["content"] for m in msgs] == ["s", "q3"]
    assert not drop_oldest_turn(msgs) and [m["content"] for m in msgs] == ["s", "q3"]
