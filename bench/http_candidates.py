"""Maintained servers answering /metrics with the same bytes, to choose the exporter's HTTP
stack by measurement (docs/benchmarks.md, "The HTTP stack"):

    python bench/http_candidates.py STACK BODY_FILE PORT CONTENT_TYPE [CONTENT_ENCODING]

STACK: starlette (uvicorn with httptools and uvloop, a Starlette route), asgi (the same uvicorn,
a bare ASGI callable), aiohttp (an aiohttp.web Application route), aiohttp-lowlevel
(aiohttp.web.Server, one handler, no router).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


def uvicorn_app(app: Callable[..., Any], port: int) -> None:
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=port, loop="uvloop", http="httptools",
                log_level="warning", access_log=False, lifespan="off")


def main(argv: list[str]) -> int:
    stack, body_file, port_text, content_type, *encoding = argv
    body, port = Path(body_file).read_bytes(), int(port_text)
    headers = {"Content-Type": content_type, **({"Content-Encoding": encoding[0]}
                                                if encoding else {})}
    if stack == "starlette":
        from starlette.applications import Starlette
        from starlette.responses import Response
        from starlette.routing import Route

        async def metrics(request: Any) -> Response:
            return Response(body, headers=headers)

        uvicorn_app(Starlette(routes=[Route("/metrics", metrics)]), port)
    elif stack == "asgi":
        raw = [(b"content-length", str(len(body)).encode()),
               *((name.lower().encode(), value.encode()) for name, value in headers.items())]

        async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
            await send({"type": "http.response.start", "status": 200, "headers": raw})
            await send({"type": "http.response.body", "body": body})

        uvicorn_app(asgi, port)
    elif stack in ("aiohttp", "aiohttp-lowlevel"):
        import asyncio

        import uvloop
        from aiohttp import web

        async def handler(request: web.BaseRequest) -> web.Response:
            return web.Response(body=body, headers=headers)

        if stack == "aiohttp":
            app = web.Application()
            app.router.add_get("/metrics", handler)
            web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None,
                        loop=uvloop.new_event_loop())
        else:
            async def serve() -> None:
                server = web.Server(handler, access_log=None)
                await asyncio.get_running_loop().create_server(server, "127.0.0.1", port)
                await asyncio.Event().wait()

            uvloop.run(serve())
    else:
        raise SystemExit(f"unknown stack {stack!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
