"""The config is validated whole: every problem is reported with its YAML path and the reason."""

from __future__ import annotations

import dataclasses
import textwrap

import pytest

from collectors import available
from exporter.config import ConfigError, duration, duration_label, load_config, parse_config

OPTIONS = {name: cls.options for name, cls in available().items()}
SECRET = "s3cret-s3cret-s3cret"


def parse(raw: dict):
    return parse_config(raw, collector_options=OPTIONS)


def problems(raw: dict) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(raw)
    return caught.value.problems


MINIMAL = {"database": {"url": "sqlite:////tmp/x.db", "platform": "nextcloud"}}


def test_the_smallest_config_gets_documented_defaults():
    config = parse(MINIMAL)
    assert (config.server.host, config.server.port) == ("127.0.0.1", 10191)
    assert config.database.table_prefix == "oc_"
    assert {c.name for c in config.enabled_collectors} == set(OPTIONS)
    assert config.collector("users").interval == 60
    assert config.api_keys == ()


def test_config_is_frozen():
    config = parse(MINIMAL)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.database = None  # type: ignore[misc]


def test_every_problem_is_reported_with_its_path():
    found = problems({
        "database": {"url": "oracle://x", "platform": "wordpress", "colour": "red"},
        "server": {"listen": "nowhere"},
        "collectors": {"users": {"interval": "soon", "windows": []}, "tickets": {}},
        "logging": {"level": "loud"},
        "extra": 1,
    })
    assert any(p.startswith("database.url: unsupported database 'oracle'") for p in found)
    assert any(p.startswith("database.platform: expected one of owncloud, nextcloud")
               for p in found)
    assert any(p.startswith("database.colour: unknown key") for p in found)
    assert any(p.startswith("server.listen: expected host:port") for p in found)
    assert any(p.startswith("collectors.users.interval: expected a duration") for p in found)
    assert any(p.startswith("collectors.users.windows: expected a non-empty list") for p in found)
    assert any(p.startswith("collectors.tickets: unknown collector") for p in found)
    assert any(p.startswith("logging.level: expected one of") for p in found)
    assert any(p.startswith("extra: unknown section") for p in found)


def test_required_keys_are_named():
    assert problems({"database": {}}) == ["database.url: is required",
                                          "database.platform: is required"]


def test_timeout_longer_than_interval_is_rejected():
    found = problems({**MINIMAL, "collectors": {"shares": {"interval": "10s", "timeout": "1m"}}})
    assert found == ["collectors.shares.timeout: must not exceed the interval"]


def test_environment_variables_are_substituted(monkeypatch):
    monkeypatch.setenv("NC_DB", "/srv/nc.db")
    monkeypatch.setenv("API_KEY", SECRET)
    config = parse({"database": {"url": "sqlite:///${NC_DB}", "platform": "nextcloud"},
                    "server": {"listen": "${LISTEN:-0.0.0.0:9999}"},
                    "api": {"keys": [{"name": "reports", "secret": "${API_KEY}"}]}})
    assert config.database.url == "sqlite:////srv/nc.db"
    assert (config.server.host, config.server.port) == ("0.0.0.0", 9999)
    assert config.api_keys[0].secret == SECRET


def test_a_missing_environment_variable_is_named(monkeypatch):
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    found = problems({**MINIMAL, "api": {"keys": [{"name": "k", "secret": "${NOT_SET_ANYWHERE}"}]}})
    assert "api.keys[0].secret: environment variable NOT_SET_ANYWHERE is not set" in found


def test_secrets_can_come_from_files_and_never_show_in_repr(tmp_path):
    (tmp_path / "key").write_text(SECRET + "\n")
    (tmp_path / "config.yaml").write_text(textwrap.dedent("""
        database: {url: "sqlite:////tmp/x.db", platform: owncloud}
        api:
          keys:
            - {name: cron, secret_file: key}
    """))
    config = load_config(tmp_path / "config.yaml", collector_options=OPTIONS)
    assert config.api_keys[0].secret == SECRET
    assert SECRET not in repr(config)


def test_secrets_of_spaces_or_with_characters_a_header_cannot_carry_are_refused():
    found = problems({**MINIMAL, "api": {"keys": [
        {"name": "spaces", "secret": " " * 20},
        {"name": "accented", "secret": "clé-secrète-0123456789"},
        {"name": "spaced", "secret": "two words 0123456789"}]}})
    assert found == [
        "api.keys[0]: a secret of only spaces is refused",
        "api.keys[1]: a secret may only hold visible ASCII characters (letters, digits, "
        "punctuation; no spaces, no accented letters)",
        "api.keys[2]: a secret may only hold visible ASCII characters (letters, digits, "
        "punctuation; no spaces, no accented letters)"]


