"""Nextcloud: numbers as the serverinfo app and occ define them.

Nextcloud forked from ownCloud and keeps its file cache, storages, mounts and shares tables, so this
profile inherits those relations and replaces what moved: accounts live in oc_users plus
oc_preferences, and link passwords have their own column.
Sources: docs/platforms/nextcloud.md ("Tables read", "The numbers", "Traps").
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    Select,
    String,
    TableClause,
    case,
    cast,
    literal,
    select,
)

from exporter.platforms.owncloud import OwnCloudProfile


class NextcloudProfile(OwnCloudProfile):
    name = "nextcloud"
    # IShare constants; 2, 11 and 13 are per-recipient rows of group, room and deck shares.
    share_types = {0: "user", 1: "group", 3: "link", 4: "email", 6: "federated", 7: "team",
                   8: "guest", 9: "federated_group", 10: "room", 12: "deck"}

    def users(self, conn: Connection) -> Select:
        users = self.t("users", "displayname", uid=String)
        enabled = self._preference("core", "enabled")
        last_login = self._preference("login", "lastLogin")
        admins = self.t("group_user", "gid", uid=String)
        return (
            select(users.c.uid.label("user_id"),
                   users.c.displayname.label("display_name"),
                   literal("Database").label("backend"),
                   case((enabled.c.configvalue == "false", "disabled"), else_="enabled")
                   .label("status"),
                   case((admins.c.uid.is_(None), 0), else_=1).label("is_admin"),
                   literal(None, BigInteger).label("created_at"),
                   cast(last_login.c.configvalue, BigInteger).label("last_login"))
            .select_from(users)
            .outerjoin(enabled, enabled.c.userid == users.c.uid)
            .outerjoin(last_login, last_login.c.userid == users.c.uid)
            .outerjoin(admins, (admins.c.uid == users.c.uid) & (admins.c.gid == "admin"))
        )

    def _live(self, tokens: TableClause) -> tuple[Any, ...]:
        # Type 2 tokens mark a pending remote wipe, not a session.
        return (tokens.c.type != 2,)

    def incoming_federated_shares(self, conn: Connection) -> Select:
        external = self.t("share_external", "user")
        return select(external.c.user.label("user_id"))

    def _password_protected(self, share: TableClause) -> Any:
        return case((share.c.password.is_not(None), 1), else_=0)

    def _guests(self) -> None:
        # Nextcloud's guests app has its own user backend; shares to guests are type 8.
        return None

    def _quota_specs(self) -> tuple[Any, Any, Any]:
        users = self.t("users", uid=String)
        quota = self._preference("files", "quota")
        return (users.outerjoin(quota, quota.c.userid == users.c.uid), users.c.uid,
                quota.c.configvalue)

    def _preference(self, app: str, key: str) -> Any:
        prefs = self.t("preferences", "appid", "configkey", "configvalue", userid=String)
        return (select(prefs.c.userid, prefs.c.configvalue)
                .where(prefs.c.appid == app, prefs.c.configkey == key)
                .subquery(f"{app}_{key}".lower()))
