"""What a served worker knows of its replica: its index and the replica's metrics folder.

Kept apart from ``tpp_plumbing.observability.metrics`` so that the supervisor
(``tpp_plumbing.serve``) and its workers import no more than they need before the application.
"""

from __future__ import annotations

import os
from pathlib import Path

#: The replica's multiprocess metrics folder (prometheus_client's name).
MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"
#: Set by ``tpp_plumbing.serve`` in each worker: its index (0, 1, ...), kept across restarts.
WORKER_ENV = "TPP_SERVE_WORKER"
#: The file, in the metrics folder, where worker N notes its process id.
WORKER_PID = "worker-{}.pid"
#: Set by ``tpp_plumbing.serve`` in its children when it runs the service's relay process:
#: only then do the workers leave the publishing to it (``relay_mode`` "process").
RELAY_PROCESS_ENV = "TPP_SERVE_RELAY_PROCESS"
#: The relay process's name among the workers (``WORKER_ENV``, its process metrics' label).
RELAY_WORKER = "relay"


def register_worker(directory: str | os.PathLike[str], index: int | str) -> None:
    """Note this process as worker ``index`` of the replica (for its process metrics)."""
    (Path(directory) / WORKER_PID.format(index)).write_text(str(os.getpid()))
