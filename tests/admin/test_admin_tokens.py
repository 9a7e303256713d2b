"""Who may start a server and who may use its admin API: tokens, their names, the demo exception."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from flexearn.adapters.secrets import generate_master_key
from flexearn.api.admin.auth import AdminTokenError, parse_tokens
from tests.admin.conftest import admin_client
from tests.server import FLEXEARN, free_port, running_server

OPS, CI = "ops-token-aaaaaaaaaaaaaaaa", "ci-token-bbbbbbbbbbbbbbbbbb"


def serve_refusal(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("FLEXEARN_")}
    environ.update(FLEXEARN_MASTER_KEY=generate_master_key(), **env)
    command = [FLEXEARN, "serve", "--port", str(free_port()), "--db", f"sqlite:///{tmp_path / 'x.db'}"]
    return subprocess.run(command, env=environ, capture_output=True, text=True, timeout=60)


def test_serve_refuses_to_start_without_an_admin_token(tmp_path: Path) -> None:
    refused = serve_refusal(tmp_path)
    assert refused.returncode != 0
    assert "FLEXEARN_ADMIN_TOKEN" in refused.stderr


def test_serve_refuses_a_guessable_admin_token(tmp_path: Path) -> None:
    refused = serve_refusal(tmp_path, FLEXEARN_ADMIN_TOKEN="secret")
    assert refused.returncode != 0
    assert "at least 16 characters" in refused.stderr


def test_tokens_are_read_with_their_names() -> None:
    tokens = parse_tokens(f"ops:{OPS}, {CI}", demo=False)
    assert tokens.identify(f"Bearer {OPS}") == "ops"
    assert tokens.identify(f"bearer {CI}") == "admin"  # a bare token is "admin"
    assert tokens.identify(f"Bearer {OPS}x") is None
    assert tokens.identify(OPS) is None  # the scheme is required
    assert tokens.identify(None) is None
    with pytest.raises(AdminTokenError):
        parse_tokens("", demo=False)
    assert parse_tokens("", demo=True).identify(None) == "demo"


def test_named_tokens_sign_the_audit_log_and_bad_actors_are_refused(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'tokens.db'}"
    env = {"FLEXEARN_ADMIN_TOKEN": f"ops:{OPS},ci:{CI}"}
    with running_server(db, generate_master_key(), env=env) as base:
        ops, ci = admin_client(base, OPS), admin_client(base, CI)
        assert ops.post("/currencies", json={"ccy": "USDT"}).status_code == 201
        pipeline = {"X-Admin-Actor": "pipeline#7"}
        assert ci.post("/currencies", json={"ccy": "BTC"}, headers=pipeline).status_code == 201
        refused = ci.post("/currencies", json={"ccy": "ETH"}, headers={"X-Admin-Actor": "tab\there"})
        assert refused.status_code == 400
        assert refused.json()["param"] == "X-Admin-Actor"
        entries = ops.get("/audit").json()
    assert [(e["token"], e["actor"], e["status"]) for e in entries] == [
        ("ci", "ci", 400),
        ("ci", "pipeline#7", 201),
        ("ops", "ops", 201),
    ]


def test_a_demo_starts_without_a_token_and_its_admin_api_is_open(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'demo.db'}"
    env = {"FLEXEARN_ADMIN_TOKEN": "", "FLEXEARN_DEMO": "1"}
    with running_server(db, generate_master_key(), env=env) as base, admin_client(base, None) as anyone:
        assert anyone.post("/users", json={"name": "sandbox"}).status_code == 201
        assert anyone.get("/audit").json()[0]["actor"] == "demo"


def test_a_demo_with_a_token_still_requires_it(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'demo.db'}"
    env = {"FLEXEARN_ADMIN_TOKEN": OPS, "FLEXEARN_DEMO": "1"}
    with running_server(db, generate_master_key(), env=env) as base:
        anyone, ops = admin_client(base, None), admin_client(base, OPS)
        assert anyone.get("/users").status_code == 401
        assert ops.get("/users").status_code == 200
