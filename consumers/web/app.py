"""The ASGI application: HTML pages, the JSON API under /api/v1, and the probes.

`create_app` wires the pieces: sign-in and roles (`auth`), CSRF checks, security
headers, request metrics, and the routers of `pages` (HTML) and `api` (JSON). Nothing but
/login, /healthz, /readyz, /metrics and /static is reachable without a session or token.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import Engine, text

from consumers.alert.rules import load_rules
from consumers.web.auth import LoginLimiter, Session, User, session_of, token_user
from newswatch.errors import (
    ConfigError,
    NotFoundError,
    PermissionDeniedError,
    ServiceUnavailableError,
)
from newswatch.metrics import WEB_CHANGES, WEB_REQUEST_SECONDS, WEB_REQUESTS
from newswatch.settings import Settings
from schemas.rules_file import RulesFile

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
SESSION_COOKIE = "nw_session"
LOGIN_COOKIE = "nw_login"
OPEN_PATHS = ("/login", "/healthz", "/readyz", "/metrics", "/static/")
# No inline script or style, nothing from elsewhere: article text cannot run anything.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


@dataclass(frozen=True)
class Principal:
    """Who is asking: the account, and for a session its CSRF token (None: API token)."""

    user: User
    csrf_token: str | None

    @property
    def name(self) -> str:
        return self.user.name


class NotSignedInError(Exception):
    """No valid session or token: HTML gets a redirect to /login, the API a 401."""


class CsrfError(Exception):
    """A form or cookie-authenticated API call without the session's CSRF token."""


class WebState:
    """What every request handler needs, made once per application."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine
        self.limiter = LoginLimiter(settings.web_login_attempts)
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))
        self.templates.env.filters["when"] = _when
        self._rules: tuple[int, RulesFile] | None = None

    def rules(self) -> RulesFile:
        """The rules file in force, read again whenever it changed on disk."""
        path = self.settings.rules_path()
        try:
            stamp = path.stat().st_mtime_ns
        except OSError:
            stamp = -1
        cached = self._rules
        if cached is None or cached[0] != stamp:
            cached = (stamp, load_rules(path))
            self._rules = cached
        return cached[1]

    def rules_of_topic(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        try:
            parsed = self.rules()
        except ConfigError:
            return out
        for rule in parsed.rules:
            names = rule.match.topics.names() if rule.match.topics is not None else set()
            for topic in names:
                out.setdefault(topic, []).append(rule.name)
        return out

    def secure(self, request: Request) -> bool:
        mode = self.settings.web_secure_cookies
        return mode == "always" or (mode == "auto" and request.url.scheme == "https")

    def ready(self) -> bool:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True


def _when(moment: Any) -> str:
    if moment is None:
        return "—"
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def state_of(request: Request) -> WebState:
    state: WebState = request.app.state.web
    return state


def principal(request: Request) -> Principal:
    """The signed-in account of a request, from a Bearer token or the session cookie."""
    web = state_of(request)
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        user = token_user(web.engine, header[7:].strip())
        if user is None:
            raise NotSignedInError
        return Principal(user, None)
    session: Session | None = session_of(web.engine, request.cookies.get(SESSION_COOKIE, ""))
    if session is None:
        raise NotSignedInError
    return Principal(session.user, session.csrf_token)


def check_csrf(who: Principal, supplied: str | None) -> None:
    """Cookie-authenticated changes must carry the session's token (forms: a field, API:
    the X-CSRF-Token header); token-authenticated API calls cannot be forged by a page."""
    if who.csrf_token is None:
        return
    if not supplied or not secrets.compare_digest(supplied, who.csrf_token):
        raise CsrfError


def require_change(who: Principal) -> None:
    if not who.user.can_change:
        raise PermissionDeniedError(
            f"{who.user.role} accounts can read only; acknowledging, silencing, feedback "
            "and sending again need an analyst or admin account")


@contextlib.contextmanager
def change(who: Principal, csrf: str | None, action: str) -> Iterator[None]:
    """A change ``who`` makes from a page or the API (acknowledge, silence, feedback ...):
    the CSRF token and the account's right to change are checked before it runs; it is
    counted in ``WEB_CHANGES{action}`` once it succeeded, not when it raised."""
    check_csrf(who, csrf)
    require_change(who)
    yield
    WEB_CHANGES.labels(action).inc()


def safe_next(target: str | None, default: str = "/alerts") -> str:
    """A same-site path to go back to (never another host: no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target


def create_app(settings: Settings, engine: Engine) -> FastAPI:
    """The console and API on ``engine``, configured by ``settings``."""
    from consumers.web import api, pages

    app = FastAPI(title="Newswatch API", version="1", openapi_url=None, docs_url=None,
                  redoc_url=None,
                  description="Articles, alerts, silences, topics, entities, feeds and "
                              "feedback. Send an API token as `Authorization: Bearer nw_...`.")
    app.state.web = WebState(settings, engine)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    app.include_router(pages.router)
    app.include_router(api.router)

    @app.middleware("http")
    async def measure(request: Request, call_next: Callable[[Request], Awaitable[Response]]
                      ) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        name = getattr(route, "path", "unmatched")
        WEB_REQUESTS.labels(name, str(response.status_code)).inc()
        WEB_REQUEST_SECONDS.labels(name).observe(time.perf_counter() - started)
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        if request.url.path.startswith(("/api/", "/alerts", "/articles", "/search")):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.exception_handler(NotSignedInError)
    async def not_signed_in(request: Request, _exc: Exception) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": "sign in, or send a Bearer API token"}, 401,
                                headers={"WWW-Authenticate": "Bearer"})
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        from urllib.parse import quote
        return RedirectResponse(f"/login?next={quote(target, safe='')}", 303)

    def _error(request: Request, status: int, message: str) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": message}, status)
        web: WebState = app.state.web
        return web.templates.TemplateResponse(
            request, "error.html", {"status": status, "message": message, "user": None},
            status_code=status)

    @app.exception_handler(CsrfError)
    async def csrf_refused(request: Request, _exc: Exception) -> Response:
        log.warning("request refused: missing or wrong CSRF token",
                    extra={"path": request.url.path,
                           "client": request.client.host if request.client else None})
        return _error(request, 403, "refused: the form's CSRF token is missing or wrong "
                                    "(reload the page and try again)")

    @app.exception_handler(PermissionDeniedError)
    async def denied(request: Request, exc: Exception) -> Response:
        return _error(request, 403, str(exc))

    @app.exception_handler(NotFoundError)
    async def not_found(request: Request, exc: Exception) -> Response:
        return _error(request, 404, str(exc))

    @app.exception_handler(ConfigError)
    async def bad_input(request: Request, exc: Exception) -> Response:
        return _error(request, 400, str(exc))

    @app.exception_handler(ServiceUnavailableError)
    async def unavailable(request: Request, exc: Exception) -> Response:
        log.error("database unavailable: %s", exc, extra={"path": request.url.path})
        return _error(request, 503, "the database does not answer; try again shortly")

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> PlainTextResponse:
        return PlainTextResponse("ok\n")

    @app.get("/readyz", include_in_schema=False)
    def readyz(request: Request) -> PlainTextResponse:
        try:
            ok = state_of(request).ready()
        except Exception:  # a failing probe means "not ready", never a crashed endpoint
            ok = False
        return PlainTextResponse("ready\n" if ok else "not ready\n", 200 if ok else 503)

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app


def session_lifetime(settings: Settings) -> timedelta:
    return timedelta(hours=settings.web_session_hours)
