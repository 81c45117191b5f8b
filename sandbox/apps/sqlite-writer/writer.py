"""The ledger app's writer: numbered transactions into a real SQLite database, pausing on request.

    python writer.py DATA_DIR LOG_FILE

Each transaction inserts row ``n`` (and a payload) into ``DATA_DIR/ledger.db`` (WAL mode) and, once
committed, appends ``n <unix time>`` to LOG_FILE — what a test compares the restored database with.
It honours a pause the backup hooks ask for: while ``DATA_DIR/.pause`` exists it commits nothing,
checkpoints the WAL into the database file (TRUNCATE, so the file alone is the whole database) and
writes the last committed ``n`` into ``DATA_DIR/.paused``; when ``.pause`` goes, it removes
``.paused`` and writes again. ``DATA_DIR/.stop`` ends it. In the sandbox a test runs this process
against the claim's PV directory (the sandbox runs no ordinary containers); in a real cluster it is
the Deployment's container command.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import time
from pathlib import Path


def main(data: Path, log_path: Path) -> None:
    db = sqlite3.connect(data / "ledger.db", isolation_level=None, timeout=30)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE IF NOT EXISTS txns (n INTEGER PRIMARY KEY, at REAL, payload BLOB)")
    db.execute("CREATE TABLE IF NOT EXISTS totals (id INTEGER PRIMARY KEY CHECK (id = 1), count INTEGER)")
    db.execute("INSERT OR IGNORE INTO totals VALUES (1, 0)")
    n = db.execute("SELECT COALESCE(MAX(n), 0) FROM txns").fetchone()[0]
    paused = False
    with log_path.open("a") as log:
        while not (data / ".stop").exists():
            if (data / ".pause").exists():
                if not paused:
                    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                    (data / ".paused").write_text(str(n))
                    paused = True
                time.sleep(0.01)
                continue
            if paused:
                (data / ".paused").unlink(missing_ok=True)
                paused = False
            n += 1
            db.execute("BEGIN IMMEDIATE")
            db.execute("INSERT INTO txns VALUES (?, ?, randomblob(4096))", (n, time.time()))
            db.execute("UPDATE totals SET count = count + 1 WHERE id = 1")
            db.execute("COMMIT")
            log.write(f"{n} {time.time()!r}\n")
            log.flush()
    db.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
    os._exit(0)
