"""GB/T 28181 device checks: registration, Digest, keepalive, refresh,
recovery, unregistration.  gbsip plays the platform (``rig``).

The checks watch one session of the camera and run in this order: the
record of everything the camera sent is shared, and some checks steer the
platform (stop answering keepalives, ask for unregistration).
"""
from __future__ import annotations

import subprocess
import time
from typing import IO

import pytest

import gbsip
from gbsip.conformance import check
from gbsip.conformance._common import GBOptions
from gbsip.conformance._platform_rig import (
    AuthCheck,
    Dialog,
    Exchange,
    PlatformRig,
    Seen,
    keepalive_problems,
)
from gbsip.conformance.device._process import exit_report, wait_registered



def unregister_command(gb_options: GBOptions,
                       proc: subprocess.Popen[bytes] | None) -> str | None:
    """--gb-unregister-cmd with {pid} replaced by the --gb-device-cmd process id."""
    if gb_options.unregister_cmd is None:
        return None
    return gb_options.unregister_cmd.replace("{pid}", str(proc.pid) if proc is not None else "")


def _tolerance(interval: float) -> float:
    """How far a keepalive may stray from its interval (timers, scheduling)."""
    return max(0.2 * interval, 0.25)


def _keepalives(rig: PlatformRig) -> list[Seen]:
    return rig.of_kind("keepalive")


@check("D01", "GB/T 28181-2016 §9.1.2.1")
def test_registers_within_timeout(rig: PlatformRig,
                                  device_process: subprocess.Popen[bytes] | None,
                                  device_stderr: IO[bytes], gb_options: GBOptions) -> None:
    """The camera registers (REGISTER, 401, REGISTER with credentials, 200)
    within ``--gb-register-timeout`` seconds of the suite starting to listen
    (GB/T 28181-2016 §9.1.2.1); a ``--gb-device-cmd`` process that fails
    (exits non-zero) first fails the check at once, with its exit status
    and stderr."""
    if wait_registered(rig, device_process, rig.until(rig.started, gb_options.register_timeout)):
        return
    gone = exit_report(device_process, device_stderr)
    seen = rig.of_kind("register")
    if not seen:
        raise rig.trace.fail(f"no REGISTER arrived at {gb_options.listen}"
                             + (f": {gone}" if gone else
                                f" within {gb_options.register_timeout:g} s"))
    problems = [p for c in rig.auth_checks for p in c.problems]
    raise rig.trace.fail(f"{len(seen)} REGISTER(s) arrived but none was accepted"
                         + (f"; credential problems: {problems}" if problems else "")
                         + (f"; {gone}" if gone else ""))


@check("D02", "RFC 3261 §10.2, §8.1.1.7; GB/T 28181-2016 §9.1.2.1")
def test_register_is_well_formed(registered: PlatformRig, gb_options: GBOptions) -> None:
    """The first REGISTER names the device in From and To (the address of
    record ``sip:<deviceID>@<domain>``), has a From tag, a Contact, an RFC
    3261 branch (``z9hG4bK``), Max-Forwards and an expiry (RFC 3261 §10.2,
    §8.1.1.7; GB/T 28181-2016 §9.1.2.1)."""
    rig = registered
    first = rig.of_kind("register", "unregister")[0].request
    problems = []
    for name, value in (("From", first.from_), ("To", first.to)):
        user = gbsip.parse_uri(value.uri).user if value is not None else None
        if user != gb_options.device_id:
            problems.append(f"{name} user is {user!r}, expected {gb_options.device_id}")
    if first.from_ is not None and not first.from_.tag:
        problems.append("From has no tag")
    if not first.contacts:
        problems.append("no Contact")
    branch = first.via.branch if first.via is not None else None
    if not branch or not branch.startswith("z9hG4bK"):
        problems.append(f"Via branch {branch!r} lacks the z9hG4bK magic cookie")
    if first.max_forwards is None:
        problems.append("no Max-Forwards")
    if first.expires is None and all(c.expires is None for c in first.contacts):
        problems.append("no Expires header or Contact expires parameter")
    if problems:
        raise rig.trace.fail("first REGISTER: " + "; ".join(problems))


