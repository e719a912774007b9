"""Logging in to the operator console: a signed login opens a session (api/auth.py)."""

from __future__ import annotations

from fastapi import APIRouter

from ..auth import login
from ..deps import ChainDep, DataDep, IndexDep
from ..models import ErrorPublic, SessionCreate, SessionPublic

router = APIRouter(tags=["session"])


@router.post(
    "/session",
    operation_id="open_session",
    response_model=SessionPublic,
    responses={401: {"model": ErrorPublic}, 403: {"model": ErrorPublic}},
)
def open_session(
    body: SessionCreate, chain: ChainDep, index: IndexDep, data: DataDep
) -> SessionPublic:
    """Checks the account's signature over the login message (issued within a minute of the
    API's clock) and answers a bearer token for an hour, with the roles the chain gives the
    account. 401 for a bad or stale signature, 403 for an account without a role."""
    token, session = login(
        body.account, body.issued_ms, body.signature, chain=chain, index=index, root=data.root
    )
    return SessionPublic(
        token=token,
        account=session.account,
        roles=list(session.roles),
        expires_ms=session.expires_ms,
    )
