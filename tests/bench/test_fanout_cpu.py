"""bench.fanout_cpu: the CPU split of a fan-out, and where perf's samples are put."""

from pathlib import Path

from bench.fanout_cpu import measure, places_of
from bench.servers import Sidecar

# Two samples as `perf script -F ip,sym,dso` prints them, leaf first.
PERF_SCRIPT = """
\tffffffff8207 _raw_spin_unlock_irqrestore ([kernel.kallsyms])
\tffffffff8208 __wake_up_sync_key ([kernel.kallsyms])
\tffffffff8209 sock_def_readable ([kernel.kallsyms])
\tffffffff820a tcp_v4_rcv ([kernel.kallsyms])
\tffffffff820b net_rx_action ([kernel.kallsyms])
\tffffffff820c tcp_sendmsg ([kernel.kallsyms])

\t6fcdd __pyx_f_6uvloop_4loop_8UVStream__buffer_write (/venv/site-packages/uvloop/loop.cpython-311.so)
\t7fd11125bc00 [unknown] ([unknown])
"""


def test_a_wake_up_inside_the_receive_inside_a_send_counts_as_the_wake_up() -> None:
    total, places = places_of(PERF_SCRIPT)
    assert total == 2
    assert places == {"kernel: waking the reader (sock_def_readable)": 1, "user: uvloop": 1}


def test_each_counted_change_reaches_the_clients(tmp_path: Path) -> None:
    result = measure(Sidecar(tmp_path / "sidecar"), 50, 2, None)
    assert (result.ready, len(result.p99s)) == (50, 2)
    assert all(p99 > 0 for p99 in result.p99s), result.p99s  # NaN when a change reached no client
