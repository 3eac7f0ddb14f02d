"""gbsip.manscdp: MANSCDP+xml bodies of GB/T 28181 Annex A.

Every fixture in tests/data/manscdp/ (a body and its .expect) is checked
here, decoded texts included; then one test per behaviour of the reader,
the builder and the leniencies, a truncation ladder and a hypothesis
round trip (build -> parse gives the fields back).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gbsip
from gbsip import manscdp
from gbsip.manscdp import (
    AlarmStatusItem,
    CatalogItem,
    Lenient,
    Limits,
    ManscdpBuildError,
    ManscdpError,
    PresetItem,
    RecordItem,
    Root,
)

DATA = Path(__file__).parent / "data" / "manscdp"

KEEPALIVE = (
    b'<?xml version="1.0" encoding="GB2312"?>\r\n<Notify>\r\n<CmdType>Keepalive</CmdType>\r\n'
    b"<SN>43</SN>\r\n<DeviceID>34020000001320000001</DeviceID>\r\n<Status>OK</Status>\r\n"
    b"</Notify>\r\n"
)


@dataclass(frozen=True)
class Fixture:
    name: str
    body: bytes
    expect: list[tuple[str, str]]

    def get(self, key: str) -> str | None:
        return next((v for k, v in self.expect if k == key), None)

    def lenient(self) -> Lenient:
        flags = Lenient(0)
        for name in re.split(r"[,| ]+", self.get("lenient") or ""):
            if name:
                flags |= Lenient[name]
        return flags


def _fixtures() -> list[Fixture]:
    out = []
    for xml in sorted(DATA.glob("*.xml")):
        expect = []
        for line in xml.with_suffix(".expect").read_text("utf-8").splitlines():
            if ": " in line and not line.startswith("#"):
                key, value = line.split(": ", 1)
                expect.append((key, value.strip()))
        out.append(Fixture(xml.stem, xml.read_bytes(), expect))
    return out


FIXTURES = _fixtures()
VALID = [f for f in FIXTURES if f.get("expect") == "valid"]


def _path_element(doc: manscdp.Document, path: str) -> tuple[manscdp.Element | None, int]:
    """Evaluate 'DeviceList/Item[1]/Name': [k] picks the k-th match so far."""
    element: manscdp.Element = doc.element
    rest = path
    while True:
        m = re.match(r"([^\[]+)\[(\d+)\]/?(.*)$", rest)
        step, index, rest = (m.group(1), int(m.group(2)), m.group(3)) if m else (rest, 0, "")
        found = element.find(step)
        if not rest:
            return (found[index] if index < len(found) else None), len(found)
        if index >= len(found):
            return None, 0
        element = found[index]


def _check_document(doc: manscdp.Document, fx: Fixture) -> None:
    for key, value in fx.expect:
        if key == "root":
            assert doc.root == Root(value)
        elif key == "cmd-type":
            assert doc.cmd_type == value
        elif key == "sn":
            assert doc.sn == int(value)
        elif key == "device-id":
            assert doc.device_id == value
        elif key == "charset":
            assert (doc.charset or "-").upper() == value.upper()
        elif key in ("text", "count"):
            path, _, want = value.partition(" =")
            element, count = _path_element(doc, path.strip())
            if key == "count":
                assert count == int(want)
            else:
                assert element is not None, path
                assert element.value == want.strip(), path
        elif key == "attr":
            left, _, want = value.partition(" =")
            path, _, name = left.partition(" @ ")
            element, _ = _path_element(doc, path)
            assert element is not None and element.attr(name) == want.strip()


@pytest.mark.parametrize("fx", FIXTURES, ids=[f.name for f in FIXTURES])
def test_fixture(fx: Fixture) -> None:
    """Each Annex A body parses (or fails) exactly as its .expect says."""
    if fx.get("expect") == "valid":
        doc = manscdp.parse(fx.body, lenient=fx.lenient())
        _check_document(doc, fx)
    else:
        with pytest.raises(ManscdpError) as info:
            manscdp.parse(fx.body, lenient=fx.lenient())
        err = info.value
        assert err.code == fx.get("error")
        assert err.status == int(fx.get("error-status") or 0)
        if fx.get("error-line"):
            assert err.line == int(fx.get("error-line") or 0)
        if err.document is not None:
            _check_document(err.document, fx)
    strict = fx.get("strict-error")
    if strict:
        with pytest.raises(ManscdpError) as info:
            manscdp.parse(fx.body)
        assert info.value.code == strict


@pytest.mark.parametrize("fx", VALID, ids=[f.name for f in VALID])
def test_truncation_ladder(fx: Fixture) -> None:
    """Every prefix of a valid body is an error, never a crash: a UDP
    MESSAGE that lost its tail must not parse as a shorter command."""
    end = len(fx.body.rstrip(b"\x00\r\n\t "))
    for k in range(end):
        with pytest.raises(ManscdpError) as info:
            manscdp.parse(fx.body[:k], lenient=Lenient.ALL)
        assert 0 <= info.value.offset <= k


def test_fixture_set_covers_every_command_and_role() -> None:
    """Annex A: query, response, notify, control and subscription bodies."""
    names = {f.name for f in FIXTURES}
    for name in ("keepalive-notify", "catalog-query", "catalog-response-gb2312",
                 "catalog-subscribe", "deviceinfo-response", "devicestatus-response",
                 "configdownload-response", "recordinfo-response", "presetquery-response",
                 "devicecontrol-ptz", "devicecontrol-response", "alarm-notify",
                 "alarm-subscribe", "mobileposition-notify", "mobileposition-subscribe"):
        assert name in names


# --------------------------------------------------------------- reader

def test_keepalive_fields() -> None:
    """§9.6.1: the keepalive's root, CmdType, SN, DeviceID and charset."""
    doc = manscdp.parse(KEEPALIVE)
    assert (doc.root, doc.cmd_type, doc.sn, doc.device_id) == (
        Root.NOTIFY, "Keepalive", 43, "34020000001320000001")
    assert doc.charset == "GB2312" and doc.codec == "gb18030"
    assert doc.known and doc.text("Status") == "OK" and len(doc) == 5


