"""Accounts, sessions, API tokens and roles of the web console.

- Passwords are hashed with argon2id (argon2-cffi); the password itself is never stored,
  logged or taken from a command-line argument.
- A session is a random cookie value; the database keeps only its SHA-256 (a dump signs
  nobody in), the user, an expiry and the session's CSRF token.
- An API token (``nw_...``) is shown once when created; the database keeps its SHA-256.
- Roles: ``viewer`` reads; ``analyst`` also acknowledges, silences, gives feedback and
  sends again; ``admin`` also manages accounts.
- `LoginLimiter` refuses sign-ins after too many failures per address and per account.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine, delete, select, update

from consumers.store.audit import record_audit
from newswatch.db_errors import unavailable_as_retryable
from newswatch.errors import ConfigError, NotFoundError
from newswatch.utc import as_utc
from schemas import tables

ROLES = ("viewer", "analyst", "admin")
TOKEN_PREFIX = "nw_"  # noqa: S105 (a prefix that makes a leaked token findable)
MIN_PASSWORD = 10
# Touching last_used_at on every API call would be a write per read.
TOKEN_TOUCH_EVERY = timedelta(minutes=5)
U, T, W = tables.users.c, tables.api_tokens.c, tables.web_sessions.c

_hasher = PasswordHasher()


@cache
def _dummy_hash() -> str:
    """Verified against when the account does not exist, so both cases take the same time.

    Made on first use, not at import: hashing costs ~140 ms of CPU, paid otherwise by every
    ``newswatch`` process (daemons, CLI commands) that never checks a password."""
    return _hasher.hash(secrets.token_urlsafe(16))


@dataclass(frozen=True)
class User:
    id: int
    name: str
    role: str

    @property
    def can_change(self) -> bool:
        """May acknowledge, silence, give feedback and send again."""
        return self.role in {"analyst", "admin"}

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True)
class Session:
    user: User
    csrf_token: str
    expires_at: datetime


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()





def check_password_rules(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise ConfigError(f"a password needs at least {MIN_PASSWORD} characters")


def add_user(engine: Engine, name: str, role: str, password: str, *, who: str) -> int:
    """Create an account; raises `ConfigError` for a bad role, name, password or a taken name."""
    name = name.strip()
    if role not in ROLES:
        raise ConfigError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if not name or len(name) > 128 or any(c.isspace() for c in name):
        raise ConfigError("a user name is 1 to 128 characters without spaces")
    check_password_rules(password)
    now = datetime.now(UTC)
    with unavailable_as_retryable(), engine.begin() as conn:
        if conn.execute(select(U.id).where(U.name == name)).first() is not None:
            raise ConfigError(f"user {name!r} exists already")
        new_id = conn.execute(tables.users.insert().values(
            name=name, role=role, password_hash=_hasher.hash(password), created_at=now,
        ).returning(U.id)).scalar_one()
        record_audit(conn, who=who, action="user.add", target=f"user:{name}",
                     detail={"role": role}, at=now)
    return int(new_id)


def set_password(engine: Engine, name: str, password: str, *, who: str) -> None:
    """Change a password; every session of the account ends."""
    check_password_rules(password)
    with unavailable_as_retryable(), engine.begin() as conn:
        user_id = conn.execute(select(U.id).where(U.name == name)).scalar()
        if user_id is None:
            raise NotFoundError(f"no user {name!r}")
        conn.execute(update(tables.users).where(U.id == user_id)
                     .values(password_hash=_hasher.hash(password)))
        conn.execute(delete(tables.web_sessions).where(W.user_id == user_id))
        record_audit(conn, who=who, action="user.password", target=f"user:{name}")


def set_disabled(engine: Engine, name: str, disabled: bool, *, who: str) -> None:
    """Disable (or enable) an account; disabling ends its sessions and tokens' use."""
    with unavailable_as_retryable(), engine.begin() as conn:
        user_id = conn.execute(select(U.id).where(U.name == name)).scalar()
        if user_id is None:
            raise NotFoundError(f"no user {name!r}")
        conn.execute(update(tables.users).where(U.id == user_id)
                     .values(disabled_at=datetime.now(UTC) if disabled else None))
        if disabled:
            conn.execute(delete(tables.web_sessions).where(W.user_id == user_id))
        record_audit(conn, who=who, action="user.disable" if disabled else "user.enable",
                     target=f"user:{name}")


def list_users(engine: Engine) -> list[dict[str, object]]:
    with unavailable_as_retryable(), engine.connect() as conn:
        return [{"name": r.name, "role": r.role, "created_at": as_utc(r.created_at).isoformat(),
                 "disabled": r.disabled_at is not None}
                for r in conn.execute(select(tables.users).order_by(U.name))]


def count_users(engine: Engine) -> int:
    with unavailable_as_retryable(), engine.connect() as conn:
        return len(conn.execute(select(U.id).limit(1)).all())


def authenticate(engine: Engine, name: str, password: str) -> User | None:
    """The account when the name and password match and it is enabled; else None."""
    with unavailable_as_retryable(), engine.connect() as conn:
        row = conn.execute(select(tables.users).where(U.name == name)).first()
    stored = row.password_hash if row is not None else _dummy_hash()
    try:
        _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return None
    if row is None or row.disabled_at is not None:
        return None
    return User(int(row.id), row.name, row.role)


