"""CSV for every CSV the exporter serves: streamed in chunks, and inert in a spreadsheet.

A text cell starting with `=`, `+`, `-`, `@`, a tab or a carriage return would be run as a formula
by Excel, LibreOffice or Google Sheets (CSV injection); it gets a leading single quote, as
Symfony's CsvEncoder does with `csv_escape_formulas`. So does such a character after a `;`
inside the text: a spreadsheet set to read `;` as the delimiter (German or French locales) starts
a cell there, where no quoting of ours can reach. Numbers are written as they are, so a
negative number stays a number. Fields holding a comma, a double quote or a line break are
enclosed in double quotes, quotes doubled (RFC 4180), so any text, newlines and all of Unicode
included, reads back unchanged. A drop-in route may enclose more, as its original does
(PHP_ENCLOSED: PHP's fputcsv also encloses fields with a space or a tab); the formula guard stays.
UTF-8 without a BOM; lines end with `\\n`, as the ownCloud metrics app's CSVs do.
"""

from __future__ import annotations

import csv
import io
import itertools
import re
from collections.abc import Iterable, Iterator, Sequence
from numbers import Number
from typing import Any

from exporter.usercolumns import TEXT, batched

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
FORMULA_AFTER_SEMICOLON = re.compile(r";(?=[=+\-@\t\r])")
NEEDS_QUOTES = re.compile(r'[,"\r\n]')
# PHP's fputcsv without an escape character (Symfony's CsvEncoder): a space or a tab too.
PHP_ENCLOSED = re.compile(r'[,"\r\n\t ]')
CHUNK_CHARS = 64 * 1024
# Written by csv.writer as they are: str() of them never needs quotes or a quote mark.
PLAIN = (int, float, bool)
PLAIN_TYPES = frozenset((*PLAIN, type(None)))


def safe_cell(value: Any) -> str:
    """A value as CSV cell text: None as empty, numbers as is, formula-like text quoted out."""
    if value is None:
        return ""
    if type(value) is not str:
        if isinstance(value, Number):
            return str(value)
        value = str(value)
    value = FORMULA_AFTER_SEMICOLON.sub(";'", value)
    return "'" + value if value.startswith(FORMULA_STARTS) else value


class _ByHand(Exception):
    """A row csv.writer would write differently, written by _line instead: a text cell with a
    carriage return (left unquoted when lines end with \\n) or a lone cell (empty as "")."""


def _writer_cell(value: Any) -> Any:
    """A cell as csv.writer should get it: numbers as they are, text made inert."""
    if value is None or type(value) in PLAIN:
        return value
    text = safe_cell(value)
    if "\r" in text:
        raise _ByHand
    return text


def _line(cells: Sequence[Any], enclose: re.Pattern[str] = NEEDS_QUOTES) -> str:
    fields = []
    for value in cells:
        text = safe_cell(value)
        fields.append('"' + text.replace('"', '""') + '"' if enclose.search(text) else text)
    return ",".join(fields) + "\n"


def _inert(column: Sequence[Any]) -> Sequence[Any]:
    """The column as csv.writer should get it. Numbers, empty cells and text that no
    spreadsheet would run (checked in C, a pass over the column) go untouched; any other
    column is made inert cell by cell."""
    types = set(map(type, column))
    if PLAIN_TYPES.issuperset(types):
        return column
    if TEXT.issuperset(types):
        texts = list(filter(None, column))
        if not any(map(str.startswith, texts, itertools.repeat(FORMULA_STARTS))) \
                and "\r" not in "".join(texts):
            return column
    return list(map(_writer_cell, column))


def _write_batch(writer: Any, buffer: io.StringIO, columns: Sequence[Sequence[Any]]) -> None:
    """Rows given column by column, written by the C writer."""
    try:
        if len(columns) < 2:
            raise _ByHand
        writer.writerows(zip(*map(_inert, columns), strict=True))
    except _ByHand:
        buffer.write("".join(map(_line, zip(*columns, strict=True))))


def stream_csv_columns(header: Sequence[str], batches: Iterable[Sequence[Sequence[Any]]],
                       enclose: re.Pattern[str] = NEEDS_QUOTES) -> Iterator[bytes]:
    """The header line and the rows of each batch (its cells column by column, one column per
    header field), as UTF-8 chunks of about 64 KiB; batches are read as the chunks are sent, so
    memory stays constant however many rows there are. Fields matching `enclose` are enclosed
    in double quotes: csv.writer encloses NEEDS_QUOTES, other patterns are written by hand."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    buffer.write(_line(header, enclose))
    for columns in batches:
        if enclose is NEEDS_QUOTES:
            _write_batch(writer, buffer, columns)
        else:
            buffer.write("".join(_line(row, enclose) for row in zip(*columns, strict=True)))
        if buffer.tell() >= CHUNK_CHARS:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue().encode()


def stream_csv(header: Sequence[str], rows: Iterable[Sequence[Any]],
               enclose: re.Pattern[str] = NEEDS_QUOTES) -> Iterator[bytes]:
    """stream_csv_columns for rows given row by row."""
    return stream_csv_columns(header, (list(zip(*batch, strict=True)) for batch in batched(rows)),
                              enclose)
