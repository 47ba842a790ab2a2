"""API keys, tenants and who may see which job.

HTTP callers send `Authorization: Bearer <key>`. Only the SHA-256 of each key is configured,
mapped to a tenant and a role (`user` or `admin`), as a JSON object
`{"<sha256-hex>": {"tenant": "acme", "role": "user"}}` in `T2V_API_KEYS`, or in the file named
by `T2V_API_KEYS_FILE` (a mounted Kubernetes Secret). `python -m t2v.auth new-key --tenant T`
makes a key and prints the entry to add. With no keys configured the API runs open: every
caller is tenant `local` with admin rights, and `open_mode` lets the server say so at start.

A tenant sees only its own jobs; an admin sees every tenant's.

A `job.submit` CloudEvent gets the tenant of its authenticated sender (`t2v.event_auth`):
the local broker maps the sender's credential (a tenant's API key or a configured sender
key) to a tenant; on a cluster the Broker's EventPolicies admit the senders that may name
one in `t2vtenant`. The tenant must still be one that the key registry knows, so a typo
cannot create a tenant.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from t2v.errors import MalformedEventError, UnauthorizedError

OPEN_MODE_TENANT = "local"
EVENT_TENANT_ATTRIBUTE = "t2vtenant"
ROLES = ("user", "admin")
_TENANT_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
_HASH_PATTERN = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Principal:
    tenant: str
    admin: bool


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _valid_tenant(tenant: object) -> bool:
    return isinstance(tenant, str) and _TENANT_PATTERN.fullmatch(tenant) is not None


def _parse_registry(text: str, source: str) -> dict[str, Principal]:
    try:
        raw: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{source} is not valid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise ValueError(f"{source} must be a JSON object of key hash -> entry")
    entries: dict[str, Principal] = {}
    for key_hash, entry in raw.items():
        # Error messages name only the position in the file, never a hash or a key.
        if not isinstance(key_hash, str) or not _HASH_PATTERN.fullmatch(key_hash):
            raise ValueError(f"{source}: every name must be a lowercase sha256 hex digest")
        if not isinstance(entry, dict) or not _valid_tenant(entry.get("tenant")):
            raise ValueError(
                f"{source}: every entry needs a tenant matching {_TENANT_PATTERN.pattern}"
            )
        role = entry.get("role", "user")
        if role not in ROLES:
            raise ValueError(f"{source}: role must be one of {', '.join(ROLES)}")
        entries[key_hash] = Principal(tenant=entry["tenant"], admin=role == "admin")
    return entries


class KeyRegistry:
    """The configured API keys (by hash); empty means open mode."""

    def __init__(self, principals_by_hash: Mapping[str, Principal]) -> None:
        self._by_hash = dict(principals_by_hash)
        self._tenants = {principal.tenant for principal in self._by_hash.values()}

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> KeyRegistry:
        env = os.environ if env is None else env
        inline, path = env.get("T2V_API_KEYS", ""), env.get("T2V_API_KEYS_FILE", "")
        if inline.strip() and path:
            raise ValueError("set T2V_API_KEYS or T2V_API_KEYS_FILE, not both")
        if path:
            try:
                text = Path(path).read_text()
            except OSError as exc:
                raise ValueError(f"T2V_API_KEYS_FILE {path!r} cannot be read: {exc}") from exc
            return cls(_parse_registry(text, "T2V_API_KEYS_FILE"))
        if inline.strip():
            return cls(_parse_registry(inline, "T2V_API_KEYS"))
        return cls({})

    @property
    def open_mode(self) -> bool:
        return not self._by_hash

    def authenticate(self, authorization_header: str | None) -> Principal:
        if self.open_mode:
            return Principal(tenant=OPEN_MODE_TENANT, admin=True)
        scheme, _, key = (authorization_header or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise UnauthorizedError("missing API key: send the header Authorization: Bearer <key>")
        principal = self._by_hash.get(hash_key(key.strip()))
        if principal is None:
            raise UnauthorizedError("the API key is not valid")
        return principal

    def event_principal(self, tenant_attribute: str | None) -> Principal:
        """The submitter of a `job.submit` CloudEvent, from the tenant its authenticated
        sender maps to (see the module docstring)."""
        if tenant_attribute and not _valid_tenant(tenant_attribute):
            raise MalformedEventError(
                f"{EVENT_TENANT_ATTRIBUTE} must match {_TENANT_PATTERN.pattern}",
                code="invalid_tenant",
                field=EVENT_TENANT_ATTRIBUTE,
            )
        if self.open_mode:
            return Principal(tenant=tenant_attribute or OPEN_MODE_TENANT, admin=False)
        if not tenant_attribute:
            raise MalformedEventError(
                f"the event has no {EVENT_TENANT_ATTRIBUTE} attribute naming its tenant",
                code="missing_tenant",
                field=EVENT_TENANT_ATTRIBUTE,
            )
        if tenant_attribute not in self._tenants:
            raise MalformedEventError(
                f"the event names tenant {tenant_attribute!r}, which has no API key",
                code="unknown_tenant",
                field=EVENT_TENANT_ATTRIBUTE,
            )
        return Principal(tenant=tenant_attribute, admin=False)

    @staticmethod
    def can_see(principal: Principal, job_tenant: str) -> bool:
        return principal.admin or principal.tenant == job_tenant


def new_key() -> str:
    return "t2v_" + secrets.token_urlsafe(32)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m t2v.auth", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("new-key", help="print a fresh API key and its registry entry")
    make.add_argument("--tenant", required=True)
    make.add_argument("--admin", action="store_true", help="the key sees every tenant's jobs")
    args = parser.parse_args(argv)
    if not _valid_tenant(args.tenant):
        parser.error(f"--tenant must match {_TENANT_PATTERN.pattern}")
    key = new_key()
    entry = {hash_key(key): {"tenant": args.tenant, "role": "admin" if args.admin else "user"}}
    print(f"API key (give it to the client; it is not stored anywhere): {key}")
    print("Add this entry to T2V_API_KEYS or the T2V_API_KEYS_FILE JSON object:")
    print(json.dumps(entry, indent=2))


if __name__ == "__main__":
    main()
