"""The services the tests run against: real ``tessera serve`` processes on free ports."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

import tessera_server
from tessera_server import API_KEY, Server


@pytest.fixture(scope="session")
def tessera() -> Iterator[Server]:
    """A service with Tessera's defaults (client-side anonymous sessions, tokens on)."""
    server = tessera_server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def tessera_stored() -> Iterator[Server]:
    """A service keeping anonymous sessions in the store (``[session] anonymous = "server"``),
    as the Django engine needs; also the one ``TESSERA_URL`` names for Django's tests."""
    server = tessera_server.start('[session]\nanonymous = "server"\n')
    os.environ["TESSERA_URL"] = server.url
    os.environ["TESSERA_API_KEY"] = API_KEY
    yield server
    server.stop()


@pytest.fixture
def api_key() -> str:
    return API_KEY
