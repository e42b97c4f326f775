"""Charts as text: Mermaid `xychart-beta` blocks, which GitHub renders in Markdown, so a plot in
bench/RESULTS.md is made from the numbers by the benchmark and no image is kept in git.

xychart-beta draws no legend, so each chart has at most one bar series and one line series, and
its title says which is which."""

import math
from collections.abc import Sequence


def clients_label(clients: int) -> str:
    return f"{clients // 1000}k" if clients >= 1000 and clients % 1000 == 0 else str(clients)


def xychart(title: str, y_label: str, clients: Sequence[int], bars: Sequence[float], line: Sequence[float]) -> str:
    """A chart of two series over `clients` (the x axis); NaN (not measured) is drawn as 0."""
    values = [0.0 if math.isnan(value) else value for value in (*bars, *line)]
    top = max([*values, 1.0]) * 1.1

    def series(numbers: Sequence[float]) -> str:
        return ", ".join(f"{0.0 if math.isnan(number) else number:.1f}" for number in numbers)

    axis = ", ".join(f'"{clients_label(count)}"' for count in clients)
    return (
        "```mermaid\n"
        "xychart-beta\n"
        f'    title "{title}"\n'
        f'    x-axis "clients" [{axis}]\n'
        f'    y-axis "{y_label}" 0 --> {top:.0f}\n'
        f"    bar [{series(bars)}]\n"
        f"    line [{series(line)}]\n"
        "```"
    )
