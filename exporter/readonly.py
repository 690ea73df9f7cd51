"""What keeps SQL written in a config from writing to the platform database.

A config's SQL (custom relations, custom metrics, query-exporter files) is the one way a user's
text reaches the platform database, so it is held to one read-only statement in three layers:

- the text: one SELECT (or WITH ... SELECT, VALUES) with no ';' but a trailing one, refused at
  config time with its YAML path. Without a ';' no second statement can follow (PostgreSQL's
  simple protocol runs several; a relation is also wrapped in a subquery, which a ';' and a ')'
  could break out of). The check reads no SQL grammar, so a ';' inside a string literal is
  refused too: CHR(59) / CHAR(59) gives the character itself;
- the session: every transaction on PostgreSQL and MySQL/MariaDB is started read-only by
  exporter.db, so a SELECT that turned the session's default off (set_config) gains nothing;
- SQLite: the file is opened with mode=ro, and an authorizer lets statements only read, so no
  ATTACH can reopen the file writable and no PRAGMA can change the connection.
"""

from __future__ import annotations

import re
import sqlite3

# Leading comments and whitespace, then the statement's first word.
_FIRST_WORD = re.compile(r"(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/)*\(*\s*(\w+)", re.S)
READING_STATEMENTS = frozenset({"select", "with", "values"})


def statement_problem(sql: str) -> str | None:
    """Why `sql` is not one reading statement, or None when it is."""
    body = sql.strip().rstrip(";").rstrip()
    if ";" in body:
        return ("must be one statement: ';' may only end it (write CHR(59), or CHAR(59) on "
                "MySQL, for the character itself)")
    if "/*!" in body:
        return "must not contain MySQL executable comments (/*! ... */)"
    first = _FIRST_WORD.match(body)
    if first is None or first.group(1).lower() not in READING_STATEMENTS:
        return "must be a SELECT (or WITH ... SELECT) statement: the exporter only reads"
    return None


_READING_ACTIONS = frozenset({sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ,
                              sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE,
                              sqlite3.SQLITE_TRANSACTION})


def sqlite_authorizer(action: int, _arg1: str | None, _arg2: str | None, _database: str | None,
                      _trigger: str | None) -> int:
    """Allow what only reads (SELECT, reading columns, functions, recursive CTEs, the
    connection's own rollback); deny the rest: writes, DDL, ATTACH, PRAGMA."""
    return sqlite3.SQLITE_OK if action in _READING_ACTIONS else sqlite3.SQLITE_DENY
