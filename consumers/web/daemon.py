"""The web daemon: the console app served by uvicorn, like the other daemons' shell.

Waits for the database schema as the other daemons do (a database behind the code
refuses to start), serves /healthz, /readyz and /metrics on its own port and, when
NEWSWATCH_METRICS_PORT is set, on that port too (as `newswatch run` scrapes). SIGINT and
SIGTERM are uvicorn's: it stops accepting, finishes the requests in hand, and returns.
"""

from __future__ import annotations

import logging

import uvicorn
from fastapi import FastAPI
from sqlalchemy import Engine

from consumers.web.app import WebState, create_app
from newswatch.daemon import StopFlag
from newswatch.db import make_engine
from newswatch.health import start_health_server
from newswatch.migrate import wait_for_schema
from newswatch.settings import Settings

log = logging.getLogger(__name__)


def build_server(settings: Settings) -> tuple[uvicorn.Server, Engine, FastAPI]:
    """A uvicorn server for the console on ``settings`` (not started), engine and app."""
    engine = make_engine(settings.sqlalchemy_url())
    app = create_app(settings, engine)
    config = uvicorn.Config(app, host=settings.web_host, port=settings.web_port,
                            log_config=None, access_log=False, proxy_headers=True,
                            server_header=False, lifespan="off")
    return uvicorn.Server(config), engine, app


def run_web(settings: Settings) -> int:
    """Serve until stopped; returns the exit code."""
    server, engine, app = build_server(settings)
    stop = StopFlag()
    health = None
    try:
        if wait_for_schema(engine, stop) is None:
            return 0
        web: WebState = app.state.web
        health = start_health_server(settings.metrics_port, web.ready, settings.metrics_host)
        log.info("web console serving", extra={"url": settings.web_url()})
        server.run()
        return 0
    finally:
        if health is not None:
            health.stop()
        engine.dispose()
