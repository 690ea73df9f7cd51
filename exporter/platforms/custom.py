"""Platform custom: each canonical relation is a SELECT written in the config, in the dialect of
the database it runs on (docs/custom-sql.md has worked recipes for Coder, ODK Central, OpenL2M).

The SELECT becomes a subquery whose columns carry the canonical labels, so collectors read it like
any profile's relation. The runner's preflight reads every needed relation once at start-up and
names any canonical column a SELECT lacks.
"""

from __future__ import annotations

from sqlalchemy import Connection, TextClause, TextualSelect, column, text

from exporter.platforms.base import Profile
from exporter.relations import RELATIONS


class CustomProfile(Profile):
    name = "custom"

    def provides(self) -> frozenset[str]:
        """Exactly the relations the config gives SQL for; collectors needing others are not
        applicable."""
        return frozenset(self.database.relations)

    def relation(self, name: str, conn: Connection) -> TextualSelect:
        return verbatim(self.database.relations[name]).columns(
            *(column(label) for label in RELATIONS[name]))


def verbatim(sql: str) -> TextClause:
    """SQL sent exactly as written: text() reads ':word' as a bind parameter, even inside a
    string literal, so every colon is escaped (casts like ::text too)."""
    return text(sql.replace(":", "\\:"))
