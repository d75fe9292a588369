"""Creating the pipeline's topics on whatever cluster the settings point at."""

from __future__ import annotations

import contextlib
import logging

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from newswatch.settings import Settings
from schemas.topics import TopicNames

log = logging.getLogger(__name__)


def ensure_topics(settings: Settings, partitions: int = 3, replication: int | None = None
                  ) -> TopicNames:
    """Create news.articles, news.enriched and news.dlq if missing; idempotent. Replicated
    ``kafka_replication_factor`` times with ``min.insync.replicas`` from the settings."""
    replication = replication or settings.kafka_replication_factor
    configs = {"min.insync.replicas": str(min(settings.kafka_min_insync_replicas,
                                              replication))}
    names = TopicNames.with_prefix(settings.kafka_topic_prefix)
    admin = KafkaAdminClient(**settings.kafka_client_config())
    try:
        existing = set(admin.list_topics())
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
