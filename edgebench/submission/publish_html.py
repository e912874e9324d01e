"""The published page: one self-contained index.html (inline CSS, JS and SVG; nothing fetched
from the network), so it can be opened from disk, mailed, or served as static files.

Tables sort by clicking a column header (numbers by value, text alphabetically; a second
click reverses), which the `aria-sort` attribute of the header reflects.
"""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING, Any

from .publish_plots import Point, bars, scatter

if TYPE_CHECKING:
    from .publish import Row

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; }
th { background: #f0f0f0; cursor: pointer; user-select: none; }
th[aria-sort="ascending"]::after { content: " \\25B2"; }
th[aria-sort="descending"]::after { content: " \\25BC"; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.invalid td { color: #a00; }
.charts { display: flex; flex-wrap: wrap; gap: 1em; }
.note { color: #666; font-size: 0.9em; }
"""

# Sorting: every <th> of a table.sortable sorts its tbody by that column; cells carry their
# raw value in data-value (numbers) so "12.5 mJ" sorts by joules, and empty cells sort last.
SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  var headers = table.querySelectorAll("thead th");
  headers.forEach(function (th, column) {
    th.addEventListener("click", function () {
      var ascending = th.getAttribute("aria-sort") !== "ascending";
      headers.forEach(function (other) { other.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      var numeric = th.dataset.type === "number";
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[column].dataset.value, y = b.cells[column].dataset.value;
        if (x === "" || y === "") { return (x === "") - (y === ""); }
        var order = numeric ? parseFloat(x) - parseFloat(y) : x.localeCompare(y);
        return ascending ? order : -order;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""

# (header, Row attribute, numeric); {metric} is the table's primary metric
COLUMNS: tuple[tuple[str, str, bool], ...] = (
    ("system", "system", False),
    ("device", "device", False),
    ("runtime", "runtime", False),
    ("submitter", "submitter", False),
    ("division", "division", False),
    ("{metric}", "value", True),
    ("accuracy", "accuracy", True),
    ("energy / inference", "energy_per_inference_j", True),
    ("average power", "average_power_w", True),
    ("compliance", "compliance", False),
    ("settings", "settings_profile", False),
    ("validity", "issues", False),
)


def _energy(joules: float) -> str:
    for unit, scale in (("J", 1.0), ("mJ", 1e-3), ("µJ", 1e-6), ("nJ", 1e-9)):
        if abs(joules) >= scale:
            return f"{joules / scale:.4g} {unit}"
    return f"{joules:.3g} J"


def _cell(row: Row, attribute: str, numeric: bool) -> str:
    value: Any = getattr(row, attribute)
    if attribute == "issues":
        text = "valid" if row.valid else row.issues
        return f'<td data-value="{escape(text)}">{escape(text)}</td>'
    if not numeric:
        return f'<td data-value="{escape(str(value))}">{escape(str(value))}</td>'
    if value is None:
        return '<td class="num" data-value="">-</td>'
    if attribute == "energy_per_inference_j":
        shown = _energy(value)
    elif attribute == "average_power_w":
        shown = f"{value:.4g} W"
    elif attribute == "accuracy":
        target = "" if row.accuracy_target is None else f" (target {row.accuracy_target:.4g})"
        shown = f"{row.accuracy_metric} {value:.4f}{target}"
    else:
        shown = f"{value:.4g}"
    return f'<td class="num" data-value="{value!r}">{escape(shown)}</td>'


def render_table(benchmark: str, scenario: str, rows: list[Row]) -> str:
    metric = next((r.metric for r in rows if r.metric), "result")
    head = "".join(
        f'<th data-type="{"number" if numeric else "text"}">'
        f"{escape(title.format(metric=metric))}</th>"
        for title, _, numeric in COLUMNS
    )
    body = "".join(
        f'<tr class="{"valid" if row.valid else "invalid"}">'
        + "".join(_cell(row, attribute, numeric) for _, attribute, numeric in COLUMNS)
        + "</tr>"
        for row in rows
    )
    ident = escape(f"t-{benchmark}-{scenario}")
    return (
        f'<h3 id="{ident}">{escape(benchmark)} · {escape(scenario)}</h3>'
        f'<table class="results sortable" data-benchmark="{escape(benchmark)}" '
        f'data-scenario="{escape(scenario)}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table>"
    )


def render_charts(benchmark: str, groups: dict[tuple[str, str], list[Row]]) -> str:
    """Energy vs latency over every scenario of the benchmark, then bars per scenario."""
    rows = [row for (name, _), group in groups.items() if name == benchmark for row in group]
    parts = []
    points = [
        Point(r.latency_ms, r.energy_per_inference_j * 1e3, r.system, r.scenario)
        for r in rows
        if r.latency_ms and r.energy_per_inference_j
    ]
    if points:
        parts.append(
            scatter(
                points,
                "latency per inference (ms)",
                "energy per inference (mJ)",
                f"{benchmark}: energy vs latency",
            )
        )
    else:
        parts.append(f'<p class="note">{escape(benchmark)}: no energy results to plot.</p>')
    for (name, scenario), group in groups.items():
        items = [(f"{r.system} ({r.submitter})", r.value) for r in group if r.value is not None]
        if name == benchmark and items:
            metric = next((r.metric for r in group if r.metric), "result")
            parts.append(bars(items, metric, f"{benchmark} {scenario}: {metric} per system"))
    return f'<div class="charts">{"".join(parts)}</div>'


def render_page(groups: dict[tuple[str, str], list[Row]], sources: list[str], version: str) -> str:
    benchmarks = sorted({benchmark for benchmark, _ in groups})
    sections = []
    for benchmark in benchmarks:
        tables = "".join(
            render_table(name, scenario, rows)
            for (name, scenario), rows in groups.items()
            if name == benchmark
        )
        sections.append(
            f'<section id="b-{escape(benchmark)}"><h2>{escape(benchmark)}</h2>'
            f"{render_charts(benchmark, groups)}{tables}</section>"
        )
    listed = ", ".join(escape(s) for s in sources)
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>edgebench results</title>"
        # An inline empty icon: no request for /favicon.ico (an error when opened from disk).
        '<link rel="icon" href="data:,">'
        f"<style>{STYLE}</style></head><body>"
        "<h1>edgebench results</h1>"
        f'<p class="note">Submissions: {listed}. Published with edgebench {escape(version)}. '
        "Click a column header to sort. Results made with the quick settings profile "
        "(10 s runs) are for bench work, not submission-grade. Latency-bound scenarios "
        "report milliseconds (lower is better), throughput scenarios samples per second "
        "(higher is better). "
        f'Rows in red are not valid; the validity column says why. <a href="results.csv">'
        "All rows as CSV</a>.</p>"
        + "".join(sections)
        + f"<script>{SCRIPT}</script></body></html>\n"
    )
