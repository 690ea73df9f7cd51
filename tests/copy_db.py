"""Copy the tables of a SQLite database into PostgreSQL or MariaDB, for tests.

SQLite stores whatever it is given, so the target column types are chosen from the declared
type *and* the values actually stored: a declared type is kept when every stored value fits it
(BOOLEAN, DATETIME, INTEGER widths, VARCHAR lengths), otherwise the column falls back to the
type the data needs. Values are read raw from sqlite3, so they arrive unchanged except where
the target type itself changes their Python type (0/1 -> bool for BOOLEAN, ISO strings ->
datetime for DATETIME), which is what the real platforms store on those servers.

Primary keys are copied; secondary and unique indexes are copied where the target can build
them; foreign keys and CHECK constraints are not (SQLite does not enforce foreign keys by
default, so the data may not satisfy them, and the exporter only reads).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Connection, Engine

__all__ = ["copy_tables"]

log = logging.getLogger(__name__)

CHUNK_ROWS = 1000
# InnoDB limits (utf8mb4 = 4 bytes per character): index key bytes and declared row bytes.
_MYSQL_KEY_BYTES = 3072
_MYSQL_ROW_BYTES = 65535 - 1000
_MYSQL_VARCHAR_MAX = 16383
_INT_BITS = {16: (-(2**15), 2**15 - 1), 32: (-(2**31), 2**31 - 1), 64: (-(2**63), 2**63 - 1)}


@dataclass
class _Profile:
    """What one column really holds in SQLite."""

    classes: set[str]  # storage classes seen (integer, real, text, blob), NULL excluded
    max_len: int = 0  # longest text (characters) or blob (bytes)
    min_int: int | None = None
    max_int: int | None = None
    dates_ok: bool = True  # every text value parses as a naive ISO date/datetime
    has_fraction: bool = False  # some parsed datetime has microseconds


@dataclass
class _Kind:
    """Dialect-neutral target type."""

    name: str  # bool, int, float, numeric, datetime, date, string, binary
    bits: int = 64
    unsigned: bool = False
    length: int | None = None  # string length; None = unbounded
    precision: tuple[int, int] | None = None
    fraction: bool = False  # datetime values with microseconds
    lossy: bool = False  # values must change Python type to fit (mixed storage classes)


@dataclass
class _Column:
    name: str
    declared: str
    kind: _Kind
    nullable: bool
    default: str | None
    autoincrement: bool = False
    key_length: int | None = None  # MariaDB: VARCHAR length when an unbounded key column


class _Key(NamedTuple):
    """An index or UNIQUE constraint of the source table."""

    name: str
    columns: list[str]
    unique: bool
    where: str | None  # partial index condition
    prefix: dict[str, int] | None = None  # MariaDB: index only the first N characters


@dataclass
class _Plan:
    table: sa.Table
    source_columns: list[str]
    converters: list[Callable[[Any], Any] | None]
    indexes: list[_Key] = field(default_factory=list)  # built after the rows are in
    serial: str | None = None  # PostgreSQL: autoincrement column whose sequence needs setval


def copy_tables(source_url: str, target_url: str, tables: list[str] | None = None) -> None:
    """Create ``tables`` (default: all) of the SQLite ``source_url`` on ``target_url`` and copy
    every row. The target tables must not exist yet. The source is opened read-only."""
    source = _source_engine(source_url)
    target = sa.create_engine(target_url)
    try:
        metadata = sa.MetaData()
        metadata.reflect(source, only=tables)
        names = tables if tables is not None else sorted(metadata.tables)
        target_metadata = sa.MetaData()
        with source.connect() as src:
            plans = [
                _plan(src, metadata.tables[n], target_metadata, target.dialect.name) for n in names
            ]
            target_metadata.create_all(target, checkfirst=False)  # never append to old data
            with target.begin() as dst:
                for plan in plans:
                    _copy_rows(src, dst, plan)
                    if plan.serial is not None:
                        _reset_sequence(dst, plan.table, plan.serial)
        for plan in plans:
            for key in plan.indexes:
                _create_index(target, plan.table, key)
    finally:
        source.dispose()
        target.dispose()


# --- source ----------------------------------------------------------------------------------


def _source_engine(url: str) -> Engine:
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "sqlite":
        raise ValueError(f"source must be a SQLite URL, got {parsed.get_backend_name()!r}")
    database = parsed.database
    if not database or database == ":memory:" or parsed.query:
        return sa.create_engine(parsed)
    path = Path(database).resolve()
    if not path.is_file():
        # sqlite3 would silently create an empty database there.
        raise FileNotFoundError(path)
    uri = f"{path.as_uri()}?mode=ro"  # read-only: a copy must never write to its source
    return sa.create_engine("sqlite://", creator=lambda: sqlite3.connect(uri, uri=True))


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _declared_types(src: Connection, table: str) -> dict[str, str]:
    # The reflected SQLAlchemy types lose information (UNSIGNED, bytea -> NUMERIC, "" -> NULL).
    rows = src.exec_driver_sql(f"PRAGMA table_info({_quote(table)})").all()
    return {row[1]: (row[2] or "").strip().upper() for row in rows}


def _profile(src: Connection, table: str, columns: list[str]) -> dict[str, _Profile]:
    parts = []
    for name in columns:
        c = _quote(name)
        parts += [
            f"group_concat(DISTINCT typeof({c}))",
            f"max(CASE WHEN typeof({c}) IN ('text', 'blob') THEN length({c}) END)",
            f"min(CASE WHEN typeof({c}) = 'integer' THEN {c} END)",
            f"max(CASE WHEN typeof({c}) = 'integer' THEN {c} END)",
        ]
    row = src.exec_driver_sql(f"SELECT {', '.join(parts)} FROM {_quote(table)}").one()
    profiles = {}
    for i, name in enumerate(columns):
        classes, max_len, min_int, max_int = row[4 * i : 4 * i + 4]
        seen = set(classes.split(",")) - {"null"} if classes else set()
        profiles[name] = _Profile(seen, max_len or 0, min_int, max_int)
    return profiles


def _check_dates(src: Connection, table: str, column: str, profile: _Profile) -> None:
    c = _quote(column)
    sql = f"SELECT DISTINCT {c} FROM {_quote(table)} WHERE typeof({c}) = 'text'"
    for (value,) in src.exec_driver_sql(sql):
        parsed = _parse_datetime(value)
        if parsed is None:
            profile.dates_ok = False
            return
        profile.has_fraction |= parsed.microsecond != 0


def _parse_datetime(value: str) -> dt.datetime | None:
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is None else None  # aware values would be shifted


# --- types -----------------------------------------------------------------------------------


def _declared_kind(declared: str) -> _Kind | None:
    """The type the schema asked for (SQLite affinity rules, plus the names that matter)."""
    unsigned = "UNSIGNED" in declared
    base = re.sub(r"\(.*?\)|UNSIGNED", "", declared).strip()
    numbers = [int(n) for n in re.findall(r"\d+", declared)]
    if base in ("BOOL", "BOOLEAN"):
        return _Kind("bool")
    if base in ("DATETIME", "TIMESTAMP"):
        return _Kind("datetime")
    if base == "DATE":
        return _Kind("date")
    if "INT" in base:
        bits = 16 if base in ("SMALLINT", "TINYINT", "INT2") else 64 if "BIG" in base else 32
        return _Kind("int", bits=bits, unsigned=unsigned)
    if base.startswith("JSON"):
        return _Kind("string")  # stored as JSON text; keep the text
    if any(word in base for word in ("CHAR", "CLOB", "TEXT")):
        bounded = "CHAR" in base and numbers
        return _Kind("string", length=numbers[0] if bounded else None)
    if any(word in base for word in ("BLOB", "BYTEA", "BINARY")):
        return _Kind("binary")
    if any(word in base for word in ("REAL", "FLOA", "DOUB")):
        return _Kind("float")
    if base in ("NUMERIC", "DECIMAL") and len(numbers) == 2:
        return _Kind("numeric", precision=(numbers[0], numbers[1]))
    return None  # "" or unknown: let the data decide


def _fit(kind: _Kind | None, p: _Profile) -> _Kind:
    """``kind`` widened to hold every stored value, or a type chosen from the data."""
    c = p.classes
    if kind is not None:
        if (
            kind.name == "bool"
            and c <= {"integer"}
            and (p.min_int or 0) >= 0
            and (p.max_int or 0) <= 1
        ):
            return kind
        if kind.name in ("datetime", "date") and c <= {"text"} and p.dates_ok:
            return kind
        if kind.name == "int" and c <= {"integer"}:
            bits = next(
                b
                for b, (low, high) in _INT_BITS.items()
                if b >= kind.bits and low <= (p.min_int or 0) and (p.max_int or 0) <= high
            )
            return _Kind("int", bits=bits, unsigned=kind.unsigned and (p.min_int or 0) >= 0)
        if kind.name == "float" and c <= {"real"}:
            return kind
        if kind.name == "numeric" and c <= {"integer", "real"}:
            return kind
        if kind.name == "string" and c <= {"text"}:
            if kind.length is not None and p.max_len > kind.length:
                return _Kind("string", length=p.max_len)  # SQLite never enforced the length
            return kind
        if kind.name == "binary" and c <= {"blob"}:
            return kind
        if not c:  # no values at all: nothing contradicts the declared type
            return kind
    if not c or c == {"text"}:
        return _Kind("string")
    if c == {"integer"}:
        return _fit(_Kind("int"), p)
    if c <= {"integer", "real"}:
        return _Kind("float", lossy="integer" in c)
    if "blob" in c:
        return _Kind("binary", lossy=c != {"blob"})
    return _Kind("string", lossy=True)  # text mixed with numbers: one column, one type


def _sa_type(col: _Column, dialect: str) -> sa.types.TypeEngine[Any]:
    k, is_mysql = col.kind, dialect == "mysql"
    if k.name == "bool":
        return sa.Boolean()
    if k.name == "int":
        if col.autoincrement:
            return sa.BigInteger()
        if is_mysql and k.unsigned:
            return {16: mysql.SMALLINT, 32: mysql.INTEGER, 64: mysql.BIGINT}[k.bits](unsigned=True)
        return {16: sa.SmallInteger, 32: sa.Integer, 64: sa.BigInteger}[k.bits]()
    if k.name == "float":
        return sa.Double()
    if k.name == "numeric":
        return sa.Numeric(*(k.precision or ()))
    if k.name == "datetime":
        return mysql.DATETIME(fsp=6) if is_mysql and k.fraction else sa.DateTime()
    if k.name == "date":
        return sa.Date()
    if k.name == "binary":
        if not is_mysql:
            return sa.LargeBinary()
        return mysql.VARBINARY(col.key_length) if col.key_length else mysql.LONGBLOB()
    if not is_mysql:
        return sa.String(k.length) if k.length else sa.Text()
    if col.key_length:
        return sa.String(col.key_length)
    if k.length and k.length <= _MYSQL_VARCHAR_MAX:
        return sa.String(k.length)
    return mysql.LONGTEXT()  # what Doctrine uses for CLOB on MySQL


def _converter(kind: _Kind) -> Callable[[Any], Any] | None:
    if kind.name == "bool":
        return lambda v: None if v is None else bool(v)
    if kind.name == "datetime":
        return lambda v: None if v is None else dt.datetime.fromisoformat(v)
    if kind.name == "date":
        return lambda v: None if v is None else dt.datetime.fromisoformat(v).date()
    if kind.name == "string" and kind.lossy:
        return lambda v: v if v is None or isinstance(v, str) else str(v)
    if kind.name == "binary" and kind.lossy:
        return lambda v: v if v is None or isinstance(v, bytes) else str(v).encode()
    if kind.name == "float" and kind.lossy:
        return lambda v: None if v is None else float(v)
    return None


def _server_default(raw: str | None, col: _Column, dialect: str) -> sa.TextClause | None:
    """Translate a SQLite DEFAULT into one the target accepts, or drop it (the copy only
    inserts explicit values, so defaults matter only for rows tests insert later)."""
    if raw is None:
        return None
    text = raw.strip()
    while text.startswith("(") and text.endswith(")"):
        text = text[1:-1].strip()
    if text.upper() == "NULL":
        return None
    k, is_mysql = col.kind, dialect == "mysql"
    unquoted = text[1:-1].replace("''", "'") if re.fullmatch(r"'(?:[^']|'')*'", text) else None
    literal = unquoted if unquoted is not None else text
    number = re.fullmatch(r"[-+]?\d+(\.\d+)?", literal) is not None
    truth = {"0": "false", "1": "true", "FALSE": "false", "TRUE": "true"}.get(literal.upper())
    if k.name == "bool" and truth is not None:
        return sa.text(truth)
    if k.name in ("int", "float", "numeric") and (number or truth is not None):
        return sa.text(literal if number else str(int(truth == "true")))
    if k.name == "datetime" and text.upper() == "CURRENT_TIMESTAMP":
        return sa.text("CURRENT_TIMESTAMP")
    if k.name == "string" and unquoted is not None:
        if is_mysql and isinstance(_sa_type(col, dialect), mysql.LONGTEXT):
            return None  # MySQL < 8.0.13 and old MariaDB reject DEFAULT on TEXT/BLOB
        escaped = unquoted.replace("'", "''")
        if is_mysql:
            escaped = escaped.replace("\\", "\\\\")  # MySQL strings treat \ as an escape
        return sa.text(f"'{escaped}'")
    log.debug("dropping default %s of column %s (%s)", raw, col.name, col.declared)
    return None


# --- plan --------------------------------------------------------------------------------------


def _plan(src: Connection, table: sa.Table, metadata: sa.MetaData, dialect: str) -> _Plan:
    declared = _declared_types(src, table.name)
    names = [c.name for c in table.columns]
    profiles = _profile(src, table.name, names)
    create_sql = src.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table.name,)
    ).scalar()
    pk = [c.name for c in table.primary_key.columns]

    columns: dict[str, _Column] = {}
    for source_col in table.columns:
        name = source_col.name
        wanted = _declared_kind(declared[name])
        if wanted is not None and wanted.name in ("datetime", "date"):
            _check_dates(src, table.name, name, profiles[name])
        kind = _fit(wanted, profiles[name])
        # MariaDB's DATETIME drops microseconds unless it has a fractional precision.
        kind.fraction = kind.name == "datetime" and profiles[name].has_fraction
        if kind.lossy:
            log.warning("%s.%s holds mixed types %s", table.name, name, profiles[name].classes)
        default = source_col.server_default
        columns[name] = _Column(
            name=name,
            declared=declared[name],
            kind=kind,
            nullable=bool(source_col.nullable) and name not in pk,
            default=str(default.arg) if isinstance(default, sa.DefaultClause) else None,
            # SQLite's AUTOINCREMENT keyword is what Doctrine/Synapse emit for serial keys.
            autoincrement=(
                len(pk) == 1
                and name == pk[0]
                and kind.name == "int"
                and bool(re.search(r"\bAUTOINCREMENT\b", create_sql or "", re.I))
            ),
        )

    keys = _source_keys(table)
    if dialect == "mysql":
        key_columns = [pk, *[key.columns for key in keys]]
        _fit_mysql_keys(table.name, columns, profiles, key_columns)
        _fit_mysql_row(table.name, columns, {name for cols in key_columns for name in cols})

    target = sa.Table(
        table.name,
        metadata,
        *[
            sa.Column(
                col.name,
                _sa_type(col, dialect),
                nullable=col.nullable,
                autoincrement=col.autoincrement,
                server_default=_server_default(col.default, col, dialect),
            )
            for col in columns.values()
        ],
        *([sa.PrimaryKeyConstraint(*pk)] if pk else []),
    )
    plan = _Plan(
        table=target,
        source_columns=names,
        converters=[_converter(columns[n].kind) for n in names],
        serial=pk[0] if dialect == "postgresql" and pk and columns[pk[0]].autoincrement else None,
    )
    for key in keys:
        if dialect == "mysql":
            if key.where is not None and key.unique:
                # Without its WHERE a partial unique index would reject valid rows.
                log.warning("skipping partial unique index %s on %s", key.name, table.name)
                continue
            # A plain index without its WHERE (or on a prefix) only indexes more rows.
            key = key._replace(where=None, prefix=_mysql_prefix(key, columns))
        plan.indexes.append(key)
    return plan


def _source_keys(table: sa.Table) -> list[_Key]:
    """(name, columns, unique, partial WHERE) of each index and UNIQUE constraint."""
    keys = []
    for index in table.indexes:
        where = index.dialect_options["sqlite"].get("where")
        cols = [c.name for c in index.columns]
        if len(cols) != len(index.expressions):
            log.warning("skipping expression index %s on %s", index.name, table.name)
            continue
        condition = None if where is None else str(where)
        keys.append(_Key(str(index.name), cols, bool(index.unique), condition))
    for constraint in table.constraints:
        if isinstance(constraint, sa.UniqueConstraint):
            cols = [c.name for c in constraint.columns]
            name = constraint.name or f"{table.name}_{'_'.join(cols)}_key"
            keys.append(_Key(str(name)[:63], cols, True, None))
    return keys


def _mysql_bytes(col: _Column) -> int:
    k = col.kind
    if k.name == "string":
        length = col.key_length or k.length
        return 4 * length + 2 if length and length <= _MYSQL_VARCHAR_MAX else 12
    if k.name == "binary":
        return col.key_length + 2 if col.key_length else 12
    return 8


def _fit_mysql_keys(
    table: str,
    columns: dict[str, _Column],
    profiles: dict[str, _Profile],
    keys: Iterable[list[str]],
) -> None:
    """MariaDB cannot index TEXT/BLOB without a length: give such key columns a VARCHAR
    length that holds the longest stored value and keeps every key within 3072 bytes."""

    def unbounded(name: str) -> bool:
        k = columns[name].kind
        return k.name == "binary" or (
            k.name == "string" and (k.length is None or k.length > _MYSQL_VARCHAR_MAX)
        )

    keys = list(keys)
    keyed = {name for key in keys for name in key if unbounded(name)}
    lengths = {name: max(255, profiles[name].max_len) for name in keyed}
    for key in keys:
        shrinkable = [n for n in key if n in keyed]
        if not shrinkable:
            continue
        fixed = sum(_mysql_bytes(columns[n]) for n in key if n not in keyed)
        share = (_MYSQL_KEY_BYTES - fixed) // (4 * len(shrinkable)) - 1
        for name in shrinkable:
            # Never below the longest stored value: a key that still does not fit fails
            # loudly (primary key) or is skipped with a warning (index).
            lengths[name] = min(lengths[name], max(share, profiles[name].max_len, 1))
    for name, length in lengths.items():
        columns[name].key_length = length
    for name in sorted(keyed):
        log.debug("%s.%s: key column becomes VARCHAR(%s)", table, name, columns[name].key_length)


def _mysql_prefix(key: _Key, columns: dict[str, _Column]) -> dict[str, int] | None:
    """Prefix lengths that bring a non-unique MariaDB index within 3072 bytes, like
    Nextcloud's own MySQL schema does (e.g. oc_filecache(storage, path(64)))."""
    cols = [columns[name] for name in key.columns]
    if key.unique or sum(_mysql_bytes(c) for c in cols) <= _MYSQL_KEY_BYTES:
        return None
    strings = [c for c in cols if c.kind.name == "string" and not c.key_length]
    fixed = sum(_mysql_bytes(c) for c in cols if c not in strings)
    share = (_MYSQL_KEY_BYTES - fixed) // (4 * max(len(strings), 1)) - 1
    return {c.name: share for c in strings if (c.kind.length or 0) > share} or None


