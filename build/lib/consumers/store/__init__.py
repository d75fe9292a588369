"""The store stage: enriched articles from Kafka into SQL, and what reads them back.

- `write.store_batch`: write a batch of `EnrichedArticle` in one idempotent transaction.
- `daemon.run_store`: the consumer group on ``news.enriched`` (``newswatch store``).
- `query.recent_articles`: recent articles by topic, entity and feed (``newswatch articles``).
- `prune.prune`: retention in bounded batches (``newswatch db prune``).
"""

from consumers.store.write import StoreResult, store_batch

__all__ = ["StoreResult", "store_batch"]
