"""Fixtures of the platform suite: the camera gbsip plays."""
from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from gbsip.conformance._camera import Camera
from gbsip.conformance._common import GBOptions, Trace


@pytest.fixture(scope="session")
def platform(gb_options: GBOptions) -> GBOptions:
    """The options, once we know there is a platform to test."""
    if gb_options.platform is None:
        pytest.skip("no platform to test: pass --gb-platform udp://HOST:PORT (or tcp://)")
    return gb_options


@pytest.fixture(scope="session")
def reachable(platform: GBOptions) -> None:
    """The platform answers a REGISTER at all (else every check would wait
    out its timeout).  A failure here is reported once per check."""
    trace = Trace("gbsip camera")
    try:
        with Camera(platform, trace) as cam:
            answer = cam.transact(cam.register())
    except OSError as exc:
        pytest.fail(f"cannot reach the platform at {platform.platform}: {exc}", pytrace=False)
    if answer is None:
        pytest.fail(f"the platform at {platform.platform} did not answer a REGISTER within "
                    f"{platform.timeout:g} s\n\n{trace.render()}", pytrace=False)


@pytest.fixture
def new_camera(platform: GBOptions, reachable: None,
               gb_trace: Trace) -> Iterator[Callable[..., Camera]]:
    """new_camera(device_id=None, password=None) -> Camera; each one is
    unregistered (if it registered) and closed after the check."""
    gb_trace.me = "gbsip camera"
    cams: list[Camera] = []

    def make(device_id: str | None = None, password: str | None = None) -> Camera:
        cam = Camera(platform, gb_trace, device_id=device_id, password=password)
        cams.append(cam)
        return cam

    try:
        yield make
    finally:
        for cam in cams:
            try:
                if cam.bound:
                    cam.unregister()
            finally:
                cam.close()


@pytest.fixture
def camera(new_camera: Callable[..., Camera]) -> Camera:
    """The configured device (--gb-device-id, --gb-password)."""
    return new_camera()
