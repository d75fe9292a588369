"""One benchmark command: every figure of the README's table, measured in one run.

    .venv/bin/python -m bench.run_all [--quick] [--only producer,store] [--json FILE]
                                      [--write-readme]

Starts its own Kafka broker (`newswatch.kafka_local.LocalKafka`) on free ports in a
temporary folder, and uses the PostgreSQL of NEWSWATCH_TEST_POSTGRES_URL
(``eval "$(scripts/postgres.sh start)"``), in a schema of its own that is dropped at the
end; without that variable the PostgreSQL row is skipped with the reason printed. Every
server listens on 127.0.0.1, every wait is bounded, and the broker, servers and daemons
are stopped at the end, also after Ctrl+C or SIGTERM.

One module a section, each a `Section` (`bench.run_all.section`): ``measure(run)``
returns the section's figures as a JSON-ready dict (its targets inside), ``rows`` turns
them into table rows. The sections, in the order they run (`bench.run_all.sections`):

1. `producer`: new items per second through the daemon's own pass (bench_producer);
2. `enrich`: raw ``nlp.pipe`` and the full consumer path (Kafka in, `Enricher`, Kafka
   out, acknowledged and committed) on the same documents, alternating, best round of each;
3. `store`: articles per second from Kafka into PostgreSQL and SQLite (bench_store);
4. `scaling`: ``newswatch enrich`` as 1, then 2 processes in one consumer group on a topic
   with the default partition count; docs/s from publishing to the last output;
5. `end_to_end`: the four daemons as subprocesses; a feed server gains on-topic items at a
   steady rate; latency from an item's appearance in its feed to its alert at a webhook
   receiver; peak memory (VmHWM) of each daemon.

`bench.run_all.table` is the one writer of what a run produces: the Markdown table (on
stdout, and between the README's ``bench:begin``/``bench:end`` markers with
``--write-readme``) and the JSON (default bench/results.json). Progress goes to stderr.
A full run takes 5-10 minutes, ``--quick`` 2-3.
"""
