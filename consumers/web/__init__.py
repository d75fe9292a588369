"""The web console and JSON API (``newswatch web``): analysts see, search, triage and
correct what Newswatch found. Server-rendered HTML (Jinja2) and /api/v1 share one query
layer (`queries`, `search`); `auth` holds accounts, sessions, tokens and roles."""
