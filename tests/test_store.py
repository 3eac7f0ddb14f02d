"""Binding stores (gbsip.store): what a registrar writes survives the process."""
from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from gbsip.device import Device
from gbsip.errors import ConfigurationError
from gbsip.events import Registered
from gbsip.registrar import Registrar
from gbsip.simulator import Simulator
from gbsip.store import RedisStore, SQLiteStore, StoredBinding, StoreError, open_store

from redis_helpers import needs_redis, redis_port  # noqa: F401  (fixture)

NOW = 1_700_000_000.0


def binding(device_id: str, *, expires_in: float = 3600, node: str = "a") -> StoredBinding:
    return StoredBinding(
        device_id=device_id,
        contacts=((f"sip:{device_id}@192.168.10.117:5061;line=6513f93347c330b",
                   NOW + expires_in),),
        user_agent="eXosip/3.6.0", call_id="939764460", cseq=2,
        source=("192.168.10.117", 5061), transport="udp",
        expires_at=NOW + expires_in, registered_at=NOW - 5, last_keepalive=None,
        online=True, node=node)


def test_stored_binding_round_trips_through_json() -> None:
    b = binding("34020000001320000001")
    assert StoredBinding.from_json(b.to_json()) == b


def test_sqlite_store_keeps_batches_and_drops_what_expired(tmp_path: Path) -> None:
    """A saved batch is there for the next process; removals and bindings
    expired by load time are gone."""
    path = str(tmp_path / "bindings.db")

    async def main() -> list[StoredBinding]:
        store = SQLiteStore(path)
        await store.save([binding("1"), binding("2"), binding("3", expires_in=-1)], [], "a")
        await store.save([], ["2"], "a")
        await store.close()
        again = SQLiteStore(path)  # a new process would open it like this
        try:
            return await again.load(NOW)
        finally:
            await again.close()

    assert [b.device_id for b in asyncio.run(main())] == ["1"]
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_sqlite_store_keeps_each_nodes_rows_apart(tmp_path: Path) -> None:
    """Several registrars (serve --workers N) share one file: each loads and
    removes only its own rows; load(node=None) shows the whole table."""
    async def main() -> tuple[list[str], list[str], int]:
        store = SQLiteStore(str(tmp_path / "b.db"))
        await store.save([binding("1", node="a"), binding("1", node="b"),
                          binding("2", node="b")], [], "")
        await store.save([], ["1"], "a")
        own = [b.device_id for b in await store.load(NOW, "b")]
        a = [b.device_id for b in await store.load(NOW, "a")]
        total = len(await store.load(NOW))
        await store.close()
        return own, a, total

    own, a, total = asyncio.run(main())
    assert sorted(own) == ["1", "2"] and a == [] and total == 2


def test_sqlite_store_that_cannot_open_says_which_file(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "no" / "such" / "dir" / "b.db"))
    with pytest.raises(StoreError, match="no/such/dir"):
        asyncio.run(store.load(NOW))


def test_open_store_reads_the_command_line_spec(tmp_path: Path) -> None:
    assert isinstance(open_store(str(tmp_path / "x.db")), SQLiteStore)
    r = open_store("redis://127.0.0.1:6390/3")
    assert isinstance(r, RedisStore) and (r.port, r.db) == (6390, 3)
    with pytest.raises(ConfigurationError, match="redis://"):
        open_store("postgres://x")
    with pytest.raises(ConfigurationError, match="database"):
        open_store("redis://127.0.0.1/abc")


