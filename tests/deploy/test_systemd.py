"""The systemd unit: verified and rated by systemd-analyze, installed by following the README's
systemd section literally, and its ExecStart run the way systemd would run it (README, systemd)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
import yaml

from exporter.history import api_audits
from tests.conftest import API_KEY, ROOT
from tests.deploy.readme import commands, section
from tests.deploy.sandbox import Confined
from tests.servers import _require

UNIT = ROOT / "deploy" / "systemd" / "usage-exporter.service"
UNIT_NAME = UNIT.name
README_COMMANDS = commands("systemd")
CHECKOUT_INSIDE = "/src/usage-exporter"
DATABASE_INSIDE = "/srv/nextcloud-data"  # where the service sees the stand-in database
DYNAMIC_USER = "61191:61191"  # systemd picks one in 61184-65519 for DynamicUser
# What `prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN)` does is what MemoryDenyWriteExecute=yes
# asks of the kernel (its seccomp filter enforces the same rule); it is kept across exec.
MDWE = ("import ctypes, os, sys; "
        "assert ctypes.CDLL(None, use_errno=True).prctl(65, 1, 0, 0, 0) == 0, 'PR_SET_MDWE'; "
        "os.execv(sys.argv[1], sys.argv[1:])")


def read_unit(path: Path) -> dict[str, list[str]]:
    """Each `[Section]Key` of a unit file with all its values, in order (keys may repeat)."""
    values: dict[str, list[str]] = {}
    current = ""
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        values.setdefault(f"{current}.{key}", []).append(value)
    return values


def systemd_analyze() -> str:
    return _require(shutil.which("systemd-analyze"), "systemd")


def test_the_unit_is_hardened():
    unit = read_unit(UNIT)
    for key, value in {"DynamicUser": "yes", "ProtectSystem": "strict",
                       "NoNewPrivileges": "yes", "StateDirectory": "usage-exporter",
                       "PrivateTmp": "yes", "ProtectHome": "yes",
                       "MemoryDenyWriteExecute": "yes", "CapabilityBoundingSet": ""}.items():
        assert unit[f"Service.{key}"] == [value], key
    # --threshold counts tenths: the command fails above an exposure of 2.0
    result = subprocess.run([systemd_analyze(), "security", "--offline=true", "--threshold=20",
                             str(UNIT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    exposure = float(re.search(r"Overall exposure level .*: ([\d.]+)", result.stdout).group(1))
    assert exposure <= 2.0, result.stdout


@pytest.fixture
def installed(tmp_path, nextcloud_data) -> Iterator[dict[str, Path]]:
    """The README's install commands, run as root in this checkout, with the directories they fill
    made scratch ones; the `systemctl` lines need a running systemd and are left to the caller."""
    dirs = {name: tmp_path / name for name in ("opt", "etc", "units")}
    for directory in dirs.values():
        directory.mkdir()
    # "as root in this checkout": a copy of it, with the reader's config.yaml beside the code
    checkout = tmp_path / "checkout"
    shutil.copytree(ROOT, checkout, ignore=shutil.ignore_patterns(
        ".git", "node_modules", "build", "*.egg-info", "__pycache__", "artifacts"))
    (readme_config,) = re.findall(r"^```yaml\n(.*?)^```", section("systemd"), re.M | re.S)
    document = yaml.safe_load(readme_config)
    # The README's PostgreSQL stands for the Nextcloud fixture here.
    document["database"]["url"] = f"sqlite:///{DATABASE_INSIDE}/owncloud.db"
    (checkout / "config.yaml").write_text(yaml.safe_dump(document))
    scratch = tmp_path / "tmp"  # the installer's /tmp: pip builds there
    scratch.mkdir()
    installer = Confined(
        binds={"/tmp": (scratch, True), CHECKOUT_INSIDE: (checkout, True),
               "/opt/usage-exporter": (dirs["opt"], True),
               "/etc/usage-exporter": (dirs["etc"], True),
               "/etc/systemd/system": (dirs["units"], True)},
        network=True, chdir=CHECKOUT_INSIDE,
        env={"PATH": os.environ["PATH"], "HOME": "/tmp",
             "PIP_DISABLE_PIP_VERSION_CHECK": "1", "USAGE_EXPORTER_API_KEY": API_KEY})
    steps = [c for c in README_COMMANDS if not c.startswith(("systemctl", "curl"))]
    assert len(steps) < len(README_COMMANDS) - 2, "the README starts it with systemctl"
    for step in steps:
        result = installer.run(["/bin/sh", "-ec", step], timeout=300)
        assert result.returncode == 0, f"{step}\n{result.stdout}{result.stderr}"
        if step.startswith("systemd-analyze verify"):
            assert not result.stdout + result.stderr, result.stdout + result.stderr
    yield {**dirs, "database": nextcloud_data}


def test_the_readme_installs_a_unit_that_verifies_and_serves(installed, tmp_path):
    unit = read_unit(installed["units"] / UNIT_NAME)
    assert unit == read_unit(UNIT)
    state = tmp_path / "state"
    credentials = tmp_path / "credentials"
    state.mkdir(mode=0o700)
    credentials.mkdir(mode=0o500)
    uid, gid = map(int, DYNAMIC_USER.split(":"))
    os.chown(state, uid, gid)
    for credential in unit["Service.LoadCredential"]:
        name, _, source = credential.partition(":")
        target = credentials / name
        shutil.copyfile(installed["etc"] / Path(source).relative_to("/etc/usage-exporter"),
                        target)
        os.chown(target, uid, gid)
    os.chown(credentials, uid, gid)
    state_dir = f"/var/lib/{unit['Service.StateDirectory'][0]}"
    credentials_dir = f"/run/credentials/{UNIT_NAME}"
    service = Confined(
        binds={"/opt/usage-exporter": (installed["opt"], False),
               "/etc/usage-exporter": (installed["etc"], False),
               state_dir: (state, True), credentials_dir: (credentials, False),
               DATABASE_INSIDE: (installed["database"], False)},
        tmpfs=("/tmp", "/home"), user=DYNAMIC_USER,
        chdir=unit["Service.WorkingDirectory"][0].replace("%S", "/var/lib"),
        env={"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin",
             "STATE_DIRECTORY": state_dir, "CREDENTIALS_DIRECTORY": credentials_dir})
    (exec_start,) = unit["Service.ExecStart"]
    with service.start(["python3", "-c", MDWE, *shlex.split(exec_start)]) as daemon:
        for command in README_COMMANDS:
            if command.startswith("curl"):
                daemon.wait_until(["sh", "-c", command])
        api = daemon.inside(["curl", "-sf", "-H", f"Authorization: Bearer {API_KEY}",
                             "http://127.0.0.1:10191/api/v1/stats"])
        assert api.returncode == 0, api.stderr
    history = state / "history.db"
    assert (history.stat().st_uid, history.stat().st_gid) == (uid, gid)
    with closing(sqlite3.connect(f"file:{history}?mode=ro", uri=True)) as store:
        assert store.execute(f"SELECT count(*) FROM {api_audits.name}").fetchone()[0] >= 1
