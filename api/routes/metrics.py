"""Prometheus metrics of the API (text exposition format): orders and cancels accepted and
refused by reason, the order log's commit latency, the link to the node, and with one process
the process's own (CPU, memory, open files). With several (`api_processes`), every process's
counts added up from prometheus-client's files (its multiprocess mode). Not in the OpenAPI
schema: it is for the monitoring system."""

from __future__ import annotations

import os

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

router = APIRouter(tags=["operations"])


@router.get("/metrics", operation_id="get_metrics", include_in_schema=False)
def get_metrics() -> Response:
    registry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