@needs_redis
def test_redis_store_is_shared_by_registrars_on_one_server(redis_port: int) -> None:  # noqa: F811
    """Two registrars (nodes) write to one Redis: each sees its own rows at
    start, and the whole table is one view of both."""
    async def main() -> tuple[list[str], list[str], list[str]]:
        a = RedisStore("127.0.0.1", redis_port, prefix="t1:")
        b = RedisStore("127.0.0.1", redis_port, prefix="t1:")
        await a.save([binding("1", node="a"), binding("3", node="a", expires_in=-1)], [], "a")
        await b.save([binding("2", node="b")], [], "b")
        await b.save([], ["1"], "b")  # not b's row: stays
        mine = [x.device_id for x in await a.load(NOW, "a")]
        everyone = sorted(x.device_id for x in await b.load(NOW))
        await a.save([], ["1"], "a")
        after = [x.device_id for x in await a.load(NOW)]
        await a.close()
        await b.close()
        return mine, everyone, after

    mine, everyone, after = asyncio.run(main())
    assert mine == ["1"] and everyone == ["1", "2"] and after == ["2"]


def test_redis_store_without_a_server_says_where_it_looked() -> None:
    from device_helpers import free_port

    store = RedisStore("127.0.0.1", free_port())
    with pytest.raises(StoreError, match="redis://127.0.0.1"):
        asyncio.run(store.load(NOW))


# --------------------------------------------------------------------------
# A Registrar with a store

SERVER_ID = "34020000002000000001"
PASSWORD = "12345678"


async def _register(reg: Registrar, ids: list[str]) -> None:
    host, port = reg.address
    for device_id in ids:
        async with Device(device_id, password=PASSWORD, server=f"udp://{host}:{port}",
                          keepalive_interval=None, t1=0.05) as dev:
            dev.abort()  # leave the binding registered: no unregister on exit


def test_registrar_restart_puts_bindings_back_with_their_remaining_lifetime(tmp_path: Path) -> None:
    """Issue 12: bindings acknowledged before a flush survive a restart
    of the registrar, with the expiry they had (not a new hour)."""
    path = str(tmp_path / "bindings.db")
    ids = [f"3402000000132000{n:04d}" for n in range(1, 6)]

    async def first() -> dict[str, float]:
        async with Registrar(SERVER_ID, port=0, transports=("udp",), passwords=PASSWORD,
                             store=path, store_flush_interval=0.05) as reg:
            await _register(reg, ids)
            await asyncio.sleep(0.2)
            assert reg.stats()["store_written"] >= 5
            return {d: b.expires_at for d, b in reg.bindings.items()}

    async def second() -> tuple[dict[str, float], dict[str, object]]:
        async with Registrar(SERVER_ID, port=0, transports=("udp",), passwords=PASSWORD,
                             store=path) as reg:
            return {d: b.expires_at for d, b in reg.bindings.items()}, reg.stats()

    before = asyncio.run(first())
    after, stats = asyncio.run(second())
    assert set(after) == set(ids)
    for d in ids:
        assert abs(after[d] - before[d]) < 0.5
    assert stats["store_restored"] == 5


def test_unregistered_devices_are_gone_after_the_restart(tmp_path: Path) -> None:
    path = str(tmp_path / "bindings.db")
    ids = ["34020000001320000001", "34020000001320000002"]

    async def first() -> None:
        async with Registrar(SERVER_ID, port=0, transports=("udp",), passwords=PASSWORD,
                             store=path, store_flush_interval=0.05) as reg:
            await _register(reg, ids)
            host, port = reg.address
            async with Device(ids[0], password=PASSWORD, server=f"udp://{host}:{port}",
                              keepalive_interval=None, t1=0.05):
                pass  # registers and unregisters
            await asyncio.sleep(0.2)

    async def second() -> list[str]:
        async with Registrar(SERVER_ID, port=0, transports=("udp",), passwords=PASSWORD,
                             store=path) as reg:
            return list(reg.bindings)

    asyncio.run(first())
    assert asyncio.run(second()) == [ids[1]]