def _first_answer(rig: PlatformRig, qop: bool) -> AuthCheck | None:
    for c in list(rig.auth_checks):
        if c.nonce.qop is qop:
            return c
    return None


@check("D03", "GB/T 28181-2016 §9.1.2.1; RFC 2617 §3.2.2; RFC 3261 §22.2")
def test_answers_md5_challenge_without_qop(registered: PlatformRig) -> None:
    """The answer to ``Digest realm, nonce, algorithm=MD5`` (no qop, as in
    the seed registration) has the device ID as username, the challenge's
    realm and nonce, no qop, and the right MD5 response (GB/T 28181-2016
    §9.1.2.1; RFC 2617 §3.2.2; RFC 3261 §22.2)."""
    rig = registered
    answer = _first_answer(rig, qop=False)
    if answer is None:
        raise rig.trace.fail("the camera never answered a challenge without qop")
    if answer.problems:
        raise rig.trace.fail("answer to the MD5 challenge without qop: "
                             + "; ".join(answer.problems))


# -- the camera's answers to the platform's queries (--gb-queries) ----------------
# Run right after registration, before the checks that steer the session.


@pytest.fixture(scope="session")
def queries_on(gb_options: GBOptions) -> None:
    if not gb_options.queries:
        pytest.skip("the query checks run with --gb-queries (a camera that answers "
                    "MANSCDP queries, GB/T 28181 §9.5)")


def _sum_nums(ex: Exchange) -> list[int | None]:
    out: list[int | None] = []
    for _at, _seen, doc in ex.responses:
        text = doc.text("SumNum")
        out.append(int(text) if text is not None and text.strip().isdigit() else None)
    return out


def _sum_num_problems(ex: Exchange, got: int, what: str) -> list[str]:
    """What is wrong with the SumNum of an answer in parts (A.2.6): every
    part has one, all agree, and ``got`` items arrived in all."""
    problems = []
    sums = _sum_nums(ex)
    if None in sums:
        problems.append(f"{sums.count(None)} of {len(sums)} part(s) without SumNum")
    if len({n for n in sums if n is not None}) > 1:
        problems.append(f"the parts disagree on SumNum: {sums}")
    total = max((n for n in sums if n is not None), default=None)
    if total is not None and got != total:
        problems.append(f"SumNum {total} but {got} {what} arrived")
    return problems


def _catalog_items(ex: Exchange) -> set[str]:
    return {item.text("DeviceID") or "" for _at, _seen, doc in ex.responses
            for item in doc.find("DeviceList/Item")}


def _catalog_done(ex: Exchange) -> bool:
    sums = [n for n in _sum_nums(ex) if n is not None]
    return ex.final_answer is not None and bool(ex.responses) and (
        not sums or len(_catalog_items(ex)) >= max(sums))


_EXCHANGES: dict[str, Exchange] = {}


def _exchange(rig: PlatformRig, gb_options: GBOptions, cmd_type: str) -> Exchange:
    """One query per CmdType per session, shared by the checks reading it."""
    if cmd_type not in _EXCHANGES:
        done = _catalog_done if cmd_type == "Catalog" else (
            lambda ex: ex.final_answer is not None and bool(ex.responses))
        _EXCHANGES[cmd_type] = rig.exchange(cmd_type, gb_options.timeout * 2, complete=done)
    return _EXCHANGES[cmd_type]


