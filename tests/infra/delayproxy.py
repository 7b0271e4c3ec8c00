"""A TCP relay that adds a fixed one-way delay in each direction (for the shaped "login host").

This kernel has no netem, so latency is added here, order-preserving and pipelined: every chunk
is forwarded `delay` seconds after it arrived, without waiting for the previous one's delivery
(a real link's latency, not a stop-and-wait). Stdlib only; runs inside the test netns.

    python3 delayproxy.py LISTEN_HOST LISTEN_PORT TARGET_HOST TARGET_PORT DELAY_MS PIDFILE
"""

from __future__ import annotations

import asyncio
import os
import sys


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def deliver() -> None:
        while True:
            due, data = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)  # the simulated link latency itself
            if not data:  # the peer half-closed: pass that on, as late as the data before it
                if writer.can_write_eof():
                    writer.write_eof()
                else:
                    writer.close()
                return
            writer.write(data)
            await writer.drain()

    sender = asyncio.create_task(deliver())
    try:
        while True:
            data = await reader.read(65536)
            queue.put_nowait((loop.time() + delay, data))
            if not data:
                break
        await sender
    except (ConnectionError, OSError):
        sender.cancel()
    finally:
        writer.close()


async def _serve(target: tuple[str, int], delay: float, client_r, client_w) -> None:
    try:
        server_r, server_w = await asyncio.open_connection(*target)
    except OSError:
        client_w.close()
        return
    await asyncio.gather(_pipe(client_r, server_w, delay), _pipe(server_r, client_w, delay), return_exceptions=True)


async def main(argv: list[str]) -> None:
    host, port, target_host, target_port, delay_ms, pidfile = argv
    server = await asyncio.start_server(
        lambda r, w: _serve((target_host, int(target_port)), int(delay_ms) / 1000, r, w), host, int(port)
    )
    with open(pidfile + ".tmp", "w") as f:
        f.write(f"{os.getpid()}\n")
    os.replace(pidfile + ".tmp", pidfile)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
