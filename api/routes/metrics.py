"""Prometheus metrics of this API process (text exposition format): orders and cancels accepted
and refused by reason, the order log's commit latency, the link to the node, and the process's
own (CPU, memory, open files). Not in the OpenAPI schema: it is for the monitoring system."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

router = APIRouter(tags=["operations"])


@router.get("/metrics", operation_id="get_metrics", include_in_schema=False)
def get_metrics() -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
