"""Plain-text tables for the terminal, and the ``key=value`` cell of an event's detail.

One helper for every table the commands print (``people list``, ``events``, ``eval``,
``bench``), so they line up the same way: each column is as wide as its widest cell,
columns are two spaces apart, numbers are right-aligned and text left-aligned, and lines
carry no trailing spaces (a left-aligned last column is not padded).

It depends on nothing but the standard library (and the event record's stdlib-only number
rounding), so :mod:`pi_facegate.devtools` may use it too without an import cycle: importing
:mod:`pi_facegate.cli` runs only its light ``__init__`` (the subcommands are imported when
the parser is built).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pi_facegate.storage.event_record import rounded

LEFT, RIGHT = "<", ">"


def format_table(
    headers: Sequence[str] | None,
    rows: Iterable[Sequence[Any]],
    align: str | None = None,
    gap: int = 2,
    indent: str = "",
) -> str:
    """``rows`` (and a header line, unless ``headers`` is ``None``) as aligned text columns.

    :param headers: the column titles, or ``None`` for a table without a header line
    :param rows: the cells, one sequence per line; cells are shown with ``str()``, so
        format floats before (``f"{value:.3f}"``); a short row leaves its last cells empty
    :param align: one ``<`` (left) or ``>`` (right) per column; by default a column whose
        cells are all numbers (``int`` or ``float``, not ``bool``) is right-aligned, any
        other left-aligned; headers follow their column
    :param gap: spaces between columns
    :param indent: put before every line
    :returns: the lines joined by newlines, without a final one
    """
    body = [list(row) for row in rows]
    columns = max([len(headers or ())] + [len(row) for row in body])
    if align is None:
        align = "".join(
            RIGHT if _numeric_column([row[i] for row in body if i < len(row)]) else LEFT
            for i in range(columns)
        )
    if len(align) != columns or set(align) - {LEFT, RIGHT}:
        raise ValueError(f"align needs one '<' or '>' per column ({columns}), got {align!r}")
    lines = [list(headers)] if headers is not None else []
    lines += body
    text = [[_cell(row[i]) if i < len(row) else "" for i in range(columns)] for row in lines]
    widths = [max((len(row[i]) for row in text), default=0) for i in range(columns)]
    out = []
    for row in text:
        cells = [
            cell.rjust(width) if side == RIGHT else cell.ljust(width)
            for cell, width, side in zip(row, widths, align, strict=True)
        ]
        out.append((indent + (" " * gap).join(cells)).rstrip())
    return "\n".join(out)


def format_detail(detail: Mapping[str, Any]) -> str:
    """``key=value`` pairs for humans; strings bare, everything else as JSON, with floats
    rounded to 3 significant digits (``unlocked_for=3.0``; ``--json`` keeps every digit)."""
    parts = []
    for key, value in detail.items():
        shown = (
            value
            if isinstance(value, str)
            else json.dumps(
                rounded(value), separators=(",", ":"), ensure_ascii=False, allow_nan=False
            )
        )
        parts.append(f"{key}={shown}")
    return printable(" ".join(parts))


def _numeric_column(cells: list[Any]) -> bool:
    return bool(cells) and all(
        isinstance(c, (int, float)) and not isinstance(c, bool) for c in cells
    )


def printable(text: str) -> str:
    """``text`` with control characters shown as escapes (``\\x1b``, ``\\n``), not obeyed.

    Names and details come from files another program may have written (a gallery edited
    with ``sqlite3``, an event log from an older version): an escape sequence printed raw can
    recolour, hide or rewrite what the administrator sees in the terminal.
    """
    if all(ch.isprintable() or ch == " " for ch in text):
        return text
    return "".join(
        ch if ch.isprintable() or ch == " " else ch.encode("unicode_escape").decode("ascii")
        for ch in text
    )


def _cell(value: Any) -> str:
    return printable(value if isinstance(value, str) else str(value))
