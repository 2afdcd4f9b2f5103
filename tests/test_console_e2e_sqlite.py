"""Found by the console's browser tests: a second connection to a database in one process must not
drop the first one's locks (the console opens the journal and the quota ledger from many threads
while `lf-bulk` commands use the same files).

POSIX record locks belong to the process: closing ANY descriptor of a file drops every lock the
process holds on it, SQLite's included. `lf_bulk.sqlite.connect` opens the file itself to check it;
had it closed that descriptor while another connection of the process was open, the next process to
close its own connection would believe itself the last one and delete the write-ahead log under it:
the console then answered "database disk image is malformed" (SQLite's "How To Corrupt", 2.2.1).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from lf_bulk import sqlite
from lf_bulk.quota import LEDGER_KIND

OTHER_PROCESS = """
import sys
from pathlib import Path
from lf_bulk import sqlite
from lf_bulk.quota import LEDGER_KIND
db = sqlite.connect(Path(sys.argv[1]), LEDGER_KIND)
db.execute("SELECT count(*) FROM sqlite_master").fetchall()
db.close()
"""


def open_and_close_in_another_process(path: Path) -> None:
    subprocess.run([sys.executable, "-c", OTHER_PROCESS, str(path)], check=True, timeout=60)


def test_a_second_connection_keeps_the_first_ones_locks(tmp_path: Path) -> None:
    path = tmp_path / "home" / "quota.db"
    first = sqlite.connect(path, LEDGER_KIND, check_same_thread=False)
    try:
        first.execute("SELECT count(*) FROM sqlite_master").fetchall()
        wal = Path(f"{path}-wal")
        open_and_close_in_another_process(path)
        assert wal.exists()  # this process still uses the file: the other one left the log
        second = sqlite.connect(path, LEDGER_KIND)  # another thread of the console
        second.close()
        open_and_close_in_another_process(path)
        assert wal.exists(), "the other process deleted the log this process is still using"
    finally:
        first.close()


def test_descriptors_are_released_once_no_connection_uses_the_file(tmp_path: Path) -> None:
    # Kept while a connection uses the file, not forever: a long process opens many homes.
    before = len(list(Path("/proc/self/fd").iterdir()))
    for n in range(30):
        sqlite.connect(tmp_path / f"h{n}" / "quota.db", LEDGER_KIND).close()
    sqlite.connect(tmp_path / "last" / "quota.db", LEDGER_KIND).close()
    assert len(list(Path("/proc/self/fd").iterdir())) <= before + 2
