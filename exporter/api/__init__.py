"""API routes, one module per audience: the native API and each platform's drop-in routes."""

from exporter.api import native
from exporter.http import Context, Handler


def routes(context: Context) -> dict[str, Handler]:
    return {**native.routes(context)}