def _fit_mysql_row(table: str, columns: dict[str, _Column], keyed: set[str]) -> None:
    """Declared VARCHARs of a MariaDB row must total < 64 KiB; move the widest non-key ones
    to LONGTEXT (values are unchanged, only the column type differs)."""
    while sum(_mysql_bytes(c) for c in columns.values()) > _MYSQL_ROW_BYTES:
        candidates = [
            c
            for c in columns.values()
            if c.name not in keyed and c.kind.name == "string" and c.kind.length
        ]
        if not candidates:
            return
        widest = max(candidates, key=lambda c: c.kind.length or 0)
        log.info(
            "%s.%s: VARCHAR(%s) -> LONGTEXT (row size)", table, widest.name, widest.kind.length
        )
        widest.kind = _Kind("string")


# --- load ------------------------------------------------------------------------------------


def _copy_rows(src: Connection, dst: Connection, plan: _Plan) -> None:
    cols = ", ".join(_quote(c) for c in plan.source_columns)
    result = src.exec_driver_sql(f"SELECT {cols} FROM {_quote(plan.table.name)}")
    insert = plan.table.insert()
    keys = [c.key for c in plan.table.columns]
    while chunk := result.fetchmany(CHUNK_ROWS):
        rows = [
            {
                key: value if convert is None else convert(value)
                for key, value, convert in zip(keys, row, plan.converters, strict=True)
            }
            for row in chunk
        ]
        dst.execute(insert, rows)


def _reset_sequence(dst: Connection, table: sa.Table, column: str) -> None:
    # Explicit ids bypass the SERIAL sequence; move it past them so later INSERTs work.
    preparer = dst.dialect.identifier_preparer
    dst.execute(
        sa.text(
            f"SELECT setval(pg_get_serial_sequence(:table, :column), "
            f"COALESCE(MAX({preparer.quote(column)}), 0) + 1, false) "
            f"FROM {preparer.format_table(table)}"
        ),
        {"table": preparer.format_table(table), "column": column},
    )


def _create_index(target: Engine, table: sa.Table, key: _Key) -> None:
    kwargs: dict[str, Any] = {}
    if key.where is not None:
        kwargs["postgresql_where"] = sa.text(key.where)
    if key.prefix:
        kwargs["mysql_length"] = key.prefix
    index = sa.Index(key.name, *[table.c[c] for c in key.columns], unique=key.unique, **kwargs)
    # One transaction each: on PostgreSQL a failed statement would abort the whole batch.
    try:
        with target.begin() as conn:
            index.create(conn)
    except sa.exc.DBAPIError as exc:
        reason = str(exc.orig).splitlines()[0]
        log.warning("skipping index %s on %s: %s", key.name, table.name, reason)
