"""What the figures were measured on."""

from __future__ import annotations

import contextlib
import os
import platform
from pathlib import Path
from typing import Any

from newswatch.kafka_local import DEFAULT_LIB_DIR


def machine() -> dict[str, Any]:
    """CPUs, memory, OS and the versions of Python, Kafka, kafka-python and spaCy."""
    cpu_model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    mem_gib = None
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
    jars = sorted(DEFAULT_LIB_DIR.glob("kafka_2.13-*.jar"))
    kafka_version = jars[-1].stem.split("-", 1)[1] if jars else "unknown"
    import kafka
    import spacy

    return {
        "cpus": os.cpu_count(), "cpus_usable": len(os.sched_getaffinity(0)),
        "cpu_model": cpu_model, "memory_gib": mem_gib,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(), "kafka": kafka_version,
        "kafka_python": kafka.__version__, "spacy": spacy.__version__,
    }
