"""Turning a step's raw output into stored log lines.

Output arrives as byte chunks on stdout and stderr. It is split into lines
as it comes (each line timestamped when it arrives), decoded as UTF-8 with
replacement characters, and long lines are cut. Each attempt keeps at most
half its cap from the start; past that only a bounded tail is held in memory,
and when the step ends a marker says how much was dropped before the tail.
Memory stays bounded however much a step prints.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import transaction
from django.db.models import F

from runs.engine import news
from runs.logs.masking import NOTHING, Masker
from runs.models import LogLine, LogStream, Run

STREAMS = {
    "stdout": LogStream.STDOUT,
    "stderr": LogStream.STDERR,
    "system": LogStream.SYSTEM,
}
# Past this many unwritten lines, the step's output waits for a write.
MAX_PENDING_LINES = 20_000


@dataclass(frozen=True, slots=True)
class PendingLine:
    seq: int
    attempt: int
    ts: float
    stream: int
    text: str


@transaction.atomic  # all or nothing, so a failed batch can be written again
def write_lines(step_run_id: int, lines: list[PendingLine], *, run_id: int) -> None:
    """Store a batch of a step run's lines; the run's viewers hear of them on commit.

    Written with COPY on PostgreSQL and one prepared INSERT on SQLite: a
    chatty step prints thousands of lines a second, and building each row
    through the ORM cost several times the database's own work.
    """
    if not lines:
        return
    connection = transaction.get_connection()
    adapt = connection.ops.adapt_datetimefield_value
    rows = [
        (
            step_run_id,
            line.seq,
            line.attempt,
            adapt(datetime.fromtimestamp(line.ts, UTC)),
            line.stream,
            line.text,
        )
        for line in lines
    ]
    table = connection.ops.quote_name(LogLine._meta.db_table)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # COPY: the fastest way in, about ten times an INSERT per row.
            with cursor.cursor.copy(f"COPY {table} ({_COLUMNS}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            # Only constants and the quoted table name: the values are parameters.
            sql = f"INSERT INTO {table} ({_COLUMNS}) VALUES ({_VALUES})"  # noqa: S608
            cursor.executemany(sql, rows)
    size = sum(len(line.text.encode()) for line in lines)
    Run.objects.filter(pk=run_id).update(log_bytes=F("log_bytes") + size)
    news.on_commit_lines_written(run_id, step_run_id, lines)


_COLUMNS = "step_run_id, seq, attempt, ts, stream, text"
_VALUES = ", ".join(["%s"] * 6)


def clean_text(raw: bytes) -> str:
    # PostgreSQL text cannot hold NUL; invalid UTF-8 becomes U+FFFD.
    return raw.decode("utf-8", errors="replace").replace("\x00", "\ufffd")


class _Tail:
    """The last bytes of a stream once the head is full: chunks, oldest dropped."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.chunks: deque[tuple[float, bytes]] = deque()
        self.size = 0
        self.dropped_bytes = 0
        self.dropped_lines = 0

    def add(self, ts: float, chunk: bytes) -> None:
        if not chunk:
            return
        self.chunks.append((ts, chunk))
        self.size += len(chunk)
        while self.size - len(self.chunks[0][1]) >= self.max_bytes:
            _, old = self.chunks.popleft()
            self.size -= len(old)
            self.dropped_bytes += len(old)
            self.dropped_lines += old.count(b"\n")

    def lines(self, max_lines: int, line_max: int) -> list[tuple[float, bytes]]:
        """Complete lines of the kept bytes; the cut first line counts as dropped."""
        out: list[tuple[float, bytes]] = []
        carry = b""
        for ts, chunk in self.chunks:
            parts = (carry + chunk).split(b"\n")
            carry = parts.pop()
            out.extend((ts, part) for part in parts)
        if carry:
            out.append((self.chunks[-1][0], carry))
        if self.dropped_bytes and out:
            _, first = out.pop(0)
            self.dropped_bytes += len(first) + 1
            self.dropped_lines += 1
        while len(out) > max_lines:
            _, line = out.pop(0)
            self.dropped_bytes += len(line) + 1
            self.dropped_lines += 1
        return [(ts, line if len(line) <= line_max else _cut(line, line_max)) for ts, line in out]


