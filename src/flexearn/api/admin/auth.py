"""Admin bearer tokens: `token` or `name:token`, comma-separated, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from flexearn.domain.errors import FlexearnError

MIN_TOKEN_LENGTH = 16
DEFAULT_NAME = "admin"
DEMO_NAME = "demo"


class AdminTokenError(FlexearnError):
    code = "admin_token"


@dataclass(frozen=True)
class AdminTokens:
    """The configured tokens (as digests) and the name each stands for."""

    digests: tuple[tuple[bytes, str], ...]
    open: bool  # a demo without tokens: every request acts as "demo"

    def identify(self, authorization: str | None) -> str | None:
        """The name of the token presented in `Authorization: Bearer …`, or None."""
        if self.open and not self.digests:
            return DEMO_NAME
        scheme, _, presented = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            return None
        digest = hashlib.sha256(presented.strip().encode()).digest()
        found = None
        for expected, name in self.digests:  # every token is compared: no early exit to time
            if hmac.compare_digest(digest, expected) and found is None:
                found = name
        return found


def parse_tokens(config: str, *, demo: bool) -> AdminTokens:
    """Read FLEXEARN_ADMIN_TOKEN; refuse to go on without one unless this is a demo."""
    digests = []
    for item in (part.strip() for part in config.split(",")):
        if not item:
            continue
        name, sep, token = item.partition(":")
        if not sep:
            name, token = DEFAULT_NAME, item
        if len(token) < MIN_TOKEN_LENGTH or not name:
            raise AdminTokenError(
                f"each admin token must be at least {MIN_TOKEN_LENGTH} characters "
                "(make one with `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
            )
        digests.append((hashlib.sha256(token.encode()).digest(), name))
    if not digests and not demo:
        raise AdminTokenError(
            "no admin token: set FLEXEARN_ADMIN_TOKEN (or FLEXEARN_DEMO=1 for a sandbox whose admin "
            "API is open)"
        )
    return AdminTokens(tuple(digests), demo)
