"""`binglide.connect` to an address."""

from __future__ import annotations

import anyio
import pytest

import binglide

from .zmq_helpers import free_tcp_address


@pytest.mark.zmq
async def test_connecting_where_no_broker_listens_fails_clearly() -> None:
    address = free_tcp_address()
    with anyio.fail_after(10), pytest.raises(binglide.TransportBroken, match="no broker answered"):
        async with binglide.connect(address, connect_timeout=0.5):
            pytest.fail("connected to nothing")  # pragma: no cover
