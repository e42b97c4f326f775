"""Caddy and HAProxy (Debian's packages) run with the shipped files by the commands docs/proxies.md
gives, with HTTP_PORT, APP_UPSTREAM and SIDECAR_UPSTREAM in the environment (and HTTP_ADDRESS,
so they listen on 127.0.0.1 only)."""

import re
import shlex
import signal
from pathlib import Path

from tests.docs import blocks, read, section
from tests.proxy_process import ProxyProcess, binary
from tests.sidecar_process import REPO

CADDYFILE = REPO / "caddy" / "Caddyfile"
CADDY_SNIPPET = REPO / "caddy" / "version-sidecar.caddy"
HAPROXY_CFG = REPO / "haproxy" / "haproxy.cfg"
SHIPPED_STREAM_TIMEOUT = "    timeout server 300s\n"


def documented_command(title: str) -> list[str]:
    """The command docs/proxies.md gives under `title`, less the variables it sets (a test sets them)."""
    (block,) = blocks(section(read("docs/proxies.md"), title), "sh")
    words = shlex.split(block.replace("\\\n", " "))
    variables = [word.split("=", 1)[0] for word in words if re.match(r"[A-Z_]+=", word)]
    assert variables == ["HTTP_PORT", "APP_UPSTREAM", "SIDECAR_UPSTREAM"], variables
    return [binary(words[len(variables)]), *words[len(variables) + 1 :]]


def upstreams(sidecar_port: int, app_port: int, proxy: ProxyProcess) -> dict[str, str]:
    return {
        "HTTP_ADDRESS": "127.0.0.1",
        "HTTP_PORT": str(proxy.port),
        "APP_UPSTREAM": f"127.0.0.1:{app_port}",
        "SIDECAR_UPSTREAM": f"127.0.0.1:{sidecar_port}",
    }


class CaddyServer(ProxyProcess):
    """The shipped Caddyfile, which imports the shipped snippet; Caddy's own state under the prefix."""

    # SIGTERM waits out the Caddyfile's grace period while a stream is open (a test of its own).
    stop_signal = signal.SIGKILL

    def __init__(self, prefix: Path, sidecar_port: int, app_port: int) -> None:
        super().__init__(prefix)
        env = upstreams(sidecar_port, app_port, self)
        env.update(HOME=str(prefix), XDG_CONFIG_HOME=str(prefix / "config"), XDG_DATA_HOME=str(prefix / "data"))
        self.start(documented_command("Caddy (tested)"), env, cwd=REPO)


def haproxy_cfg_with_stream_timeout(seconds: float | None) -> str:
    """The shipped haproxy.cfg, with the stream's server timeout shortened for a test (None: as shipped)."""
    text = HAPROXY_CFG.read_text(encoding="utf-8")
    assert text.count(SHIPPED_STREAM_TIMEOUT) == 1, "haproxy.cfg's stream timeout line moved: update this test"
    if seconds is None:
        return text
    return text.replace(SHIPPED_STREAM_TIMEOUT, f"    timeout server {seconds}s\n")


class HaproxyServer(ProxyProcess):
    """The shipped haproxy.cfg, or a copy with the stream's timeout shortened."""

    def __init__(self, prefix: Path, sidecar_port: int, app_port: int, stream_timeout: float | None = None) -> None:
        super().__init__(prefix)
        command = documented_command("HAProxy (tested)")
        if stream_timeout is not None:
            config = prefix / "haproxy.cfg"
            config.write_text(haproxy_cfg_with_stream_timeout(stream_timeout), encoding="utf-8")
            command[command.index("haproxy/haproxy.cfg")] = str(config)
        self.start(command, upstreams(sidecar_port, app_port, self), cwd=REPO)
