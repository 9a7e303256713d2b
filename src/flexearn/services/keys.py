"""API keys: create (the secret shown once), list, revoke, and look up for authentication."""

from __future__ import annotations

import ipaddress
import secrets
import uuid
from dataclasses import dataclass

import sqlalchemy as sa

from flexearn.adapters import tables as t
from flexearn.adapters.clock import wall_ms
from flexearn.adapters.secrets import SecretBox, hash_passphrase
from flexearn.domain.errors import InvalidParameter, NotFound
from flexearn.services.unit_of_work import UnitOfWork

PERMISSIONS = ("read", "trade")
# The façades a key may work on. Binance signs with the secret alone (OKX and Bitget also ask for
# the passphrase), so a key that works there is only as strong as its secret.
FACADES = ("binance", "bitget", "okx")
ALL_FACADES = ",".join(FACADES)
DAY_MS = 86_400_000


@dataclass(frozen=True)
class NewKey:
    """What the user is shown once."""

    api_key: str
    secret_key: str
    passphrase: str


@dataclass(frozen=True)
class KeyInfo:
    api_key: str
    user_id: int
    permissions: tuple[str, ...]
    facades: tuple[str, ...]
    ip_allowlist: tuple[str, ...]
    expires_at: int | None
    created_at: int
    revoked_at: int | None


@dataclass(frozen=True)
class KeyRecord:
    """What authentication needs; the secret decrypted."""

    info: KeyInfo
    secret: str
    passphrase_hash: str


def _names(text: str, allowed: tuple[str, ...], param: str) -> tuple[str, ...]:
    names = tuple(sorted({n.strip() for n in text.split(",") if n.strip()}))
    if not names or any(n not in allowed for n in names):
        raise InvalidParameter(param, f"a comma-separated list of {', '.join(allowed)}")
    return names


def parse_permissions(text: str) -> tuple[str, ...]:
    return _names(text, PERMISSIONS, "perm")


def parse_facades(text: str) -> tuple[str, ...]:
    return _names(text, FACADES, "facades")


def parse_ips(text: str) -> tuple[str, ...]:
    ips = tuple(ip.strip() for ip in text.split(",") if ip.strip())
    for ip in ips:
        try:
            ipaddress.ip_network(ip, strict=False)
        except ValueError:
            raise InvalidParameter("ip", f"{ip!r} is not an IP address or network") from None
    return ips


def create_key(
    uow: UnitOfWork,
    box: SecretBox,
    user_id: int,
    permissions: str,
    ips: str = "",
    expires_days: int | None = None,
    passphrase: str | None = None,
    reissue: NewKey | None = None,
    facades: str = ALL_FACADES,
) -> NewKey:
    """A new key, working on `facades`; or `reissue`, a key issued before (e.g. the sandbox's,
    kept in its key file)."""
    perms, allow, where = parse_permissions(permissions), parse_ips(ips), parse_facades(facades)
    if expires_days is not None and expires_days <= 0:
        raise InvalidParameter("expires", "a positive number of days")
    new = reissue or NewKey(
        str(uuid.uuid4()), secrets.token_hex(16).upper(), passphrase or secrets.token_urlsafe(12)
    )
    now = wall_ms()
    with uow:
        if uow.conn.execute(sa.select(t.user.c.id).where(t.user.c.id == user_id)).first() is None:
            raise NotFound(f"no user {user_id}", param="user")
        uow.conn.execute(
            sa.insert(t.api_key).values(
                key=new.api_key,
                user_id=user_id,
                secret_encrypted=box.encrypt(new.secret_key),
                passphrase_hash=hash_passphrase(new.passphrase),
                permissions=",".join(perms),
                facades=",".join(where),
                ip_allowlist=",".join(allow),
                expires_at=None if expires_days is None else now + expires_days * DAY_MS,
                created_at=now,
            )
        )
        uow.commit()
    return new


def _info(row: sa.Row[object]) -> KeyInfo:
    return KeyInfo(
        api_key=row.key,
        user_id=row.user_id,
        permissions=tuple(row.permissions.split(",")),
        facades=tuple(row.facades.split(",")),
        ip_allowlist=tuple(ip for ip in row.ip_allowlist.split(",") if ip),
        expires_at=row.expires_at,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


def list_keys(uow: UnitOfWork, user_id: int) -> list[KeyInfo]:
    with uow:
        rows = uow.conn.execute(
            sa.select(t.api_key).where(t.api_key.c.user_id == user_id).order_by(t.api_key.c.created_at)
        ).all()
    return [_info(row) for row in rows]


def revoke_key(uow: UnitOfWork, api_key: str) -> KeyInfo:
    with uow:
        uow.conn.execute(
            sa.update(t.api_key)
            .where(t.api_key.c.key == api_key, t.api_key.c.revoked_at.is_(None))
            .values(revoked_at=wall_ms())
        )
        row = uow.conn.execute(sa.select(t.api_key).where(t.api_key.c.key == api_key)).first()
        if row is None:
            raise NotFound(f"no API key {api_key}", param="key")
        uow.commit()
    return _info(row)


def revoked_since(uow: UnitOfWork, since_ms: int) -> list[str]:
    """The keys revoked at or after `since_ms` (wall ms): what a process that keeps keys in
    memory must forget (`auth.Verifier`). Few rows: revocations are rare."""
    with uow:
        rows = uow.conn.execute(sa.select(t.api_key.c.key).where(t.api_key.c.revoked_at >= since_ms)).all()
    return [row.key for row in rows]


def load_key(uow: UnitOfWork, box: SecretBox, api_key: str) -> KeyRecord | None:
    with uow:
        row = uow.conn.execute(sa.select(t.api_key).where(t.api_key.c.key == api_key)).first()
    if row is None:
        return None
    return KeyRecord(_info(row), box.decrypt(row.secret_encrypted), row.passphrase_hash)
