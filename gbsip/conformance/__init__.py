"""GB/T 28181 conformance suites, run by pytest.

- :mod:`gbsip.conformance.platform`: gbsip plays the camera and checks a
  platform (``--gb-platform udp://HOST:PORT``).
- :mod:`gbsip.conformance.device`: gbsip plays the platform on
  ``--gb-listen`` and checks the camera that registers to it.

Run them with ``pytest --pyargs gbsip.conformance.platform --gb-platform ...``
or ``gbsip conformance platform --gb-platform ...``; see docs/conformance.md.
Each check is a test marked ``gb_check(id=..., clause=...)`` whose docstring
names the GB/T 28181 or RFC clause it enforces.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from gbsip.errors import MissingDependency

# pytest is imported where it is used: `gbsip --help`, `gbsip simulate` and
# `gbsip serve` load this package for the command line and must work in an
# environment without pytest (it is the `conformance` extra).

__all__ = ["SUITES", "check", "plugin_args", "run"]

F = TypeVar("F", bound=Callable[..., Any])

SUITES = {
    "platform": "gbsip.conformance.platform",
    "device": "gbsip.conformance.device",
}


def check(id: str, clause: str) -> Callable[[F], F]:  # noqa: A002 - "id" reads best here
    """Mark a test as conformance check ``id`` enforcing ``clause``."""
    import pytest

    mark: Callable[[F], F] = pytest.mark.gb_check(id=id, clause=clause)
    return mark


def require_pytest() -> Any:
    """The pytest module, or :class:`MissingDependency` saying what to install."""
    from importlib.util import find_spec

    # pytest-asyncio is looked for, not imported: imported before pytest.main
    # it would be "already imported so cannot be rewritten" (a warning)
    missing = "pytest_asyncio" if find_spec("pytest_asyncio") is None else None
    try:
        import pytest
    except ImportError:
        missing = "pytest"
    if missing:
        raise MissingDependency(
            f"the conformance suites need pytest and pytest-asyncio ({missing} is "
            "missing): pip install 'gbsip[conformance]'")
    return pytest


def plugin_installed() -> bool:
    """True when the ``gbsip`` pytest11 entry point is installed (then pytest
    loads the plugin by itself and ``-p`` would register it twice)."""
    from importlib.metadata import entry_points

    return any(ep.value == "gbsip.pytest_plugin" for ep in entry_points(group="pytest11"))


def plugin_args() -> list[str]:
    """``["-p", "gbsip.pytest_plugin"]`` unless the entry point loads it."""
    return [] if plugin_installed() else ["-p", "gbsip.pytest_plugin"]


def run(suite: str, args: Sequence[str] = ()) -> int:
    """Run one suite in this process with pytest.main; returns pytest's exit code."""
    if suite not in SUITES:
        raise ValueError(f"unknown suite {suite!r}: choose from {', '.join(SUITES)}")
    pytest = require_pytest()
    return int(pytest.main([
        *plugin_args(), "-p", "no:cacheprovider",
        # this process imported gbsip (the command line) before pytest started:
        # nothing of it is a test to rewrite, so pytest's warning says nothing
        "-W", "ignore:Module already imported so cannot be rewritten; gbsip"
              ":pytest.PytestAssertRewriteWarning",
        "-o", "asyncio_default_fixture_loop_scope=function",
        "--pyargs", SUITES[suite], *args]))
