"""A process confined the way a container or a hardened systemd unit confines the daemon: the
machine's root read-only, its own network namespace (nothing else can take its port, and a listener
bound to loopback only is told apart from one on every interface), only the given paths writable,
and a non-root user. Built on bubblewrap (Debian package bubblewrap) and util-linux's setpriv."""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from tests.conftest import ROOT
from tests.servers import _require

# The interpreter and this checkout take the place of the image's /usr/local install.
INTERPRETER_BIN = Path(sys.executable).parent
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def bwrap() -> str:
    return _require(shutil.which("bwrap"), "bubblewrap")


def _reachable(*paths: Path) -> list[str]:
    """bwrap arguments that let any user reach `paths` when a parent is closed to others (0700,
    like /root or a mktemp -d): that parent becomes an empty tmpfs holding only the path's
    branch."""
    branches: dict[Path, set[Path]] = {}
    for path in paths:
        for child in reversed([path, *path.parents][:-1]):
            if not child.parent.stat().st_mode & stat.S_IXOTH:
                branches.setdefault(child.parent, set()).add(child)
                break
    args = []
    for closed, children in branches.items():
        args += ["--tmpfs", str(closed)]
        for child in sorted(children):
            args += ["--ro-bind", str(child), str(child)]
    return args


def _root(mount_points: list[str]) -> list[str]:
    """The machine's root, read-only, where `mount_points` can be made: a directory missing one
    becomes a read-only tmpfs that holds the same entries (bound) plus the mount point."""
    rebuilt: list[Path] = []
    for point in map(Path, mount_points):
        for child in reversed([point, *point.parents][:-1]):
            if not child.parent.is_dir() or child.parent in rebuilt:
                continue
            if not os.path.lexists(child):
                rebuilt.append(child.parent)
    args = [] if Path("/") in rebuilt else ["--ro-bind", "/", "/"]
    for directory in rebuilt:
        if directory != Path("/"):
            args += ["--tmpfs", str(directory)]
        for entry in sorted(directory.iterdir()):
            if entry.is_symlink():
                args += ["--symlink", os.readlink(entry), str(entry)]
            elif entry.name not in ("proc", "dev") or directory != Path("/"):
                args += ["--ro-bind", str(entry), str(entry)]
    return args + [arg for directory in rebuilt for arg in ("--remount-ro", str(directory))]


