"""The README's shell commands under a heading, as a reader would copy them."""

from __future__ import annotations

import re

from tests.conftest import ROOT

README = ROOT / "README.md"


def section(heading: str) -> str:
    """The text under `## heading` (or `### heading`) up to the next heading of that level."""
    text = README.read_text()
    match = re.search(rf"^(#+) {re.escape(heading)}\n(.*?)(?=^\1 |\Z)", text, re.M | re.S)
    assert match, f"README has no section {heading!r}"
    return match.group(2)


def commands(heading: str) -> list[str]:
    """Each command of the section's ```sh blocks: continuations joined, comments dropped."""
    found = []
    for block in re.findall(r"^```sh\n(.*?)^```", section(heading), re.M | re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            command = re.sub(r"(^|\s)#.*$", "", line).strip()
            if command:
                found.append(command)
    assert found, f"README section {heading!r} has no sh commands"
    return found
