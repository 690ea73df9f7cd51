"""The container image, run as its Dockerfile says, following the README's Docker section.

No container engine can build it here: podman installs from Debian, but `podman build` stops at
FROM, since no container registry can be reached (its host name does not even resolve). So the
test builds what the image is from the Dockerfile itself: its user-creating RUN runs against a
copy of /etc and the volume, its COPY of the config lands in that /etc, and its ENTRYPOINT + CMD
run as its USER, in its WORKDIR, with its ENV, over a read-only root with only its VOLUME
writable, in a network namespace of its own, the way `docker run` with the README's options
would. The machine's install of this checkout stands in for the image's
`pip install` (the one RUN not replayed).
"""

from __future__ import annotations

import json
import shlex
import shutil
import sqlite3
import subprocess
from contextlib import closing
from pathlib import Path

import pytest
import yaml
from sqlalchemy.engine import make_url

from exporter.config import HistoryConfig, duration
from exporter.history import api_audits
from tests.conftest import API_KEY, NEXTCLOUD, ROOT, read_json
from tests.deploy.dockerfile import Image, read_dockerfile
from tests.deploy.readme import commands
from tests.deploy.sandbox import INTERPRETER_BIN, SYSTEM_PATH, Confined

DOCKERFILE = ROOT / "Dockerfile"
IMAGE = read_dockerfile(DOCKERFILE)
CONFIG_IN_IMAGE = "/etc/usage-exporter/config.yaml"
# The README's host path for the Nextcloud data directory stands for the fixture's copy.
README_COMMANDS = commands("Docker")


def docker_run_options(command: str) -> tuple[dict[str, str], list[tuple[str, str, bool]], str]:
    """`docker run`'s -e, -v and image name, as docker reads them."""
    words = shlex.split(command)
    assert words[:2] == ["docker", "run"], command
    env, volumes, positional = {}, [], []
    iterator = iter(words[2:])
    for word in iterator:
        if word in ("-e", "--env"):
            name, _, value = next(iterator).partition("=")
            env[name] = value if _ else ENVIRONMENT[name]
        elif word in ("-v", "--volume"):
            source, destination, *mode = next(iterator).split(":")
            volumes.append((source, destination, mode != ["ro"]))
        elif word in ("-p", "--publish", "--name"):
            next(iterator)
        elif word in ("-d", "--detach", "--rm"):
            continue
        else:
            positional.append(word)
    (image,) = positional
    return env, volumes, image


# What the reader's shell holds when they follow the README (the key they chose).
ENVIRONMENT = {"USAGE_EXPORTER_API_KEY": API_KEY}


def test_the_readme_builds_the_image_it_runs():
    build = [c for c in README_COMMANDS if c.startswith("docker build")]
    run = [c for c in README_COMMANDS if c.startswith("docker run")]
    assert len(build) == 1 and len(run) == 1
    assert shlex.split(build[0])[-1] == "."  # this directory's Dockerfile
    tag = shlex.split(build[0])[shlex.split(build[0]).index("-t") + 1]
    assert docker_run_options(run[0])[2] == tag


