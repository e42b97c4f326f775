"""Measures how long a converged Swarm update takes to reach an SSE client through the swarm
source: from the manager's event that marks the service's update completed (the last condition
of convergence: Swarm marks it once every new task has run for the update's monitor period) to
the version event's arrival at a client. Not a test (no timing asserts in tests); run it by hand,
as root, on a machine where the swarm tier runs:

    .venv/bin/python -m tests.swarm.convergence_latency [ROUNDS]
"""

import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from tests.docker.version_listener import VersionListener
from tests.sidecar_process import SidecarProcess
from tests.swarm.cluster import Cluster, app_image


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    cluster = Cluster()
    with tempfile.TemporaryDirectory() as logs:
        try:
            cluster.start()
            web = cluster.create_service(
                f"vs-latency-{uuid.uuid4().hex[:6]}", app_image("1.0"), "--replicas", "4",
                "--update-parallelism", "0", "--update-monitor", "1s",
            )  # fmt: skip
            cluster.wait_running(web, "1.0", 4)
            sidecar = SidecarProcess(
                ["--source", "swarm", "--swarm-service", web], Path(logs), env={"DOCKER_HOST": cluster.manager.host}
            )
            sidecar.wait_ready()
            listener = VersionListener(f"{sidecar.url}/events/version")
            listener.wait_for("1.0")
            delays = []
            for n in range(1, rounds + 1):
                version = "2.0" if n % 2 else "1.0"
                started = time.time()
                cluster.update_service(web, "--image", app_image(version))
                listener.wait_for(version, timeout=120)
                arrived = listener.received_at[-1]
                completed = [
                    at
                    for at, attributes in cluster.event_times(started, type="service", service=web)
                    if attributes.get("updatestate.new") == "completed"
                ]
                delays.append(arrived - completed[0])
                print(f"update {n} to {version}: completed -> client {delays[-1] * 1000:.0f} ms", flush=True)
            print(
                f"{rounds} updates of 4 tasks over 2 nodes, update completed -> client: "
                f"median {statistics.median(delays) * 1000:.0f} ms, max {max(delays) * 1000:.0f} ms"
            )
            listener.close()
            sidecar.stop()
        finally:
            cluster.destroy()


if __name__ == "__main__":
    main()
