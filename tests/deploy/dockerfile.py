"""The Dockerfile read as an image: its instructions, and what they leave in the image's config
(environment, user, working directory, ports, volumes, health check, command), so that tests run
what the image runs instead of a copy of it."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path


def logical_lines(text: str) -> list[str]:
    """Lines with comments dropped and backslash continuations joined."""
    lines, pending = [], ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        pending += stripped
        if pending.strip():
            lines.append(pending.strip())
        pending = ""
    return lines


def exec_form(arguments: str) -> list[str]:
    """`["a", "b"]` (exec form) as a list; the shell form as `/bin/sh -c` would run it."""
    if arguments.lstrip().startswith("["):
        return json.loads(arguments)
    return ["/bin/sh", "-c", arguments]


@dataclass
class Image:
    """What a build of the Dockerfile configures (the base image's own ENV PATH and LANG aside)."""

    base: str = ""
    env: dict[str, str] = field(default_factory=dict)
    runs: list[str] = field(default_factory=list)
    copies: list[tuple[list[str], str]] = field(default_factory=list)
    user: str = "root"
    workdir: str = "/"
    exposed: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    healthcheck: list[str] = field(default_factory=list)
    healthcheck_options: dict[str, str] = field(default_factory=dict)
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)

    @property
    def command(self) -> list[str]:
        return self.entrypoint + self.cmd

    def copied_to(self, destination: str) -> Path:
        """The source of the single file the Dockerfile COPYs to `destination`."""
        (source,) = [sources[0] for sources, dest in self.copies
                     if dest == destination and len(sources) == 1]
        return Path(source)


def read_dockerfile(path: Path) -> Image:
    image = Image()
    for line in logical_lines(path.read_text()):
        instruction, _, arguments = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            image.base = arguments.split()[0]
        elif instruction == "ENV":
            for pair in shlex.split(arguments):
                name, _, value = pair.partition("=")
                image.env[name] = value
        elif instruction == "RUN":
            image.runs.append(arguments)
        elif instruction == "COPY":
            *sources, destination = shlex.split(arguments)
            image.copies.append((sources, destination))
        elif instruction == "USER":
            image.user = arguments
        elif instruction == "WORKDIR":
            image.workdir = arguments
        elif instruction == "EXPOSE":
            image.exposed += arguments.split()
        elif instruction == "VOLUME":
            listed = arguments.startswith("[")
            image.volumes += exec_form(arguments) if listed else arguments.split()
        elif instruction == "HEALTHCHECK":
            options, cmd, command = f" {arguments}".partition(" CMD ")
            assert cmd, "HEALTHCHECK without CMD"
            for option in options.split():
                name, _, value = option.removeprefix("--").partition("=")
                image.healthcheck_options[name] = value
            image.healthcheck = exec_form(command)
        elif instruction == "ENTRYPOINT":
            image.entrypoint = exec_form(arguments)
        elif instruction == "CMD":
            image.cmd = exec_form(arguments)
        else:
            raise AssertionError(f"the test does not know Dockerfile instruction {instruction}")
    return image
