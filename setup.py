"""Records the git revision in the package at build time (exporter/REVISION), so that an
installed wheel's --version and usage_exporter_build_info name the commit it was built from.
Everything else about the package is in pyproject.toml."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SOURCE = Path(__file__).resolve().parent
sys.path.insert(0, str(SOURCE))
from exporter.build import git_revision  # noqa: E402 - the package being built


class BuildWithRevision(build_py):
    def run(self) -> None:
        super().run()
        # A build without .git (a container's) is told the revision in the environment.
        revision = os.environ.get("USAGE_EXPORTER_REVISION", "").strip() or git_revision(SOURCE)
        if revision and not self.editable_mode:
            (Path(self.build_lib) / "exporter" / "REVISION").write_text(revision + "\n")


setup(cmdclass={"build_py": BuildWithRevision})
