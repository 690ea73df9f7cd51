"""The canonical relations: the seam between platform profiles and collectors.

A profile maps its platform's tables to these (each a SELECT whose columns carry exactly these
labels); a collector aggregates them and never names a platform table. Timestamps are Unix
seconds unless the column name says otherwise.
"""

RELATIONS: dict[str, tuple[str, ...]] = {
    # status: enabled, disabled, guest, deactivated, ... ; last_login NULL = never.
    "users": ("user_id", "display_name", "backend", "status", "is_admin", "created_at",
              "last_login"),
    # When each user was last active, by the platform's own notion (one or more rows a user).
    "activity": ("user_id", "last_active"),
    # Exact past activity: one row per user and UTC day (day = Unix seconds at 00:00 UTC).
    "daily_activity": ("user_id", "day"),
    # Sessions; client is a user agent or device name. A session is live until expires_at
    # (NULL = until it is deleted), measured by the exporter's clock, not the database's.
    "sessions": ("user_id", "client", "last_activity", "expires_at"),
    # type: user, group, guest, link, email, federated, federated_group, team, room, deck.
    "shares": ("owner", "type", "password_protected"),
    "incoming_federated_shares": ("user_id",),
    # used_bytes: the user's files (what quotas count). A profile may add listing_order: where
    # the platform's own per-user listing puts the user (users are then kept in that order).
    "home_storage": ("user_id", "used_bytes", "files"),
    # quota_bytes NULL = unlimited.
    "quotas": ("user_id", "quota_bytes"),
    # kind: home, local, other; entries: file cache rows of the storage.
    "storages": ("kind", "entries"),
    # The root folders of the storages counted as used (bytes of everything kept in them).
    "storage_roots": ("used_bytes",),
    # bytes NULL = upload pending; created_ms in milliseconds, as media APIs filter by it.
    "media": ("user_id", "display_name", "bytes", "created_ms"),
    # Exact past statuses: each change of a user's status and when it happened. A deletion is
    # status "deleted", and it outranks a change recorded at the same instant.
    "status_changes": ("user_id", "status", "changed_at"),
    # Things that happened, of a platform-named kind (change, command, api_call, submission...),
    # by a user (NULL = none) about a subject (a device, a form; NULL = none). at NULL = undated:
    # counted in the total only, so a row per admin or form makes the total count them all.
    "events": ("kind", "user_id", "subject", "at"),
    # Installed apps (plug-ins) and their versions; enabled 1 or 0.
    "apps": ("app_id", "version", "enabled"),
    # Counts the platform keeps or one query gives, by name (switches, VLANs, a counter's value).
    "totals": ("name", "value"),
    # How each account was registered: type native, guest or bridged (by an application service,
    # a bridge); created_at NULL = unknown.
    "registrations": ("type", "created_at"),
    # Every room the server knows of, one row each.
    "rooms": ("room_id",),
    # Every event of every room: position is its place in the order the server received events,
    # received_ms when it did (milliseconds).
    "event_stream": ("position", "received_ms"),
    # The message events among them; encrypted 1/0; local 1 if an account of this server sent it.
    "messages": ("position", "room_id", "encrypted", "local"),
    # One row per user, device and UTC day seen (day_ms: 00:00 UTC, milliseconds); client: the
    # device's app, android, ios, electron or web, NULL when unknown.
    "daily_visits": ("user_id", "day_ms", "client"),
}
