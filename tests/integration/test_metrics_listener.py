"""The metrics endpoint against slow and greedy clients (topologies/four-hosts.topo).

Each connection has a deadline for the whole of it (5 s: its request in, its answer out),
whatever it sends meanwhile, and at most 16 are open: a client that opens more and sends one
byte a second on each holds up neither `snoopswitch status` nor an ordinary scrape, and each of
its connections is closed (408 at its deadline, or 503 when a newer connection needed the room).
The endpoint counts how its connections ended (snoopswitch_metrics_connections_total).
"""

from __future__ import annotations

import socket
import threading
import time

from lab import http_get, in_netns, wait_until

ADDRESS, PORT = "127.0.0.1", 9419
METRICS = f"{ADDRESS}:{PORT}"
LIMIT = 16            # MetricsServer.maximumConnections
DEADLINE = 5.0        # MetricsServer.deadline, seconds
REQUEST = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9419\r\nUser-Agent: trickle\r\n\r\n"


class Trickler:
    """`count` connections to the endpoint, opened in the switch's namespace, each sent one
    byte of a request a second by a thread of its own, and each read to its end. For each:
    what it received and when, after its opening, the switch closed it."""

    def __init__(self, ns: str, count: int):
        self.socks: list[socket.socket] = in_netns(ns, self._open, count)
        self.opened = time.monotonic()
        self.answers: list[bytes] = [b""] * count
        self.closed_after: list[float | None] = [None] * count
        self.sent: list[int] = [0] * count
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(count)]
        for t in self._threads:
            t.start()

    @staticmethod
    def _open(count: int) -> list[socket.socket]:
        socks = []
        for _ in range(count):
            s = socket.create_connection((ADDRESS, PORT), timeout=5)
            s.settimeout(1.0)
            socks.append(s)
        return socks

    def _run(self, i: int) -> None:
        s = self.socks[i]
        while not self._stop.is_set() and self.closed_after[i] is None:
            if self.sent[i] < len(REQUEST) - 1:    # never the last byte: the request stays incomplete
                try:
                    s.send(REQUEST[self.sent[i]:self.sent[i] + 1])
                    self.sent[i] += 1
                except OSError:
                    pass
            try:
                b = s.recv(4096)                      # waits up to a second: the trickle's pace
            except socket.timeout:
                continue
            except OSError:
                b = b""
            if b:
                self.answers[i] += b
            else:
                self.closed_after[i] = time.monotonic() - self.opened

    def wait_all_closed(self, timeout: float) -> None:
        wait_until(lambda: all(c is not None for c in self.closed_after), timeout=timeout, interval=0.2,
                   what=f"the switch to close all {len(self.socks)} slow connections; closed after: {self.closed_after}")

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=3)
        for s in self.socks:
            s.close()


def scrape_text(ns: str) -> str:
    code, _headers, body = http_get(ns, f"http://{METRICS}/metrics", timeout=10)
    assert code == 200, f"GET /metrics answered {code}: {body[:200]!r}"
    return body.decode()


def counter(text: str, outcome: str) -> int:
    prefix = f'snoopswitch_metrics_connections_total{{outcome="{outcome}"}} '
    lines = [line for line in text.splitlines() if line.startswith(prefix)]
    assert lines, f"no {prefix.strip()} in the metrics page"
    return int(lines[0][len(prefix):])


def test_slow_clients_delay_neither_status_nor_scrapes(four):
    """20 connections (16 allowed) each trickle a byte a second: while they do, `snoopswitch
    status`, `status --json` and ordinary scrapes each complete (generous timeouts; no timing
    is asserted beyond completing). Every slow connection is closed by the switch while it is
    still trickling, with a 408 (its whole-request deadline passed) or a 503 (it made room for a
    newer one); at least one of each. The endpoint's counters say as much, and the switch still
    serves and forwards."""
    sw = four.start_switch("--metrics", METRICS)
    wait_until(lambda: scrape_text(four.sw_ns), timeout=10, what="a first scrape")
    slow = Trickler(four.sw_ns, LIMIT + 4)
    try:
        for _round in range(3):
            assert "PORT" in sw.status_text()
            assert sw.status()["ports"]
            assert "snoopswitch_port_up" in scrape_text(four.sw_ns)
            time.sleep(0.5)
        slow.wait_all_closed(timeout=DEADLINE * 6)
    finally:
        slow.close()

    timed_out = [a for a in slow.answers if a.startswith(b"HTTP/1.0 408 ")]
    evicted = [a for a in slow.answers if a.startswith(b"HTTP/1.0 503 ")]
    others = [a for a in slow.answers if not a.startswith((b"HTTP/1.0 408 ", b"HTTP/1.0 503 "))]
    assert not others, f"slow connections got other answers: {others[:3]}"
    assert timed_out, "no slow connection was answered 408 Request Timeout"
    assert len(evicted) >= 4, f"{len(evicted)} slow connections got 503, expected at least 4 of {LIMIT + 4}"
    # Each had sent at most a byte a second since it opened: the deadline is for the whole
    # request, not for each read.
    assert all(n < len(REQUEST) for n in slow.sent)

    text = scrape_text(four.sw_ns)
    assert counter(text, "timed_out") >= len(timed_out)
    assert counter(text, "over_limit") >= len(evicted)
    assert counter(text, "answered") >= 4
    assert four["h1"].ping(four["h2"].addr)
    assert sw.alive()


def test_requests_that_are_not_scrapes_are_answered_and_closed(four):
    """A request that is not HTTP gets 400, a 10 KB request head 431, a POST 405, a client that
    connects and leaves without a word costs nothing; a scrape still works afterwards."""
    sw = four.start_switch("--metrics", METRICS)
    wait_until(lambda: scrape_text(four.sw_ns), timeout=10, what="a first scrape")

    def exchange(data: bytes) -> bytes:
        def run():
            with socket.create_connection((ADDRESS, PORT), timeout=10) as s:
                if data:
                    s.sendall(data)
                out = b""
                while (b := s.recv(4096)):
                    out += b
                return out
        return in_netns(four.sw_ns, run)

    assert exchange(b"\x16\x03\x01 hello\r\n\r\n").startswith(b"HTTP/1.0 400 ")
    assert exchange(b"GET /metrics HTTP/1.1\r\n" + b"X-Filler: " + b"a" * 10_000 + b"\r\n\r\n").startswith(b"HTTP/1.0 431 ")
    assert exchange(b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n").startswith(b"HTTP/1.0 405 ")
    in_netns(four.sw_ns, lambda: socket.create_connection((ADDRESS, PORT), timeout=5).close())
    text = scrape_text(four.sw_ns)
    assert counter(text, "bad_request") >= 2
    assert sw.alive()
