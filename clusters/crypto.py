"""Encryption at rest for stored kubeconfigs: Fernet tokens under a MultiFernet key ring.

Keys come from ``settings.DNSAUDIT_FERNET_KEYS`` (newest first). Encryption always uses the newest
key; decryption tries each key, so a new key can be put in front while old rows are still readable;
``manage.py rotate-keys`` then re-encrypts every row with the newest key and the old key can be dropped.

Without keys outside production (the embedded ``make run`` mode) a key is generated once and kept in
``VAR_DIR/fernet.key`` (mode 0600), with a log line saying so. Production settings refuse to start
without keys, so this fallback never applies there.
"""

from __future__ import annotations

import logging
import os
from functools import lru_cache
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

log = logging.getLogger(__name__)

KEY_FILE_NAME = "fernet.key"


class DecryptionError(ValueError):
    """A stored token could not be decrypted with any configured key (the message says what to check)."""


def generate_key() -> str:
    """A new random Fernet key (urlsafe base64 text), as DNSAUDIT_FERNET_KEYS expects."""
    return Fernet.generate_key().decode()


_dev_keys: dict[Path, str] = {}


def _dev_key(var_dir: Path) -> str:
    """Read or create (once, 0600, race-safe) the development key file under ``var_dir``."""
    path = var_dir / KEY_FILE_NAME
    if path in _dev_keys and path.exists():
        return _dev_keys[path]
    var_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_text().strip()
        # Said once, when the key is generated (a warning); every later command stays quiet about it.
        log.debug("DNSAUDIT_FERNET_KEYS is not set: using the development key kept in %s", path)
        _dev_keys[path] = key
        return key
    with os.fdopen(fd, "w") as fh:
        key = generate_key()
        fh.write(key + "\n")
    log.warning(
        "DNSAUDIT_FERNET_KEYS is not set: generated a development key and kept it in %s (mode 0600); "
        "set DNSAUDIT_FERNET_KEYS in production",
        path,
    )
    _dev_keys[path] = key
    return key


def _configured_keys() -> tuple[str, ...]:
    keys = tuple(k.strip() for k in settings.DNSAUDIT_FERNET_KEYS if k.strip())
    if keys:
        return keys
    if settings.PRODUCTION:
        raise ImproperlyConfigured("DNSAUDIT_FERNET_KEYS is required in production")
    return (_dev_key(Path(settings.VAR_DIR)),)


@lru_cache(maxsize=8)
def _ring(keys: tuple[str, ...]) -> MultiFernet:
    fernets = []
    for i, key in enumerate(keys):
        try:
            fernets.append(Fernet(key))
        except (ValueError, TypeError):
            # Never echo the key itself.
            raise ImproperlyConfigured(
                f"DNSAUDIT_FERNET_KEYS entry {i + 1} is not a Fernet key (32 url-safe base64-encoded bytes)"
            ) from None
    return MultiFernet(fernets)


def key_ring() -> MultiFernet:
    """The MultiFernet for the current settings (cached per key list, so settings overrides apply)."""
    return _ring(_configured_keys())


def encrypt(text: str) -> str:
    """Encrypt ``text`` with the newest key; returns the Fernet token as text."""
    return key_ring().encrypt(text.encode("utf-8")).decode("ascii")


def decrypt(token: str) -> str:
    """Decrypt a token made by :func:`encrypt` with any configured key; raise DecryptionError otherwise."""
    try:
        return key_ring().decrypt(token.encode("ascii")).decode("utf-8")
    except (InvalidToken, UnicodeError):
        raise DecryptionError(
            "a stored secret cannot be decrypted with the configured keys: was its key removed from "
            "DNSAUDIT_FERNET_KEYS (or the development key file replaced)?"
        ) from None


def rotate(token: str) -> str:
    """Re-encrypt ``token`` with the newest key (decrypting with any configured key)."""
    try:
        return key_ring().rotate(token.encode("ascii")).decode("ascii")
    except (InvalidToken, UnicodeError):
        raise DecryptionError(
            "a stored secret cannot be decrypted with the configured keys, so it cannot be rotated: keep the "
            "old key in DNSAUDIT_FERNET_KEYS (after the new one) until rotate-keys has run"
        ) from None
