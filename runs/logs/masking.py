"""Secret values out of what is kept: log lines, outputs, errors.

A step that prints a secret, echoes it in a response, or fails with it in
the message, leaves ``***`` in its place wherever it is stored or sent:
the log lines (and so the live page, the log view and the raw download),
the step's outputs (and so the steps after it) and its error.

Masked are the value, each of its lines (for a multi-line value such as a
key file), their URL-encoded forms, and their base64 forms at each of the
three alignments a value can have inside a longer base64 text (as in
``Authorization: Basic …``). Lines are masked once whole, so a value that
the process wrote in two pieces is masked too. Values shorter than
MIN_LENGTH characters are not masked: masking "1" would hide every digit.
"""

from __future__ import annotations

import base64
import dataclasses
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

MASK = "***"
MIN_LENGTH = 4


def _base64_forms(raw: bytes) -> set[str]:
    """*raw*'s base64 text at offsets 0, 1 and 2 of a longer text: the part it alone decides."""
    forms = set()
    for offset in range(3):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            text = encode(b"\0" * offset + raw).decode()
            start = -(-offset * 4 // 3)  # characters that depend on what comes before
            end = (offset + len(raw)) * 4 // 3  # past it, on what comes after
            forms.add(text[start:end])
            if offset == 0:
                forms.add(text)  # the whole value, padded
    return forms


def forms_of(value: str) -> set[str]:
    """The texts that give *value* away."""
    forms: set[str] = set()
    for piece in {value, *value.splitlines()}:
        if len(piece) < MIN_LENGTH:
            continue
        forms |= {piece, quote(piece, safe=""), quote_plus(piece), quote(piece)}
        forms |= _base64_forms(piece.encode())
    return {form for form in forms if len(form) >= MIN_LENGTH}


class Masker:
    """Replaces every form of the given values with ``***``."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        forms = set()
        for value in values:
            forms |= forms_of(value)
        # Longest first: a value's whole form before the pieces inside it.
        ordered = sorted(forms, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def __call__(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(MASK, text)

    def result(self, result):
        """A StepResult with its outputs and error masked."""
        if self._pattern is None:
            return result
        return dataclasses.replace(
            result,
            outputs={name: self(value) for name, value in result.outputs.items()},
            error=self(result.error),
        )


NOTHING = Masker()
