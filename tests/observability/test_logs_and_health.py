"""JSON log lines carrying the request id, X-Request-Id echoed, and /healthz."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterator
from typing import IO, Any

import httpx
import pytest
import sqlalchemy as sa

from flexearn.adapters.db import make_engine, normalise_url
from flexearn.adapters.secrets import generate_master_key
from tests.conftest import POSTGRES_ADMIN_URL, postgres_database
from tests.server import ADMIN_TOKEN, running_server


@pytest.fixture
def logged_server(tmp_path: Any) -> Iterator[tuple[str, IO[bytes]]]:
    with (
        tempfile.TemporaryFile() as log,
        running_server(f"sqlite:///{tmp_path / 'logs.db'}", generate_master_key(), log=log) as base,
    ):
        yield base, log


def lines(log: IO[bytes]) -> list[dict[str, Any]]:
    time.sleep(0.3)  # the access line is written as the response goes out
    log.seek(0)
    return [json.loads(line) for line in log.read().decode().splitlines() if line.strip()]


def test_every_log_line_is_json_and_those_of_a_request_carry_its_id(
    logged_server: tuple[str, IO[bytes]],
) -> None:
    base, log = logged_server
    given = httpx.get(f"{base}/healthz", headers={"X-Request-Id": "trace-42.abc"})
    assert given.headers["x-request-id"] == "trace-42.abc"  # a sane id from the caller is kept
    refused = httpx.get(f"{base}/admin/v1/users")  # no token: a warning, then the access line
    made = refused.headers["x-request-id"]
    assert len(made) == 32
    replaced = httpx.get(f"{base}/healthz", headers={"X-Request-Id": "no spaces allowed"})
    assert replaced.headers["x-request-id"] != "no spaces allowed"
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    created = httpx.post(f"{base}/admin/v1/users", json={"name": "logged"}, headers=auth)
    assert created.status_code == 201

    records = lines(log)  # every line parses: no plain-text line anywhere, granian's included
    assert all({"ts", "level", "logger", "message", "request_id"} <= set(r) for r in records)
    assert any(r["logger"] == "_granian" for r in records)
    by_id: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_id.setdefault(record["request_id"], []).append(record)
    (access,) = by_id["trace-42.abc"]
    assert (access["logger"], access["path"], access["status"], access["facade"]) == (
        "flexearn.access", "/healthz", 200, "ops"
    )
    assert [(r["logger"], r["level"]) for r in by_id[made]] == [
        ("flexearn.admin", "WARNING"),
        ("flexearn.access", "INFO"),
    ]
    assert by_id[made][1]["code"] == "unauthorized"
    action = by_id[created.headers["x-request-id"]]
    assert [r["logger"] for r in action] == ["flexearn.admin", "flexearn.access"]
    assert action[0]["actor"] == "admin"
    assert action[1]["endpoint"] == "/admin/v1/users"


def test_healthz_answers_ok_while_the_database_answers(logged_server: tuple[str, IO[bytes]]) -> None:
    base, _ = logged_server
    response = httpx.get(f"{base}/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.postgres
def test_healthz_answers_503_when_the_database_is_gone() -> None:
    databases = postgres_database()
    url = next(databases)
    try:
        with running_server(url, generate_master_key()) as base:
            assert httpx.get(f"{base}/healthz").status_code == 200
            admin = make_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
            name = sa.make_url(normalise_url(url)).database
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
            admin.dispose()
            response = httpx.get(f"{base}/healthz")
            assert response.status_code == 503
            assert response.json()["status"] == "unavailable"
    finally:
        databases.close()
