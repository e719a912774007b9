"""Sessions for the operator console: who may change what the API itself keeps (alert
acknowledgements, device configuration). Chain actions never pass through here: the browser
signs those extrinsics with the role's own key (docs/web.md, "Threat model").

Logging in proves control of an account without a password on the server: the browser signs
`b"wattchain:login:v1" ++ genesis ++ account ++ issued_ms` (market.login_message) with the
account's key, and the API checks the signature, that `issued_ms` is within `LOGIN_WINDOW_MS`
of its clock, and which roles the chain gives the account (from the index: the market
operator, the distributor, a registered participant). It answers with a bearer token: the
account, its roles and an expiry, signed with HMAC-SHA256 under a key kept in the data folder
(`session.key`, created on first use, readable by its owner only), so every API process on the
folder accepts it and none has to remember sessions. A state-changing endpoint answers 401
without a valid token and 403 when the token's roles do not include one it needs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request

from market import login_message, now_ms, verify_sr25519
from store import queries

from .deps import DataDep
from .errors import APIError
from .params import account_key

SESSION_TTL_MS = 60 * 60 * 1000
LOGIN_WINDOW_MS = 60 * 1000  # how far a login's issued_ms may be from the API's clock
ROLES = ("operator", "distributor", "participant")


@dataclass(frozen=True)
class Session:
    account: str
    roles: tuple[str, ...]
    expires_ms: int


def _key(root: Path) -> bytes:
    path = Path(root) / "session.key"
    try:
        return path.read_bytes()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another API process made it first
            return path.read_bytes()
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(32))
        return path.read_bytes()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def issue_token(root: Path, session: Session) -> str:
    body = json.dumps(
        {"a": session.account, "r": list(session.roles), "e": session.expires_ms},
        separators=(",", ":"),
    ).encode()
    mac = hmac.new(_key(root), body, hashlib.sha256).digest()
    return _b64(body) + "." + _b64(mac)


def read_token(root: Path, token: str) -> Session | None:
    """The session a token stands for, or None if it is forged, malformed or expired."""
    try:
        body_b64, mac_b64 = token.split(".")
        pad = lambda s: s + "=" * (-len(s) % 4)  # noqa: E731
        body = base64.urlsafe_b64decode(pad(body_b64))
        mac = base64.urlsafe_b64decode(pad(mac_b64))
    except (ValueError, TypeError):
        return None
    if not hmac.compare_digest(mac, hmac.new(_key(root), body, hashlib.sha256).digest()):
        return None
    claims = json.loads(body)
    if claims["e"] <= now_ms():
        return None
    return Session(claims["a"], tuple(claims["r"]), claims["e"])


def roles_of(index, chain, account: str) -> tuple[str, ...]:
    """The roles the chain gives `account`, as indexed from finalized blocks."""
    roles = [
        role for role in ("operator", "distributor") if queries.role_holder(index, role) == account
    ]
    if chain.zone_of(account) is not None:
        roles.append("participant")
    return tuple(roles)


def login(
    account: str, issued_ms: int, signature: str, *, chain, index, root: Path
) -> tuple[str, Session]:
    """Checks a signed login and opens a session: (token, session)."""
    address, raw = account_key(account, "account")
    if abs(issued_ms - now_ms()) > LOGIN_WINDOW_MS:
        raise APIError(
            401,
            "LoginExpired",
            f"issued_ms is {abs(issued_ms - now_ms()) // 1000} s from the API's clock"
            f" (at most {LOGIN_WINDOW_MS // 1000} s): sign a fresh login",
            field="issued_ms",
        )
    message = login_message(chain.genesis_hash, raw, issued_ms)
    if not verify_sr25519(raw, message, bytes.fromhex(signature[2:])):
        raise APIError(401, "BadSignature", "the signature is not the account's over the login")
    roles = roles_of(index, chain, address)
    if not roles:
        raise APIError(403, "NoRole", f"{address} holds no role in this market")
    session = Session(address, roles, now_ms() + SESSION_TTL_MS)
    return issue_token(root, session), session


def current_session(request: Request, data: DataDep) -> Session:
    """The request's session (Authorization: Bearer <token>); 401 without a valid one."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    session = read_token(data.root, token.strip()) if scheme.lower() == "bearer" else None
    if session is None:
        raise APIError(
            401,
            "NotAuthenticated",
            "log in first (POST /session) and send its token as Authorization: Bearer <token>",
        )
    return session


def require(*roles: str):
    """A dependency: the request's session, which must hold one of `roles` (403 otherwise)."""

    def check(session: Annotated[Session, Depends(current_session)]) -> Session:
        if not set(roles) & set(session.roles):
            raise APIError(
                403,
                "Forbidden",
                f"{session.account} is {', '.join(session.roles)}; this needs {' or '.join(roles)}",
            )
        return session

    return check


OperatorSession = Annotated[Session, Depends(require("operator"))]
DeviceAdminSession = Annotated[Session, Depends(require("operator", "distributor"))]

__all__ = [
    "ROLES",
    "DeviceAdminSession",
    "OperatorSession",
    "Session",
    "current_session",
    "issue_token",
    "login",
    "read_token",
    "require",
    "roles_of",
]
