"""The host's own network namespace as the tiers that make links (docker, e2e, swarm) must leave
it: its links and their addresses, read with iproute2, compared before and after."""

import json
import subprocess
from pathlib import Path

IP = "/usr/sbin/ip" if Path("/usr/sbin/ip").exists() else "/sbin/ip"

# Each link's name and the addresses on it (link-local ones left out: the kernel gives those to
# any link that comes up, and takes them away with it).
Snapshot = dict[str, set[str]]


def snapshot() -> Snapshot:
    if not Path(IP).exists():
        raise AssertionError(f"{IP} is missing (Debian's iproute2)")
    done = subprocess.run([IP, "-json", "address", "show"], capture_output=True, text=True, timeout=30, check=True)
    return {
        link["ifname"]: {
            f"{address['local']}/{address['prefixlen']}"
            for address in link.get("addr_info", [])
            if address.get("scope") != "link"
        }
        for link in json.loads(done.stdout)
    }


def leftovers(before: Snapshot, after: Snapshot) -> list[str]:
    """What `after` holds and `before` did not: new links (with their addresses), new addresses."""
    found: list[str] = []
    for name, addresses in sorted(after.items()):
        if name not in before:
            found.append(f"link {name}" + (f" ({', '.join(sorted(addresses))})" if addresses else ""))
        else:
            found += [f"address {address} on {name}" for address in sorted(addresses - before[name])]
    return found
