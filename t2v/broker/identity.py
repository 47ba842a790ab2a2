"""Sender identity at the local broker's ingress: the part Knative's OIDC plays on a cluster.

`t2v local` makes one token per sender at start (`LocalCredentials`), gives each function
its own through its environment, and keeps them, with the delivery signing key, in
`<data dir>/credentials.json` (mode 0600). Another system sending `job.submit` presents a
tenant's API key, or a sender key configured for a tenant (`T2V_EVENT_SENDER_KEYS`, the
`T2V_API_KEYS` format: sha256 of the key -> tenant); in open mode (no API keys) the
generated `external` token sends as the tenant `local`.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from t2v.auth import OPEN_MODE_TENANT, KeyRegistry, hash_key
from t2v.errors import UnauthorizedError
from t2v.event_auth import INFER, SIGNING_KEY_ENV, SUBMIT, Sender
from t2v.events import SENDER_TOKEN_ENV

SENDER_KEYS_ENV = "T2V_EVENT_SENDER_KEYS"
EXTERNAL = "external"
CREDENTIALS_FILE = "credentials.json"
# The functions that send events, and the sender each one is.
FUNCTION_SENDERS = {"submit": SUBMIT, "infer": INFER}


class SenderRegistry:
    """Maps the credential an ingress request presents to its sender."""

    def __init__(
        self,
        tokens: Mapping[str, Sender],
        api_keys: KeyRegistry,
        sender_keys: KeyRegistry,
    ) -> None:
        self._by_hash = {hash_key(token): sender for token, sender in tokens.items()}
        self._registries = [keys for keys in (api_keys, sender_keys) if not keys.open_mode]

    def identify(self, authorization: str | None) -> Sender:
        scheme, _, credential = (authorization or "").strip().partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise UnauthorizedError(
                "the broker takes events only from known senders: send Authorization: "
                "Bearer <sender token or API key>",
                code="unauthenticated_sender",
            )
        sender = self._by_hash.get(hash_key(credential))
        if sender is not None:
            return sender
        for keys in self._registries:
            try:
                return Sender.of_tenant(keys.authenticate(authorization).tenant)
            except UnauthorizedError:
                continue
        raise UnauthorizedError("the sender's credential is not valid", code="unknown_sender")


@dataclass(frozen=True)
class LocalCredentials:
    signing_key: str
    tokens: Mapping[str, str]  # sender name -> token

    @classmethod
    def generate(cls, *, open_mode: bool) -> LocalCredentials:
        names = [*FUNCTION_SENDERS.values(), *([EXTERNAL] if open_mode else [])]
        return cls(secrets.token_hex(32), {name: secrets.token_urlsafe(32) for name in names})

    def registry(self, env: Mapping[str, str] | None = None) -> SenderRegistry:
        env = os.environ if env is None else env
        senders = {
            token: Sender.of_tenant(OPEN_MODE_TENANT) if name == EXTERNAL else Sender(name)
            for name, token in self.tokens.items()
        }
        return SenderRegistry(
            senders,
            KeyRegistry.from_env(env),
            KeyRegistry.from_env({"T2V_API_KEYS": env.get(SENDER_KEYS_ENV, "")}),
        )

    def function_env(self, function: str) -> dict[str, str]:
        """What a function gets: the signing key, and its own token if it sends events."""
        env = {SIGNING_KEY_ENV: self.signing_key}
        sender = FUNCTION_SENDERS.get(function)
        if sender is not None:
            env[SENDER_TOKEN_ENV] = self.tokens[sender]
        return env

    def write(self, data_dir: Path) -> Path:
        """Keep them in the data dir, readable by this user only (0600 from creation)."""
        path = data_dir / CREDENTIALS_FILE
        path.unlink(missing_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as stream:
            json.dump({"signing_key": self.signing_key, "senders": dict(self.tokens)}, stream)
        return path
