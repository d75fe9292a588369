# One image for every Newswatch daemon; docker-compose.yml picks the command.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 NEWSWATCH_LOG_FORMAT=json
WORKDIR /app
COPY pyproject.toml README.md ./
COPY newswatch ./newswatch
COPY schemas ./schemas
COPY producers ./producers
COPY consumers ./consumers
RUN pip install --no-cache-dir . && useradd --system --uid 10001 newswatch
USER newswatch
ENTRYPOINT ["newswatch"]
CMD ["--help"]
