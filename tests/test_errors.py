"""One error vocabulary (gbsip.errors): local misuse versus what a peer sent."""
from __future__ import annotations

import pytest

import gbsip
from gbsip import errors


def test_every_error_class_is_in_gbsip_errors_and_derives_from_gbsiperror() -> None:
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, gbsip.GBSIPError), name
    assert gbsip.digest.DigestError is errors.DigestError
    assert gbsip.SimulatorError is errors.SimulatorError
    assert gbsip.RegistrarError is errors.RegistrarError


def test_a_peers_malformed_sip_is_a_remote_protocol_error_with_a_status() -> None:
    """SIPParseError says what to answer (h11's error_status_hint)."""
    with pytest.raises(gbsip.RemoteProtocolError) as info:
        gbsip.parse(b"REGISTER sip:x SIP/2.0\r\nCSeq: one REGISTER\r\n\r\n")
    assert isinstance(info.value, gbsip.SIPParseError)
    assert info.value.status == 400


def test_building_invalid_sip_is_a_local_protocol_error() -> None:
    assert issubclass(gbsip.SIPBuildError, gbsip.LocalProtocolError)
    assert issubclass(gbsip.ConfigurationError, gbsip.LocalProtocolError)
    assert issubclass(gbsip.digest.DigestError, gbsip.LocalProtocolError)
    assert not issubclass(gbsip.SIPParseError, gbsip.LocalProtocolError)
    assert not issubclass(gbsip.SIPBuildError, gbsip.RemoteProtocolError)


def test_misusing_a_device_is_a_local_protocol_error() -> None:
    """A call that makes no sense in the device's state names the state."""
    import asyncio

    async def main() -> None:
        dev = gbsip.Device("34020000001320000001", password="x")
        with pytest.raises(gbsip.LocalProtocolError, match="start"):
            await dev.send_keepalive()

    asyncio.run(main())


def test_a_bad_option_is_a_configuration_error_naming_it() -> None:
    with pytest.raises(gbsip.ConfigurationError, match="churn"):
        gbsip.Simulator(10, churn=2.0)
    with pytest.raises(ValueError):  # still a ValueError for existing callers
        gbsip.Simulator(0)
