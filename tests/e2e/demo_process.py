"""`flexearn demo` in a subprocess on a free port: what it printed, and where it serves."""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.server import FLEXEARN, free_port

BANNER_END = "Ctrl-C stops."
MARKER = "# ----"


@dataclass
class Demo:
    base_url: str
    db_path: Path
    lines: list[str] = field(default_factory=list)

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def printed(self, label: str) -> str:
        """A value of the banner, e.g. `apiKey`."""
        match = re.search(rf"^\s+{label}\s+(\S+)", self.output, re.MULTILINE)
        assert match, f"{label} not printed:\n{self.output}"
        return match.group(1)

    def snippets(self) -> dict[str, str]:
        """The code between the `# ----` markers, by title, exactly as printed."""
        found: dict[str, str] = {}
        title = None
        for line in self.lines:
            if line.startswith(MARKER):
                title = line.strip("# -") or None
                if title:
                    found[title] = ""
            elif title:
                found[title] += line + "\n"
        return found


@contextmanager
def running_demo(workdir: Path, *args: str, speed: str = "3600") -> Iterator[Demo]:
    """Start `flexearn demo` in `workdir` (its default fresh database there), without a master key
    in the environment (the demo makes one); yield once its banner is out; stop it afterwards."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEXEARN_")}
    proc = subprocess.Popen(
        [FLEXEARN, "demo", "--port", str(port), "--speed", speed, *args],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    demo = Demo(f"http://127.0.0.1:{port}", workdir / "flexearn-demo.db")
    banner_done = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            demo.lines.append(line.rstrip("\n"))
            if BANNER_END in line:
                banner_done.set()
        banner_done.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        deadline = time.monotonic() + 120
        while not banner_done.wait(0.2):
            assert time.monotonic() < deadline, f"no banner in time:\n{demo.output}"
        assert proc.poll() is None, f"flexearn demo exited:\n{demo.output}"
        yield demo
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if "Traceback" in demo.output:  # shown by pytest with the failing test
            print(f"--- flexearn demo logged errors ---\n{demo.output}")
