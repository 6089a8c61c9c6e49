"""Transports move frames between peers and the broker: in-process and ZeroMQ."""

from __future__ import annotations

from .base import BrokerTransport as BrokerTransport
from .base import PeerTransport as PeerTransport
from .inproc import InprocNetwork as InprocNetwork

__all__ = ("BrokerTransport", "InprocNetwork", "PeerTransport")
