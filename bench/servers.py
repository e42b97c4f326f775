"""The servers under test, started the same way: the sidecar, nginx with nchan, and the floor.

Each runs on 127.0.0.1 and a free port, in its own scratch directory, and offers the same three
things to the benchmark: wait until ready, announce a new version (the "change"), and the memory
(PSS and RSS) and CPU time of its whole process tree (nginx master + workers, sidecar supervisor +
workers).
"""

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

NCHAN_MODULE = Path("/usr/lib/nginx/modules/ngx_nchan_module.so")
NGINX = Path("/usr/sbin/nginx")
STREAM_PATH = "/events/version"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def version_payload(version: str) -> bytes:
    """The `data:` line both servers carry, byte for byte the sidecar's own JSON."""
    return json.dumps({"version": version}, ensure_ascii=False).encode()


def write_version(path: Path, version: str) -> None:
    staging = path.with_suffix(".new")
    staging.write_text(version + "\n", encoding="utf-8")
    staging.replace(path)  # atomic: a reader never sees half a version


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants."""
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as children:
                    todo += [int(child) for child in children.read().split()]
        except OSError:
            continue
    return tree


def tree_proc_files(pid: int, name: str) -> list[str]:
    """The text of /proc/<member>/<name> for each live member of `pid`'s tree."""
    texts = []
    for member in process_tree(pid):
        try:
            with open(f"/proc/{member}/{name}") as file:
                texts.append(file.read())
        except OSError:  # the member exited meanwhile
            continue
    return texts


def tree_rss_bytes(pid: int) -> int:
    return sum(int(statm.split()[1]) * PAGE_SIZE for statm in tree_proc_files(pid, "statm"))


def tree_pss_bytes(pid: int) -> int:
    """The proportional set size of the tree: each page counted once over the processes that share
    it (1/k for each of k), so the pages a forked worker still shares with its parent are not
    counted twice, and those it has copied are counted (summed RSS gets both wrong)."""
    total_kb = 0
    for rollup in tree_proc_files(pid, "smaps_rollup"):
        total_kb += next(int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Pss:"))
    return total_kb * 1024


def tree_user_system_seconds(pid: int) -> tuple[float, float]:
    """User and system CPU of the tree's live processes."""
    user = system = 0
    for stat in tree_proc_files(pid, "stat"):
        fields = stat.rsplit(")", 1)[1].split()
        user, system = user + int(fields[11]), system + int(fields[12])  # utime, stime
    return user / CLOCK_TICKS, system / CLOCK_TICKS


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU of the tree's live processes."""
    return sum(tree_user_system_seconds(pid))


class Server:
    name = "server"

    def __init__(self, workdir: Path, workers: int = 1) -> None:
        self.workdir = workdir
        self.workers = workers
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / f"{self.name}.log"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, first_version: str) -> None:
        raise NotImplementedError

    def change(self, version: str) -> None:
        """Announce `version`; the benchmark's clock for this change starts right before the call."""
        raise NotImplementedError

    def rss(self) -> int:
        return tree_rss_bytes(self.pid)

    def pss(self) -> int:
        return tree_pss_bytes(self.pid)

    def cpu(self) -> float:
        return tree_cpu_seconds(self.pid)

    def _spawn(self, command: list[str], env: dict[str, str] | None = None) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command, cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )

    def _wait_port(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}: {self.log_path.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.name} not listening after {timeout} s") from None
                time.sleep(0.05)

    def stop(self, timeout: float = 15.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


class Sidecar(Server):
    name = "sidecar"

    def __init__(self, workdir: Path, workers: int = 1, settings: Sequence[str] = ()) -> None:
        """`settings`: more flags for the sidecar (e.g. --reconnect-rate)."""
        super().__init__(workdir, workers)
        self.version_file = workdir / "version.txt"
        self.settings = list(settings)

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "sidecar",
            "--host", "127.0.0.1", "--port", str(self.port),
            "--source", "file", "--version-file", str(self.version_file),
            "--log-level", "warning", "--log-format", "json",
            # --max-clients is the host's: 20,000 streams per worker, as each process may hold.
            "--max-clients", str(20000 * self.workers), "--workers", str(self.workers),
            *self.settings,
        ]  # fmt: skip

    def start(self, first_version: str) -> None:
        write_version(self.version_file, first_version)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SIDECAR_")}
        self._spawn(self.command(), env)
        self._wait_port()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # every worker serves, and knows the version
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2) as reply:
                    health = json.load(reply)
                    workers = health.get("workers", [{"up": True, "version": health["version"]}])
                    if all(worker["up"] and worker["version"] == first_version for worker in workers):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("sidecar not healthy")

    def change(self, version: str) -> None:
        write_version(self.version_file, version)


class Floor(Server):
    """bench/floor.py: the least a server can do per stream (what the kernel charges on this machine)."""

    name = "floor"

    def start(self, first_version: str) -> None:
        self.version_file = self.workdir / "version.txt"
        write_version(self.version_file, first_version)
        command = [sys.executable, "-m", "bench.floor", "--port", str(self.port), "--workers", str(self.workers)]
        here = str(Path(__file__).resolve().parent.parent)  # bench is not installed: run it from the tree
        self._spawn([*command, "--version-file", str(self.version_file)], {**os.environ, "PYTHONPATH": here})
        self._wait_port()

    def change(self, version: str) -> None:
        write_version(self.version_file, version)
        os.killpg(self.pid, signal.SIGUSR1)  # every worker reads the file and writes to its streams


NGINX_CONF = """\
load_module {module};
daemon off;
master_process on;
worker_processes {workers};
worker_rlimit_nofile 20000;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{
    # More than the files one process may open: nchan also counts internal connections.
    worker_connections 65535;
}}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    include {here}/nchan.conf;
    server {{
        listen 127.0.0.1:{port} backlog=1024{reuseport};
        include {here}/nchan-locations.conf;
    }}
}}
"""


class Nchan(Server):
    """nginx (Debian's) with the nchan module: one channel, an EventSource subscriber, a publisher."""

    name = "nchan"

    def start(self, first_version: str) -> None:
        for missing in (p for p in (NGINX, NCHAN_MODULE) if not p.exists()):
            raise RuntimeError(f"{missing} not found: install nginx and libnginx-mod-nchan")
        conf = self.workdir / "nginx.conf"
        conf.write_text(
            NGINX_CONF.format(
                module=NCHAN_MODULE,
                workers=self.workers,
                prefix=self.workdir,
                port=self.port,
                here=Path(__file__).resolve().parent,
                reuseport=" reuseport" if self.workers > 1 else "",
            )
        )
        self._spawn([str(NGINX), "-p", str(self.workdir), "-c", str(conf), "-e", str(self.workdir / "error.log")])
        self._wait_port()
        self.change(first_version)

    def change(self, version: str) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request("POST", "/pub", body=version_payload(version))
            reply = connection.getresponse()
            reply.read()
            if reply.status not in (200, 201, 202):
                raise RuntimeError(f"nchan publish answered {reply.status}")
        finally:
            connection.close()
