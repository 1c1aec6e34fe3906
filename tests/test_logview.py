"""A log line in the browser: colours rendered, text always escaped."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from runs.logs.render import ansi_to_html, render_line
from runs.models import LogStream


@pytest.mark.parametrize(
    ("raw", "html"),
    [
        ("plain text", "plain text"),
        ("<script>alert(1)</script> & co", "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co"),
        ("\x1b[31mred\x1b[0m done", '<span class="ansi-fg-1">red</span> done'),
        ("\x1b[1;32mbold green\x1b[m", '<span class="ansi-bold ansi-fg-2">bold green</span>'),
        ("\x1b[91;44mx", '<span class="ansi-fg-9 ansi-bg-4">x</span>'),
        ("\x1b[38;5;208morange", '<span style="color:#ff8700">orange</span>'),
        ("\x1b[38;2;1;2;3mrgb", '<span style="color:#010203">rgb</span>'),
        ("\x1b[48;5;240mgrey", '<span style="background:#585858">grey</span>'),
        ("\x1b[31mred \x1b[39mplain", '<span class="ansi-fg-1">red </span>plain'),
        ("\x1b[2K\x1b[1Gcleared", "cleared"),
        ("\x1b]0;window title\x07after", "after"),
        ("10%\r50%\r100%", "100%"),
        ("windows line\r", "windows line"),
        ("bell\x07 and nul-ish \x01", "bell and nul-ish "),
    ],
)
def test_it_renders_terminal_output_as_safe_html(raw, html):
    assert ansi_to_html(raw) == html


def test_escape_codes_cannot_smuggle_markup():
    raw = '\x1b[31m<img src=x onerror="alert(1)">\x1b[38;2;999;0;0m"><b>'

    html = ansi_to_html(raw)

    assert "<img" not in html and "<b>" not in html
    assert "&lt;img" in html
    assert "color:#ff0000" in html  # out-of-range numbers are clamped, not pasted


def test_a_line_carries_its_number_time_and_stream():
    ts = datetime(2026, 11, 27, 9, 5, 7, tzinfo=UTC)

    html = render_line(42, ts, LogStream.STDERR, "oops <x>", UTC)

    assert html == (
        '<div class="line stderr" data-seq="42"><time datetime="2026-11-27T09:05:07+00:00">'
        '09:05:07</time><span class="stream" title="standard error">err</span>'
        '<span class="text">oops &lt;x&gt;</span></div>'
    )
