"""``newswatch --print-config``: the settings in force, defaults filled in, secrets hidden."""

from __future__ import annotations

import json

import pytest

from newswatch.cli import main
from newswatch.settings import masked_url


def _config(capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    assert main(["--print-config"]) == 0
    return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    for name in ("NEWSWATCH_DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS",
                 "NEWSWATCH_KAFKA_BOOTSTRAP_SERVERS", "NEWSWATCH_FEEDS_FILE",
                 "NEWSWATCH_RULES_FILE", "NEWSWATCH_TOPICS_FILE", "NEWSWATCH_KAFKA_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NEWSWATCH_STATE_DIR", "/srv/newswatch-state")


def test_unset_settings_show_the_defaults_they_fall_back_to(
        capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(capsys)
    assert config["database_url"] == "sqlite:////srv/newswatch-state/newswatch.db"
    assert str(config["feeds_file"]).endswith("newswatch/demo/feeds.yaml")
    assert str(config["rules_file"]).endswith("newswatch/demo/rules.yaml")
    assert str(config["topics_file"]).endswith("consumers/enrich/topics.yaml")
    assert config["kafka_bootstrap_servers"] == "127.0.0.1:9092 (the local broker)"


def test_only_the_password_of_a_database_url_is_hidden(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSWATCH_DATABASE_URL",
                       "postgresql+psycopg://watch:hunter2@db.internal:5432/news")
    monkeypatch.setenv("NEWSWATCH_KAFKA_SASL_PASSWORD", "kafka-secret")
    out = json.dumps(_config(capsys))
    assert "hunter2" not in out
    assert "kafka-secret" not in out
    config = json.loads(out)
    assert config["database_url"] == "postgresql+psycopg://watch:***@db.internal:5432/news"
    assert config["kafka_sasl_password"] == "**********"

    monkeypatch.setenv("NEWSWATCH_DATABASE_URL", "postgresql+psycopg://watch@db.internal/news")
    assert _config(capsys)["database_url"] == "postgresql+psycopg://watch@db.internal/news"


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql://u:p%40ss@h/db", "postgresql://u:***@h/db"),
    ("postgresql://u@h/db?sslmode=require&sslpassword=s3cret",
     "postgresql://u@h/db?sslmode=require&sslpassword=**********"),
    ("sqlite:///relative.db", "sqlite:///relative.db"),
    ("not a url at all", "**********"),
])
def test_masked_url(url: str, shown: str) -> None:
    assert masked_url(url) == shown
