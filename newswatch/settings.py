"""Typed settings, read once from the environment and passed in.

Every variable has the prefix ``NEWSWATCH_``, except that the standard
``KAFKA_BOOTSTRAP_SERVERS`` is honoured too. Secrets are `SecretStr`, so they never appear
in ``--print-config`` output or in logs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from newswatch.errors import ConfigError

ENV_PREFIX = "NEWSWATCH_"


class Settings(BaseSettings):
    """All settings of every daemon; each reads the part it needs."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")

    # Where local state lives: the SQLite database, local Kafka data, alert files.
    state_dir: Path = Path(".state")

    kafka_bootstrap_servers: str | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "KAFKA_BOOTSTRAP_SERVERS", "NEWSWATCH_KAFKA_BOOTSTRAP_SERVERS"
        ),
        description="Existing cluster to use; when unset the local broker is used.",
    )
    kafka_topic_prefix: str = ""
    kafka_port: int = Field(default=9092, ge=1, le=65535)
    kafka_controller_port: int = Field(default=9093, ge=1, le=65535)
    kafka_heap: str = Field(default="512m", pattern=r"^\d+[kmg]$")
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = (
        "PLAINTEXT"
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None

    database_url: SecretStr | None = Field(
        default=None, description="SQLAlchemy URL; defaults to SQLite under state_dir."
    )

    metrics_port: int | None = Field(
        default=None, ge=0, le=65535,
        description="Port for /metrics, /healthz and /readyz; unset: none",
    )
    metrics_host: str = Field(
        default="127.0.0.1", description="Address the metrics port binds (0.0.0.0 in containers)"
    )

    log_format: Literal["auto", "json", "text"] = "auto"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    def sqlalchemy_url(self) -> str:
        """The database URL to connect to (SQLite in the state folder by default)."""
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{(self.state_dir / 'newswatch.db').as_posix()}"

    def kafka_client_config(self) -> dict[str, Any]:
        """Keyword arguments for kafka-python clients: bootstrap servers and security."""
        if self.kafka_bootstrap_servers is None:
            bootstrap = f"127.0.0.1:{self.kafka_port}"
        else:
            bootstrap = self.kafka_bootstrap_servers
        config: dict[str, Any] = {
            "bootstrap_servers": bootstrap.split(","),
            "security_protocol": self.kafka_security_protocol,
        }
        if self.kafka_sasl_mechanism is not None:
            config["sasl_mechanism"] = self.kafka_sasl_mechanism
            config["sasl_plain_username"] = self.kafka_sasl_username
            if self.kafka_sasl_password is not None:
                config["sasl_plain_password"] = self.kafka_sasl_password.get_secret_value()
        if self.kafka_ssl_cafile is not None:
            config["ssl_cafile"] = str(self.kafka_ssl_cafile)
        return config

    def redacted(self) -> dict[str, Any]:
        """Settings as plain data with every secret replaced by ``'**********'``."""
        out: dict[str, Any] = {}
        for name, value in self.model_dump().items():
            if isinstance(value, SecretStr):
                out[name] = "**********"
            elif isinstance(value, Path):
                out[name] = str(value)
            else:
                out[name] = value
        return out


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment; an invalid value raises `ConfigError` naming it."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"])
            problems.append(f"{ENV_PREFIX}{field.upper()}: {error['msg']}")
        raise ConfigError("invalid settings: " + "; ".join(problems)) from exc
