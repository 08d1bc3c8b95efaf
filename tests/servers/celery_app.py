"""A Celery application on the filesystem broker: task ``track`` tracks one event.

Celery's prefork children leave through ``os._exit()`` without running multiprocessing's
exit hooks, whether recycled (``--max-tasks-per-child``) or stopped with the worker: the
client is closed from the ``worker_process_shutdown`` signal, as the README says. (Without
it, every event of this test is lost.)
"""

from __future__ import annotations

import os
from pathlib import Path

from celery import Celery
from celery.signals import worker_process_shutdown

from tests.servers import BROKER_DIR_VARIABLE
from tests.servers.common import client, track_call

_broker_dir = Path(os.environ[BROKER_DIR_VARIABLE])
for _sub in ("queue", "processed", "control", "results"):
    (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)

app = Celery("server_test")
app.conf.update(
    broker_url="filesystem://",
    broker_transport_options={
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    },
    result_backend=f"file://{_broker_dir / 'results'}",
    broker_connection_retry_on_startup=True,
    task_acks_late=False,
    worker_prefetch_multiplier=1,
)


@app.task(name="track")
def track(call_id: str) -> str:
    track_call(call_id)
    return call_id


@worker_process_shutdown.connect
def _close_client(**_: object) -> None:
    client.close()
