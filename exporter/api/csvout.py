"""CSV for every CSV the exporter serves: streamed in chunks, and inert in a spreadsheet.

A text cell starting with `=`, `+`, `-`, `@`, a tab or a carriage return would be run as a formula
by Excel, LibreOffice or Google Sheets (CSV injection); it gets a leading single quote, as
Symfony's CsvEncoder does with `csv_escape_formulas`. Numbers are written as they are, so a
negative number stays a number. Fields holding a comma, a double quote or a line break are
enclosed in double quotes, quotes doubled (RFC 4180), so any text, newlines and all of Unicode
included, reads back unchanged. UTF-8 without a BOM; lines end with `\\n`, as the ownCloud metrics
app's CSVs do.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from numbers import Number
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
NEEDS_QUOTES = re.compile(r'[,"\r\n]')
CHUNK_CHARS = 64 * 1024


def safe_cell(value: Any) -> str:
    """A value as CSV cell text: None as empty, numbers as is, formula-like text quoted out."""
    if value is None:
        return ""
    if isinstance(value, Number):
        return str(value)
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _line(cells: Sequence[Any]) -> str:
    fields = []
    for value in cells:
        text = safe_cell(value)
        fields.append('"' + text.replace('"', '""') + '"' if NEEDS_QUOTES.search(text) else text)
    return ",".join(fields) + "\n"


def stream_csv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Iterator[bytes]:
    """The header line and one line per row, as UTF-8 chunks of about 64 KiB; rows are read as
    the chunks are sent, so memory stays constant however many there are."""
    pending = [_line(header)]
    size = len(pending[0])
    for row in rows:
        line = _line(row)
        pending.append(line)
        size += len(line)
        if size >= CHUNK_CHARS:
            yield "".join(pending).encode()
            pending, size = [], 0
    if pending:
        yield "".join(pending).encode()