@dataclass
class Confined:
    """A command to run confined: `binds` maps a path inside to (a path outside, writable)."""

    binds: Mapping[str, tuple[Path, bool]] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    chdir: str = "/"
    user: str | None = None  # "uid:gid"; None stays root (for set-up steps)
    tmpfs: tuple[str, ...] = ()  # empty writable directories, such as a private /tmp
    network: bool = False  # share the machine's network (to install from a package index)

    def argv(self, command: Sequence[str], info_fd: int | None = None) -> list[str]:
        root = _root([*self.binds, *self.tmpfs])
        remounts = root[root.index("--remount-ro"):] if "--remount-ro" in root else []
        args = [bwrap(), "--die-with-parent", "--unshare-pid",
                *([] if self.network else ["--unshare-net"]),
                *root[:len(root) - len(remounts)],
                *(_reachable(INTERPRETER_BIN, ROOT) if self.user else []),
                "--dev", "/dev", "--proc", "/proc"]
        for directory in self.tmpfs:
            args += ["--tmpfs", directory]
        for inside, (outside, writable) in self.binds.items():
            for missing in reversed(Path(inside).parents):  # bwrap would make them 0700
                if not missing.exists():
                    args += ["--perms", "0755", "--dir", str(missing)]
            args += ["--bind" if writable else "--ro-bind", str(outside), inside]
        args += remounts
        args += ["--chdir", self.chdir, "--clearenv"]
        for name, value in self.env.items():
            args += ["--setenv", name, value]
        if info_fd is not None:
            args += ["--info-fd", str(info_fd)]
        args.append("--")
        if self.user is not None:
            uid, _, gid = self.user.partition(":")
            args += ["setpriv", f"--reuid={uid}", f"--regid={gid or uid}", "--clear-groups",
                     "--no-new-privs"]
        return args + list(command)

    def run(self, command: Sequence[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(command), capture_output=True, text=True, timeout=timeout)

    @contextmanager
    def start(self, command: Sequence[str]) -> Iterator[Running]:
        # Its output goes to a file, not to a pipe that nobody reads and that could fill up.
        with tempfile.TemporaryFile("w+") as output:
            read, write = os.pipe()
            process = subprocess.Popen(self.argv(command, info_fd=write), pass_fds=(write,),
                                       stdout=output, stderr=subprocess.STDOUT, text=True)
            os.close(write)
            with os.fdopen(read) as info:  # bwrap closes it once it has written the child's pid
                pid = json.loads(info.read())["child-pid"]
            try:
                yield Running(process, pid, output, self)
            finally:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


@dataclass
class Running:
    process: subprocess.Popen[str]
    pid: int  # the sandbox's first process, as the host sees it
    output: IO[str]  # what the command printed
    confined: Confined  # how it runs: its user, environment and working directory

    def inside(self, command: Sequence[str], env: Mapping[str, str] | None = None,
               ) -> subprocess.CompletedProcess[str]:
        """Run `command` in the sandbox's network namespace (as root, like `docker exec`)."""
        return subprocess.run(["nsenter", f"--target={self.pid}", "--net", "--", *command],
                              capture_output=True, text=True, timeout=30,
                              env={**os.environ, **(env or {})})

    def exec(self, command: Sequence[str]) -> subprocess.CompletedProcess[str]:
        """Run `command` as the sandbox runs its own: in its network and mount namespaces, as
        its user, in its working directory, with its environment only (like the HEALTHCHECK
        docker runs in a container)."""
        as_user = []
        if self.confined.user is not None:
            uid, _, gid = self.confined.user.partition(":")
            as_user = ["setpriv", f"--reuid={uid}", f"--regid={gid or uid}", "--clear-groups"]
        return subprocess.run(
            ["nsenter", f"--target={self.pid}", "--net", "--mount", "--", *as_user,
             "env", "-i", *(f"{n}={v}" for n, v in self.confined.env.items()),
             "/bin/sh", "-c", 'cd "$0" && exec "$@"', self.confined.chdir, *command],
            capture_output=True, text=True, timeout=30)

    def wait_until(self, command: Sequence[str], timeout: float = 60,
                   run: Callable[[Sequence[str]], subprocess.CompletedProcess[str]] | None = None,
                   ) -> None:
        """Until `command` succeeds (run by `run`, `inside` by default); fails if the sandbox's
        process ends first, or after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while (result := (run or self.inside)(command)).returncode != 0:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.terminate()
                self.process.wait(timeout=10)
                self.output.seek(0)
                raise AssertionError(f"{command} never succeeded ({result.stderr.strip()}); "
                                     "the daemon said:\n"
                                     f"{self.output.read()}")
            time.sleep(0.2)

    def listeners(self) -> set[str]:
        """Listening TCP sockets in the namespace, as address:port ([address]:port for IPv6)."""
        found = set()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            for row in self.inside(["cat", table]).stdout.splitlines()[1:]:
                local, state = row.split()[1], row.split()[3]
                if state == "0A":  # LISTEN
                    address, port = local.split(":")
                    # The kernel prints each 32-bit word of the address in host byte order.
                    packed = b"".join(bytes.fromhex(address[i:i + 8])[::-1]
                                      for i in range(0, len(address), 8))
                    ip = ipaddress.ip_address(packed)
                    found.add(f"[{ip}]:{int(port, 16)}" if ip.version == 6
                              else f"{ip}:{int(port, 16)}")
        return found
