"""The /metrics floor: a minimal asyncio server, written for the benchmark alone (no code of the
exporter), that answers every request with the same bytes. Nothing can send a response faster
from Python on the default event loop, so the exporter is measured against it.

    python bench/http_floor.py BODY_FILE PORT CONTENT_TYPE [CONTENT_ENCODING]
"""

import asyncio
import sys
from pathlib import Path


class Constant(asyncio.Protocol):
    def __init__(self, response: bytes) -> None:
        self.response, self.buffer = response, b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:  # one answer per request head (no request has a body)
            _, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
            self.transport.write(self.response)  # type: ignore[attr-defined]


async def serve(body: bytes, port: int, content_type: str, encoding: str | None) -> None:
    head = f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
    head += f"Content-Encoding: {encoding}\r\n" if encoding else ""
    response = head.encode() + b"\r\n" + body
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Constant(response), "127.0.0.1", port)
    await server.serve_forever()


if __name__ == "__main__":
    body_file, port, content_type, *encoding = sys.argv[1:]
    asyncio.run(serve(Path(body_file).read_bytes(), int(port), content_type,
                      encoding[0] if encoding else None))
