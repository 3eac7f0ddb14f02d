"""A registrar's bindings kept in a store (gbsip.store), off the hot path.

The core lists the device IDs whose binding changed (``track_changes``);
every ``interval`` seconds the keeper takes that list in one call, turns it
into :class:`StoredBinding` rows (times as Unix seconds) and hands the batch
to the store.  A batch the store refused is kept and tried again with the
next one, newest state winning.  On start the keeper puts back what the
store holds for this node, each binding with the lifetime it has left.
"""
from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from gbsip import _core
from gbsip._drive import Clock
from gbsip.store import BindingStore, StoredBinding, StoreError

_TRANSPORTS = ("udp", "tcp")


class BindingKeeper:
    def __init__(self, core: _core.RegistrarCore, store: BindingStore, *, node: str,
                 interval: float) -> None:
        self.core = core
        self.store = store
        self.node = node
        self.interval = interval
        self.restored = 0
        self.skipped = 0           # stored rows no longer usable (no live contact)
        self.batches = 0
        self.written = 0
        self.errors = 0
        self.last_error: str | None = None
        self._clock: Clock | None = None
        self._pending: dict[str, StoredBinding | None] = {}
        self._task: asyncio.Task[None] | None = None

    async def restore(self, clock: Clock) -> None:
        """Put back this node's bindings; start listing changes."""
        self._clock = clock
        self.core.track_changes(True)
        now_unix = clock.unix_now()
        now_ms = clock.now_ms()

        def ms(unix: float) -> int:
            return now_ms + round((unix - now_unix) * 1000)

        for b in await self.store.load(now_unix, self.node):
            contacts = [(uri, ms(exp)) for uri, exp in b.contacts if exp > now_unix]
            try:
                self.core.restore(
                    b.device_id, contacts, b.user_agent, b.call_id, b.cseq, b.source[0],
                    b.source[1], _TRANSPORTS.index(b.transport) if b.transport in _TRANSPORTS
                    else 0, ms(b.registered_at),
                    ms(b.last_keepalive) if b.last_keepalive else 0, b.online, now_ms)
            except ValueError:
                self.skipped += 1
                continue
            self.restored += 1

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.flush()

    async def flush(self) -> None:
        """Write what changed since the last flush (one batch)."""
        assert self._clock is not None
        unix = self._clock.unix
        changed, removed = self.core.take_changes()
        for (t, contacts) in changed:
            (device_id, _contact, _n, ua, call_id, cseq, src, expires_at, registered_at,
             last_ka, online) = t
            self._pending[device_id] = StoredBinding(
                device_id=device_id,
                contacts=tuple((uri, unix(exp)) for uri, exp in contacts),
                user_agent=ua, call_id=call_id or "", cseq=cseq, source=(src[0], src[1]),
                transport=_TRANSPORTS[src[2]] if 0 <= src[2] < 2 else "udp",
                expires_at=unix(expires_at), registered_at=unix(registered_at),
                last_keepalive=unix(last_ka) if last_ka else None, online=online,
                node=self.node)
        for device_id in removed:
            self._pending[device_id] = None
        if not self._pending:
            return
        batch, self._pending = self._pending, {}
        rows = [b for b in batch.values() if b is not None]
        gone = [d for d, b in batch.items() if b is None]
        try:
            await self.store.save(rows, gone, self.node)
        except StoreError as exc:
            self.errors += 1
            self.last_error = str(exc)
            # keep them for the next batch; what changed since is newer
            batch.update(self._pending)
            self._pending = batch
            return
        self.batches += 1
        self.written += len(batch)

    async def close(self) -> None:
        """Stop flushing; write what is left; close the store."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._clock is not None:
            with contextlib.suppress(StoreError):
                await self.flush()
        await self.store.close()

    def stats(self) -> dict[str, Any]:
        return {"store_restored": self.restored, "store_skipped": self.skipped,
                "store_batches": self.batches, "store_written": self.written,
                "store_errors": self.errors, "store_pending": len(self._pending)}
