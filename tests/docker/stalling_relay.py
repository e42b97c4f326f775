"""A TCP relay in front of the engine's unix socket that can go silent without closing, as a
firewall dropping packets or a hung proxy does: while stalled it accepts connections and keeps
every one open, but passes no byte either way."""

import asyncio
import contextlib
import threading
from collections.abc import Iterator

from tests.sidecar_process import free_port


class StallingRelay:
    def __init__(self, engine_socket: str) -> None:
        self.engine_socket = engine_socket
        self.port = free_port()
        self.url = f"tcp://127.0.0.1:{self.port}"
        self._loop = asyncio.new_event_loop()
        self._flowing = asyncio.Event()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stalling relay", daemon=True)

    def stall(self) -> None:
        self._loop.call_soon_threadsafe(self._flowing.clear)

    def resume(self) -> None:
        self._loop.call_soon_threadsafe(self._flowing.set)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._flowing.set()
        server = self._loop.run_until_complete(asyncio.start_server(self._relay, "127.0.0.1", self.port))
        self._started.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()
            for task in asyncio.all_tasks(self._loop):
                task.cancel()
            self._loop.run_until_complete(asyncio.sleep(0))
            self._loop.close()

    async def _relay(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        await self._flowing.wait()  # a stalled relay leaves a new connection hanging too
        engine_reader, engine_writer = await asyncio.open_unix_connection(self.engine_socket)
        await asyncio.gather(
            self._pump(client_reader, engine_writer), self._pump(engine_reader, client_writer), return_exceptions=True
        )
        client_writer.close()
        engine_writer.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while chunk := await reader.read(65536):
            await self._flowing.wait()  # stalled: the bytes read wait here, nothing is closed
            writer.write(chunk)
            await writer.drain()
        writer.close()


@contextlib.contextmanager
def stalling_relay(engine_socket: str) -> Iterator[StallingRelay]:
    relay = StallingRelay(engine_socket)
    relay._thread.start()
    relay._started.wait(10)
    try:
        yield relay
    finally:
        relay._loop.call_soon_threadsafe(relay._loop.stop)
        relay._thread.join(10)
