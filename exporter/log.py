"""structlog set-up: JSON lines when not on a terminal, readable lines on one; tracebacks only at
debug level, so a failure is one line in production logs."""

from __future__ import annotations

import logging
import re
import sys

import structlog

# Parameter names that may carry credentials (in a request's query, or a database URL's): their
# values are never logged, shown or stored.
SECRET_NAME = re.compile(r"key|token|secret|pass|auth|session|signature|credential|cookie", re.I)

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
          "error": logging.ERROR}


_level = logging.INFO


def debug_enabled() -> bool:
    return _level <= logging.DEBUG


def configure(level: str = "info", fmt: str = "auto") -> None:
    global _level
    _level = LEVELS[level]
    as_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer = (structlog.processors.JSONRenderer() if as_json
                else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()))
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            (structlog.processors.dict_tracebacks if as_json
             else structlog.processors.format_exc_info),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS[level]),
        # sys.stderr as it is when a line is written, not when configured: a caller that swaps
        # it (pytest's capture, a redirect) is followed, never a stream since closed.
        logger_factory=lambda *_args: structlog.PrintLogger(sys.stderr),
        cache_logger_on_first_use=False,
    )
    # Keep library loggers (apscheduler, asyncio) quiet unless debugging.
    logging.basicConfig(level=max(LEVELS[level], logging.WARNING), stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
