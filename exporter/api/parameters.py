"""Integer query parameters of the native API, declared once: the bounds and default a route
reads one with, and its description in the OpenAPI document, come from the same declaration."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from exporter.http import HttpError, Request


def query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    """An optional query parameter, as OpenAPI describes it."""
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema}


@dataclass(frozen=True)
class Integer:
    name: str
    description: str
    low: int
    high: int
    default: int | None = None  # None: absent stays absent

    def read(self, request: Request) -> int | None:
        """The value in `request`, the default when absent; 400.2 naming the parameter and its
        bounds when it is not an integer within them."""
        raw = request.param(self.name)
        if raw is None:
            return self.default
        try:
            value = int(raw)
        except ValueError:
            raise HttpError(400.2, f"Parameter {self.name} must be an integer.") from None
        if not self.low <= value <= self.high:
            raise HttpError(400.2, f"Parameter {self.name} must be between {self.low} and "
                            f"{self.high}.")
        return value

    def value(self, request: Request) -> int:
        """read() of a parameter that has a default, or that `request` carries."""
        value = self.read(request)
        assert value is not None, f"{self.name} is absent and has no default"
        return value

    @property
    def openapi(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "integer", "minimum": self.low, "maximum": self.high}
        if self.default is not None:
            schema["default"] = self.default
        return query(self.name, self.description, schema)


LIMIT = Integer("limit", "Rows per page (default 100).", 1, 1000, 100)
# Offsets beyond 2**62 are past any audit log and would overflow SQL's 64-bit OFFSET.
OFFSET = Integer("offset", "Entries to skip (default 0).", 0, 2**62, 0)
DAYS = Integer("days", "How many days back, today included (default 30).", 1, 3660, 30)
TZ_OFFSET = Integer("tz_offset", "Whole hours east of UTC, as Etc/GMT±N; not with tz.", -12, 14)