class LogCapture:
    """Collects the lines of one attempt; an executor writes what ``take`` returns."""

    def __init__(
        self,
        *,
        attempt: int,
        first_seq: int,
        cap_bytes: int,
        cap_lines: int,
        line_max: int,
    ):
        self.attempt = attempt
        self.next_seq = first_seq
        self.line_max = line_max
        self.head_bytes = cap_bytes // 2
        self.head_lines = cap_lines // 2
        self.tail_bytes = cap_bytes // 4  # per stream
        self.tail_lines = cap_lines // 4
        self.used_bytes = 0
        self.used_lines = 0
        self.pending: list[PendingLine] = []
        self.overflow = False
        self._carry: dict[str, bytearray] = {
            "stdout": bytearray(),
            "stderr": bytearray(),
        }
        self._carry_cut: dict[str, int] = {"stdout": 0, "stderr": 0}
        self._tails: dict[str, _Tail] = {}
        self._late_system: list[tuple[float, str]] = []
        self.has_room = asyncio.Event()
        self.has_room.set()
        self.wants_flush = asyncio.Event()  # the pending lines should be written now
        self.has_lines = asyncio.Event()  # some lines are pending
        # The step's secret values, replaced by *** in every line kept (masking.py).
        self.mask: Masker = NOTHING

    # What a running step calls.

    def log(self, text: str, stream: str = "system") -> None:
        now = time.time()
        for line in text.splitlines() or [""]:
            if self.overflow and stream == "system":
                self._late_system.append((now, line))
            else:
                self._append(now, STREAMS[stream], line)

    async def feed(self, stream: str, chunk: bytes) -> None:
        now = time.time()
        if self.overflow:
            self._tails[stream].add(now, chunk)
            return
        carry = self._carry[stream]
        position = 0
        while not self.overflow:
            end = chunk.find(b"\n", position)
            if end < 0:
                self._extend_carry(stream, chunk[position:])
                break
            self._extend_carry(stream, chunk[position:end])
            self._line_done(now, stream)
            position = end + 1
        else:
            self._tails[stream].add(now, bytes(carry) + chunk[position:])
            carry.clear()
        if len(self.pending) >= MAX_PENDING_LINES:
            self.wants_flush.set()
            self.has_room.clear()
            await self.has_room.wait()

    async def end_stream(self, stream: str) -> None:
        if self._carry[stream] and not self.overflow:
            self._line_done(time.time(), stream)

    # What the executor calls.

    def take(self) -> list[PendingLine]:
        lines, self.pending = self.pending, []
        self.wants_flush.clear()
        self.has_lines.clear()
        self.has_room.set()
        return lines

    def put_back(self, lines: list[PendingLine]) -> None:
        """Lines that could not be written: they go out with the next batch."""
        self.pending[:0] = lines
        if lines:
            self.has_lines.set()

    def finish(self) -> None:
        """Close the attempt: write the dropped-lines marker and the kept tail."""
        if not self.overflow:
            return
        lines: list[tuple[float, int, str]] = []
        dropped_bytes = dropped_lines = 0
        for name, tail in self._tails.items():
            for ts, raw in tail.lines(self.tail_lines, self.line_max):
                lines.append((ts, STREAMS[name], clean_text(raw).removesuffix("\r")))
            dropped_bytes += tail.dropped_bytes
            dropped_lines += tail.dropped_lines
        lines.extend((ts, LogStream.SYSTEM, text) for ts, text in self._late_system)
        lines.sort(key=lambda item: item[0])
        self._append(
            time.time(),
            LogStream.SYSTEM,
            f"… {dropped_lines:,} lines ({_size(dropped_bytes)}) not kept: "
            "a step's log keeps its first and last lines only …",
        )
        for ts, stream, text in lines:
            self._append(ts, stream, text)
        self._tails.clear()
        self._late_system.clear()

    # Inside.

    def _extend_carry(self, stream: str, piece: bytes) -> None:
        carry = self._carry[stream]
        room = self.line_max - len(carry)
        if len(piece) > room:
            self._carry_cut[stream] += len(piece) - max(room, 0)
            piece = piece[: max(room, 0)]
        carry += piece

    def _line_done(self, ts: float, stream: str) -> None:
        carry = self._carry[stream]
        raw = bytes(carry)
        carry.clear()
        text = clean_text(raw).removesuffix("\r")
        if cut := self._carry_cut[stream]:
            text += f" … [line cut: {cut:,} more bytes]"
            self._carry_cut[stream] = 0
        self._append(ts, STREAMS[stream], text)
        self.used_bytes += len(raw) + 1
        self.used_lines += 1
        if self.used_bytes >= self.head_bytes or self.used_lines >= self.head_lines:
            self._start_overflow(ts)

    def _start_overflow(self, ts: float) -> None:
        self.overflow = True
        self._tails = {name: _Tail(self.tail_bytes) for name in ("stdout", "stderr")}
        for name, carry in self._carry.items():
            self._tails[name].add(ts, bytes(carry))
            carry.clear()

    def _append(self, ts: float, stream: int, text: str) -> None:
        # Every line kept passes here, whole: a secret written in two pieces is masked too.
        text = self.mask(text)
        self.pending.append(PendingLine(self.next_seq, self.attempt, ts, stream, text))
        self.next_seq += 1
        self.has_lines.set()


def _cut(line: bytes, line_max: int) -> bytes:
    return line[:line_max] + f" … [line cut: {len(line) - line_max:,} more bytes]".encode()


def _size(count: int) -> str:
    size = float(count)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:,.0f} {unit}" if unit == "bytes" else f"{size:,.1f} {unit}"
        size /= 1024
    return f"{count} bytes"
