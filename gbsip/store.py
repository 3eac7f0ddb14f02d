"""Bindings that survive a restart: where a :class:`gbsip.Registrar` keeps them.

A registrar with a store loads the bindings it holds when it starts (each
with the lifetime it has left) and, every ``flush_interval`` seconds, writes
the bindings that changed since the last flush in one batch, off the hot
path: the core keeps the list of changed device IDs, the registrar turns
them into :class:`StoredBinding` rows and hands them to the store.

- :class:`SQLiteStore`: one file, WAL mode, written from a worker thread;
  what ``gbsip serve`` uses by default (``--store PATH``, ``--no-store``).
- :class:`RedisStore`: a Redis server shared by several registrar processes
  or machines (``--store redis://host:port/db``), spoken to directly (RESP,
  no client library needed).

Every binding acknowledged with 200 OK more than one flush interval before
the process died is there after the restart (give or take the time the
write takes and how late a busy event loop runs the flush timer); one
acknowledged within the last interval may be missing (the device registers
again at its next refresh).  Times are Unix seconds, so a store outlives the monotonic clock
of the process that wrote it.
"""
from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Protocol
from urllib.parse import urlsplit

from gbsip.errors import ConfigurationError, GBSIPError

__all__ = [
    "BindingStore",
    "RedisStore",
    "SQLiteStore",
    "StoreError",
    "StoredBinding",
    "open_store",
]


class StoreError(GBSIPError):
    """The binding store cannot be read or written (the message says which
    store and why)."""


@dataclass(frozen=True)
class StoredBinding:
    """One device's binding as a store keeps it (times are Unix seconds)."""

    device_id: str
    contacts: tuple[tuple[str, float], ...]   # (URI, expires_at)
    user_agent: str | None
    call_id: str
    cseq: int
    source: tuple[str, int]
    transport: str
    expires_at: float
    registered_at: float
    last_keepalive: float | None
    online: bool
    #: the registrar that holds it (``Registrar(node=...)``); a shared store
    #: holds the bindings of several
    node: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> StoredBinding:
        d = json.loads(text)
        return cls(
            device_id=str(d["device_id"]),
            contacts=tuple((str(u), float(e)) for u, e in d["contacts"]),
            user_agent=d["user_agent"],
            call_id=str(d["call_id"]),
            cseq=int(d["cseq"]),
            source=(str(d["source"][0]), int(d["source"][1])),
            transport=str(d["transport"]),
            expires_at=float(d["expires_at"]),
            registered_at=float(d["registered_at"]),
            last_keepalive=None if d["last_keepalive"] is None else float(d["last_keepalive"]),
            online=bool(d["online"]),
            node=str(d.get("node", "")),
        )


class BindingStore(Protocol):
    """What a registrar needs from a store.  ``save`` gets the bindings that
    changed (to be written whole) and the device IDs whose binding is gone
    from ``node``; each call is one batch, applied completely or not at all.
    Rows are kept per (node, device): in a shared store a node only ever
    writes or removes its own, and a device that moved between nodes shows
    under each that still holds a binding for it."""

    async def load(self, now: float, node: str | None = None) -> list[StoredBinding]:
        """Every binding not expired at ``now`` (Unix time), of one node or
        (None) of all."""
        ...

    async def save(self, changed: Sequence[StoredBinding], removed: Sequence[str],
                   node: str = "") -> None: ...

    async def close(self) -> None: ...


# --------------------------------------------------------------------------
# SQLite


