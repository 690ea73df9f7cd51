"""ownCloud 10: numbers as the ownCloud metrics app defines them.

Sources: docs/platforms/owncloud.md ("Tables read", "The numbers", "Traps").
"""

from __future__ import annotations

import math
import re
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    Integer,
    Select,
    String,
    TableClause,
    case,
    cast,
    column,
    func,
    literal,
    null,
    select,
    table,
)

from exporter.platforms.base import Profile, never_expires

FOLDER_MIMETYPE = "httpd/unix-directory"
# IUserBackend::getBackendName() of the backends ownCloud registers; other classes keep their name.
BACKEND_NAMES = {"OC\\User\\Database": "Database", "OCA\\User_LDAP\\User_Proxy": "LDAP"}
_SIZE_UNITS = {"b": 1, "k": 1024, "kb": 1024, "m": 1024**2, "mb": 1024**2, "g": 1024**3,
               "gb": 1024**3, "t": 1024**4, "tb": 1024**4, "p": 1024**5, "pb": 1024**5}


def quota_bytes(spec: str | None) -> int | None:
    """OC_Helper::computerFileSize: '5 GB' -> 5368709120 (1024-based); 'none' or junk -> None."""
    if spec is None:
        return None
    spec = spec.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", spec):
        return _php_round(float(spec))
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([a-z]+)", spec)
    if not match or match.group(2) not in _SIZE_UNITS:
        return None
    return _php_round(float(match.group(1)) * _SIZE_UNITS[match.group(2)])


def _php_round(value: float) -> int:
    """PHP's round(): halves away from zero (Python's round() goes to the even neighbour)."""
    return math.floor(value + 0.5)


def spec_to_bytes(spec: Any, specs: set[str | None]) -> Any:
    """A CASE mapping each quota spec found in the database to bytes (NULL = unlimited)."""
    whens = [(spec == s, literal(quota_bytes(s), BigInteger)) for s in sorted(filter(None, specs))
             if quota_bytes(s) is not None]
    return case(*whens, else_=null()) if whens else cast(null(), BigInteger)


