"""What the agent's TLS bridge costs next to gRPC's own TLS, side by side.

    python bench/tls_bridge.py [--calls 500] [--mib 64]

One grpcio server with gRPC's own TLS (ECDSA keys, the one key type both
sides can use) runs in a separate process. The same client then measures, per
transport:

* connect: a fresh channel up to its first answer (TCP + TLS handshake + HTTP/2),
  which is what every reconnect of the agent pays;
* round trip: sequential unary calls with 100 bytes each way (median and p99),
  like the agent's small messages;
* throughput: one call that streams ``--mib`` MiB to the client, like a large
  complete state.

Transports: gRPC's own TLS (the floor) and the agent's bridge with the same
keys. A last row runs the bridge with Ed25519 keys against an OpenSSL
terminator in front of a plain server: the reference installation's case,
which gRPC's own TLS cannot do at all (the terminator adds a hop of its own).
No assertions: figures only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import grpc
import grpc.aio

from ankaios_agent.agent.connection import ConnectionTimings, open_channel
from ankaios_agent.agent.tls import TlsMaterial
from ankaios_agent.agent.tls_bridge import TlsBridge
from tests.support.certs import PkiFiles, write_pki
from tests.support.tls_terminator import TlsTerminator

SERVICE = "bench.Echo"
CHUNK = 256 * 1024


def _handlers() -> grpc.GenericRpcHandler:
    async def echo(request: bytes, _context: grpc.aio.ServicerContext) -> bytes:
        return request

    async def download(request: bytes, _context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        chunk = b"x" * CHUNK
        for _ in range(int(request.decode())):
            yield chunk

    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Echo": grpc.unary_unary_rpc_method_handler(echo),
            "Download": grpc.unary_stream_rpc_method_handler(download),
        },
    )


def _serve(ports: Any, cert: bytes, key: bytes, ca: bytes, plain: bool) -> None:
    async def main() -> None:
        server = grpc.aio.server(options=[("grpc.max_send_message_length", 64 * 1024 * 1024)])
        server.add_generic_rpc_handlers((_handlers(),))
        if plain:
            port = server.add_insecure_port("127.0.0.1:0")
        else:
            credentials = grpc.ssl_server_credentials(
                [(key, cert)], root_certificates=ca, require_client_auth=True
            )
            port = server.add_secure_port("127.0.0.1:0", credentials)
        await server.start()
        ports.put(port)
        await server.wait_for_termination()

    asyncio.run(main())


@contextlib.contextmanager
def _server_process(pki: PkiFiles, *, plain: bool) -> Any:
    ctx = multiprocessing.get_context("spawn")
    ports = ctx.Queue()
    process = ctx.Process(
        target=_serve,
        args=(ports, pki.server.cert, pki.server.key, pki.ca.cert, plain),
        daemon=True,
    )
    process.start()
    try:
        yield ports.get(timeout=30)
    finally:
        process.terminate()
        process.join()


@dataclass
class Figures:
    connect_ms: float
    rtt_median_ms: float
    rtt_p99_ms: float
    mib_per_s: float


async def _measure(make_channel: Callable[[], grpc.aio.Channel], calls: int, mib: int) -> Figures:
    connects = []
    for _ in range(5):
        started = time.perf_counter()
        channel = make_channel()
        await channel.unary_unary(f"/{SERVICE}/Echo")(b"x")
        connects.append(time.perf_counter() - started)
        await channel.close()
    channel = make_channel()
    try:
        echo = channel.unary_unary(f"/{SERVICE}/Echo")
        payload = b"p" * 100
        for _ in range(20):  # warm up
            await echo(payload)
        times = []
        for _ in range(calls):
            started = time.perf_counter()
            await echo(payload)
            times.append(time.perf_counter() - started)
        chunks = mib * 1024 * 1024 // CHUNK
        started = time.perf_counter()
        async for _chunk in channel.unary_stream(f"/{SERVICE}/Download")(str(chunks).encode()):
            pass
        elapsed = time.perf_counter() - started
    finally:
        await channel.close()
    times.sort()
    return Figures(
        statistics.median(connects) * 1000,
        statistics.median(times) * 1000,
        times[int(len(times) * 0.99) - 1] * 1000,
        mib / elapsed,
    )


def _native_channel(address: str, tls: TlsMaterial, timings: ConnectionTimings) -> grpc.aio.Channel:
    credentials = grpc.ssl_channel_credentials(tls.ca, tls.key, tls.cert)
    options = [*timings.channel_options(), ("grpc.ssl_target_name_override", tls.server_name)]
    return grpc.aio.secure_channel(address, credentials, options=options)


async def main(calls: int, mib: int) -> None:
    timings = ConnectionTimings()
    rows: list[tuple[str, Figures]] = []
    with tempfile.TemporaryDirectory() as folder:
        ec = write_pki(Path(folder, "ec"), key_type="ecdsa")
        ec_tls = TlsMaterial(ec.ca.cert, ec.agent.cert, ec.agent.key)
        with _server_process(ec, plain=False) as port:
            address = f"127.0.0.1:{port}"
            rows.append(
                (
                    "grpc TLS, ECDSA",
                    await _measure(lambda: _native_channel(address, ec_tls, timings), calls, mib),
                )
            )
            async with TlsBridge(address, ec_tls, connect_timeout=10) as bridge:
                figures = await _measure(lambda: open_channel(address, timings, bridge), calls, mib)
                rows.append(("bridge, ECDSA", figures))
        ed = write_pki(Path(folder, "ed"), key_type="ed25519")
        ed_tls = TlsMaterial(ed.ca.cert, ed.agent.cert, ed.agent.key)
        with _server_process(ed, plain=True) as port:
            async with (
                TlsTerminator(port, ed.server.cert, ed.server.key, ed.ca.cert) as terminator,
                TlsBridge(terminator.address, ed_tls, connect_timeout=10) as bridge,
            ):
                figures = await _measure(
                    lambda: open_channel(terminator.address, timings, bridge), calls, mib
                )
                rows.append(("bridge, Ed25519 (+terminator)", figures))
    print(f"{'transport':32} {'connect ms':>11} {'rtt median ms':>14} {'rtt p99 ms':>11} {'MiB/s':>8}")
    for name, f in rows:
        print(
            f"{name:32} {f.connect_ms:11.2f} {f.rtt_median_ms:14.3f} {f.rtt_p99_ms:11.3f} {f.mib_per_s:8.1f}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--mib", type=int, default=64)
    args = parser.parse_args()
    asyncio.run(main(args.calls, args.mib))
