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
)
def new_login_challenge(data: DataDep) -> ChallengePublic:
    """32 bytes to sign in a login (a nonce, its expiry and this API's MAC: nothing is stored),
    good once for two minutes."""
    challenge, expires_ms = new_challenge(data.root)
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
    """Checks the account's signature over the login message with its challenge and answers a
    bearer token for an hour, with the roles the chain gives the account; the challenge is then
    used up. 401 for another API's, a used or an expired challenge or a bad signature, 403 for
    an account without a role, 503 before the index has met the chain."""
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
