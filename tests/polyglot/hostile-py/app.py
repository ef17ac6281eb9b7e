"""A Python step that misbehaves on request, to prove the sandbox holds for Python guests.

`mode`: echo (returns `in`), loop, sleep (an hour in WASI's clock), read (the file at
`path`: inside its grant, outside it, through a symlink out of it, or a FIFO that never gets
a writer), bomb (allocates until stopped), recurse (past any stack, with Python's own limit
lifted), trap (raises), exit (the process exits with status 3), huge (an output of `mib`
MiB), env (the environment it sees), connect (a TCP connection to `path`, HOST:PORT).
"""

import os
import socket
import sys
import time

import kiln


def deep(n):
    return deep(n + 1) + 1


class Step(kiln.Step):
    descriptor = (
        kiln.Descriptor("hostile-py", "Misbehaves on request")
        .optional_input("in", "text", "returned by `echo`")
        .output("out", "text", "what the mode returns")
        .output("blob", "bytes", "what `huge` returns")
        .config("mode", "echo", "echo, loop, sleep, read, bomb, recurse, trap, exit, huge, env or connect")
        .config("path", None, "the file for read; HOST:PORT for connect")
        .config("mib", 200, "the size of huge's output")
    )

    def process(self, inputs, config):
        mode = config.get("mode")
        if mode == "echo":
            return {"out": inputs.optional("in", "text") or "", "blob": b""}
        if mode == "loop":
            n = 0
            while True:
                n += 1
        if mode == "sleep":
            time.sleep(3600)
        if mode == "read":
            with open(config.get("path"), "rb") as f:
                return {"out": f.read().decode("utf-8", "replace"), "blob": b""}
        if mode == "bomb":
            hoard = []
            while True:
                hoard.append(bytearray(1 << 20))
        if mode == "recurse":
            sys.setrecursionlimit(1 << 30)
            deep(0)
        if mode == "trap":
            raise RuntimeError("deliberate failure in the hostile Python step")
        if mode == "exit":
            os._exit(3)
        if mode == "huge":
            return {"out": "", "blob": bytes(config.int("mib") << 20)}
        if mode == "env":
            return {"out": ",".join(sorted(os.environ)), "blob": b""}
        if mode == "connect":
            host, port = config.get("path").rsplit(":", 1)
            conn = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                conn.connect((host, int(port)))
            except OSError as e:
                raise kiln.invalid_input(f"cannot connect to {host}:{port}: {e}")
            conn.close()
            return {"out": "connected", "blob": b""}
        raise kiln.invalid_config(f"unknown mode `{mode}`")