class SQLiteStore:
    """Bindings in one SQLite file (WAL mode, ``synchronous=NORMAL``: a
    committed batch survives the process being killed).  All SQLite work
    runs in one worker thread, so the event loop never waits on the disk."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None

    def _open(self) -> sqlite3.Connection:
        if self._db is None:
            try:
                db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                db.execute("CREATE TABLE IF NOT EXISTS bindings ("
                           "node TEXT NOT NULL, device_id TEXT NOT NULL, "
                           "expires_at REAL NOT NULL, data TEXT NOT NULL, "
                           "PRIMARY KEY (node, device_id))")
            except sqlite3.Error as exc:
                raise StoreError(f"cannot open the binding store {self.path!r}: {exc}") from exc
            self._db = db
        return self._db

    def _load(self, now: float, node: str | None) -> list[StoredBinding]:
        with self._lock:
            db = self._open()
            try:
                db.execute("DELETE FROM bindings WHERE expires_at <= ?", (now,))
                rows = db.execute("SELECT data FROM bindings").fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"cannot read the binding store {self.path!r}: {exc}") from exc
        found = (StoredBinding.from_json(data) for (data,) in rows)
        return [b for b in found if node is None or b.node == node]

    def _save(self, changed: Sequence[StoredBinding], removed: Sequence[str],
              node: str) -> None:
        with self._lock:
            db = self._open()
            try:
                db.execute("BEGIN")
                db.executemany(
                    "INSERT OR REPLACE INTO bindings (node, device_id, expires_at, data) "
                    "VALUES (?, ?, ?, ?)",
                    [(b.node, b.device_id, b.expires_at, b.to_json()) for b in changed])
                db.executemany("DELETE FROM bindings WHERE node = ? AND device_id = ?",
                               [(node, d) for d in removed])
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise StoreError(f"cannot write the binding store {self.path!r}: {exc}") from exc

    async def load(self, now: float, node: str | None = None) -> list[StoredBinding]:
        return await asyncio.to_thread(self._load, now, node)

    async def save(self, changed: Sequence[StoredBinding], removed: Sequence[str],
                   node: str = "") -> None:
        if changed or removed:
            await asyncio.to_thread(self._save, changed, removed, node)

    async def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


# --------------------------------------------------------------------------
# Redis


class _RespError(Exception):
    pass


class _Resp:
    """The few RESP2 exchanges the store needs, pipelined on one connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @staticmethod
    def encode(*args: str | bytes) -> bytes:
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            b = a.encode() if isinstance(a, str) else a
            out.append(b"$%d\r\n%s\r\n" % (len(b), b))
        return b"".join(out)

    async def reply(self) -> object:
        line = await self.reader.readline()
        if not line.endswith(b"\r\n"):
            raise ConnectionError("connection closed by the Redis server")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise _RespError(rest.decode(errors="replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = await self.reader.readexactly(n + 2)
            return data[:-2]
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [await self.reply() for _ in range(n)]
        raise ConnectionError(f"not a RESP reply: {line[:40]!r}")

    async def pipeline(self, commands: Iterable[tuple[str | bytes, ...]]) -> list[object]:
        cmds = list(commands)
        self.writer.write(b"".join(self.encode(*c) for c in cmds))
        await self.writer.drain()
        return [await self.reply() for _ in cmds]


class RedisStore:
    """Bindings in a Redis hash (``<prefix>bindings``: ``node<US>device ID``
    -> JSON), shared by every registrar pointed at the same server and
    prefix.  Each batch is one MULTI/EXEC transaction."""

    def __init__(self, host: str = "127.0.0.1", port: int = 6379, db: int = 0,
                 prefix: str = "gbsip:", password: str | None = None) -> None:
        self.host, self.port, self.db = host, port, db
        self.key = f"{prefix}bindings"
        self.password = password
        self._conn: _Resp | None = None
        self._lock = asyncio.Lock()

    @classmethod
    def from_url(cls, url: str) -> RedisStore:
        """``redis://[:password@]host[:port][/db]``."""
        u = urlsplit(url)
        if u.scheme != "redis" or not u.hostname:
            raise ConfigurationError(f"{url!r}: a Redis store is redis://HOST[:PORT][/DB]")
        path = u.path.strip("/")
        if path and not path.isdigit():
            raise ConfigurationError(f"{url!r}: the database must be a number")
        return cls(u.hostname, u.port or 6379, int(path or 0), password=u.password)

    def __str__(self) -> str:
        return f"redis://{self.host}:{self.port}/{self.db}"

    async def _call(self, commands: list[tuple[str | bytes, ...]]) -> list[object]:
        async with self._lock:
            try:
                if self._conn is None:
                    reader, writer = await asyncio.open_connection(self.host, self.port)
                    conn = _Resp(reader, writer)
                    setup: list[tuple[str | bytes, ...]] = []
                    if self.password:
                        setup.append(("AUTH", self.password))
                    setup.append(("SELECT", str(self.db)))
                    await conn.pipeline(setup)
                    self._conn = conn
                return await self._conn.pipeline(commands)
            except (OSError, ConnectionError, asyncio.IncompleteReadError, _RespError) as exc:
                await self._drop()
                raise StoreError(f"binding store {self}: {exc}") from exc

    async def _drop(self) -> None:
        if self._conn is not None:
            self._conn.writer.close()
            self._conn = None

    async def load(self, now: float, node: str | None = None) -> list[StoredBinding]:
        (flat,) = await self._call([("HGETALL", self.key)])
        assert isinstance(flat, list)
        out, stale = [], []
        for i in range(0, len(flat), 2):
            b = StoredBinding.from_json(flat[i + 1])
            if b.expires_at <= now:
                stale.append(b)
            elif node is None or b.node == node:
                out.append(b)
        if stale:
            await self._call([("HDEL", self.key, *(_field(b.node, b.device_id) for b in stale))])
        return out

    async def save(self, changed: Sequence[StoredBinding], removed: Sequence[str],
                   node: str = "") -> None:
        if not changed and not removed:
            return
        cmds: list[tuple[str | bytes, ...]] = [("MULTI",)]
        if changed:
            pairs: list[str] = []
            for b in changed:
                pairs += (_field(b.node, b.device_id), b.to_json())
            cmds.append(("HSET", self.key, *pairs))
        if removed:
            cmds.append(("HDEL", self.key, *(_field(node, d) for d in removed)))
        cmds.append(("EXEC",))
        await self._call(cmds)

    async def close(self) -> None:
        async with self._lock:
            await self._drop()


def _field(node: str, device_id: str) -> str:
    return f"{node}\x1f{device_id}"


def open_store(spec: str) -> BindingStore:
    """A store from a command-line spec: ``redis://…`` or a file path."""
    if spec.startswith("redis://"):
        return RedisStore.from_url(spec)
    if "://" in spec:
        raise ConfigurationError(f"{spec!r}: a store is a file path or redis://HOST:PORT/DB")
    return SQLiteStore(spec)