@pytest.mark.parametrize(("database", "history"), [
    ("sqlite:///{dir}/nextcloud.db", "sqlite:///{dir}/nextcloud.db"),
    ("sqlite:///{dir}/nextcloud.db", "sqlite:///{dir}/./sub/../nextcloud.db"),
    ("sqlite:///{dir}/nextcloud.db", "sqlite:///{dir}/link.db"),
    ("postgresql+psycopg://exporter@db.example/nextcloud", "postgresql://writer:pw@DB.example:5432/nextcloud"),
    ("mysql+pymysql://exporter@localhost/nextcloud", "mariadb+pymysql://history@127.0.0.1:3306/nextcloud"),
], ids=["same file", "same file spelled otherwise", "a link to it", "same server and database",
        "mysql and mariadb on loopback"])
def test_a_history_store_in_the_platform_database_is_refused(tmp_path, database, history):
    (tmp_path / "nextcloud.db").write_bytes(b"")
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.db").symlink_to(tmp_path / "nextcloud.db")
    found = problems({"database": {"url": database.format(dir=tmp_path), "platform": "nextcloud"},
                      "history": {"url": history.format(dir=tmp_path)}})
    assert found == ["history.url: names the platform database (database.url): the history store "
                     "writes its tables, and the platform database is never written; give the "
                     "history its own SQLite file or database"]


@pytest.mark.parametrize(("database", "history"), [
    ("sqlite:////srv/nextcloud.db", "sqlite:////srv/history.db"),
    ("postgresql://exporter@db/nextcloud", "postgresql://exporter@db/usage_history"),
    ("postgresql://exporter@db/nextcloud", "postgresql://exporter@db:5433/nextcloud"),
    ("postgresql://exporter@db/nextcloud", "sqlite:///nextcloud"),
])
def test_a_history_store_beside_the_platform_database_is_accepted(database, history):
    config = parse({"database": {"url": database, "platform": "nextcloud"},
                    "history": {"url": history}})
    assert config.history.url == history


def test_short_or_ambiguous_secrets_are_refused():
    found = problems({**MINIMAL, "api": {"keys": [{"name": "a", "secret": "short"},
                                                  {"name": "b"}]}})
    assert found == ["api.keys[0]: a secret must be a string of at least 16 characters",
                     "api.keys[1]: give exactly one of secret or secret_file"]


def test_database_password_can_come_from_a_file(tmp_path):
    (tmp_path / "pw").write_text("p@ss:word\n")
    config = parse_config({"database": {"url": "postgresql+psycopg://exporter@db/nextcloud",
                                        "platform": "nextcloud", "password_file": "pw"}},
                          collector_options=OPTIONS, base_dir=tmp_path)
    assert config.database.sqlalchemy_url().password == "p@ss:word"


def test_malformed_yaml_names_the_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("database:\n  url: [unclosed\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, collector_options=OPTIONS)
    assert "not valid YAML at line" in caught.value.problems[0]


@pytest.mark.parametrize(("text", "seconds", "label"), [
    ("30s", 30, "30s"), ("5m", 300, "5m"), ("1h", 3600, "1h"), ("7d", 604800, "7d"),
    (90, 90, "90s"), ("2w", 1209600, "14d"), ("1.5h", 5400, "90m")])
def test_durations_parse_and_label_exactly(text, seconds, label):
    assert duration(text) == seconds
    assert duration_label(duration(text)) == label


@pytest.mark.parametrize("bad", ["", "-5m", "0", "5 parsecs", True])
def test_bad_durations_are_refused(bad):
    with pytest.raises(ValueError):
        duration(bad)


def test_the_owncloud_metrics_app_shape_is_1_4_0_unless_legacy_is_asked_for():
    assert parse(MINIMAL).database.metrics_app_version == "1.4.0"
    legacy = {"database": {**MINIMAL["database"], "metrics_app_version": "legacy"}}
    assert parse(legacy).database.metrics_app_version == "legacy"
    found = problems({"database": {**MINIMAL["database"], "metrics_app_version": 1.3}})
    assert found == ["database.metrics_app_version: expected one of 1.4.0, legacy, got 1.3"]


def test_a_url_whose_driver_is_not_installed_names_the_one_to_use():
    # As mysql:// does where MySQLdb is missing (the extras install PyMySQL): not a traceback.
    found = problems({"database": {"url": "mysql+nosuchdriver://u:p@127.0.0.1/nextcloud",
                                   "platform": "nextcloud"}})
    assert len(found) == 1
    assert found[0].startswith("database.url: no driver for mysql+nosuchdriver:// here")
    assert "use mysql+pymysql://" in found[0]
