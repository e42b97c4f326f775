"""Limits and hostile input: the cap, slow readers, wrong methods, odd headers."""

import asyncio
import socket

from sidecar.client import Client
from sidecar.hub import Hub
from sidecar.sse import encode_version_event
from sidecar.version import check_version
from tests.http.conftest import MakeSidecar, Sidecar
from tests.waiting import eventually


async def test_over_the_cap_gets_503_with_retry_after(make_sidecar: MakeSidecar) -> None:
    sidecar = await make_sidecar(max_clients=2, retry=3000, retry_jitter=2000)
    first = await sidecar.open_stream()
    await sidecar.open_stream()
    refused = await sidecar.client.get("/events/version")
    assert refused.status == 503
    assert refused.headers["Retry-After"] == "5"
    first.response.close()
    for _ in range(100):  # the hub notices the closed stream
        if len(sidecar.hub.clients) < 2:
            break
        await asyncio.sleep(0.02)
    again = await sidecar.open_stream()
    assert await again.next_version() == "v1"


async def _silent_reader(sidecar: Sidecar) -> tuple[socket.socket, Client]:
    """A raw client with a tiny receive buffer that sends its request and never reads."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", sidecar.client.port or 0))
    sock.send(b"GET /events/version HTTP/1.1\r\nHost: test\r\n\r\n")
    local = sock.getsockname()
    for _ in range(200):
        for client in sidecar.hub.clients:
            if client.transport.get_extra_info("peername") == local:
                return sock, client
        await asyncio.sleep(0.01)
    raise AssertionError("the silent reader never joined")


async def _fill(hub: Hub, victim: Client, until: str) -> int:
    """Publish distinct long versions until `victim` is dropped or has data waiting."""
    for count in range(1, 20_000):
        hub.publish(check_version(f"{count:0>128}"))
        dropped = victim not in hub.clients
        waiting = victim.transport.get_write_buffer_size() > 0
        if (until == "dropped" and dropped) or (until == "waiting" and (waiting or dropped)):
            return count
        if count % 50 == 0:
            await asyncio.sleep(0)  # let well-behaved clients read
    raise AssertionError(f"the silent reader was never {until}")


async def test_a_client_that_stops_reading_is_dropped_and_others_keep_up(make_sidecar: MakeSidecar) -> None:
    sidecar = await make_sidecar(heartbeat=3600, max_buffer=16384)
    reader = await sidecar.open_stream()
    sock, silent = await _silent_reader(sidecar)
    try:
        await _fill(sidecar.hub, silent, until="dropped")
        assert silent.ended == "too slow: more than 16384 bytes unsent"
        sidecar.publish("final")
        await reader.wait_for_version("final", timeout=30)
        assert len(sidecar.hub.clients) == 1
    finally:
        sock.close()


async def test_the_kernel_aborts_a_connection_left_unacknowledged_past_the_send_timeout(
    make_sidecar: MakeSidecar,
) -> None:
    # A peer that vanished without a FIN or RST acknowledges nothing; Linux's TCP_USER_TIMEOUT
    # ends such a connection even when nothing is left unsent in user space (tests/unit/test_hub.py
    # has the hub's own rule for unsent data).
    sidecar = await make_sidecar(send_timeout=0.3)
    sock, silent = await _silent_reader(sidecar)
    try:
        server_socket = silent.transport.get_extra_info("socket")
        assert server_socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 300
    finally:
        sock.close()


async def test_a_client_that_goes_away_is_counted_out_and_its_seat_given_back(make_sidecar: MakeSidecar) -> None:
    sidecar = await make_sidecar(max_clients=2)
    first, second = await sidecar.open_stream(), await sidecar.open_stream()
    assert (await sidecar.health())["clients"] == 2
    assert (await sidecar.client.get("/events/version")).status == 503
    first.response.close()
    await eventually(lambda: sidecar.hub.connections == 1, "the hub to count the closed stream out")
    assert len(sidecar.hub.clients) == 1 and (await sidecar.health())["clients"] == 1
    again = await sidecar.open_stream()  # its seat was given back, once
    assert await again.next_version() == "v1"
    assert (await sidecar.client.get("/events/version")).status == 503
    sidecar.publish("v2")
    await second.wait_for_version("v2")


async def test_a_stream_ended_by_the_hub_while_its_connection_closes_writes_nothing_more(
    make_sidecar: MakeSidecar,
) -> None:
    """A stream the hub ends while its connection is closing (its unsent data still waiting) gets
    nothing more, and is counted out once its transport is gone."""
    sidecar = await make_sidecar(heartbeat=3600, max_buffer=16384)
    sock, silent = await _silent_reader(sidecar)
    try:
        await _fill(sidecar.hub, silent, until="waiting")
        unsent = silent.transport.get_write_buffer_size()
        silent.transport.close()  # closing, not closed: the unsent data keeps it open
        sidecar.hub.leave(silent, "ended while closing")
        assert silent.transport.get_write_buffer_size() == unsent
    finally:
        sock.close()
    await eventually(lambda: sidecar.hub.connections == 0, "the closed connection to be counted out")
    assert (await sidecar.health())["clients"] == 0


async def test_a_stream_ended_with_data_unsent_gets_all_of_it_then_the_close(make_sidecar: MakeSidecar) -> None:
    # Its body ends at the close: a clean end sends what waits first (an abort would cut it).
    sidecar = await make_sidecar(heartbeat=3600, max_buffer=1 << 30)
    sock, silent = await _silent_reader(sidecar)
    try:
        changes = await _fill(sidecar.hub, silent, until="waiting")
        assert silent.transport.get_write_buffer_size() > 0
        sidecar.hub.leave(silent, "server shutting down")  # what a stop does to each stream
        data = b""
        async with asyncio.timeout(10):
            while chunk := await asyncio.get_running_loop().sock_recv(sock, 65536):  # a reset would raise
                data += chunk
    finally:
        sock.close()
    events = data.split(b"\r\n\r\n", 1)[1].split(b"\n\n", 1)[1]  # after the head and the retry field
    versions = ["v1"] + [f"{count:0>128}" for count in range(1, changes + 1)]
    assert events == b"".join(encode_version_event(check_version(version)) for version in versions)


async def test_wrong_methods_and_unknown_paths(make_sidecar: MakeSidecar) -> None:
    sidecar = await make_sidecar()
    for method in ["POST", "PUT", "DELETE", "HEAD"]:
        response = await sidecar.client.request(method, "/events/version")
        assert response.status == 405, method
    for path in ["/", "/events", "/events/version/x", "/events/other.js", "/version"]:
        assert (await sidecar.client.get(path)).status == 404, path


async def test_odd_last_event_id_and_headers_are_harmless(make_sidecar: MakeSidecar) -> None:
    sidecar = await make_sidecar()
    for value in ["", "v0", "x" * 8000, "\u202e<script>", "%00%0d%0a", "v1\tv2"]:
        stream = await sidecar.open_stream(**{"Last-Event-ID": value, "X-Junk": value})
        assert await stream.next_version() == "v1"
        stream.response.close()
    # Raw bytes aiohttp's client would refuse to send: NUL, invalid UTF-8, a huge header.
    for junk in [b"\x00\x01", b"\xff\xfe\xfd", b"y" * 70_000]:
        reader, writer = await asyncio.open_connection("127.0.0.1", sidecar.client.port)
        writer.write(b"GET /events/version HTTP/1.1\r\nHost: t\r\nLast-Event-ID: " + junk + b"\r\n\r\n")
        status_line = await asyncio.wait_for(reader.readline(), 10)
        assert status_line.split(b" ")[1] in (b"200", b"400", b"431"), status_line
        writer.close()
    # The sidecar still serves.
    stream = await sidecar.open_stream()
    assert await stream.next_version() == "v1"
