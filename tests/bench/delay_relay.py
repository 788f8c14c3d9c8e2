#!/usr/bin/env python3
"""An ssh ProxyCommand that adds latency: `delay_relay.py MS COMMAND...` runs COMMAND (the real
ProxyCommand) and relays bytes both ways, each chunk delivered MS milliseconds after it
arrived, so a round trip through it takes 2 x MS more (a delay line: throughput is not
limited, chunks keep their order). The benchmark uses it where the kernel has no netem qdisc
to delay the box's link with.
"""
import os
import queue
import subprocess
import sys
import threading
import time


def pump(src, dst, delay, done):
    """Reads from fd `src`, writes to fd `dst` `delay` seconds later, until end of file."""
    q = queue.Queue()

    def reader():
        while True:
            try:
                data = os.read(src, 65536)
            except OSError:
                data = b""
            q.put((time.monotonic() + delay, data))
            if not data:
                return

    def writer():
        try:
            while True:
                due, data = q.get()
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                if not data:
                    break
                view = memoryview(data)
                while view:
                    view = view[os.write(dst, view):]
        except OSError:
            pass
        finally:
            try:
                os.close(dst)
            except OSError:
                pass
            done.set()

    threading.Thread(target=reader, daemon=True).start()
    threading.Thread(target=writer, daemon=True).start()


def main():
    if len(sys.argv) < 3:
        sys.exit("usage: delay_relay.py MS COMMAND...")
    delay = float(sys.argv[1]) / 1000
    to_child, child_in = os.pipe()
    child_out, from_child = os.pipe()
    child = subprocess.Popen(sys.argv[2:], stdin=to_child, stdout=from_child)
    os.close(to_child)
    os.close(from_child)
    up, down = threading.Event(), threading.Event()
    pump(0, child_in, delay, up)
    pump(child_out, 1, delay, down)
    # The connection ends when the box's side ends (ssh then closes its side too).
    down.wait()
    child.terminate()
    try:
        child.wait(timeout=5)
    except subprocess.TimeoutExpired:
        child.kill()


if __name__ == "__main__":
    main()
