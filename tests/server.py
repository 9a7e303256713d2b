"""A real flexearn server in a subprocess, on a free loopback port."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

FLEXEARN = shutil.which("flexearn", path=str(Path(sys.executable).parent)) or "flexearn"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_server(database_url: str, master_key: str, *args: str) -> Iterator[str]:
    """Start `flexearn serve` and yield its base URL once it answers; stop it afterwards."""
    port = free_port()
    env = {**os.environ, "FLEXEARN_MASTER_KEY": master_key}
    proc = subprocess.Popen(
        [FLEXEARN, "serve", "--port", str(port), "--db", database_url, "--no-scheduler", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/v5/public/time", timeout=1).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    output = proc.stdout.read().decode() if proc.stdout else ""
                    raise RuntimeError(f"flexearn serve did not start:\n{output}") from None
                time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
