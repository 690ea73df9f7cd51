"""The exporter's own HTTP server (exporter.server.HttpServer) serving one constant body: the
floor of the route comparisons (compare_synapse.py, sidebyside.py), which measure what a route
adds on top of the server. The /metrics floor is bench/http_floor.py, independent of our code.

    python bench/static_server.py BODY_FILE PORT CONTENT_TYPE [CONTENT_ENCODING]
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from exporter.http import App, Context, Request, Response
from exporter.server import HttpServer
from exporter.snapshot import Snapshot


def main(argv: list[str]) -> int:
    body_file, port, content_type, *encoding = argv
    body = Path(body_file).read_bytes()
    headers = [("Content-Encoding", encoding[0])] if encoding else []
    snapshot = Snapshot(platform="static", collectors={})

    def metrics(request: Request) -> Response:
        return Response(200, body, content_type, list(headers))

    app = App(Context(lambda: snapshot, ()), {"/metrics": metrics})
    HttpServer(app, "127.0.0.1", int(port)).serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
