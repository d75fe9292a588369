"""Alerts: rules that fire on SQL and reach people, grouped, throttled, sent once, explained.

The path of an alert, one module per step:
``rules`` (load rules.yaml) -> ``compile`` (rules as SQL) -> ``evaluate`` (new hits ->
matches -> triggers) -> ``group`` (dedup, throttle, digest) -> ``outbox`` (decision, dedup
key and watermark in one transaction) -> ``deliver`` (the retry loop) -> ``channels``
(email, webhook, apprise, jsonl, terminal) -> ``deliveries`` rows. ``daemon`` runs it;
``backtest`` replays history through it; ``cli`` exposes it.
"""