def test_accepts_bytearray_and_memoryview() -> None:
    """Bodies come from sockets as bytes, bytearray or memoryview."""
    assert manscdp.parse(bytearray(KEEPALIVE)).sn == 43
    assert manscdp.parse(memoryview(KEEPALIVE)).sn == 43


def test_error_is_gbsip_error_with_position() -> None:
    """Malformed bodies raise ManscdpError(GBSIPError, ValueError) saying where."""
    body = KEEPALIVE.replace(b"</Status>", b"</Stat>")
    with pytest.raises(gbsip.GBSIPError) as info:
        manscdp.parse(body)
    err = info.value
    assert isinstance(err, ManscdpError) and isinstance(err, ValueError)
    assert (err.code, err.status, err.line) == ("TAG_MISMATCH", 400, 6)
    assert body[err.offset:].startswith(b"</Stat>")
    assert "line 6" in str(err) and err.document is None


def test_unknown_cmd_type_is_501_with_document() -> None:
    """A well-formed body with a CmdType we do not implement is not 400:
    its own code, status 501, and the complete document on the error."""
    body = KEEPALIVE.replace(b"Keepalive", b"VendorPing")
    with pytest.raises(ManscdpError) as info:
        manscdp.parse(body)
    assert info.value.code == "UNKNOWN_CMD_TYPE" and info.value.status == 501
    doc = info.value.document
    assert isinstance(doc, manscdp.Document)
    assert (doc.cmd_type, doc.sn, doc.known) == ("VendorPing", 43, False)


def test_missing_sn_and_device_id_are_400() -> None:
    """A.2.1: SN and DeviceID are mandatory; their absence is answered 400."""
    for cut, code in ((b"<SN>43</SN>\r\n", "MISSING_SN"),
                      (b"<DeviceID>34020000001320000001</DeviceID>\r\n", "MISSING_DEVICE_ID")):
        with pytest.raises(ManscdpError) as info:
            manscdp.parse(KEEPALIVE.replace(cut, b""))
        assert (info.value.code, info.value.status) == (code, 400)


