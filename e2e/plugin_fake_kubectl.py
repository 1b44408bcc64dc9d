"""A stand-in `kubectl` for the e2e tests of `kubectl notebook` (the test system has no kubelet).

The simulated kubelet reports pods Running and Ready but runs no containers, so the kubelet's streaming API
(port-forward, exec) cannot work against it. The tests put this program first on the plugin's PATH (as
`kubectl`, through a small shell wrapper); it logs every invocation and:

- `port-forward ... LOCAL:REMOTE`: fails (exit 1, an error on stderr) while the counter in
  `<FAKE_KUBECTL_DIR>/port_forward_failures` is above zero (decrementing it), else listens on
  127.0.0.1:LOCAL, prints kubectl's "Forwarding from" line and answers every connection with a small HTTP
  200 until it is terminated;
- `exec ... -- python3 -c <watcher> ...`: prints the JSON lines of `<FAKE_KUBECTL_DIR>/watch_events.jsonl`
  (a line `{"sleep": s}` pauses), then waits until it is terminated;
- `exec ... -- cat -- PATH` (or `head -c N -- PATH`): prints `<FAKE_KUBECTL_DIR>/pod/<PATH without
  /content/>` (at most N bytes; exit 1 if missing);
- anything else: runs the real kubectl (`FAKE_KUBECTL_REAL`) with the same arguments.

Every invocation is appended to `<FAKE_KUBECTL_DIR>/calls.jsonl` as `{"argv": [...]}`.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
from pathlib import Path

STATE = Path(os.environ["FAKE_KUBECTL_DIR"])


def log(argv: list[str]) -> None:
    with (STATE / "calls.jsonl").open("a") as f:
        f.write(json.dumps({"argv": argv}) + "\n")


def stop_on_term() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))


def port_forward(args: list[str]) -> int:
    counter = STATE / "port_forward_failures"
    failures = int(counter.read_text()) if counter.exists() else 0
    if failures > 0:
        counter.write_text(str(failures - 1))
        print("error: unable to forward port because pod is not running (simulated)", file=sys.stderr, flush=True)
        return 1
    local, remote = next(a for a in args if ":" in a and a.split(":")[0].isdigit()).split(":")
    stop_on_term()
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", int(local)))
        server.listen()
        print(f"Forwarding from 127.0.0.1:{local} -> {remote}", flush=True)
        while True:
            conn, _ = server.accept()
            with conn:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nConnection: close\r\n\r\nfake jupyter\n")


def exec_(command: list[str]) -> int:
    if command[:2] == ["python3", "-c"]:
        stop_on_term()
        events = STATE / "watch_events.jsonl"
        for line in events.read_text().splitlines() if events.exists() else ():
            item = json.loads(line)
            if "sleep" in item:
                time.sleep(float(item["sleep"]))
            else:
                print(json.dumps(item), flush=True)
        while True:
            time.sleep(1)
    if command[:1] == ["cat"] or command[:2] == ["head", "-c"]:
        path = command[-1]
        limit = int(command[2]) if command[0] == "head" else None
        source = STATE / "pod" / path.removeprefix("/content/")
        try:
            sys.stdout.buffer.write(source.read_bytes()[:limit])
        except FileNotFoundError:
            print(f"cat: {path}: No such file or directory", file=sys.stderr)
            return 1
        return 0
    print(f"error: the stand-in kubectl cannot exec {command}", file=sys.stderr)
    return 1


def main() -> int:
    args = sys.argv[1:]
    log(args)
    verb, skip = "", False
    for arg in args:
        if skip:
            skip = False
        elif arg in ("--kubeconfig", "--context", "-n", "--namespace"):
            skip = True
        elif not arg.startswith("-"):
            verb = arg
            break
    if verb == "port-forward":
        return port_forward(args)
    if verb == "exec" and "--" in args:
        return exec_(args[args.index("--") + 1 :])
    real = os.environ["FAKE_KUBECTL_REAL"]
    os.execv(real, [real, *args])
    return 1  # pragma: no cover - execv does not return


if __name__ == "__main__":
    sys.exit(main())