@check("D12", "GB/T 28181-2016 §9.5.1, A.2.6.4; GB/T 28181-2022 Annex M")
def test_query_catalog_parts(registered: PlatformRig, gb_options: GBOptions,
                             queries_on: None) -> None:
    """The camera answers a Catalog query with ``<Response>`` MESSAGE(s):
    every part carries the same ``SumNum``, its ``DeviceList Num`` counts
    its own items, and the parts together hold ``SumNum`` distinct items
    (GB/T 28181-2016 §9.5.1, A.2.6.4; 2022 Annex M)."""
    rig = registered
    ex = _exchange(rig, gb_options, "Catalog")
    if not ex.responses:
        raise rig.trace.fail("no Catalog <Response> arrived")
    problems = _sum_num_problems(ex, len(_catalog_items(ex)), "distinct item(s)")
    for _at, _seen, doc in ex.responses:
        num = doc.attr("DeviceList", "Num")
        items = len(doc.find("DeviceList/Item"))
        if num is None or not num.isdigit() or int(num) != items:
            problems.append(f"DeviceList Num={num!r} but {items} Item(s) in a part")
    if problems:
        raise rig.trace.fail("Catalog answer: " + "; ".join(problems))


@check("D13", "GB/T 28181-2016 §9.5.3, A.2.6.5")
def test_query_device_info(registered: PlatformRig, gb_options: GBOptions,
                           queries_on: None) -> None:
    """The camera answers a DeviceInfo query with a ``<Response>`` naming
    itself in ``DeviceID``, with ``Result`` or ``DeviceName``
    (GB/T 28181-2016 §9.5.3, A.2.6.5)."""
    rig = registered
    ex = _exchange(rig, gb_options, "DeviceInfo")
    if not ex.responses:
        raise rig.trace.fail("no DeviceInfo <Response> arrived")
    doc = ex.responses[0][2]
    problems = []
    if doc.device_id != gb_options.device_id:
        problems.append(f"DeviceID {doc.device_id!r}, expected {gb_options.device_id}")
    if doc.text("Result") is None and doc.text("DeviceName") is None:
        problems.append("neither Result nor DeviceName")
    if problems:
        raise rig.trace.fail("DeviceInfo answer: " + "; ".join(problems))


@check("D14", "GB/T 28181-2016 A.2.1, §9.5")
def test_query_sn_and_charset(registered: PlatformRig, gb_options: GBOptions,
                              queries_on: None) -> None:
    """Every answer echoes its query's ``SN`` and declares its charset in
    the XML declaration (``encoding="GB2312"`` as devices send)
    (GB/T 28181-2016 A.2.1, §9.5)."""
    rig = registered
    problems = []
    for cmd in ("Catalog", "DeviceInfo"):
        ex = _exchange(rig, gb_options, cmd)
        for _at, _seen, doc in ex.responses:
            if doc.sn != ex.sn:
                problems.append(f"{cmd} answer has SN {doc.sn}, the query had {ex.sn}")
            if doc.charset is None:
                problems.append(f"{cmd} answer declares no encoding")
        if not ex.responses:
            problems.append(f"no {cmd} answer to check")
    if problems:
        raise rig.trace.fail("; ".join(problems))


@check("D15", "GB/T 28181-2016 §9.5; RFC 3261 §17.2.1")
def test_query_200_before_answer(registered: PlatformRig, gb_options: GBOptions,
                                 queries_on: None) -> None:
    """The camera answers the query MESSAGE ``200 OK`` first and only then
    sends its ``<Response>`` as a request of its own (GB/T 28181-2016 §9.5;
    RFC 3261 §17.2.1)."""
    rig = registered
    for cmd in ("Catalog", "DeviceInfo"):
        ex = _exchange(rig, gb_options, cmd)
        final = ex.final_answer
        if final is None:
            raise rig.trace.fail(f"no final SIP answer to the {cmd} query")
        if not 200 <= final[1].status < 300:
            raise rig.trace.fail(f"the {cmd} query was answered {final[1].status}")
        first = ex.first_response_at
        if first is not None and first < final[0]:
            raise rig.trace.fail(f"the {cmd} <Response> arrived before the 200 to the query")


def _notifies(rig: PlatformRig, call_id: str, after: float) -> list[Seen]:
    return [s for s in rig.snapshot()
            if s.kind == "notify" and s.request.call_id == call_id and s.at >= after]


def _answered(ex: Exchange) -> bool:
    return ex.final_answer is not None


