"""API routes, one module per audience: the native API and each platform's drop-in routes."""

from exporter.api import admin, coder, native, openl2m, owncloud, synapse
from exporter.http import Context, Handler


def routes(context: Context, today_zone: str = "UTC",
           metrics_app_version: str = owncloud.APP_VERSIONS[0]) -> dict[str, Handler]:
    return {**admin.routes(), **native.routes(context, today_zone), **synapse.routes(context),
            **owncloud.routes(context, metrics_app_version), **coder.routes(context),
            **openl2m.routes(context, today_zone)}
