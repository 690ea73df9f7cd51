"""The LICENSE file is the license pyproject.toml declares, and ships in the package."""

from __future__ import annotations

import tomllib

from tests.conftest import ROOT

# The first lines of each license text this project could declare, by SPDX identifier.
HEADINGS = {"Apache-2.0": ("Apache License", "Version 2.0, January 2004")}


def test_license_file_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license-files"] == ["LICENSE"]
    heading = [line.strip() for line in (ROOT / "LICENSE").read_text().splitlines()[:3]]
    assert [line for line in heading if line] == list(HEADINGS[project["license"]])
