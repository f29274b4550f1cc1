"""Hosts wait for each other at the end of a job, over real sockets (two loopback addresses as two hosts)."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from fleetcast.training import peers
from fleetcast.training.peers import PeerBarrier

A, B = "127.0.0.1", "127.0.0.2"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((A, 0))
        return probe.getsockname()[1]


@pytest.fixture(autouse=True)
def quick(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(peers, "LINGER_SECONDS", 0.6)
    monkeypatch.setattr(peers, "POLL_SECONDS", 0.1)


def test_a_host_that_is_done_waits_for_a_busy_peer():
    port = free_port()
    fast, slow = PeerBarrier(A, [A, B], port, bind=A), PeerBarrier(B, [A, B], port, bind=B)
    fast.start()
    slow.start()
    returned: dict[str, float] = {}
    waiter = threading.Thread(
        target=lambda: returned.setdefault("fast", (fast.finish_and_wait(), time.monotonic()))
    )
    waiter.start()
    time.sleep(1.0)
    assert waiter.is_alive()  # the peer is still training
    slow_done = time.monotonic()
    assert slow.finish_and_wait() == []
    waiter.join(timeout=5)
    unheard, at = returned["fast"]
    assert unheard == [] and at >= slow_done


def test_a_peer_that_does_not_resolve_or_has_gone_is_not_waited_for():
    lonely = PeerBarrier(A, [A, "no-such-host.invalid"], free_port(), bind=A)
    lonely.start()
    began = time.monotonic()
    assert lonely.finish_and_wait() == []
    assert time.monotonic() - began < 0.5  # nobody heard: no linger either


def test_port_zero_turns_waiting_off(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(peers.PEER_PORT_ENV, "0")
    barrier = PeerBarrier(A, [A, B])
    barrier.start()
    assert barrier.port == 0 and barrier.finish_and_wait() == []


def test_sigterm_ends_the_wait_of_a_host_whose_work_is_done():
    import signal
    import subprocess
    import sys

    port = free_port()
    busy = PeerBarrier(B, [A, B], port, bind=B)
    busy.start()  # a peer that never finishes
    script = (
        "from fleetcast.training.peers import PeerBarrier\n"
        f"barrier = PeerBarrier({A!r}, [{A!r}, {B!r}], {port}, bind={A!r})\n"
        "barrier.start()\n"
        "print('waiting', flush=True)\n"
        "print(barrier.finish_and_wait(), flush=True)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "waiting"
        time.sleep(1.0)
        assert child.poll() is None  # still waiting for the busy peer
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=10) == 0  # its work is done: a clean exit, not 143
        assert child.stdout.read().strip() == f"[{B!r}]"
    finally:
        child.kill()
        busy.close()
