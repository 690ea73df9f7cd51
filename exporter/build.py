"""What this build is: version, git revision, Python and platform, for --version and
usage_exporter_build_info.

The revision of an installed wheel is the one recorded in the package at build time (setup.py
writes REVISION from the source tree's git, or from USAGE_EXPORTER_REVISION where the tree has no
.git, as in a container build); run from a source tree, it is that tree's git HEAD; otherwise
"unknown".
"""

from __future__ import annotations

import platform
import subprocess
import sys
from functools import cache
from pathlib import Path

from exporter import __version__

PACKAGE = Path(__file__).resolve().parent
RECORDED = PACKAGE / "REVISION"
UNKNOWN = "unknown"


def git_revision(tree: Path) -> str | None:
    """HEAD of the git checkout whose root is `tree`, or None. Only a .git in `tree` itself
    counts: an installed package inside some other repository must not report that one's."""
    if not (tree / ".git").exists():
        return None
    try:
        found = subprocess.run(["git", "-C", str(tree), "rev-parse", "HEAD"], capture_output=True,
                               text=True, timeout=5, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return found.stdout.strip() or None


@cache
def revision() -> str:
    try:
        recorded = RECORDED.read_text().strip()
    except OSError:
        recorded = ""
    return recorded or git_revision(PACKAGE.parent) or UNKNOWN


def python_version() -> str:
    return platform.python_version()


def version_text() -> str:
    """As Prometheus' own --version prints it."""
    machine = f"{sys.platform}/{platform.machine().lower() or UNKNOWN}"
    return (f"usage-exporter, version {__version__} (revision: {revision()})\n"
            f"  python version: {python_version()} ({platform.python_implementation()})\n"
            f"  platform:       {machine}")
