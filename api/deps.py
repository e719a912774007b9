"""Typed dependencies: the settings, the data folder's stores and the chain view.

They only read app.state, so they are `async def`: FastAPI runs a sync dependency in its thread
pool, a hand-off to a worker thread and back for each one on every request."""

from __future__ import annotations

import sqlite3
from typing import Annotated

from fastapi import Depends, Query, Request
from starlette.datastructures import State

from market.settings import Settings
from store import DataDir, ThreadConnection
from store.orderlog import OrderLog

from .chainview import ChainView
from .intake import Guards
from .pagination import DEFAULT_LIMIT, MAX_LIMIT


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_data(request: Request) -> DataDir:
    return request.app.state.data


async def get_chain(request: Request) -> ChainView:
    return request.app.state.chain


# Connections are per thread, and FastAPI may run a dependency and its endpoint on different
# threads: hand out stand-ins that pick the calling thread's connection at each use.
def index_of(state: State) -> sqlite3.Connection:
    return ThreadConnection(state.data.index)


def order_log_of(state: State) -> OrderLog:
    # One GroupCommit for the process: concurrent requests' appends commit together.
    return OrderLog(ThreadConnection(state.data.orders), state.log_commits)


async def get_index(request: Request) -> sqlite3.Connection:
    return index_of(request.app.state)


async def get_ops(request: Request) -> sqlite3.Connection:
    return ThreadConnection(request.app.state.data.ops)


async def get_order_log(request: Request) -> OrderLog:
    return order_log_of(request.app.state)


async def get_guards(request: Request) -> Guards:
    return request.app.state.guards


SettingsDep = Annotated[Settings, Depends(get_settings)]
DataDep = Annotated[DataDir, Depends(get_data)]
ChainDep = Annotated[ChainView, Depends(get_chain)]
IndexDep = Annotated[sqlite3.Connection, Depends(get_index)]
OpsDep = Annotated[sqlite3.Connection, Depends(get_ops)]
OrderLogDep = Annotated[OrderLog, Depends(get_order_log)]
GuardsDep = Annotated[Guards, Depends(get_guards)]
LimitQuery = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page")]
CursorQuery = Annotated[str | None, Query(description="next_cursor of the previous page")]

__all__ = [
    "ChainDep",
    "CursorQuery",
    "DEFAULT_LIMIT",
    "DataDep",
    "IndexDep",
    "LimitQuery",
    "OpsDep",
    "GuardsDep",
    "OrderLogDep",
    "SettingsDep",
    "index_of",
    "order_log_of",
]