def _check_2xx(rig: PlatformRig, ex: Exchange, what: str) -> gbsip.Response:
    final = ex.final_answer
    if final is None:
        raise rig.trace.fail(f"no final SIP answer to the {what}")
    if not 200 <= final[1].status < 300:
        raise rig.trace.fail(f"the {what} was answered {final[1].status} {final[1].reason}")
    return final[1]


@check("D16", "GB/T 28181-2016 §9.5, A.2.4 DeviceStatus, A.2.6")
def test_query_device_status(registered: PlatformRig, gb_options: GBOptions,
                             queries_on: None) -> None:
    """The camera answers a DeviceStatus query with a ``<Response>``
    holding ``Result``, ``Online`` (ONLINE/OFFLINE), ``Status`` (OK/ERROR)
    and ``DeviceTime`` (GB/T 28181-2016 §9.5, A.2.6)."""
    rig = registered
    ex = _exchange(rig, gb_options, "DeviceStatus")
    if not ex.responses:
        raise rig.trace.fail("no DeviceStatus <Response> arrived")
    doc = ex.responses[0][2]
    problems = [f"no {name}" for name in ("Result", "Online", "Status", "DeviceTime")
                if not (doc.text(name) or "").strip()]
    online = (doc.text("Online") or "").strip().upper()
    if online and online not in ("ONLINE", "OFFLINE"):
        problems.append(f"Online is {online!r}, expected ONLINE or OFFLINE")
    status = (doc.text("Status") or "").strip().upper()
    if status and status not in ("OK", "ERROR", "ON", "OFF"):
        problems.append(f"Status is {status!r}, expected OK or ERROR")
    if problems:
        raise rig.trace.fail("DeviceStatus answer: " + "; ".join(problems))


@check("D17", "GB/T 28181-2016 §9.5, A.2.4 ConfigDownload BasicParam, A.2.6")
def test_query_config_basic_param(registered: PlatformRig, gb_options: GBOptions,
                                  queries_on: None) -> None:
    """ConfigDownload ``BasicParam`` is answered with ``Name``,
    ``Expiration``, ``HeartBeatInterval`` and ``HeartBeatCount`` that agree
    with how the camera behaves: Expiration is the lifetime its REGISTER
    asked for, HeartBeatCount is ``--gb-keepalive-timeout-count`` and
    HeartBeatInterval ``--gb-keepalive-interval`` (to the second)."""
    rig = registered
    ex = rig.exchange("ConfigDownload", gb_options.timeout * 2,
                      complete=lambda e: _answered(e) and bool(e.responses),
                      fields=[("ConfigType", "BasicParam")])
    if not ex.responses:
        raise rig.trace.fail("no ConfigDownload <Response> arrived")
    doc = ex.responses[0][2]
    problems = [f"no BasicParam/{name}" for name in
                ("Name", "Expiration", "HeartBeatInterval", "HeartBeatCount")
                if doc.text(f"BasicParam/{name}") is None]

    def number(name: str) -> float | None:
        text = (doc.text(f"BasicParam/{name}") or "").strip()
        try:
            return float(text)
        except ValueError:
            if text:
                problems.append(f"BasicParam/{name} {text!r} is not a number")
            return None

    asked = [s.expires for s in rig.of_kind("register") if s.expires]
    expiration = number("Expiration")
    if expiration is not None and asked and int(expiration) != asked[-1]:
        problems.append(f"Expiration {int(expiration)} but the camera's REGISTER asked "
                        f"for {asked[-1]} s")
    interval = number("HeartBeatInterval")
    if interval is not None and abs(interval - gb_options.keepalive_interval) > 1:
        problems.append(f"HeartBeatInterval {interval:g} but --gb-keepalive-interval is "
                        f"{gb_options.keepalive_interval:g}")
    count = number("HeartBeatCount")
    if count is not None and int(count) != gb_options.keepalive_timeout_count:
        problems.append(f"HeartBeatCount {int(count)} but --gb-keepalive-timeout-count is "
                        f"{gb_options.keepalive_timeout_count}")
    if problems:
        raise rig.trace.fail("ConfigDownload BasicParam answer: " + "; ".join(problems))


