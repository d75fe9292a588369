"""A throwaway PostgreSQL server for tests that stop and start the database on purpose.

Runs Debian's binaries the way scripts/postgres.sh does (as the ``postgres`` user when we
are root, since PostgreSQL refuses to run as root), in its own folder under /tmp and on a
free port, with a random password.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.support.ports import free_port


def _as_postgres(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@dataclass
class PostgresServer:
    bin_dir: Path
    data_dir: Path
    port: int
    password: str

    @staticmethod
    def find_bin() -> Path | None:
        """NEWSWATCH_TEST_PG_BIN, else the newest /usr/lib/postgresql/*/bin with initdb."""
        named = os.environ.get("NEWSWATCH_TEST_PG_BIN")
        candidates = [Path(named)] if named else sorted(
            Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name)
            if p.parent.name.isdigit() else 0, reverse=True)
        for candidate in candidates:
            if (candidate / "initdb").exists():
                return candidate
        return None

    @classmethod
    def create(cls, bin_dir: Path) -> PostgresServer:
        """initdb a new cluster (not started) owned by the user PostgreSQL runs as."""
        # Not pytest's tmp_path: the postgres user cannot enter root's 0700 folders.
        root = Path(tempfile.mkdtemp(prefix="newswatch-pg-test-"))
        data_dir = root / "data"
        password = secrets.token_urlsafe(18)
        pwfile = root / "pw"
        pwfile.write_text(password + "\n")
        if os.geteuid() == 0:
            shutil.chown(root, "postgres", "postgres")
            shutil.chown(pwfile, "postgres", "postgres")
        server = cls(bin_dir=bin_dir, data_dir=data_dir, port=free_port(), password=password)
        server._run([str(bin_dir / "initdb"), "-D", str(data_dir), "-U", "postgres",
                     "-A", "scram-sha-256", f"--pwfile={pwfile}", "--no-sync"])
        pwfile.unlink()
        return server

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres:{self.password}@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        """Start the server and wait until it accepts connections (same port as before)."""
        options = (f"-p {self.port} -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c max_connections=50")
        self._run([str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-w",
                   "-l", str(self.data_dir / "server.log"), "-o", options, "start"])

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: ``fast`` disconnects clients, ``immediate`` is like a crash."""
        self._run([str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", mode,
                   "-w", "stop"])

    def destroy(self) -> None:
        """Stop the server if it runs and delete its folder."""
        subprocess.run(_as_postgres([str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir),
                                     "-m", "immediate", "stop"]),
                       capture_output=True, check=False)
        shutil.rmtree(self.data_dir.parent, ignore_errors=True)

    def _run(self, command: list[str]) -> None:
        result = subprocess.run(_as_postgres(command), capture_output=True, text=True,
                                check=False)
        if result.returncode != 0:
            log = self.data_dir / "server.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"{command[0]} failed ({result.returncode}): "
                               f"{result.stdout}{result.stderr}{tail}")
