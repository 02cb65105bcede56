"""`fastload report --png`: the HTML report's four plots in one PNG, drawn by matplotlib from
the same points (report_plots). matplotlib is the optional extra fastload[report]."""

from __future__ import annotations

import math

from fastload.errors import UsageError
from fastload.report import plots as report_plots
from fastload.units import format_count, format_us

COLORS = {"current": "#1f77b4", "baseline": "#ff7f0e"}  # the HTML report's colours
STYLES = {"current": "-", "baseline": "--"}


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise UsageError("--png needs matplotlib: install fastload[report] "
                         "(pip install 'fastload[report]')") from None
    # A file renderer: no display needed (CI, servers), and no GUI toolkit is imported.
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def check_available() -> None:
    """Raise the install hint before any work is done."""
    _pyplot()


def write_png(path: str, doc: dict, baseline: dict | None = None,
              names: tuple[str, str] = ("current", "baseline")) -> None:
    plt = _pyplot()
    docs = [(doc, names[0], "current")] + ([(baseline, names[1], "baseline")] if baseline else [])
    fig, axes = plt.subplots(2, 2, figsize=(13, 8.5), dpi=100)
    try:
        _distribution(axes[0][0], doc, docs)
        _over_time(axes[0][1], docs, "rps", "Requests/s over time", "requests/s")
        _over_time(axes[1][0], docs, "p99_us", "p99 latency over time", "p99", latency=True)
        _errors(axes[1][1], docs)
        lat = doc["latency_us"]
        fig.suptitle(f"fastload: {doc['target'].get('url', '')}   {format_count(doc['rps'])} req/s, "
                     f"p50 {format_us(lat['p50'])}, p99 {format_us(lat['p99'])}, "
                     f"max {format_us(lat['max'])}, errors {doc.get('errors', {}).get('total', 0)}",
                     fontsize=12)
        fig.tight_layout()
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)


def _distribution(ax, doc: dict, docs: list[tuple[dict, str, str]]) -> None:
    curves = [(report_plots.distribution(d), n, r) for d, n, r in docs]
    div, unit = report_plots.latency_unit(*[y for c, _, _ in curves for _, y in c])
    for c, n, r in curves:
        if c:
            ax.plot([x for x, _ in c], [y / div for _, y in c], STYLES[r], color=COLORS[r], label=n,
                    linewidth=1.8)
    top = report_plots.x_limit(*[c for c, _, _ in curves])
    ax.set_xscale("log")
    ax.set_xlim(1, top)
    ticks = [10.0 ** k for k in range(round(math.log10(top)) + 1)]
    ax.set_xticks(ticks)
    ax.set_xticklabels([report_plots.percentile_label(t) for t in ticks])
    ax.minorticks_off()
    lat = doc["latency_us"]
    for label, key, p in report_plots.MARKERS if doc["requests"] else ():
        x, y = report_plots.percentile_x(p), lat[key] / div
        ax.plot([x], [y], "o", color=COLORS["current"], markersize=4)
        ax.annotate(label, (x, y), textcoords="offset points", xytext=(-4, 6), ha="right", fontsize=8)
    ax.set_ylim(bottom=0)
    ax.set_title("Latency by percentile")
    ax.set_xlabel("percentile")
    ax.set_ylabel(f"latency ({unit})")
    ax.grid(True, color="#e6e6e6")
    ax.legend(loc="upper left")


def _over_time(ax, docs: list[tuple[dict, str, str]], key: str, title: str, ylabel: str,
               latency: bool = False) -> None:
    series = [(report_plots.timeline(d, key), n, r) for d, n, r in docs]
    div, unit = report_plots.latency_unit(*[y for s, _, _ in series for _, y in s]) if latency else (1.0, "")
    for s, n, r in series:
        ax.plot([t for t, _ in s], [y / div for _, y in s], STYLES[r], color=COLORS[r], label=n,
                linewidth=1.8)
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.set_title(title)
    ax.set_xlabel("seconds since start")
    ax.set_ylabel(f"{ylabel} ({unit})" if unit else ylabel)
    ax.grid(True, color="#e6e6e6")
    ax.legend(loc="lower right")


def _errors(ax, docs: list[tuple[dict, str, str]]) -> None:
    series = [(report_plots.timeline(d, "errors"), n, r) for d, n, r in docs]
    w = 0.8 / len(series)
    for k, (s, n, r) in enumerate(series):
        ax.bar([t - 0.4 + w * (k + 0.5) for t, _ in s], [y for _, y in s], width=w, color=COLORS[r],
               label=n)
    ax.set_xlim(0, max([1.0] + [t + 0.5 for s, _, _ in series for t, _ in s]))
    ax.set_ylim(bottom=0, top=max([1.0] + [y * 1.05 for s, _, _ in series for _, y in s]))
    ax.set_title("Errors over time")
    ax.set_xlabel("seconds since start")
    ax.set_ylabel("errors per second")
    ax.grid(True, color="#e6e6e6")
    ax.legend(loc="upper right")
