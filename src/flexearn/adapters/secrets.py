"""API secrets encrypted at rest under the master key; passphrases kept only as a slow hash.

The master key comes from the configuration, never from the database: a copy of the database
alone does not reveal any secret. Several comma-separated keys allow rotation (the first
encrypts, all decrypt).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from flexearn.domain.errors import FlexearnError

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1


class MasterKeyError(FlexearnError):
    code = "master_key"


def generate_master_key() -> str:
    return Fernet.generate_key().decode()


class SecretBox:
    def __init__(self, master_keys: str) -> None:
        keys = [k.strip() for k in master_keys.split(",") if k.strip()]
        if not keys:
            raise MasterKeyError(
                "no master key: set FLEXEARN_MASTER_KEY (make one with `flexearn key generate-master`)"
            )
        try:
            self._fernet = MultiFernet([Fernet(k.encode()) for k in keys])
        except ValueError as error:
            raise MasterKeyError(f"FLEXEARN_MASTER_KEY is not a valid key: {error}") from None

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise MasterKeyError("an API secret cannot be decrypted with the configured master key") from None


def hash_passphrase(passphrase: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(passphrase.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def verify_passphrase(passphrase: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    candidate = hashlib.scrypt(passphrase.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p))
    return hmac.compare_digest(candidate, bytes.fromhex(digest))