@check("D18", "GB/T 28181-2016 §9.7.1, A.2.4 RecordInfo, A.2.6")
def test_query_record_info_range(registered: PlatformRig, gb_options: GBOptions,
                                 queries_on: None) -> None:
    """A RecordInfo query over a time range (today) is answered 200 and
    with ``<Response>`` part(s) each carrying the same ``SumNum``, whose
    ``RecordList`` items together number ``SumNum`` (GB/T 28181-2016
    §9.7.1, A.2.6)."""
    rig = registered
    day = time.strftime("%Y-%m-%d")

    def done(ex: Exchange) -> bool:
        sums = [n for n in _sum_nums(ex) if n is not None]
        items = sum(len(doc.find("RecordList/Item")) for _a, _s, doc in ex.responses)
        return _answered(ex) and bool(ex.responses) and bool(sums) and items >= max(sums)

    ex = rig.exchange("RecordInfo", gb_options.timeout * 2, complete=done, fields=[
        ("StartTime", f"{day}T00:00:00"), ("EndTime", f"{day}T23:59:59"), ("Secrecy", 0),
        ("Type", "all")])
    _check_2xx(rig, ex, "RecordInfo query")
    if not ex.responses:
        raise rig.trace.fail("no RecordInfo <Response> arrived")
    items = sum(len(doc.find("RecordList/Item")) for _a, _s, doc in ex.responses)
    problems = _sum_num_problems(ex, items, "record(s)")
    if problems:
        raise rig.trace.fail("RecordInfo answer: " + "; ".join(problems))


@check("D19", "GB/T 28181-2016 §9.3.2, A.2.3, A.3")
def test_query_ptz_control(registered: PlatformRig, gb_options: GBOptions,
                           queries_on: None) -> None:
    """A PTZ ``DeviceControl`` (``PTZCmd`` pan right, then stop, A.3) is
    answered 200 and draws no ``Result`` ERROR within a second of it
    (GB/T 28181-2016 §9.3.2: PTZ control has no answer of its own)."""
    from gbsip import manscdp
    rig = registered
    for ptz in (manscdp.PTZ(pan=10), manscdp.PTZ()):  # right at speed 10; stop
        cmd = ptz.code
        ex = rig.exchange("DeviceControl", gb_options.timeout, complete=_answered,
                          fields=ptz.fields(), root="Control",
                          linger=min(1.0, gb_options.timeout))
        _check_2xx(rig, ex, f"PTZ DeviceControl {cmd}")
        for _at, _seen, doc in ex.responses:
            if (doc.text("Result") or "").strip().upper() == "ERROR":
                raise rig.trace.fail(f"PTZ DeviceControl {cmd} answered Result ERROR")


@check("D20", "GB/T 28181-2016 §9.11.2; RFC 6665 §4.2.1")
def test_query_catalog_subscription(registered: PlatformRig, gb_options: GBOptions,
                                    queries_on: None) -> None:
    """SUBSCRIBE ``Event: Catalog`` (Expires 60) is answered 200 with an
    ``Expires``; a NOTIFY of that subscription that comes (same Call-ID;
    GB devices notify on a change, so none may come) carries a Catalog
    ``<Notify>`` and is answered 200; SUBSCRIBE ``Expires: 0`` in the
    dialog ends it with 200 (GB/T 28181-2016 §9.11.2; RFC 6665)."""
    rig = registered
    ex = rig.exchange("Catalog", gb_options.timeout, complete=_answered, method="SUBSCRIBE",
                      headers=[("Event", "Catalog"), ("Expires", "60")])
    answer = _check_2xx(rig, ex, "Catalog SUBSCRIBE")
    if answer.expires is None:
        raise rig.trace.fail("the 200 to the SUBSCRIBE has no Expires (RFC 6665 §4.2.1.1)")
    notes = rig.wait(lambda: _notifies(rig, ex.call_id, ex.sent_at), 1.0)
    if not notes:
        rig.trace.note("no NOTIFY within 1 s of the 200 (none is due before a change)")
    for note in notes:
        if b"<Notify" not in note.request.body or b"Catalog" not in note.request.body:
            raise rig.trace.fail("a NOTIFY of the Catalog subscription has no Catalog "
                                 "<Notify> body")
        if (note.request.headers.get("Event") or "").split(";")[0].strip() != "Catalog":
            raise rig.trace.fail(f"a NOTIFY of the Catalog subscription has Event "
                                 f"{note.request.headers.get('Event')!r}")
    dialog = Dialog.of(ex, rig)
    assert dialog is not None
    end = rig.exchange("Catalog", gb_options.timeout, complete=_answered, method="SUBSCRIBE",
                       headers=[("Event", "Catalog"), ("Expires", "0")], dialog=dialog)
    _check_2xx(rig, end, "unsubscribing SUBSCRIBE (Expires: 0)")


