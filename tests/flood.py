"""A flood of wrong basic-auth passwords, in a process of its own (so that it does not share the
test's interpreter lock): CLIENTS loopback addresses (127.0.1.N), each with PER_CLIENT
keep-alive connections, asking for /metrics with a wrong password as fast as answers come, until
stdin closes. Prints "flooding" once every connection is open, and at the end the answers counted by
status as JSON.

    python -m tests.flood PORT CLIENTS PER_CLIENT
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
from collections import Counter

WRONG = "Basic " + base64.b64encode(b"prometheus:a-wrong-guess").decode()
REQUEST = (f"GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: {WRONG}\r\n\r\n").encode()


async def guess(port: int, source: str, statuses: Counter[int], opened: asyncio.Event,
                count: list[int], clients: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    count[0] += 1
    if count[0] == clients:
        opened.set()
    while True:
        writer.write(REQUEST)
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        await reader.readexactly(length)
        statuses[status] += 1


async def main(port: int, clients: int, per_client: int) -> None:
    statuses: Counter[int] = Counter()
    opened, count = asyncio.Event(), [0]
    tasks = [asyncio.create_task(guess(port, f"127.0.1.{n % clients + 1}", statuses, opened,
                                       count, clients * per_client))
             for n in range(clients * per_client)]
    await opened.wait()
    print("flooding", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    for task in tasks:
        task.cancel()
    print(json.dumps(statuses), flush=True)


if __name__ == "__main__":
    asyncio.run(main(*map(int, sys.argv[1:4])))
