#!/usr/bin/env python3
"""relay.py PORT: copy bytes between stdin/stdout and 127.0.0.1:PORT.

qemu's user-net guestfwd "cmd:" runs one per connection from the guest, with
the guest's connection on stdin/stdout: with restrict=on this is how the test
guest reaches the origin on the host's loopback (no netcat needed).
"""
import os
import selectors
import socket
import sys


def main():
    up = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
    up.settimeout(None)
    sel = selectors.DefaultSelector()
    sel.register(0, selectors.EVENT_READ, "guest")
    sel.register(up, selectors.EVENT_READ, "origin")
    open_ends = 2
    while open_ends:
        for key, _ in sel.select(timeout=120):
            if key.data == "guest":
                data = os.read(0, 65536)
                if not data:
                    sel.unregister(0)
                    up.shutdown(socket.SHUT_WR)
                    open_ends -= 1
                else:
                    up.sendall(data)
            else:
                data = up.recv(65536)
                if not data:
                    sel.unregister(up)
                    os.close(1)
                    open_ends -= 1
                else:
                    view = memoryview(data)
                    while view:
                        n = os.write(1, view)
                        view = view[n:]
        else:
            if not sel.get_map():
                break
    up.close()


if __name__ == "__main__":
    try:
        main()
    except (OSError, ValueError):
        sys.exit(1)
