"""The end of a multi-host job: a host that is done waits until every peer is done too.

Why: SageMaker SDK local mode runs the hosts with `docker-compose up --abort-on-container-exit`, so the
first host to exit stops the others mid-fleet, and the job is still reported Completed (measured: 149 of
150 models in model.tar.gz). Waiting costs nothing elsewhere: a job is not over before its slowest host.

Each host answers on PEER_PORT with one byte: b"1" once it is done, b"0" before. A peer counts as
finished when it has said so, when it answered once and has gone since (it exited or died: nothing left
to wait for), or when its name does not resolve (no such host on this network, as with `local-train`,
whose hosts are processes on one machine). Once every peer is finished a host keeps answering for
LINGER_SECONDS, so a peer that polls a moment later still hears it before it goes.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time

log = logging.getLogger("fleetcast.train")

PEER_PORT = 19478
# Another port, or 0: no waiting (local-train, whose hosts share one machine, waits for them itself).
PEER_PORT_ENV = "FLEETCAST_PEER_PORT"
POLL_SECONDS = 0.5
LINGER_SECONDS = 3.0
# How long a peer that has never answered (its server not up yet) is waited for.
UNHEARD_TIMEOUT_SECONDS = 300.0
DONE, BUSY = b"1", b"0"


class PeerBarrier:
    def __init__(self, current_host: str, hosts: list[str], port: int | None = None, bind: str = "") -> None:
        self.peers = [host for host in hosts if host != current_host]
        self.bind = bind  # every interface; tests put two hosts on two loopback addresses
        self.port = int(os.environ.get(PEER_PORT_ENV) or PEER_PORT) if port is None else port
        self._done = threading.Event()
        self._server: socket.socket | None = None

    def start(self) -> None:
        """Answer peers from now on (before the fleet starts, so every peer can hear this host)."""
        if not self.peers or not self.port:
            return
        try:
            self._server = socket.create_server((self.bind, self.port))
        except OSError as exc:
            log.warning("cannot listen on port %d for the other hosts (%s): not waiting", self.port, exc)
            self._server = None
            return
        self._server.settimeout(POLL_SECONDS)
        threading.Thread(target=self._answer, name="peer-barrier", daemon=True).start()

    def _answer(self) -> None:
        server = self._server
        while server is not None and server.fileno() != -1:
            try:
                connection, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with connection:
                connection.sendall(DONE if self._done.is_set() else BUSY)

    def _ask(self, peer: str) -> bytes | None:
        """b"1", b"0", b"" (refused: not up yet, or gone), or None (the name does not resolve)."""
        try:
            address = socket.getaddrinfo(peer, self.port, type=socket.SOCK_STREAM)[0][4]
        except OSError:
            return None
        try:
            with socket.create_connection(address[:2], timeout=POLL_SECONDS * 2) as connection:
                return connection.recv(1)
        except OSError:
            return b""

    def finish_and_wait(self) -> list[str]:
        """Say this host is done, then wait for the peers; returns those not waited for to the end.

        A SIGTERM here ends the wait (this host's work is complete and written): the platform is
        stopping the job, or docker-compose is stopping the last hosts because one has exited.
        """
        self._done.set()
        if self._server is None:
            return []
        stop = threading.Event()
        in_main_thread = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, lambda *_: stop.set()) if in_main_thread else None
        try:
            return self._wait(stop)
        finally:
            if in_main_thread:
                signal.signal(signal.SIGTERM, previous)
            self.close()

    def _wait(self, stop: threading.Event) -> list[str]:
        finished: set[str] = set()
        heard: set[str] = set()  # answered at least once
        began = time.monotonic()
        announced = False
        while len(finished) < len(self.peers) and not stop.is_set():
            for peer in self.peers:
                if peer in finished:
                    continue
                answer = self._ask(peer)
                if answer in (DONE, BUSY):
                    heard.add(peer)
                if answer in (DONE, None) or (answer == b"" and peer in heard):
                    finished.add(peer)
            waiting = [p for p in self.peers if p not in finished]
            if waiting and not announced:
                log.info("done; waiting for %s to finish before exiting", ", ".join(waiting))
                announced = True
            unheard = [p for p in waiting if p not in heard]
            given_up = time.monotonic() - began > UNHEARD_TIMEOUT_SECONDS
            if unheard and len(unheard) == len(waiting) and given_up:
                log.warning("never heard from %s: exiting without them", ", ".join(unheard))
                break
            if waiting:
                stop.wait(POLL_SECONDS)
        if heard:  # someone out there may still be polling this host
            stop.wait(LINGER_SECONDS)
        return [p for p in self.peers if p not in finished]

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