@check("D21", "GB/T 28181-2016 §9.11.1; RFC 6665 §4.2.2")
def test_query_mobile_position_subscription(registered: PlatformRig, gb_options: GBOptions,
                                            queries_on: None) -> None:
    """SUBSCRIBE MobilePosition (``Event: presence``, ``Interval`` 1) is
    answered 200 and NOTIFYs come about every second: three within 3.5 s,
    none closer than 0.5 s (GB/T 28181-2016 §9.11.1).  Expires 0 ends it."""
    rig = registered
    ex = rig.exchange("MobilePosition", gb_options.timeout, complete=_answered,
                      method="SUBSCRIBE", fields=[("Interval", 1)],
                      headers=[("Event", "presence"), ("Expires", "30")])
    _check_2xx(rig, ex, "MobilePosition SUBSCRIBE")
    final = ex.final_answer
    start = final[0] if final is not None else ex.sent_at

    def three() -> list[Seen]:
        found = _notifies(rig, ex.call_id, ex.sent_at)
        return found if len(found) >= 3 else []

    notes = rig.wait(three, max(0.0, start + 3.5 - time.monotonic()))
    got = _notifies(rig, ex.call_id, ex.sent_at)
    dialog = Dialog.of(ex, rig)
    if dialog is not None:
        rig.exchange("MobilePosition", gb_options.timeout, complete=_answered,
                     method="SUBSCRIBE", fields=[("Interval", 1)],
                     headers=[("Event", "presence"), ("Expires", "0")], dialog=dialog)
    if not notes:
        raise rig.trace.fail(f"{len(got)} NOTIFY(s) of the MobilePosition subscription in "
                             "3.5 s with Interval 1; expected 3 or more")
    gaps = [b.at - a.at for a, b in zip(got, got[1:])]
    if any(g < 0.5 for g in gaps):
        raise rig.trace.fail(f"NOTIFYs {', '.join(f'{g:.2f}' for g in gaps)} s apart with "
                             "Interval 1")


@check("D04", "GB/T 28181-2016 §9.6.1")
def test_sends_keepalives_at_interval(registered: PlatformRig, gb_options: GBOptions) -> None:
    """Once registered the camera sends keepalives every
    ``--gb-keepalive-interval`` seconds (± 20 %, at least ± 0.25 s)
    (GB/T 28181-2016 §9.6.1, default 60 s)."""
    rig, interval = registered, gb_options.keepalive_interval
    limit = interval * 4 + gb_options.timeout
    kas = rig.wait(lambda: len(_keepalives(rig)) >= 3 and _keepalives(rig), limit)
    if not kas:
        raise rig.trace.fail(f"fewer than 3 keepalives in {limit:g} s "
                             f"(got {len(_keepalives(rig))})")
    gaps = [b.at - a.at for a, b in zip(kas, kas[1:])]
    bad = [g for g in gaps if abs(g - interval) > _tolerance(interval)]
    if bad:
        raise rig.trace.fail(f"keepalive gaps {[round(g, 3) for g in gaps]} s; expected "
                             f"{interval:g} ± {_tolerance(interval):g} s")


