"""The web daemon: the console app served by uvicorn, like the other daemons' shell.

Waits for the database schema as the other daemons do (a database behind the code
refuses to start), serves /healthz, /readyz and /metrics on its own port and, when
NEWSWATCH_METRICS_PORT is set, on that port too (as `newswatch run` scrapes). SIGINT and
SIGTERM go through the project's handlers (`newswatch.daemon`), not uvicorn's (which
re-raise the signal after shutdown, so the process would not exit 0): the first one makes
uvicorn stop accepting, finish the requests in hand and return; a second exits at once.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI
from sqlalchemy import Engine

from consumers.web.app import WebState, create_app
from newswatch.daemon import Daemon
from newswatch.db import make_engine
from newswatch.migrate import wait_for_schema
from newswatch.settings import Settings

log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    """uvicorn without its own signal handlers; the daemon shell installs the project's."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def build_server(settings: Settings) -> tuple[uvicorn.Server, Engine, FastAPI]:
    """A uvicorn server for the console on ``settings`` (not started), engine and app."""
    engine = make_engine(settings.sqlalchemy_url())
    app = create_app(settings, engine)
    config = uvicorn.Config(app, host=settings.web_host, port=settings.web_port,
                            log_config=None, access_log=False, proxy_headers=True,
                            server_header=False, lifespan="off")
    return _Server(config), engine, app


def run_web(settings: Settings) -> int:
    """Serve in the daemon shell until stopped; returns the exit code. The first stop
    signal makes uvicorn stop accepting and finish the requests in hand."""
    server, engine, app = build_server(settings)
    shell = Daemon("web", settings)
    shell.close_at_exit(engine.dispose)
    shell.on_stop(lambda: setattr(server, "should_exit", True))
    web: WebState = app.state.web
    shell.ready_when(web.ready)

    def body() -> None:
        if wait_for_schema(engine, shell.stop) is None:
            return
        log.info("web console serving", extra={"url": settings.web_url()})
        server.run()

    return shell.run(body)
