"""Logging in to the operator console by challenge and response (api/auth.py): the API hands
out a single-use challenge, the browser signs it with the account's key, the API answers a
session."""

from __future__ import annotations

from fastapi import APIRouter

from ..auth import login, new_challenge
from ..deps import ChainDep, DataDep, IndexDep, OpsDep
from ..models import ChallengePublic, ErrorPublic, SessionCreate, SessionPublic

router = APIRouter(tags=["session"])


@router.post(
    "/session/challenge",
    operation_id="new_login_challenge",
    response_model=ChallengePublic,
    responses={503: {"model": ErrorPublic}},
)
def new_login_challenge(ops: OpsDep) -> ChallengePublic:
    """32 random bytes to sign in a login, valid once for two minutes."""
    challenge, expires_ms = new_challenge(ops)
    return ChallengePublic(challenge="0x" + challenge.hex(), expires_ms=expires_ms)


@router.post(
    "/session",
    operation_id="open_session",
    response_model=SessionPublic,
    responses={401: {"model": ErrorPublic}, 403: {"model": ErrorPublic}},
)
def open_session(
    body: SessionCreate, chain: ChainDep, index: IndexDep, ops: OpsDep, data: DataDep
) -> SessionPublic:
    """Checks the account's signature over the login message with its challenge (used up
    either way) and answers a bearer token for an hour, with the roles the chain gives the
    account. 401 for an unknown, used or expired challenge or a bad signature, 403 for an
    account without a role."""
    token, session = login(
        body.account,
        body.challenge,
        body.signature,
        chain=chain,
        index=index,
        ops=ops,
        root=data.root,
    )
    return SessionPublic(
        token=token,
        account=session.account,
        roles=list(session.roles),
        expires_ms=session.expires_ms,
    )
