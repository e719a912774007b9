"""Sessions for the operator console: who may change what the API itself keeps (alert
acknowledgements, device configuration). Chain actions never pass through here: the browser
signs those extrinsics with the role's own key (docs/web.md, "Threat model").

Logging in proves control of an account without a password on the server, by challenge and
response:
- `POST /session/challenge` answers 32 bytes: a random nonce, an expiry and a MAC over both
  under `session.key` (so the API stores nothing for it, and no one can fill its storage);
- the browser signs `b"wattchain:login:v1" ++ genesis ++ account ++ challenge`
  (market.login_message) with the account's key and sends it to `POST /session`;
- the API checks the challenge's MAC and expiry (another API's challenge fails: other key),
  the signature, and the roles the finalized chain gives the account (from the index: the
  market operator, the distributor; a registered participant from the chain), then records
  the challenge as used until it expires, so the same login works once.
The genesis hash is the index's: sessions need the index, not the node (a participant's role
alone is read from the node).

It answers a bearer token: the account, its roles, the chain's genesis hash and an expiry,
signed with HMAC-SHA256 under `session.key` in the data folder (32 random bytes, created once,
readable by its owner only), so every API process on the folder accepts it and none has to
remember sessions. Each request re-reads the roles: a role the chain moved to another account
ends the session's use of it at once. A state-changing endpoint answers 401 without a valid
token and 403 when the account no longer holds a role it needs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request

from chain import ChainUnavailable
from market import login_message, now_ms, verify_sr25519
from store import queries, transaction

from .deps import ChainDep, DataDep, IndexDep
from .errors import APIError
from .params import account_key

SESSION_TTL_MS = 60 * 60 * 1000
CHALLENGE_TTL_MS = 2 * 60 * 1000
KEY_BYTES = 32
ROLES = ("operator", "distributor", "participant")


@dataclass(frozen=True)
class Session:
    account: str
    roles: tuple[str, ...]
    expires_ms: int
    genesis: str = ""  # 0x hex of the chain the session was opened on


def session_key(root: Path) -> bytes:
    """The data folder's token key: made once, atomically (a reader never sees a partly
    written file), and refused unless it is exactly 32 bytes that only its owner can read."""
    path = Path(root) / "session.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".session.key.")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(secrets.token_bytes(KEY_BYTES))
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o600)
            try:
                os.link(tmp, path)  # fails if another process made it first: keep theirs
            except FileExistsError:
                pass
            except OSError:  # a file system without hard links: exclusive create instead
                try:
                    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                except FileExistsError:
                    pass
                else:
                    with os.fdopen(fd, "wb") as f:
                        f.write(Path(tmp).read_bytes())
                        f.flush()
                        os.fsync(f.fileno())
        finally:
            os.unlink(tmp)
    key = path.read_bytes()
    if len(key) != KEY_BYTES or path.stat().st_mode & 0o077:
        raise RuntimeError(
            f"{path} must hold {KEY_BYTES} bytes and be readable by its owner only"
            " (delete it to make a new one: every session then ends)"
        )
    return key


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def issue_token(root: Path, session: Session) -> str:
    body = json.dumps(
        {
            "a": session.account,
            "r": list(session.roles),
            "e": session.expires_ms,
            "g": session.genesis,
        },
        separators=(",", ":"),
    ).encode()
    return _b64(body) + "." + _b64(hmac.new(session_key(root), body, hashlib.sha256).digest())


def read_token(root: Path, token: str) -> Session | None:
    """The session a token stands for, or None if it is forged, malformed or expired."""
    try:
        body_b64, mac_b64 = token.split(".")
        body, mac = _unb64(body_b64), _unb64(mac_b64)
    except (ValueError, TypeError):
        return None
    if not hmac.compare_digest(mac, hmac.new(session_key(root), body, hashlib.sha256).digest()):
        return None
    try:
        claims = json.loads(body)
        account, roles, expires, genesis = claims["a"], claims["r"], claims["e"], claims["g"]
    except (ValueError, TypeError, KeyError):
        return None
    well_formed = (
        isinstance(account, str)
        and isinstance(roles, list)
        and all(r in ROLES for r in roles)
        and isinstance(expires, int)
        and isinstance(genesis, str)
    )
    if not well_formed or expires <= now_ms():
        return None
    return Session(account, tuple(roles), expires, genesis)


def roles_of(index, chain, account: str, *, participant: bool = True) -> tuple[str, ...]:
    """The roles the chain gives `account`: the operator's and the distributor's as indexed
    from finalized blocks, a participant's (when asked) from the node; without the node, not
    that one."""
    roles = [
        role for role in ("operator", "distributor") if queries.role_holder(index, role) == account
    ]
    if participant:
        try:
            if chain.zone_of(account) is not None:
                roles.append("participant")
        except ChainUnavailable:
            pass
    return tuple(roles)


def index_genesis(index) -> str:
    """The genesis hash (0x hex) of the chain the index follows; 503 before it has one."""
    genesis = queries.index_meta(index, "genesis")
    if genesis is None:
        raise APIError(503, "IndexNotReady", "the index has not met the chain yet", retry_after_s=2)
    return genesis.lower()


def _challenge_mac(root: Path, nonce: bytes, expires_ms: int) -> bytes:
    signed = b"wattchain:challenge" + nonce + struct.pack("<Q", expires_ms)
    return hmac.new(session_key(root), signed, hashlib.sha256).digest()[:8]


def new_challenge(root: Path) -> tuple[bytes, int]:
    """A fresh login challenge and its expiry: nonce[16] ++ expires_ms u64 ++ mac[8]."""
    nonce, expires = secrets.token_bytes(16), now_ms() + CHALLENGE_TTL_MS
    return nonce + struct.pack("<Q", expires) + _challenge_mac(root, nonce, expires), expires


def _unknown_challenge() -> APIError:
    return APIError(
        401,
        "UnknownChallenge",
        "the challenge is not this API's, expired or used: ask POST /session/challenge again",
        field="challenge",
    )


def login(
    account: str, challenge: str, signature: str, *, chain, index, ops, root: Path
) -> tuple[str, Session]:
    """Checks a signed login against its challenge and opens a session: (token, session)."""
    address, raw = account_key(account, "account")
    nonce, (expires,), mac = (
        bytes.fromhex(challenge[2:34]),
        struct.unpack("<Q", bytes.fromhex(challenge[34:50])),
        bytes.fromhex(challenge[50:66]),
    )
    if not hmac.compare_digest(mac, _challenge_mac(root, nonce, expires)) or expires <= now_ms():
        raise _unknown_challenge()
    genesis = index_genesis(index)
    message = login_message(bytes.fromhex(genesis[2:]), raw, bytes.fromhex(challenge[2:]))
    if not verify_sr25519(raw, message, bytes.fromhex(signature[2:])):
        raise APIError(401, "BadSignature", "the signature is not the account's over the login")
    with transaction(ops):
        ops.execute("DELETE FROM used_challenges WHERE expires_ms <= ?", (now_ms(),))
        used = ops.execute(
            "INSERT OR IGNORE INTO used_challenges (challenge, expires_ms) VALUES (?, ?)",
            (challenge.lower(), expires),
        )
        if used.rowcount != 1:
            raise _unknown_challenge()
    roles = roles_of(index, chain, address)
    if not roles:
        raise APIError(403, "NoRole", f"{address} holds no role in this market")
    session = Session(address, roles, now_ms() + SESSION_TTL_MS, genesis)
    return issue_token(root, session), session


def current_session(request: Request, data: DataDep, index: IndexDep, chain: ChainDep) -> Session:
    """The request's session (Authorization: Bearer <token>), with the roles the account still
    holds; 401 without a valid token for this chain."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    session = read_token(data.root, token.strip()) if scheme.lower() == "bearer" else None
    genesis = (queries.index_meta(index, "genesis") or "").lower()
    if session is None or session.genesis != genesis:
        raise APIError(
            401,
            "NotAuthenticated",
            "log in first (POST /session) and send its token as Authorization: Bearer <token>",
        )
    held = set(roles_of(index, chain, session.account, participant="participant" in session.roles))
    return Session(
        session.account,
        tuple(r for r in session.roles if r in held),
        session.expires_ms,
        session.genesis,
    )


def require(*roles: str):
    """A dependency: the request's session, which must hold one of `roles` (403 otherwise)."""

    def check(session: Annotated[Session, Depends(current_session)]) -> Session:
        if not set(roles) & set(session.roles):
            holds = ", ".join(session.roles) or "no role"
            raise APIError(
                403,
                "Forbidden",
                f"{session.account} holds {holds}; this needs {' or '.join(roles)}",
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
    "index_genesis",
    "new_challenge",
    "read_token",
    "require",
    "roles_of",
    "session_key",
]