class OwnCloudProfile(Profile):
    name = "owncloud"
    uses_table_prefix = True
    activity_is_last_login = True
    # oc_share.share_type -> canonical type. 2 (per-member rows of group shares) and 5 (unused)
    # are never counted; guests are type 0 shares to a guest account. 4 is a UI-only constant
    # that legacy rows still carry; the metrics app counts them per user as "guest" shares.
    share_types = {0: "user", 1: "group", 3: "link", 4: "email", 6: "federated",
                   7: "federated_group"}

    def t(self, name: str, *columns: str, **typed: Any) -> TableClause:
        return table(self.prefix + name, *(column(c) for c in columns),
                     *(column(c, type_) for c, type_ in typed.items()))

    # --- relations ---

    def users(self, conn: Connection) -> Select:
        accounts = self.t("accounts", "display_name", "state", "creation_time", "last_login",
                          user_id=String, backend=String)
        guests = self._guests()
        admins = self.t("group_user", "gid", uid=String)
        status = case((accounts.c.state == 3, "deleted"), (accounts.c.state == 2, "disabled"),
                      (guests.c.userid.is_not(None), "guest"), else_="enabled")
        backend = case(*((accounts.c.backend == backend_class, name)
                         for backend_class, name in BACKEND_NAMES.items()),
                       else_=accounts.c.backend)
        return (
            select(accounts.c.user_id.label("user_id"),
                   accounts.c.display_name.label("display_name"),
                   backend.label("backend"), status.label("status"),
                   case((admins.c.uid.is_(None), 0), else_=1).label("is_admin"),
                   func.nullif(accounts.c.creation_time, 0).label("created_at"),
                   func.nullif(accounts.c.last_login, 0).label("last_login"))
            .select_from(accounts)
            .outerjoin(guests, guests.c.userid == accounts.c.user_id)
            .outerjoin(admins, (admins.c.uid == accounts.c.user_id) & (admins.c.gid == "admin"))
        )

    def activity(self, conn: Connection) -> Select:
        users = self.users(conn).subquery("accounts")
        return (select(users.c.user_id, users.c.last_login.label("last_active"))
                .where(users.c.last_login.is_not(None)))

    def sessions(self, conn: Connection) -> Select:
        tokens = self.t("authtoken", "uid", "name", "last_activity", "type")
        return select(tokens.c.uid.label("user_id"), tokens.c.name.label("client"),
                      tokens.c.last_activity.label("last_activity"),
                      never_expires()).where(*self._live(tokens))

    def shares(self, conn: Connection) -> Select:
        share = self._share_table()
        whens = [(share.c.share_type == k, v) for k, v in self.share_types.items()]
        query = select(share.c.uid_owner.label("owner"))
        guests = self._guests()
        if guests is not None:
            whens.insert(0, ((share.c.share_type == 0) & guests.c.userid.is_not(None), "guest"))
            query = query.select_from(
                share.outerjoin(guests, guests.c.userid == share.c.share_with))
        return query.add_columns(
            case(*whens).label("type"),
            self._password_protected(share).label("password_protected"),
        ).where(share.c.share_type.in_(self.share_types))

    def home_storage(self, conn: Connection) -> Select:
        """The app's CombinedUserMetrics join: each user's home storage and its 'files' folder.
        listing_order is the home mount's id: the app has no ORDER BY, and SQLite hands its rows
        back in that order."""
        mounts = self.t("mounts", "id", "storage_id", "mount_point", user_id=String)
        storages = self.t("storages", "numeric_id", id=String)
        root = self._filecache().alias("files_root")
        counted = self._filecache().alias("counted")
        mimetypes = self.t("mimetypes", "id", "mimetype")
        folder_id = (select(mimetypes.c.id).where(mimetypes.c.mimetype == FOLDER_MIMETYPE)
                     .scalar_subquery())
        files = (select(counted.c.storage, func.count().label("files"))
                 .where(counted.c.path.like("files/%"), counted.c.mimetype != folder_id)
                 .group_by(counted.c.storage).subquery("file_counts"))
        return (
            select(mounts.c.user_id.label("user_id"), root.c.size.label("used_bytes"),
                   func.coalesce(files.c.files, 0).label("files"),
                   mounts.c.id.label("listing_order"))
            .select_from(mounts)
            .join(storages, storages.c.numeric_id == mounts.c.storage_id)
            .join(root, root.c.storage == storages.c.numeric_id)
            .outerjoin(files, files.c.storage == storages.c.numeric_id)
            .where(mounts.c.mount_point == literal("/") + mounts.c.user_id + literal("/"),
                   self._is_home_of(storages, mounts),
                   root.c.path == "files")
        )

    def quotas(self, conn: Connection) -> Select:
        source, user_id, raw_spec = self._quota_specs()
        default = self._default_quota(conn)
        spec = case((raw_spec.is_(None) | (raw_spec == "default"), literal(default)),
                    else_=raw_spec)
        specs = set(conn.execute(select(raw_spec).select_from(source).distinct()).scalars())
        return (select(user_id.label("user_id"),
                       spec_to_bytes(spec, specs | {default}).label("quota_bytes"))
                .select_from(source))

    def storages(self, conn: Connection) -> Select:
        storages = self.t("storages", "numeric_id", id=String)
        cache = self._filecache()
        entries = (select(cache.c.storage, func.count().label("entries"))
                   .group_by(cache.c.storage).subquery("entries"))
        kind = case((storages.c.id.like("home::%"), "home"),
                    (storages.c.id.like("local::%"), "local"), else_="other")
        return (select(kind.label("kind"), func.coalesce(entries.c.entries, 0).label("entries"))
                .select_from(storages)
                .outerjoin(entries, entries.c.storage == storages.c.numeric_id))

    def storage_roots(self, conn: Connection) -> Select:
        """The root folder of each user's home storage, once per mount of it by its owner (the
        metrics app's QuotaMetrics join): files, versions, trash and thumbnails, but no
        external, shared or federated storage."""
        cache = self._filecache()
        storages = self.t("storages", "numeric_id", id=String)
        mounts = self.t("mounts", "storage_id", user_id=String)
        return (select(cache.c.size.label("used_bytes"))
                .select_from(cache)
                .join(storages, storages.c.numeric_id == cache.c.storage)
                .join(mounts, mounts.c.storage_id == storages.c.numeric_id)
                .where(cache.c.parent == -1, self._is_home_of(storages, mounts)))

    def apps(self, conn: Connection) -> Select:
        """Apps with an installed_version in oc_appconfig; enabled unless "enabled" is "no" or
        missing ("yes", or the groups it is enabled for), as AppManager reads it."""
        config = self.t("appconfig", "appid", "configkey", "configvalue")

        def key(name: str) -> Any:
            return (select(config.c.appid, config.c.configvalue)
                    .where(config.c.configkey == name).subquery(name))

        installed, enabled = key("installed_version"), key("enabled")
        return (select(installed.c.appid.label("app_id"),
                       installed.c.configvalue.label("version"),
                       case((func.coalesce(enabled.c.configvalue, "no") == "no", 0), else_=1)
                       .label("enabled"))
                .outerjoin(enabled, enabled.c.appid == installed.c.appid))

    # --- shared pieces ---

    @staticmethod
    def _is_home_of(storages: TableClause, mounts: TableClause) -> Any:
        """The storage is the mount's user's home ('home::<uid>', 'object::user:<uid>'), matched
        with LIKE as the app does: a '_' or '%' in a uid matches like a wildcard."""
        return (storages.c.id.like(literal("%::") + mounts.c.user_id)
                | storages.c.id.like(literal("object::user:") + mounts.c.user_id))

    def _filecache(self) -> TableClause:
        return self.t("filecache", "storage", "parent", "mimetype", path=String,
                      size=BigInteger)

    def _share_table(self) -> TableClause:
        return self.t("share", "share_with", "uid_owner", "password", share_type=Integer)

    def _live(self, tokens: TableClause) -> tuple[Any, ...]:
        """Conditions for a token to count as a session; the metrics app counts every token."""
        return ()

    def _password_protected(self, share: TableClause) -> Any:
        # ownCloud keeps a link's password hash in share_with.
        return case((share.c.share_with.is_not(None), 1), else_=0)

    def _guests(self) -> Any:
        """Accounts made by the guests app: preference owncloud/isGuest = '1'."""
        prefs = self.t("preferences", "appid", "configkey", "configvalue", userid=String)
        return (select(prefs.c.userid)
                .where(prefs.c.appid == "owncloud", prefs.c.configkey == "isGuest",
                       prefs.c.configvalue == "1")
                .subquery("guests"))

    def _quota_specs(self) -> tuple[Any, Any, Any]:
        """(from clause, user id, quota spec as stored: '5 GB', 'none', 'default' or NULL)."""
        accounts = self.t("accounts", user_id=String, quota=String)
        return accounts, accounts.c.user_id, accounts.c.quota

    def _default_quota(self, conn: Connection) -> str:
        config = self.t("appconfig", "appid", "configkey", "configvalue")
        return conn.execute(select(config.c.configvalue).where(
            config.c.appid == "files", config.c.configkey == "default_quota")).scalar() or "none"
