#!/usr/bin/env python3
"""Hold N idle keep-alive connections to a sessiond.

    idle.py HOST PORT N TOKEN READY_FILE [HEARTBEAT_SECONDS]

Opens N connections, sends one verify request on each and reads its answer (so each is a
served HTTP/1.1 keep-alive connection, not just an accepted socket), writes "N BAD" to
READY_FILE, then holds them until SIGTERM/SIGINT (or one hour).

sessiond's header-read timeout (SESSIOND_HEADER_TIMEOUT_MS, 10 s by default) also closes a
keep-alive connection that stays silent that long, so each connection sends one more verify
every HEARTBEAT_SECONDS (default 5; 0 = never), staggered: 1,000 connections then add
200 requests/s, next to nothing beside the measured load. On exit it prints how many
connections were still open and how many the server closed.
"""

import select
import signal
import socket
import sys
import time


def main() -> int:
    host, port, n, token, ready = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
    every = float(sys.argv[6]) if len(sys.argv) > 6 else 5.0
    body = ('{"jsonrpc":"2.0","method":"session.verify_session_token","params":{"token":"%s"},"id":1}' % token).encode()
    request = (
        b"POST / HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
        % (host.encode(), port, len(body), body)
    )
    conns = []
    for _ in range(n):
        s = socket.create_connection((host, port), timeout=10)
        s.sendall(request)
        conns.append(s)
    bad = 0
    for s in conns:
        data = b""
        while b'"active":' not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        if b'"active":true' not in data:
            bad += 1
        s.setblocking(False)
    with open(ready, "w") as f:
        f.write(f"{n} {bad}\n")

    stop = False

    def on_signal(*_):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    closed_by_server = 0
    heartbeats = 0
    now = time.monotonic()
    deadline = now + 3600
    poller = select.poll()
    by_fd = {s.fileno(): s for s in conns}
    next_send = {fd: now + (every * i / n if every > 0 else 1e18) for i, fd in enumerate(by_fd)}
    for fd in by_fd:
        poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
    while not stop and time.monotonic() < deadline:
        for fd, _ in poller.poll(100):
            s = by_fd.get(fd)
            if s is None:
                continue
            try:
                data = s.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                closed_by_server += 1
                poller.unregister(fd)
                del by_fd[fd]
                s.close()
        now = time.monotonic()
        for fd, s in list(by_fd.items()):
            if next_send[fd] <= now:
                next_send[fd] += every
                try:
                    s.send(request)
                    heartbeats += 1
                except OSError:
                    pass
    print(
        f"IDLE opened={n} not_active={bad} still_open={len(by_fd)} "
        f"closed_by_server={closed_by_server} heartbeats={heartbeats}",
        flush=True,
    )
    for s in by_fd.values():
        s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
