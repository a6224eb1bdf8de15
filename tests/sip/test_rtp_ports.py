"""RTP ports: a pair another process holds is skipped, and a range with no free pair is refused (503)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from agent.transports.sip.endpoint import PortPool
from control_api.problems import ProblemError

pytestmark = pytest.mark.unit


def _free_even_range(width: int) -> int:
    """The low end of ``width`` consecutive ports that are free now (even)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            low = probe.getsockname()[1] & ~1
        if low + width > 65535:
            continue
        try:
            with held(*range(low, low + width)):
                return low
        except OSError:
            continue
    raise AssertionError("no free port range on this machine")


@contextmanager
def held(*ports: int) -> Iterator[None]:
    """Hold UDP ``ports`` on 127.0.0.1, as another process on the box would."""
    sockets = []
    try:
        for port in ports:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sockets.append(s)
            s.bind(("127.0.0.1", port))
        yield
    finally:
        for s in sockets:
            s.close()


def test_a_pair_held_elsewhere_is_skipped_and_tried_again_later() -> None:
    low = _free_even_range(6)
    pool = PortPool(low, low + 6, "127.0.0.1")  # pairs: low, low + 2, low + 4
    with held(low + 1):  # the first pair's RTCP port
        assert pool.take() == low + 2
        assert pool.take() == low + 4
    assert pool.take() == low  # free again once the other process let go


def test_a_range_with_no_free_pair_is_refused_with_503() -> None:
    low = _free_even_range(4)
    pool = PortPool(low, low + 4, "127.0.0.1")
    with held(low, low + 2), pytest.raises(ProblemError) as refused:
        pool.take()
    assert refused.value.status == 503
    port = pool.take()  # nothing was lost from the pool while every pair was held
    pool.give(port)
    assert {pool.take(), pool.take()} == {low, low + 2}
