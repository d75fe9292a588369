"""docker-compose.yml describes the whole stack the way operators expect.

No Docker engine runs here, so this checks the file's structure; `.ci/run` also has a
compose client validate it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
# Service -> its command: alert rules are evaluated and delivered by two services, as
# `newswatch run` starts them.
COMMANDS = {"producer": ["producer"], "enrich": ["enrich"], "store": ["store"],
            "alert": ["alert", "--role", "evaluate"], "deliver": ["alert", "--role", "deliver"],
            "web": ["web"]}
DAEMONS = tuple(COMMANDS)


def _services() -> dict[str, Any]:
    document = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services: dict[str, Any] = document["services"]
    return services


def test_stack_has_kafka_kraft_postgres_mailpit_and_the_four_daemons() -> None:
    services = _services()
    assert services["kafka"]["image"].startswith("apache/kafka:4.")
    assert "controller" in services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["mailpit"]["image"].startswith("axllent/mailpit")
    for name, command in COMMANDS.items():
        assert services[name]["command"] == command, name


def test_daemons_wait_for_migrations_and_have_health_checks_and_restart_policies() -> None:
    services = _services()
    assert services["migrate"]["command"] == ["db", "upgrade"]
    for name in (*DAEMONS, "kafka", "postgres", "mailpit"):
        assert services[name]["restart"] == "unless-stopped", name
        assert "test" in services[name]["healthcheck"], name
    for name in DAEMONS:
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert depends["kafka"]["condition"] == "service_healthy"


def test_data_lives_in_volumes() -> None:
    services = _services()
    assert any("kafka-data:" in v for v in services["kafka"]["volumes"])
    assert any("postgres-data:" in v for v in services["postgres"]["volumes"])


def test_the_stories_stage_is_a_service_like_the_other_daemons() -> None:
    stories = _services()["stories"]
    assert stories["command"] == ["stories", "run"]
    assert stories["restart"] == "unless-stopped"
    assert stories["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_the_deliverer_waits_for_the_mail_server_and_the_evaluator_does_not() -> None:
    services = _services()
    assert services["deliver"]["depends_on"]["mailpit"]["condition"] == "service_healthy"
    assert "mailpit" not in services["alert"]["depends_on"]
    assert services["deliver"]["restart"] == "unless-stopped"