def test_limits_each_have_their_error() -> None:
    """Bounded memory: body size, node count and depth refuse with 513."""
    for limits, code in ((Limits(max_body=50), "TOO_LARGE"),
                         (Limits(max_nodes=4), "TOO_MANY_NODES"),
                         (Limits(max_depth=1), "TOO_DEEP")):
        with pytest.raises(ManscdpError) as info:
            manscdp.parse(KEEPALIVE, limits=limits)
        assert (info.value.code, info.value.status) == (code, 513)
    with pytest.raises(ValueError):
        manscdp.parse(KEEPALIVE, limits=Limits(max_nodes=70000))


def test_large_catalog_uses_heap_nodes() -> None:
    """A 600-item catalog (more nodes than the binding's stack array) parses."""
    items = [("Item", [("DeviceID", f"3402000000131{i:07d}"), ("Name", f"通道{i}")])
             for i in range(600)]
    body = manscdp.build(Root.RESPONSE, "Catalog", 1, "34020000001180000001",
                         [("SumNum", 600), ("DeviceList", items, {"Num": 600})])
    doc = manscdp.parse(body)
    assert len(doc.find("DeviceList/Item")) == 600
    assert doc.items[599] == CatalogItem(device_id="34020000001310000599", name="通道599")


def test_many_small_elements_within_default_limits() -> None:
    """max_nodes (4096) bounds the elements, whatever their size: 2,000
    empty elements in under 9 kB parse."""
    body = KEEPALIVE.replace(b"<Status>OK</Status>", b"<a/>" * 2000)
    assert len(body) < 9000
    assert len(manscdp.parse(body)) == 2004
    with pytest.raises(ManscdpError) as info:
        manscdp.parse(body, limits=Limits(max_nodes=2003))
    assert info.value.code == "TOO_MANY_NODES"


def test_lenient_flags_are_named_and_strict_by_default() -> None:
    """Each field quirk is one named flag; ALL is their union."""
    assert Lenient.ALL == (Lenient.TAG_CASE | Lenient.NO_DECLARATION | Lenient.PADDING
                           | Lenient.BARE_AMPERSAND)
    with pytest.raises(ValueError):
        manscdp.parse(KEEPALIVE, lenient=1 << 10)


def test_tag_case_makes_lookups_ignore_case() -> None:
    """TAG_CASE: <cmdtype>, <devicelist> are found by their Annex A names."""
    body = (b'<?xml version="1.0"?><response><cmdtype>Catalog</cmdtype><sn>1</sn>'
            b'<deviceid>1</deviceid><devicelist num="1"><item><name>x</name></item>'
            b"</devicelist></response>")
    doc = manscdp.parse(body, lenient=Lenient.TAG_CASE)
    assert doc.root == Root.RESPONSE
    assert doc.text("DeviceList/Item/Name") == "x"
    assert doc.attr("DeviceList", "Num") == "1"


def test_no_declaration_decodes_utf8_else_gb18030() -> None:
    """Without a declaration texts are UTF-8 when they are valid UTF-8, else GB18030."""
    base = ("<Notify><CmdType>Keepalive</CmdType><SN>1</SN><DeviceID>1</DeviceID>"
            "<Name>大门</Name></Notify>")
    for enc in ("utf-8", "gb18030"):
        doc = manscdp.parse(base.encode(enc), lenient=Lenient.NO_DECLARATION)
        assert doc.charset is None and doc.text("Name") == "大门"


def test_typed_items_for_known_lists() -> None:
    """A.2.6: RecordInfo, PresetQuery and DeviceStatus lists as typed items."""
    rec = manscdp.parse((DATA / "recordinfo-response.xml").read_bytes())
    second = rec.items[1]
    assert isinstance(second, RecordItem) and second.address == "一号门"
    pre = manscdp.parse((DATA / "presetquery-response.xml").read_bytes())
    assert pre.items == (PresetItem("1", "大门"), PresetItem("2", "停车场"))
    st_ = manscdp.parse((DATA / "devicestatus-response.xml").read_bytes())
    assert st_.items == (AlarmStatusItem("34020000001320000001", "OFFDUTY"),)
    assert manscdp.parse(KEEPALIVE).items == ()


