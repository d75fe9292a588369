"""Enrichment: spaCy entities and explainable topic hits, defined in YAML."""
