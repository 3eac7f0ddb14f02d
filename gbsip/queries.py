"""What a platform's requests to its devices return (``Registrar.query``,
``control``, ``subscribe``): small frozen values, never exceptions for
what a device did or did not answer.

A timeout, a partial Catalog or a refusal is a result saying what arrived
and what is missing (``complete``, ``missing``, ``timed_out``, ``status``);
only misuse (an unknown device, a registrar that is not running) raises.
See docs/registrar.md ("The platform side").
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gbsip.manscdp import Document, Item

__all__ = [
    "ControlResult",
    "QUERY_TYPES",
    "QueryResult",
    "SUBSCRIPTION_EVENTS",
    "SubscribeResult",
    "Subscription",
]

#: Query CmdTypes by their lower-case names (``"catalog"`` -> ``"Catalog"``).
QUERY_TYPES: dict[str, str] = {n.lower(): n for n in (
    "Catalog", "DeviceInfo", "DeviceStatus", "RecordInfo", "ConfigDownload", "PresetQuery")}

#: Subscribable CmdTypes (§9.11) and the SIP Event package each uses.
SUBSCRIPTION_EVENTS: dict[str, str] = {
    "Catalog": "Catalog", "Alarm": "presence", "MobilePosition": "presence"}


@dataclass(frozen=True)
class QueryResult:
    """The outcome of a MANSCDP query (§9.5): the SIP answer to the MESSAGE
    and every part of the device's ``<Response>`` that arrived.

    ``status`` is the SIP final status of the query (``None``: none came);
    ``items`` the typed list entries of all parts (Catalog, RecordInfo,
    PresetQuery, DeviceStatus alarms), without duplicates; ``sum_num`` the
    device's ``SumNum`` (``None`` when it sent none); ``missing`` how many
    items ``SumNum`` promised that did not arrive (``None``: unknown);
    ``complete`` says the SIP answer was 2xx and every promised item came.
    ``response_before_answer``: a part arrived before the SIP final answer
    (GB/T 28181 wants the 200 first)."""

    device_id: str
    cmd_type: str
    sn: int
    status: int | None
    reason: str | None
    items: tuple[Item, ...]
    sum_num: int | None
    parts_received: int
    duplicates: int
    complete: bool
    missing: int | None
    elapsed: float
    timed_out: bool = False
    response_before_answer: bool = False
    error: str | None = None
    #: Every part as parsed, in arrival order.
    documents: tuple[Document, ...] = field(default=(), compare=False, repr=False)

    @property
    def ok(self) -> bool:
        return self.complete

    @property
    def document(self) -> Document | None:
        """The first part (the whole answer of a one-part query)."""
        return self.documents[0] if self.documents else None

    def text(self, path: str, default: str | None = None) -> str | None:
        """A field of the first part (``result.text("DeviceName")``)."""
        doc = self.document
        return doc.text(path, default) if doc is not None else default

    def fields(self) -> dict[str, str | None]:
        """The first part's fields beside its item lists: top-level values
        (``Online``, ``Status``, ``DeviceTime``…) and those of groups one
        level down by path (``BasicParam/Expiration``)."""
        doc = self.document
        out: dict[str, str | None] = {}
        if doc is None:
            return out
        for e in doc.element.children:
            if e.name in ("CmdType", "SN", "DeviceID"):
                continue
            if not e.children:
                out[e.name] = e.value
            elif not any(c.name == "Item" for c in e.children):
                out.update((f"{e.name}/{c.name}", c.value) for c in e.children
                           if not c.children)
        return out

    def as_dict(self) -> dict[str, Any]:
        from dataclasses import asdict, fields as dc_fields
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in dc_fields(self)
                               if f.name not in ("documents", "items")}
        out["items"] = [asdict(i) for i in self.items]
        out["fields"] = self.fields()
        return out


@dataclass(frozen=True)
class ControlResult:
    """The outcome of a DeviceControl command (§9.3): the SIP answer and,
    for commands the standard answers with a ``<Response>``, its ``Result``
    (``"OK"``/``"ERROR"``); ``complete`` once all that is expected came."""

    device_id: str
    command: str
    sn: int
    status: int | None
    reason: str | None
    result: str | None
    complete: bool
    elapsed: float
    timed_out: bool = False
    response_before_answer: bool = False
    error: str | None = None
    document: Document | None = field(default=None, compare=False, repr=False)

    @property
    def ok(self) -> bool:
        return self.complete and self.result in (None, "OK")


@dataclass
class Subscription:
    """A subscription dialog (§9.11, RFC 6665) to refresh or end with
    ``Registrar.refresh_subscription()`` / ``unsubscribe()``."""

    device_id: str
    cmd_type: str
    event: str
    call_id: str
    from_tag: str
    to_tag: str | None
    cseq: int
    expires: int
    body_fields: tuple[Any, ...] = ()
    #: Refreshes sent by ``subscribe(..., refresh=True)`` and answered 2xx.
    refreshes: int = 0


@dataclass(frozen=True)
class SubscribeResult:
    """The outcome of a SUBSCRIBE (§9.11): the SIP answer, the granted
    ``expires`` (the answer's Expires, else the one asked) and the
    :class:`Subscription` to refresh or end (``None`` when refused)."""

    device_id: str
    cmd_type: str
    event: str
    sn: int
    status: int | None
    reason: str | None
    expires: int
    complete: bool
    elapsed: float
    subscription: Subscription | None = field(default=None, compare=False)
    timed_out: bool = False
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.complete