_KILLED_CHILD = """
import asyncio, sys
from gbsip.registrar import Registrar

async def main():
    reg = Registrar("34020000002000000001", port=0, transports=("udp",),
                    passwords="12345678", store=sys.argv[1], store_flush_interval=0.2)
    await reg.start()
    print(reg.address[1], flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


@pytest.mark.slow
@pytest.mark.timing
def test_bindings_survive_kill_9_under_load(tmp_path: Path) -> None:
    """Issue 12: `kill -9` a registrar while devices register: every
    binding acknowledged with 200 OK more than a flush interval before the
    kill is there after the restart."""
    import os
    import signal
    import subprocess
    import sys
    import tempfile
    import time

    path = str(tmp_path / "bindings.db")
    child = subprocess.Popen([sys.executable, "-c", _KILLED_CHILD, path],
                             stdout=subprocess.PIPE, text=True, cwd=tempfile.gettempdir())
    try:
        assert child.stdout is not None
        port = int(child.stdout.readline())
        acked: list[tuple[float, str]] = []

        async def load() -> None:
            sim = Simulator(2000, server=f"udp://127.0.0.1:{port}", rate=1000,
                            duration=60, keepalive_interval=None, unregister=False,
                            on_events=lambda evs: acked.extend(
                                (time.monotonic(), e.device_id or "") for e in evs
                                if isinstance(e, Registered)))
            async with sim:
                run = asyncio.ensure_future(sim.run())
                await asyncio.sleep(1.5)  # kill mid-ramp
                os.kill(child.pid, signal.SIGKILL)
                killed_at = time.monotonic()
                sim.stop()
                # What was in flight to the dead registrar would settle only
                # at Timer F (32 s); the acknowledgements are all in.
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(run, 1)
            load.killed_at = killed_at  # type: ignore[attr-defined]

        import contextlib
        asyncio.run(load())
        killed_at = load.killed_at  # type: ignore[attr-defined]
    finally:
        child.kill()
        child.wait()
    # One flush interval (0.2 s), plus a margin for the write itself and
    # for a loaded machine running the child's flush timer late (the ASan
    # pass runs this two to three times slower).
    safe = {d for t, d in acked if t < killed_at - 0.2 - 0.6}
    assert len(safe) > 100

    async def after() -> set[str]:
        async with Registrar(SERVER_ID, port=0, transports=("udp",), passwords=PASSWORD,
                             store=path) as reg:
            return set(reg.bindings)

    assert safe <= asyncio.run(after())


@pytest.mark.slow
def test_gbsip_serve_keeps_bindings_across_kill_9(tmp_path: Path) -> None:
    """Issue 12, as an operator runs it: `gbsip serve` keeps its bindings in
    SQLite by default; killed with SIGKILL and started again on the same
    port, it says how many it restored and has them all."""
    import json
    import os
    import signal
    import subprocess
    import sys
    import time

    from device_helpers import free_port

    port = free_port()
    cmd = [sys.executable, "-m", "gbsip", "serve", "--port", str(port), "--transport", "udp",
           "--quiet", "--json", "--store-flush", "0.1", "--min-expires", "60"]
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path / "state"))

    def start() -> tuple[subprocess.Popen[str], dict[str, object]]:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env,
                                cwd=str(tmp_path))
        assert proc.stdout is not None
        return proc, json.loads(proc.stdout.readline())

    first, hello = start()
    try:
        assert hello["restored"] == 0
        assert str(hello["store"]).startswith(str(tmp_path / "state"))
        done = subprocess.run([sys.executable, "-m", "gbsip", "simulate", "--server",
                               f"udp://127.0.0.1:{port}", "--devices", "300", "--rate", "1000",
                               "--duration", "1", "--no-unregister"],
                              capture_output=True, text=True, timeout=120, env=env,
                              cwd=str(tmp_path))
        assert done.returncode == 0, done.stdout + done.stderr
        time.sleep(0.5)  # more than a flush interval
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
        second, hello = start()
        try:
            assert hello["restored"] == 300
        finally:
            second.send_signal(signal.SIGINT)
            second.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
