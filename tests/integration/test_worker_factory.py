"""A served worker (`api.app.factory`, as granian starts it) keeps what it built at its start out of
the garbage collector's walks: a full collection would otherwise walk some 100,000 objects that
live as long as the worker, stalling every request in flight for tens of milliseconds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from flexearn.adapters.secrets import generate_master_key
from flexearn.bootstrap import Flexearn

CHILD = """
import gc, json
from flexearn.api.app import factory
before = gc.get_freeze_count()
app = factory()
print(json.dumps({"before": before, "frozen": gc.get_freeze_count(), "tracked": len(gc.get_objects())}))
"""


def test_the_worker_factory_freezes_what_it_built(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/worker.db"
    Flexearn(url).close()  # a migrated database, as `serve` leaves it for its workers
    env = {**os.environ, "FLEXEARN_DATABASE_URL": url, "FLEXEARN_MASTER_KEY": generate_master_key()}
    env |= {"FLEXEARN_DEMO": "1", "FLEXEARN_LOG_LEVEL": "WARNING"}
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=True)
    found = json.loads(out.stdout.splitlines()[-1])
    assert found["before"] == 0
    # the app's modules, tables and routes: frozen, and far more than what is left to walk
    assert found["frozen"] > 10 * max(found["tracked"], 1)
