"""``newswatch web`` (the console daemon), ``newswatch users`` and ``newswatch tokens``.

Passwords come from a prompt, or from an environment variable named with
``--password-env`` (for scripts); never from an argument, which ``ps`` would show.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import secrets
import sys
from typing import Any

from consumers.web.auth import (
    ROLES,
    add_user,
    count_users,
    create_token,
    list_tokens,
    list_users,
    revoke_token,
    set_disabled,
    set_password,
)
from newswatch.db import make_engine
from newswatch.errors import ConfigError
from newswatch.migrate import check_schema
from newswatch.settings import Settings

CLI_WHO = "cli:" + (os.environ.get("USER") or "unknown")


def register(subparsers: Any) -> None:
    web = subparsers.add_parser("web", help="serve the web console and the HTTP API (daemon)")
    web.add_argument("--host", default=None, help="bind address (default NEWSWATCH_WEB_HOST)")
    web.add_argument("--port", type=int, default=None, help="port (default NEWSWATCH_WEB_PORT)")
    web.set_defaults(handler=handle_web)

    users = subparsers.add_parser("users", help="console accounts: add, list, password, "
                                                "disable, enable")
    actions = users.add_subparsers(dest="users_action", metavar="ACTION", required=True)
    # No abbreviations: `--password SECRET` must not pass as `--password-env`.
    add = actions.add_parser("add", help="add an account (password from a prompt)",
                             allow_abbrev=False)
    add.add_argument("name")
    add.add_argument("--role", choices=ROLES, default="viewer")
    add.add_argument("--password-env", metavar="VAR",
                     help="read the password from this environment variable instead")
    actions.add_parser("list", help="list accounts")
    password = actions.add_parser("password", help="set an account's password",
                                  allow_abbrev=False)
    password.add_argument("name")
    password.add_argument("--password-env", metavar="VAR")
    for name in ("disable", "enable"):
        action = actions.add_parser(name, help=f"{name} an account")
        action.add_argument("name")
    users.set_defaults(handler=handle_users)

    tokens = subparsers.add_parser("tokens", help="API tokens: create, list, revoke")
    token_actions = tokens.add_subparsers(dest="tokens_action", metavar="ACTION", required=True)
    create = token_actions.add_parser("create", help="create a token for an account "
                                                     "(printed once)")
    create.add_argument("--user", required=True)
    create.add_argument("--name", default="", help="what the token is for")
    token_actions.add_parser("list", help="list tokens (never their values)")
    revoke = token_actions.add_parser("revoke", help="revoke a token by id")
    revoke.add_argument("id", type=int)
    tokens.set_defaults(handler=handle_tokens)


def handle_web(args: argparse.Namespace, settings: Settings) -> int:
    from consumers.web.daemon import run_web

    overrides = {k: v for k, v in (("web_host", args.host), ("web_port", args.port))
                 if v is not None}
    return run_web(settings.model_copy(update=overrides))


def read_password(env_name: str | None) -> str:
    """The new password: from ``env_name`` when given, else typed twice at a prompt."""
    if env_name:
        value = os.environ.get(env_name)
        if not value:
            raise ConfigError(f"{env_name} is not set (it should hold the password)")
        return value
    if not sys.stdin.isatty():
        raise ConfigError("no terminal to ask for the password: use --password-env VAR")
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Again: "):
        raise ConfigError("the two passwords differ")
    return first


def handle_users(args: argparse.Namespace, settings: Settings) -> int:
    engine = make_engine(settings.sqlalchemy_url())
    try:
        check_schema(engine)
        if args.users_action == "add":
            add_user(engine, args.name, args.role, read_password(args.password_env),
                     who=CLI_WHO)
            print(f"user {args.name} added with role {args.role}")
        elif args.users_action == "list":
            for user in list_users(engine):
                print(json.dumps(user))
        elif args.users_action == "password":
            set_password(engine, args.name, read_password(args.password_env), who=CLI_WHO)
            print(f"password of {args.name} changed; its sessions ended")
        else:
            set_disabled(engine, args.name, args.users_action == "disable", who=CLI_WHO)
            print(f"user {args.name} {args.users_action}d")
        return 0
    finally:
        engine.dispose()


def handle_tokens(args: argparse.Namespace, settings: Settings) -> int:
    engine = make_engine(settings.sqlalchemy_url())
    try:
        check_schema(engine)
        if args.tokens_action == "create":
            token = create_token(engine, args.user, args.name, who=CLI_WHO)
            print(token)
            print("Shown once: store it now. Send it as 'Authorization: Bearer <token>'.",
                  file=sys.stderr)
        elif args.tokens_action == "list":
            for row in list_tokens(engine):
                print(json.dumps(row))
        else:
            revoke_token(engine, args.id, who=CLI_WHO)
            print(f"token {args.id} revoked")
        return 0
    finally:
        engine.dispose()


def ensure_first_admin(settings: Settings) -> str | None:
    """For ``newswatch run``: with no account yet, create ``admin`` and say how to sign in.

    The password is NEWSWATCH_WEB_ADMIN_PASSWORD when set (not printed), else a random
    one printed once. Returns the line to print, or None when accounts exist.
    """
    engine = make_engine(settings.sqlalchemy_url())
    try:
        if count_users(engine):
            return None
        if settings.web_admin_password is not None:
            add_user(engine, "admin", "admin", settings.web_admin_password.get_secret_value(),
                     who="newswatch run")
            return "Console account: admin (password from NEWSWATCH_WEB_ADMIN_PASSWORD)"
        password = secrets.token_urlsafe(12)
        add_user(engine, "admin", "admin", password, who="newswatch run")
        return (f"Console account: admin, password {password} (shown once; change it "
                "with: newswatch users password admin)")
    finally:
        engine.dispose()