# --------------------------------------------------------------- builder

def test_build_keepalive_bytes() -> None:
    """§9.6.1: the builder writes the keepalive body byte for byte."""
    assert manscdp.build("Notify", "Keepalive", 43, "34020000001320000001",
                         [("Status", "OK")]) == KEEPALIVE


def test_answer_uses_the_query_charset() -> None:
    """The answer is declared and encoded in the query's charset
    (GB2312 when the query had no declaration)."""
    q = manscdp.parse((DATA / "catalog-response-utf8.xml").read_bytes())
    body = q.answer([("Result", "OK")])
    assert body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    bare = manscdp.parse(b"<Query><CmdType>DeviceInfo</CmdType><SN>5</SN><DeviceID>7</DeviceID>"
                         b"</Query>", lenient=Lenient.NO_DECLARATION)
    body = bare.answer([("DeviceName", "门口")])
    assert b'encoding="GB2312"' in body and "门口".encode("gb18030") in body
    doc = manscdp.parse(body)
    assert (doc.root, doc.cmd_type, doc.sn, doc.device_id) == (Root.RESPONSE, "DeviceInfo", 5, "7")


def test_build_refuses_invalid_bodies() -> None:
    """Names must be ASCII XML names, texts XML 1.0 characters."""
    for fields in ([("bad name", "x")], [("Name", "a\x01")], [("Name", 1.5)],
                   [("List", [("A", "1")], {"Num": 1, "Other": 2})]):
        with pytest.raises(ManscdpBuildError):
            manscdp.build(Root.NOTIFY, "Keepalive", 1, "1", fields)  # type: ignore[arg-type]
    with pytest.raises(ManscdpBuildError):
        manscdp.build(Root.NOTIFY, "Keepalive", 1, "1", charset="Big5")
    with pytest.raises(ManscdpBuildError):
        manscdp.build("Request", "Keepalive", 1, "1")


# The reader trims raw XML whitespace; the builder writes CR as &#13;, which
# is kept (a reference is not whitespace).
_XML_WS = " \t\n"
_text = st.text(st.characters(blacklist_categories=("Cs", "Cc")) | st.sampled_from("\t\n\r&<>\"'"),
                max_size=40)
_name = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.-]{0,15}", fullmatch=True)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(root=st.sampled_from(list(Root)), cmd=st.sampled_from(sorted(manscdp.CMD_TYPES)),
       sn=st.integers(0, 2**64 - 1), device_id=st.from_regex(r"[0-9]{20}", fullmatch=True),
       charset=st.sampled_from(["GB2312", "GB18030", "UTF-8"]),
       fields=st.lists(st.tuples(_name, _text), max_size=8),
       items=st.lists(_text, max_size=5))
def test_build_parse_round_trip(root: Root, cmd: str, sn: int, device_id: str, charset: str,
                                fields: list[tuple[str, str]], items: list[str]) -> None:
    """build -> parse gives back header fields and every text (escaping, CR,
    GB18030 names), up to the raw whitespace the reader trims."""
    names = [n for n, _ in fields if n not in ("CmdType", "SN", "DeviceID", "DeviceList")]
    kept = [(n, t) for n, t in fields if n in names]
    body = manscdp.build(root, cmd, sn, device_id,
                         [*kept, ("DeviceList", [("Item", [("Name", t)]) for t in items],
                                  {"Num": len(items)})], charset=charset)
    doc = manscdp.parse(body)
    assert (doc.root, doc.cmd_type, doc.sn, doc.device_id) == (root, cmd, sn, device_id)
    assert doc.charset == charset
    first: dict[str, str] = {}
    for n, t in kept:
        first.setdefault(n, t)
    for n, t in first.items():
        assert doc.text(n) == t.strip(_XML_WS)
    assert [e.text("Name") for e in doc.find("DeviceList/Item")] == [t.strip(_XML_WS) for t in items]
    assert doc.attr("DeviceList", "Num") == str(len(items))
