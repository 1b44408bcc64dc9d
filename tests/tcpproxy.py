"""A small asyncio TCP proxy on loopback for tests that need a network failure they can switch on.

`TcpProxy(target_host, target_port)` listens on 127.0.0.1:<port> and copies bytes both ways to the target.
`freeze()` turns every connection open at that moment into a black hole: the proxy keeps both sockets open
but forwards nothing more in either direction (bytes read are dropped), so the peers see silence, not a
close; this is what a dead NAT entry or a stalled load balancer looks like. Connections opened after the
freeze work normally. TLS passes through untouched (the proxy never looks at the bytes).

    async with TcpProxy("127.0.0.1", api_port) as proxy:
        ...  # point a client at proxy.port
        proxy.freeze()

Counters (`opened`, `frozen`, `closed_by_client`) let tests check what their client did with the sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

_CHUNK = 64 * 1024


@dataclass(eq=False)
class _Connection:
    """One proxied connection: the client's side, the target's side and the two copy tasks."""

    number: int
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    frozen: bool = False
    client_closed: bool = False
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    released: asyncio.Event = field(default_factory=asyncio.Event)  # set once the client side is gone

    def close(self) -> None:
        self.released.set()
        for writer in (self.client, self.upstream):
            with contextlib.suppress(Exception):
                writer.close()


class TcpProxy:
    """Forward 127.0.0.1:`port` to `target_host`:`target_port`; see the module docstring."""

    def __init__(self, target_host: str, target_port: int, *, listen_host: str = "127.0.0.1") -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.listen_host = listen_host
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._count = 0
        self.closed_by_client = 0  # connections the client side closed (EOF or reset), frozen or not

    # --------------------------------------------------------------------------------------- lifecycle
    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._accept, self.listen_host, 0)
        return self

    async def close(self) -> None:
        """Stop listening and close every connection (frozen ones included)."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for conn in list(self._connections):
            conn.close()
            for task in conn.tasks:
                task.cancel()
        handlers = list(self._handlers)
        for handler in handlers:
            handler.cancel()  # those still connecting to the target; the others are ending anyway
        if handlers:
            await asyncio.gather(*handlers, return_exceptions=True)
        self._connections.clear()

    async def __aenter__(self) -> TcpProxy:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --------------------------------------------------------------------------------------- control
    @property
    def port(self) -> int:
        assert self._server is not None, "start() the proxy first"
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        """The proxy's address as an https URL (for a kubeconfig pointing at a TLS target through it)."""
        return f"https://{self.listen_host}:{self.port}"

    def freeze(self) -> int:
        """Black-hole every connection open now (see module docstring); returns how many were frozen."""
        live = [c for c in self._connections if not c.frozen]
        for conn in live:
            conn.frozen = True
        return len(live)

    @property
    def opened(self) -> int:
        """How many connections clients have opened through the proxy so far."""
        return self._count

    @property
    def frozen(self) -> int:
        """How many connections are frozen and still open on the client's side."""
        return sum(1 for c in self._connections if c.frozen and not c.client_closed)

    @property
    def active(self) -> int:
        """How many connections are open and forwarding."""
        return sum(1 for c in self._connections if not c.frozen)

    # --------------------------------------------------------------------------------------- forwarding
    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        handler = asyncio.current_task()
        assert handler is not None
        self._handlers.add(handler)
        try:
            try:
                up_reader, up_writer = await asyncio.open_connection(self.target_host, self.target_port)
            except OSError:
                client_writer.close()  # the target is down: refuse, as a closed port would
                return
            self._count += 1
            conn = _Connection(self._count, client_writer, up_writer)
            self._connections.add(conn)
            conn.tasks = [
                asyncio.create_task(self._pump(conn, client_reader, up_writer, from_client=True)),
                asyncio.create_task(self._pump(conn, up_reader, client_writer, from_client=False)),
            ]
            try:
                await asyncio.gather(*conn.tasks, return_exceptions=True)
            finally:
                conn.close()
                self._connections.discard(conn)
        except asyncio.CancelledError:
            client_writer.close()  # TcpProxy.close(): end quietly (asyncio logs a cancelled handler as an error)
        finally:
            self._handlers.discard(handler)

    async def _pump(
        self, conn: _Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, from_client: bool
    ) -> None:
        """Copy reader -> writer until EOF; once the connection is frozen, read and drop instead."""
        try:
            while True:
                data = await reader.read(_CHUNK)
                if not data:
                    break
                if conn.frozen:
                    continue  # silence: the peer gets nothing, not even a close
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        if from_client:
            conn.client_closed = True
            self.closed_by_client += 1
        elif conn.frozen:
            # The target ended a frozen connection: keep the client's side open and silent until it gives up.
            await conn.released.wait()
        conn.close()
        for task in conn.tasks:
            if task is not asyncio.current_task():
                task.cancel()