def start_session(engine: Engine, user: User, lifetime: timedelta) -> tuple[str, Session]:
    """A new session for ``user``: the cookie value (to send once) and the session."""
    cookie = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    session = Session(user, secrets.token_urlsafe(32), now + lifetime)
    with unavailable_as_retryable(), engine.begin() as conn:
        # Expired sessions go when someone signs in: no sweeper thread needed.
        conn.execute(delete(tables.web_sessions).where(W.expires_at < now))
        conn.execute(tables.web_sessions.insert().values(
            id_hash=_digest(cookie), user_id=user.id, csrf_token=session.csrf_token,
            created_at=now, expires_at=session.expires_at))
    return cookie, session


def session_of(engine: Engine, cookie: str) -> Session | None:
    """The live session of a cookie value; None when unknown, expired or disabled."""
    if not cookie or len(cookie) > 200:
        return None
    query = (select(U.id, U.name, U.role, U.disabled_at, W.csrf_token, W.expires_at)
             .join(tables.users, U.id == W.user_id).where(W.id_hash == _digest(cookie)))
    with unavailable_as_retryable(), engine.connect() as conn:
        row = conn.execute(query).first()
    if row is None or row.disabled_at is not None:
        return None
    expires = as_utc(row.expires_at)
    if expires <= datetime.now(UTC):
        return None
    return Session(User(int(row.id), row.name, row.role), row.csrf_token, expires)


def end_session(engine: Engine, cookie: str) -> None:
    with unavailable_as_retryable(), engine.begin() as conn:
        conn.execute(delete(tables.web_sessions).where(W.id_hash == _digest(cookie)))


def create_token(engine: Engine, user_name: str, token_name: str, *, who: str) -> str:
    """A new API token for an account; the returned value is not stored anywhere."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    with unavailable_as_retryable(), engine.begin() as conn:
        user_id = conn.execute(select(U.id).where(U.name == user_name)).scalar()
        if user_id is None:
            raise NotFoundError(f"no user {user_name!r}")
        conn.execute(tables.api_tokens.insert().values(
            user_id=user_id, name=token_name[:128], token_hash=_digest(token), created_at=now))
        record_audit(conn, who=who, action="token.create", target=f"user:{user_name}",
                     detail={"token": token_name[:128]}, at=now)
    return token


def revoke_token(engine: Engine, token_id: int, *, who: str) -> None:
    with unavailable_as_retryable(), engine.begin() as conn:
        done = conn.execute(update(tables.api_tokens).where(T.id == token_id,
                                                            T.revoked_at.is_(None))
                            .values(revoked_at=datetime.now(UTC)))
        if done.rowcount != 1:
            raise NotFoundError(f"no live token {token_id}")
        record_audit(conn, who=who, action="token.revoke", target=f"token:{token_id}")


def list_tokens(engine: Engine) -> list[dict[str, object]]:
    query = (select(T.id, T.name, T.created_at, T.last_used_at, T.revoked_at, U.name.label("user"))
             .join(tables.users, U.id == T.user_id).order_by(T.id))
    with unavailable_as_retryable(), engine.connect() as conn:
        return [{"id": r.id, "user": r.user, "name": r.name,
                 "created_at": as_utc(r.created_at).isoformat(),
                 "last_used_at": as_utc(r.last_used_at).isoformat() if r.last_used_at else None,
                 "revoked": r.revoked_at is not None} for r in conn.execute(query)]


def token_user(engine: Engine, token: str) -> User | None:
    """The account of a live API token; None when unknown, revoked or disabled."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    digest = _digest(token)
    query = (select(U.id, U.name, U.role, U.disabled_at, T.id.label("token_id"),
                    T.last_used_at, T.revoked_at)
             .join(tables.users, U.id == T.user_id).where(T.token_hash == digest))
    with unavailable_as_retryable(), engine.connect() as conn:
        row = conn.execute(query).first()
    if row is None or row.revoked_at is not None or row.disabled_at is not None:
        return None
    now = datetime.now(UTC)
    if row.last_used_at is None or as_utc(row.last_used_at) < now - TOKEN_TOUCH_EVERY:
        with unavailable_as_retryable(), engine.begin() as conn:
            conn.execute(update(tables.api_tokens).where(T.id == row.token_id)
                         .values(last_used_at=now))
    return User(int(row.id), row.name, row.role)


class LoginLimiter:
    """At most ``attempts`` failed sign-ins per address and per account in ``window_s``.

    In memory: the console is one process; a restart forgets, which only helps someone
    who can restart the server anyway.
    """

    def __init__(self, attempts: int = 5, window_s: float = 900.0) -> None:
        self.attempts = attempts
        self.window_s = window_s
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.setdefault(key, deque())
        while times and times[0] <= now - self.window_s:
            times.popleft()
        return times

    def retry_after(self, address: str, account: str, now: float | None = None) -> float:
        """Seconds until a sign-in may be tried; 0 when it may be tried now."""
        now = time.monotonic() if now is None else now
        wait = 0.0
        with self._lock:
            for key in (f"ip:{address}", f"user:{account.lower()}"):
                times = self._recent(key, now)
                if len(times) >= self.attempts:
                    wait = max(wait, times[0] + self.window_s - now)
        return wait

    def failed(self, address: str, account: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            for key in (f"ip:{address}", f"user:{account.lower()}"):
                self._recent(key, now).append(now)
            if len(self._failures) > 100_000:  # bound memory under a spray of names
                self._failures.clear()

    def succeeded(self, address: str, account: str) -> None:
        with self._lock:
            self._failures.pop(f"user:{account.lower()}", None)
