"""Feed polling and publishing to ``news.articles``."""