@check("D05", "GB/T 28181-2016 §9.6.1, Appendix A")
def test_keepalive_sn_grows(registered: PlatformRig, gb_options: GBOptions) -> None:
    """Each keepalive carries a larger ``SN`` than the one before
    (GB/T 28181-2016 §9.6.1; Appendix A command serial number)."""
    rig = registered
    kas = rig.wait(lambda: len(_keepalives(rig)) >= 2 and _keepalives(rig),
                   gb_options.keepalive_interval * 3 + gb_options.timeout)
    if not kas:
        pytest.skip("fewer than 2 keepalives arrived (see D04)")
    sns = [k.sn for k in kas]
    if any(b is None or a is None or b <= a for a, b in zip(sns, sns[1:])):
        raise rig.trace.fail(f"keepalive SNs in order of arrival: {sns}; each must grow")


@check("D06", "GB/T 28181-2016 §9.6.1, Appendix A")
def test_keepalive_is_well_formed_manscdp(registered: PlatformRig,
                                         gb_options: GBOptions) -> None:
    """Keepalives are ``MESSAGE sip:<serverID>@<domain>`` with ``Content-Type:
    Application/MANSCDP+xml`` and a well-formed GB2312 XML body
    ``<Notify><CmdType>Keepalive</CmdType><SN/><DeviceID/><Status>OK</Status>``
    (GB/T 28181-2016 §9.6.1, Appendix A)."""
    rig = registered
    kas = rig.wait(lambda: _keepalives(rig),
                   gb_options.keepalive_interval * 2 + gb_options.timeout)
    if not kas:
        pytest.skip("no keepalive arrived (see D04)")
    for ka in kas:
        problems = keepalive_problems(ka, gb_options)
        if problems:
            raise rig.trace.fail(f"keepalive SN {ka.sn}: " + "; ".join(problems))


@check("D07", "RFC 3261 §10.2.4; GB/T 28181-2016 §9.1.2.1")
def test_refreshes_before_expiry(registered: PlatformRig, gb_options: GBOptions) -> None:
    """The camera registers again before the granted lifetime
    (``--gb-grant-expires``) runs out (RFC 3261 §10.2.4; GB/T 28181-2016
    §9.1.2.1)."""
    rig = registered
    start, binding = rig.registrations[0]
    deadline = start + binding.granted

    def refresh() -> Seen | None:
        return next((s for s in rig.of_kind("register") if s.at > start), None)

    seen = rig.wait(refresh, max(0.0, deadline - time.monotonic()) + gb_options.timeout)
    if seen is None:
        raise rig.trace.fail(f"no refresh within the granted {binding.granted} s "
                             f"(+{gb_options.timeout:g} s)")
    if seen.at > deadline:
        raise rig.trace.fail(f"the refresh came {seen.at - start:.1f} s after the 200, "
                             f"after the granted {binding.granted} s had run out")


@check("D08", "RFC 2617 §3.2.2; RFC 7616 §3.4; GB/T 28181-2016 §9.1.2.1")
def test_answers_md5_challenge_with_qop(registered: PlatformRig,
                                        gb_options: GBOptions) -> None:
    """The answer to a challenge with ``qop="auth"`` (offered on the refresh)
    has ``qop=auth``, an 8-hex-digit ``nc``, a ``cnonce`` and the right
    response (RFC 2617 §3.2.2; RFC 7616 §3.4; GB/T 28181-2016 §9.1.2.1)."""
    rig = registered
    answer = rig.wait(lambda: _first_answer(rig, qop=True), gb_options.timeout)
    if answer is None:
        offered = any(n.qop for n in list(rig.nonces.values()))
        if not offered:
            pytest.skip("no refresh was seen, so no qop challenge was made (see D07)")
        raise rig.trace.fail("the camera did not answer the challenge with qop=\"auth\"")
    if answer.problems:
        raise rig.trace.fail("answer to the challenge with qop=auth: "
                             + "; ".join(answer.problems))


