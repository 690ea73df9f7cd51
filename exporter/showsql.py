"""show-sql: the SQL behind each metric, as the exporter sends it to the configured database.

The statements are captured while a real refresh runs (SQLAlchemy's before_execute event), then
compiled for the database's dialect with their values inlined, the profile's relations appearing
as the subqueries they are. What is printed is therefore what runs, not a second description of
it that could drift. The refresh is read-only like every refresh, and writes no history.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import CompileError
from sqlalchemy.sql import ClauseElement

from collectors.base import CollectorResult
from exporter.runner import Runner


@dataclass
class CollectorSql:
    collector: str
    metrics: tuple[str, ...] = ()
    statements: list[str] = field(default_factory=list)
    error: str | None = None  # the run failed: the statements are those sent before it did


def compiled(statement: ClauseElement, dialect: Any) -> str:
    """The statement in the dialect's SQL with its values inlined; where a value has no literal
    form in that dialect, the placeholders stay and the values follow as a comment."""
    try:
        return str(statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
    except (CompileError, NotImplementedError):
        plain = statement.compile(dialect=dialect)
        return f"{plain}\n-- parameters: {plain.params!r}"


def metric_names(result: CollectorResult | None) -> tuple[str, ...]:
    return tuple(metric.name for metric in result.metrics) if result is not None else ()


def collector_sql(runner: Runner) -> Iterator[CollectorSql]:
    """Run each applicable collector once and yield the statements it sent, in order."""
    dialect = runner.database.engine.dialect
    current: list[str] = []

    def capture(_conn: Any, statement: ClauseElement, *_args: Any) -> None:
        current.append(compiled(statement, dialect))

    event.listen(runner.database.engine, "before_execute", capture)
    try:
        for name in runner.applicable():
            current.clear()
            status = runner.run(name).collectors[name]
            yield CollectorSql(name, metric_names(status.result), list(current),
                               status.last_error if status.state == "failed" else None)
    finally:
        event.remove(runner.database.engine, "before_execute", capture)


def render(entry: CollectorSql) -> str:
    lines = [f"-- collector {entry.collector}: {', '.join(entry.metrics) or 'no metrics'}"]
    if entry.error:
        lines.append(f"-- the run failed: {entry.error}")
    for number, statement in enumerate(entry.statements, 1):
        lines += [f"-- statement {number}", f"{statement.strip()};"]
    return "\n".join(lines) + "\n"
