"""Measures how long a deploy takes to reach an SSE client through the docker source: from the
engine's event that makes the new container ready (start, or health_status: healthy) to the
version event's arrival at a client. Not a test (no timing asserts in tests); run it by hand:

    DOCKER_HOST=$(.ci/start-dockerd) .venv/bin/python -m tests.docker.deploy_latency [ROUNDS]
"""

import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from tests.docker.engine import shared_engine
from tests.docker.version_listener import VersionListener
from tests.sidecar_process import SidecarProcess


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    engine = shared_engine()
    app = f"vs-latency-{uuid.uuid4().hex[:6]}"
    ready_at: dict[str, float] = {}  # container id -> engine time of the event that made it ready
    events = subprocess.Popen(
        [*engine.cli, "events", "--filter", f"container={app}", "--format", "{{.TimeNano}} {{.ID}} {{.Action}}"],
        stdout=subprocess.PIPE,
        text=True,
    )

    def read_events() -> None:
        assert events.stdout is not None
        for line in events.stdout:
            nanos, container, action = line.rstrip("\n").split(" ", 2)
            if action in ("start", "health_status: healthy"):  # healthy comes after start, and wins
                ready_at[container] = int(nanos) / 1e9

    threading.Thread(target=read_events, daemon=True).start()
    with tempfile.TemporaryDirectory() as logs:
        try:
            images = [engine.build_app_image(f"{app}:{n}", f"{n}.0") for n in range(rounds + 1)]
            engine.run_app(app, images[0])
            sidecar = SidecarProcess(["--source", "docker", "--docker-target", app], Path(logs))
            sidecar.wait_ready()
            listener = VersionListener(f"{sidecar.url}/events/version")
            listener.wait_for("0.0")
            delays: dict[str, list[float]] = {"no healthcheck": [], "healthcheck": []}
            for n in range(1, rounds + 1):
                checked = n % 2 == 0
                engine.remove(app)
                container = engine.run_app(app, images[n], healthcheck="true" if checked else None)
                listener.wait_for(f"{n}.0")
                arrived = listener.received_at[-1]
                time.sleep(0.5)  # let the events reader catch up
                delays["healthcheck" if checked else "no healthcheck"].append(arrived - ready_at[container])
            for kind, values in delays.items():
                print(
                    f"{kind}: {len(values)} deploys, ready -> client: median {statistics.median(values) * 1000:.0f} ms,"
                    f" max {max(values) * 1000:.0f} ms"
                )
            listener.close()
            sidecar.stop()
        finally:
            events.terminate()
            engine.cleanup()


if __name__ == "__main__":
    main()
