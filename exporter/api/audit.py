"""The API audit log: each authorized request is recorded in the history store with the key's
name (never its secret), the route, and its query parameters less anything that looks like a
credential; GET /api/v1/audits reads it back in the shape of ODK Central's audit log.

ODK mapping: `actorId` is the key's name (ODK: an integer actor id), `action` the route path
(ODK: a verb such as user.create), `acteeId` null (there are no per-object permissions),
`details` the query parameters, `loggedAt` ISO 8601 UTC with milliseconds.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.exc import SQLAlchemyError

from exporter.config import ApiKey
from exporter.db import describe_error
from exporter.history import AuditRow, HistoryError, HistoryStore
from exporter.http import HttpError, Request

DATE_ONLY = re.compile(r"(\d{4}-\d{2}-\d{2})(Z|[+-]\d{2}(?::?\d{2})?)?")

log = structlog.get_logger()


def iso_ms(moment: datetime) -> str:
    """The stored form: fixed width, so text order is time order."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def bound(value: str, *, end: bool) -> str:
    """An ODK-style ISO 8601 bound (`2000-01-01z`, `2000-01-01+08`, `2000-12-31T23:59:59.999Z`)
    in the stored form. A date alone is the start of that day, or for `end` its last
    millisecond; without an offset, UTC."""
    text = value.strip().upper()
    date_only = DATE_ONLY.fullmatch(text)
    try:
        if date_only:
            day, offset = date_only.groups()
            moment = datetime.fromisoformat(f"{day}T00:00{offset or 'Z'}")
            if end:
                moment += timedelta(days=1, milliseconds=-1)
        else:
            moment = datetime.fromisoformat(text)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return iso_ms(moment)
    except (ValueError, OverflowError):
        raise HttpError(400.9, "Parameters start and end must be ISO 8601 timestamps or dates, "
                        "e.g. 2026-11-23T10:00:00Z or 2026-11-23.") from None


def entry(row: AuditRow) -> dict[str, Any]:
    return {"actorId": row.key_name, "action": row.action, "acteeId": None,
            "details": json.loads(row.details), "loggedAt": row.logged_at}


class AuditLog:
    """The Context.audit hook, given the parameters Context.authorize already redacted. A
    request that cannot be recorded is refused (503), so no authorized use goes unrecorded."""

    def __init__(self, store: Callable[[], HistoryStore],
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    def __call__(self, key: ApiKey, request: Request, parameters: dict[str, Any]) -> None:
        row = AuditRow(iso_ms(datetime.fromtimestamp(self.clock(), UTC)), key.name[:128],
                       request.path[:256], json.dumps(parameters))
        try:
            self.store().record_audit(row)
        except (HistoryError, SQLAlchemyError) as error:
            log.error("audit_failed", key=key.name, route=request.path,
                      error=describe_error(error))
            raise HttpError(503.2, "The request cannot be recorded in the audit log; try again "
                            "later.") from None

    def entries(self, *, action: str | None, start: str | None, end: str | None, limit: int,
                offset: int) -> list[dict[str, Any]]:
        try:
            rows = self.store().audits(action=action, start=start, end=end, limit=limit,
                                       offset=offset)
        except (HistoryError, SQLAlchemyError) as error:
            raise HttpError(503.1, f"The history store is unavailable: {describe_error(error)}") \
                from None
        return [entry(row) for row in rows]
