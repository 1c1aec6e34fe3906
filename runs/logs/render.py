"""How a log line looks in the browser: one function, for the page and the live updates.

Log text is whatever a step printed, so it is escaped before anything else.
ANSI colour codes (SGR) become spans with classes of our own, or an inline
colour computed from the numbers for 256-colour and true-colour codes; every
other terminal escape (cursor moves, titles) is dropped. A carriage return
keeps what a terminal would show: the text after the last one, so a
progress bar reads as its final state. Colours start afresh on each line.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, tzinfo
from html import escape

from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe

from runs.models import LogStream

# SGR: ESC [ numbers m. Other CSI sequences, OSC strings and lone escapes go.
_SGR = re.compile(r"\x1b\[([0-9;:]*)m")
_OTHER_ESCAPES = re.compile(
    r"\x1b\[[0-9;:?<=>]*[ -/]*[@-~]"  # CSI
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC, ended by BEL or ST
    r"|\x1b[@-Z\\-_]?"  # two-character escapes and a lone ESC
)
# Control characters a terminal would not print (tab stays).
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")

STREAM_MARKS = {
    LogStream.STDOUT: ("", ""),
    LogStream.STDERR: ("stderr", '<span class="stream" title="standard error">err</span>'),
    LogStream.SYSTEM: ("system", '<span class="stream" title="from the orchestrator">sys</span>'),
}
_NO_MARK = '<span class="stream"></span>'

# The xterm 256-colour cube and grey ramp.
_CUBE = (0, 95, 135, 175, 215, 255)


class _Style:
    __slots__ = ("bg", "bold", "dim", "fg", "italic", "underline")

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.bold = self.dim = self.italic = self.underline = False
        self.fg: str | int | None = None  # a class number 0-15, or "#rrggbb"
        self.bg: str | int | None = None

    def apply(self, codes: list[int]) -> None:
        index = 0
        while index < len(codes):
            code = codes[index]
            index += 1
            if code == 0:
                self.reset()
            elif code == 1:
                self.bold = True
            elif code == 2:
                self.dim = True
            elif code == 3:
                self.italic = True
            elif code == 4:
                self.underline = True
            elif code == 22:
                self.bold = self.dim = False
            elif code == 23:
                self.italic = False
            elif code == 24:
                self.underline = False
            elif 30 <= code <= 37:
                self.fg = code - 30
            elif 90 <= code <= 97:
                self.fg = code - 90 + 8
            elif code == 39:
                self.fg = None
            elif 40 <= code <= 47:
                self.bg = code - 40
            elif 100 <= code <= 107:
                self.bg = code - 100 + 8
            elif code == 49:
                self.bg = None
            elif code in (38, 48):
                colour, index = _extended_colour(codes, index)
                if code == 38:
                    self.fg = colour
                else:
                    self.bg = colour

    def opening(self) -> str:
        classes = [
            name
            for name, on in (
                ("ansi-bold", self.bold),
                ("ansi-dim", self.dim),
                ("ansi-italic", self.italic),
                ("ansi-underline", self.underline),
            )
            if on
        ]
        styles = []
        for prefix, prop, value in (("fg", "color", self.fg), ("bg", "background", self.bg)):
            if isinstance(value, int):
                classes.append(f"ansi-{prefix}-{value}")
            elif value:
                styles.append(f"{prop}:{value}")
        if not classes and not styles:
            return ""
        attrs = f' class="{" ".join(classes)}"' if classes else ""
        if styles:
            attrs += f' style="{";".join(styles)}"'
        return f"<span{attrs}>"


def _extended_colour(codes: list[int], index: int) -> tuple[str | int | None, int]:
    """38;5;n or 38;2;r;g;b: a colour made only of numbers we computed."""
    if index < len(codes) and codes[index] == 5 and index + 1 < len(codes):
        n = codes[index + 1]
        index += 2
        if n < 16:
            return n, index
        if n < 232:
            n -= 16
            r, g, b = _CUBE[n // 36], _CUBE[n // 6 % 6], _CUBE[n % 6]
        elif n < 256:
            r = g = b = 8 + (n - 232) * 10
        else:
            return None, index
        return f"#{r:02x}{g:02x}{b:02x}", index
    if index < len(codes) and codes[index] == 2 and index + 3 < len(codes):
        r, g, b = (min(max(c, 0), 255) for c in codes[index + 1 : index + 4])
        return f"#{r:02x}{g:02x}{b:02x}", index + 4
    return None, len(codes)


def ansi_to_html(text: str) -> str:
    """Escaped HTML of one line of terminal output, its colours as spans."""
    text = text.rstrip("\r")
    if "\r" in text:
        text = text.rsplit("\r", 1)[1]
    if "\x1b" not in text:
        return escape(_CONTROLS.sub("", text), quote=False)
    out: list[str] = []
    style = _Style()
    open_span = ""
    position = 0
    for match in _SGR.finditer(text):
        out.append(_plain(text[position : match.start()]))
        position = match.end()
        codes = [int(part) if part.isdigit() else 0 for part in re.split("[;:]", match[1])]
        style.apply(codes or [0])
        if open_span:
            out.append("</span>")
        open_span = style.opening()
        out.append(open_span)
    out.append(_plain(text[position:]))
    if open_span:
        out.append("</span>")
    return "".join(out)


def _plain(text: str) -> str:
    return escape(_CONTROLS.sub("", _OTHER_ESCAPES.sub("", text)), quote=False)


def render_line(
    seq: int,
    ts: datetime | float,
    stream: int,
    text: str,
    zone: tzinfo,
    *,
    numbered: bool = False,
    highlight: re.Pattern | None = None,
) -> str:
    """The markup of one log line (the run page's, the live updates' and the log view's).

    *numbered* adds the line number as a link to the line (the log view);
    *highlight* marks what it matches (a search), on the text without colours.
    """
    moment = datetime.fromtimestamp(ts, UTC) if isinstance(ts, float) else ts
    local = moment.astimezone(zone)
    css, mark = STREAM_MARKS.get(stream, ("", _NO_MARK))
    number = ""
    if numbered:
        number = f'<a class="ln" href="?line={seq}#L{seq}">{seq}</a>'
    if highlight is not None and highlight.search(text):
        body = _highlighted(text, highlight)
        css = f"{css} match".strip()
    else:
        body = ansi_to_html(text)
    anchor = f' id="L{seq}"' if numbered else ""
    return (
        f'<div class="line{" " + css if css else ""}"{anchor} data-seq="{seq}">{number}'
        f'<time datetime="{moment.isoformat()}">{local:%H:%M:%S}</time>'
        f'{mark or _NO_MARK}<span class="text">{body}</span></div>'
    )


def _highlighted(text: str, pattern: re.Pattern) -> str:
    plain = _CONTROLS.sub("", _OTHER_ESCAPES.sub("", _SGR.sub("", text.rstrip("\r"))))
    out: list[str] = []
    position = 0
    for found in pattern.finditer(plain):
        out.append(escape(plain[position : found.start()], quote=False))
        out.append(f"<mark>{escape(found[0], quote=False)}</mark>")
        position = found.end()
    out.append(escape(plain[position:], quote=False))
    return "".join(out)


def render_lines(
    lines, *, numbered: bool = False, highlight: re.Pattern | None = None
) -> SafeString:
    """Markup of LogLine rows (or PendingLines), in the order given."""
    zone = timezone.get_current_timezone()
    return mark_safe(  # noqa: S308 - every piece is escaped in render_line
        "".join(
            render_line(
                line.seq,
                line.ts,
                line.stream,
                line.text,
                zone,
                numbered=numbered,
                highlight=highlight,
            )
            for line in lines
        )
    )


def skipped_note(count: int, log_url: str) -> str:
    """Said in place of the lines a log view leaves out, with a link to them all."""
    return (
        f'<div class="line system log-skip"><span class="text">{count:,} earlier '
        f"line{'s' if count != 1 else ''} not shown here: "
        f'<a href="{escape(log_url)}">full log</a></span></div>'
    )