@check("D09", "GB/T 28181-2016 §9.6.1")
def test_reregisters_after_keepalive_loss(registered: PlatformRig,
                                          gb_options: GBOptions) -> None:
    """When ``--gb-keepalive-timeout-count`` keepalives in a row go
    unanswered the camera counts the platform offline and registers again
    (GB/T 28181-2016 §9.6.1: 3 by default)."""
    rig, interval = registered, gb_options.keepalive_interval
    need = gb_options.keepalive_timeout_count
    mark = len(rig.snapshot())
    rig.drop_keepalives = True
    rig.trace.note(f"platform stops answering keepalives; expecting a REGISTER after {need}")

    def reregistered() -> Seen | None:
        dropped = 0
        for s in rig.snapshot()[mark:]:
            if s.kind == "keepalive" and s.dropped:
                dropped += 1
            elif s.kind == "register" and dropped >= need:
                return s
        return None

    limit = interval * (need + 2) + gb_options.timeout
    try:
        seen = rig.wait(reregistered, limit)
    finally:
        rig.drop_keepalives = False
    dropped = sum(1 for s in rig.snapshot()[mark:] if s.dropped)
    if seen is None:
        if dropped == 0:
            raise rig.trace.fail(f"no keepalive arrived in {limit:g} s to leave unanswered")
        raise rig.trace.fail(f"{dropped} keepalives went unanswered and no REGISTER "
                             f"followed within {limit:g} s")
    # let the new registration complete before the next check
    rig.wait(lambda: any(at >= seen.at for at, _ in rig.registrations), gb_options.timeout)


@check("D10", "GB/T 28181-2016 §9.1; RFC 3261 §10.2.2")
def test_unregisters_with_expires_zero(registered: PlatformRig, gb_options: GBOptions,
                                       device_process: subprocess.Popen[bytes] | None) -> None:
    """Asked to stop (``--gb-unregister-cmd``), the camera sends REGISTER
    with ``Expires: 0`` on its Call-ID and answers the challenge, and the
    platform's 200 ends the binding (GB/T 28181-2016 §9.1; RFC 3261
    §10.2.2)."""
    rig = registered
    cmd = unregister_command(gb_options, device_process)
    if cmd is not None:
        rig.trace.note(f"asking the device to unregister: {cmd}")
        subprocess.run(cmd, shell=True, timeout=gb_options.timeout,
                       check=False)

    def done() -> Seen | None:
        return next((s for s in rig.of_kind("unregister") if s.status == 200), None)

    seen = rig.wait(done, gb_options.timeout * 2)
    if seen is not None:
        return
    attempts = rig.of_kind("unregister")
    if attempts:
        problems = [p for c in rig.auth_checks if c.seen.kind == "unregister"
                    for p in c.problems]
        raise rig.trace.fail(f"{len(attempts)} REGISTER Expires: 0 arrived but none was "
                             f"authenticated: {problems or 'no answer to the challenge'}")
    if cmd is None:
        pytest.skip("the camera did not unregister by itself and no --gb-unregister-cmd "
                    "was given to ask it")
    raise rig.trace.fail(f"no REGISTER with Expires: 0 within {gb_options.timeout * 2:g} s "
                         f"of running {cmd!r}")


@check("D11", "RFC 3261 §10.2, §8.1.3.5")
def test_keeps_call_id_and_grows_cseq(registered: PlatformRig) -> None:
    """Every REGISTER of the session (first, challenge answers, refreshes,
    re-registration, unregistration) uses one Call-ID, and each new one has
    a higher CSeq than the last (RFC 3261 §10.2, §8.1.3.5)."""
    rig = registered
    regs = [s for s in rig.snapshot() if s.method == "REGISTER"]
    call_ids = list(dict.fromkeys(s.request.call_id for s in regs))
    if len(call_ids) != 1:
        raise rig.trace.fail(f"the REGISTERs used {len(call_ids)} Call-IDs: {call_ids}")
    cseqs = [s.request.cseq.number if s.request.cseq else None for s in regs]
    if any(a is None or b is None or b <= a for a, b in zip(cseqs, cseqs[1:])):
        raise rig.trace.fail(f"REGISTER CSeqs in order of arrival: {cseqs}; each must grow")
