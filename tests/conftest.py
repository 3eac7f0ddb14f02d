"""Shared fixtures for the gbsip test suite.  Keep this small."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import corpus  # noqa: E402


@pytest.fixture(scope="session")
def seed_messages() -> dict[str, bytes]:
    """The seed registration's four messages, by fixture name."""
    return {c.name: c.data for c in corpus.load_all() if c.name.startswith("seed-")}


@pytest.fixture(scope="session")
def seed_register() -> bytes:
    """The seed's first REGISTER (GB/T 28181-2016 §9.1.2.1), wire bytes."""
    return corpus.load(corpus.DATA_DIR / "seed-1-register.sip").data


@pytest.fixture(autouse=True)
def _own_state_dir(tmp_path_factory: pytest.TempPathFactory,
                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test's `gbsip serve` children keep their default binding store
    in a directory of their own, never the user's ~/.local/state."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state")))
