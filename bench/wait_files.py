#!/usr/bin/env python3
"""Waits until COUNT files have been written and closed in DIR, then prints the time of the
last one (seconds since the epoch) and exits 0; exits 1 after TIMEOUT seconds without them.

Usage: wait_files.py DIR COUNT TIMEOUT READY_FILE [METRICS_URL]

It watches DIR with inotify (IN_CLOSE_WRITE), so it sleeps in the kernel until a file is
closed: no polling, no CPU taken from the run it times, and the end it reports is when the
receiver closed the last file, not when a poll next noticed it. READY_FILE is created once
the watch is in place (start the transfer only after it exists). With METRICS_URL (a gateway's
/metrics), it gives up as soon as the gateway counts an object held back or a failed attempt
(read once a second, in this process: nothing is started while the transfer runs).
"""
import ctypes
import os
import select
import struct
import sys
import time
import urllib.request

IN_CLOSE_WRITE = 0x00000008
IN_ISDIR = 0x40000000
EVENT = struct.Struct("iIII")


def trouble(metrics_url: str) -> str:
    """What has gone wrong according to the gateway's metrics, or ''."""
    try:
        with urllib.request.urlopen(metrics_url, timeout=5) as r:
            text = r.read().decode()
    except OSError as e:
        return f"cannot read {metrics_url}: {e}"
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if name.startswith(("umbra_held_back_total", "umbra_failed_total")) and float(value) > 0:
            return f"the gateway reports {name} {value}"
    return ""


def main() -> int:
    directory, count, timeout, ready = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
    metrics_url = sys.argv[5] if len(sys.argv) > 5 else None
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.inotify_init1(0)
    if fd < 0:
        print(f"inotify_init1: {os.strerror(ctypes.get_errno())}", file=sys.stderr)
        return 2
    if libc.inotify_add_watch(fd, directory.encode(), IN_CLOSE_WRITE) < 0:
        print(f"inotify_add_watch {directory}: {os.strerror(ctypes.get_errno())}", file=sys.stderr)
        return 2
    open(ready, "w").close()
    seen = 0
    deadline = time.monotonic() + timeout
    while seen < count:
        left = deadline - time.monotonic()
        if left <= 0:
            print(f"{seen} of {count} files in {directory} after {timeout} s", file=sys.stderr)
            return 1
        if not select.select([fd], [], [], min(left, 1.0))[0]:
            why = metrics_url and trouble(metrics_url)
            if why:
                print(f"{seen} of {count} files in {directory}; {why}", file=sys.stderr)
                return 1
            continue
        buf = os.read(fd, 1 << 16)
        at = 0
        while at < len(buf):
            _wd, mask, _cookie, name_len = EVENT.unpack_from(buf, at)
            at += EVENT.size + name_len
            if not mask & IN_ISDIR:
                seen += 1
    print(f"{time.time():.6f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