def test_the_dockerfile_passes_hadolint_without_exceptions():
    assert "hadolint" not in DOCKERFILE.read_text()
    result = subprocess.run(["hadolint", str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_base_image_is_pinned_by_digest():
    name, _, digest = IMAGE.base.partition("@sha256:")
    assert len(digest) == 64 and int(digest, 16) >= 0, IMAGE.base
    assert ":" in name and not name.endswith(":latest"), name


def test_the_image_runs_as_a_numeric_non_root_user_with_its_history_on_a_volume():
    uid, _, gid = IMAGE.user.partition(":")
    assert uid.isdigit() and int(uid) != 0 and gid.isdigit()  # runAsNonRoot can verify it
    assert IMAGE.volumes == ["/var/lib/usage-exporter"]
    assert IMAGE.workdir == "/var/lib/usage-exporter"
    assert IMAGE.exposed == ["10191"]


def test_the_healthcheck_gives_the_first_collection_time():
    seconds = {name: duration(value) for name, value in IMAGE.healthcheck_options.items()
               if name != "retries"}
    assert seconds["timeout"] < seconds["interval"] <= seconds["start-period"]


@pytest.fixture
def image_root(tmp_path) -> Path:
    """The image's /etc and fresh volume after its set-up RUN steps, as root, like a build."""
    etc, volume = tmp_path / "etc", tmp_path / "volume"
    shutil.copytree("/etc", etc, symlinks=True)
    volume.mkdir()
    (etc / "usage-exporter").mkdir()
    shutil.copyfile(ROOT / IMAGE.copied_to(CONFIG_IN_IMAGE), etc / "usage-exporter" / "config.yaml")
    build = Confined(binds={"/etc": (etc, True), IMAGE.volumes[0]: (volume, True)})
    for step in IMAGE.runs:
        if "pip install" in step:
            continue
        result = build.run(["/bin/sh", "-c", step])
        assert result.returncode == 0, f"RUN {step}\n{result.stderr}"
    return tmp_path


def image_sandbox(image: Image, root: Path, env: dict[str, str],
                  volumes: list[tuple[str, str, bool]], host_paths: dict[str, Path]) -> Confined:
    binds = {"/etc": (root / "etc", False)}
    for source, destination, writable in volumes:
        # a name is a docker volume: created from the image's directory, which the build filled
        outside = root / "volume" if "/" not in source else host_paths[source]
        binds[destination] = (outside, writable)
    return Confined(
        binds=binds, chdir=image.workdir, user=image.user,
        env={"PATH": f"{INTERPRETER_BIN}:{SYSTEM_PATH}", "LANG": "C.UTF-8",
             "PYTHONPATH": str(ROOT), **image.env, **env})


def with_own_config(root: Path, nextcloud_data: Path, config: dict) -> Confined:
    """The image with the Nextcloud data, its history volume, and `config` mounted over the
    image's own config file."""
    own = root / "config.yaml"
    own.write_text(yaml.safe_dump(config))
    own.chmod(0o644)
    volumes = [("/nextcloud", "/nextcloud-data", False), ("history", IMAGE.volumes[0], True),
               (str(own), CONFIG_IN_IMAGE, False)]
    return image_sandbox(IMAGE, root, {}, volumes, {"/nextcloud": nextcloud_data, str(own): own})


def test_the_readme_docker_section_serves_on_every_interface_and_keeps_history_on_the_volume(
        image_root, nextcloud_data):
    (run,) = [c for c in README_COMMANDS if c.startswith("docker run")]
    env, volumes, _ = docker_run_options(run)
    host_paths = {source: nextcloud_data for source, _, _ in volumes if "/" in source}
    assert host_paths, "the README mounts the platform's data directory"
    volume = image_root / "volume"
    owner = IMAGE.user.split(":")
    assert [str(volume.stat().st_uid), str(volume.stat().st_gid)] == owner

    sandbox = image_sandbox(IMAGE, image_root, env, volumes, host_paths)
    with sandbox.start(IMAGE.command) as container:
        container.wait_until(IMAGE.healthcheck, run=container.exec)  # docker's "healthy"
        # Every interface, IPv6 and IPv4 on one socket: reachable through -p either way.
        assert f"[::]:{IMAGE.exposed[0]}" in container.listeners()
        for host in ("127.0.0.1", "[::1]"):
            assert container.inside(["curl", "-sf", f"http://{host}:{IMAGE.exposed[0]}/-/healthy"]
                                    ).returncode == 0, host
        for command in README_COMMANDS:
            if command.startswith("curl"):
                result = container.inside(["sh", "-c", command], env=ENVIRONMENT)
                assert result.returncode == 0, f"{command}\n{result.stdout}{result.stderr}"
                if "/api/v1/snapshot" in command:
                    snapshot = result.stdout
        # The API call was audited in the history store, on the volume, owned by the image's user.
        history = volume / "history.db"
        assert [str(history.stat().st_uid), str(history.stat().st_gid)] == owner
        with closing(sqlite3.connect(f"file:{history}?mode=ro", uri=True)) as store:
            audited = store.execute(f"SELECT action FROM {api_audits.name}").fetchall()
            assert audited, "the API call left no audit row"
    users = read_json(NEXTCLOUD / "occ_user_list_info.json")
    assert sum(json.loads(snapshot)["metrics"]["usage_users"].values()) == len(users)
    # Nothing but the volume was written: the root was read-only, so the only new files are there.
    assert {p.name for p in volume.iterdir()} <= {"history.db", "history.db-wal", "history.db-shm",
                                                   "history.db-journal"}


def test_a_config_mounted_over_the_images_keeps_the_default_history_on_the_volume(
        image_root, nextcloud_data):
    """README: a config of one's own, mounted over the image's, needs only to listen on every
    interface; the default history file is relative, and the working directory is the volume."""
    sandbox = with_own_config(image_root, nextcloud_data, {
        "database": {"url": "sqlite:////nextcloud-data/owncloud.db", "platform": "nextcloud"},
        "server": {"listen": f":{IMAGE.exposed[0]}"},
        "api": {"keys": [{"name": "reports", "secret": API_KEY}]}})
    with sandbox.start(IMAGE.command) as container:
        container.wait_until(IMAGE.healthcheck, run=container.exec)
        result = container.inside(["curl", "-sf", "-H", f"Authorization: Bearer {API_KEY}",
                                   f"http://127.0.0.1:{IMAGE.exposed[0]}/api/v1/stats"])
        assert result.returncode == 0, result.stderr
    default = make_url(HistoryConfig.url).database
    assert not Path(default).is_absolute()
    assert (image_root / "volume" / default).stat().st_uid == int(IMAGE.user.split(":")[0])


def test_the_healthcheck_follows_the_configured_port_and_reports_liveness(
        image_root, nextcloud_data):
    """A config mounted over the image's listens on another port and has a custom query that
    never finishes (an endless count, under a long timeout), so /-/ready keeps answering 503:
    the image's health check passes, as the daemon serves (alive), on that port.
    (tests/test_cli.py: it fails where nothing answers.)"""
    port = int(IMAGE.exposed[0]) + 1
    sandbox = with_own_config(image_root, nextcloud_data, {
        "database": {"url": "sqlite:////nextcloud-data/owncloud.db", "platform": "nextcloud"},
        "server": {"listen": f":{port}"},
        "custom_metrics": [{
            "name": "endless", "interval": "1h", "timeout": "30m",
            "sql": "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) "
                   "SELECT count(*) AS endless_count FROM n",
            "metrics": [{"name": "endless_count", "help": "Never counted."}]}]})
    with sandbox.start(IMAGE.command) as container:
        container.wait_until(IMAGE.healthcheck, run=container.exec)
        assert f"[::]:{port}" in container.listeners()
        ready = container.inside(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                                  f"http://127.0.0.1:{port}/-/ready"])
        assert ready.stdout == "503"  # not ready: the query is still counting
