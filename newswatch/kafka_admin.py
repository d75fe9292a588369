"""Creating the pipeline's topics on whatever cluster the settings point at."""

from __future__ import annotations

import contextlib
import logging

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from newswatch.settings import Settings
from schemas.topics import TopicNames

log = logging.getLogger(__name__)


def ensure_topics(settings: Settings, partitions: int | None = None,
                  replication: int | None = None) -> TopicNames:
    """Create news.articles, news.enriched and news.dlq if missing, with ``partitions``
    (default ``settings.kafka_partitions``), replicated ``kafka_replication_factor`` times
    with ``min.insync.replicas`` from the settings; idempotent.

    An existing topic keeps its partitions: adding some moves keys to other partitions,
    which an operator should decide. One with fewer than wanted is logged as a warning.
    """
    partitions = settings.kafka_partitions if partitions is None else partitions
    replication = replication or settings.kafka_replication_factor
    configs = {"min.insync.replicas": str(min(settings.kafka_min_insync_replicas,
                                              replication))}
    names = TopicNames.with_prefix(settings.kafka_topic_prefix)
    admin = KafkaAdminClient(**settings.kafka_client_config())
    try:
        existing = set(admin.list_topics())
        _warn_if_fewer(admin, [n for n in (names.articles, names.enriched) if n in existing],
                       partitions)
        wanted = [
            NewTopic(name, num_partitions=partitions, replication_factor=replication,
                     topic_configs=configs)
            for name in (names.articles, names.enriched, names.dlq)
            if name not in existing
        ]
        if wanted:
            # Another process may create them between our check and our request.
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(wanted)
            log.info("created topics", extra={"topics": [t.name for t in wanted]})
    finally:
        admin.close()
    return names


def _warn_if_fewer(admin: KafkaAdminClient, topics: list[str], wanted: int) -> None:
    """Log each of ``topics`` that has fewer than ``wanted`` partitions."""
    if not topics:
        return
    try:
        descriptions = admin.describe_topics(topics)
    except KafkaError:  # a cluster that will not describe them: nothing to warn about
        log.debug("could not describe topics", exc_info=True, extra={"topics": topics})
        return
    for described in descriptions:
        count = len(described.get("partitions") or ())
        if 0 < count < wanted:  # none listed: just created elsewhere, not yet known here
            log.warning("topic has fewer partitions than configured: at most that many "
                        "consumer processes of a group get work (raise them with "
                        "kafka-topics.sh --alter --partitions)",
                        extra={"topic": described.get("name"), "partitions": count,
                               "configured": wanted})
