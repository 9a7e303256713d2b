"""Time `flexearn demo` from start to ready: the process started until its banner is out (the
world built, the server answering), wall time and the process's CPU, alternating two commands.

    python bench/demo_start.py BEFORE AFTER [--rounds 3] [-- demo options...]

BEFORE and AFTER are commands (absolute paths: each run starts in its own directory) that run
flexearn, e.g. a script running
`PYTHONPATH=/tmp/old/src .venv/bin/python -m flexearn "$@"` for an older checkout and `flexearn`
for this one. Each run gets a fresh directory (so a new world is built, a week of history by
default), a free port, no FLEXEARN_* settings from the environment and unbuffered output, which
goes to a file polled every 0.05 s for the banner's last line; the directory is removed after.
Medians are printed per command; alternating keeps a busy machine's drift from favouring either.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

BANNER_END = "Ctrl-C stops."
TIMEOUT_S = 300


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """The process's own user + system CPU (its threads; not its children's)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_start(command: str, options: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds until the banner of one fresh demo, which is then stopped."""
    work = Path(tempfile.mkdtemp(prefix="demo-start-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEXEARN_")}
    env["PYTHONUNBUFFERED"] = "1"  # the banner as written, not when a pipe's buffer fills
    out = work / "out.txt"
    with out.open("w") as sink:
        start = time.monotonic()
        proc = subprocess.Popen(
            [command, "demo", "--port", str(free_port()), *options],
            cwd=work,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
        try:
            while BANNER_END not in out.read_text():
                if proc.poll() is not None or time.monotonic() - start > TIMEOUT_S:
                    raise SystemExit(f"{command}: no banner:\n{out.read_text()[-2000:]}")
                time.sleep(0.05)
            return time.monotonic() - start, cpu_seconds(proc.pid)
        finally:
            proc.terminate()
            proc.wait()
            shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("options", nargs="*", help="options for `flexearn demo` (after --)")
    args = parser.parse_args()
    runs: dict[str, list[tuple[float, float]]] = {args.before: [], args.after: []}
    for _ in range(args.rounds):
        for command, taken in runs.items():
            wall, cpu = one_start(command, args.options)
            taken.append((wall, cpu))
            print(f"{command}: {wall:.2f} s wall, {cpu:.2f} s CPU", flush=True)
    for command, taken in runs.items():
        walls, cpus = [w for w, _ in taken], [c for _, c in taken]
        print(
            f"{command}: median {statistics.median(walls):.2f} s wall {[round(w, 2) for w in walls]},"
            f" {statistics.median(cpus):.2f} s CPU {[round(c, 2) for c in cpus]}"
        )


if __name__ == "__main__":
    main()
