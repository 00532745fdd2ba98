"""The endpoint as a web page: the last hour charted by place, the growing places marked and listed first.

One self-contained page (no script, no style sheet or font from anywhere else): the chart is an inline
SVG drawn here, each group opens to its stack and units with `<details>`. Every name, path and source
line comes from the inspected program and may contain markup: all of it is escaped. Bounded: at most
MAX_ROWS groups and MAX_LINES places are drawn, whatever the process holds; the text and JSON dumps the
page links to have the rest.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from urllib.parse import urlencode

from looseends.analysis.group import Group
from looseends.core.growth import group_key
from looseends.report import Report, plural

__all__ = ["page"]

MAX_ROWS = 60
MAX_LINES = 8
MAX_STACK = 12
MAX_NAMES = 20
WIDTH, HEIGHT, PAD = 760, 220, 36
COLOURS = ("#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
GROWING = "#d62728"
STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;width:100%}th,td{border-bottom:1px solid #ddd;padding:.3em .5em;
text-align:left;vertical-align:top}td.n{text-align:right}tr.growing td{background:#fdecea}
.tag{color:#fff;background:#d62728;border-radius:3px;padding:0 .3em;font-size:12px}
pre{margin:.3em 0;font-size:12px;white-space:pre-wrap}code{font-size:12px}.muted{color:#666}
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def page(
    report: Report,
    times: Sequence[float],
    series: Mapping[str, Sequence[int]],
    growing: Mapping[str, str],
    url: str,
    token: str | None = None,
) -> str:
    """The page for one snapshot (`report`) and the history's samples. `url`: the endpoint's own base
    URL as the browser reached it, for the links and the commands; `token`, when the browser gave one in
    the query, is carried in the links."""
    by_place = sorted(report.groups, key=lambda g: (group_key(g) not in growing, -g.count))
    rows = "".join(_row(group, report.now, series, growing) for group in by_place[:MAX_ROWS])
    more = len(by_place) - MAX_ROWS
    hidden = f'<p class="muted">{plural(more, "more group")}: see the text dump.</p>' if more > 0 else ""
    suffix = f"&{urlencode({'token': token})}" if token else ""
    links = " · ".join(
        f'<a href="{_e(url)}dump?{_e(query)}{_e(suffix)}">{_e(label)}</a>'
        for query, label in (("debug=1", "text"), ("debug=2", "every unit"), ("format=json", "JSON"))
    )
    counts = f"{plural(len(report), 'unit')} in {plural(len(report.groups), 'group')}"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>looseends: {_e(counts)}</title>
<meta name="viewport" content="width=device-width"><style>{STYLE}</style></head><body>
<h1>looseends: {_e(counts)}</h1>
<p>{links}</p>
<p class="muted">From a shell: <code>looseends dump {_e(url)}</code> ·
<code>looseends watch {_e(url)}</code></p>
<h2>The last hour, by place</h2>
{_chart(times, series, growing)}
<h2>Groups now</h2>
<table><thead><tr><th>units</th><th>kind</th><th>blocked on</th><th>oldest</th><th>created at</th>
<th>proven</th><th>in the last hour</th></tr></thead><tbody>{rows}</tbody></table>
{hidden}
</body></html>
"""


def _chart(times: Sequence[float], series: Mapping[str, Sequence[int]], growing: Mapping[str, str]) -> str:
    if len(times) < 2:
        return '<p class="muted">Not enough samples yet: the chart starts with the second sample.</p>'
    ranked = sorted(series, key=lambda key: (key not in growing, -series[key][-1], key))[:MAX_LINES]
    top = max(1, *(max(series[key]) for key in ranked))
    first, span = times[0], max(times[-1] - times[0], 1e-9)

    def point(at: float, count: int) -> str:
        x = PAD + (WIDTH - 2 * PAD) * (at - first) / span
        y = HEIGHT - PAD - (HEIGHT - 2 * PAD) * count / top
        return f"{x:.1f},{y:.1f}"

    lines, legend = [], []
    for number, key in enumerate(ranked):
        colour = GROWING if key in growing else COLOURS[number % len(COLOURS)]
        points = " ".join(point(at, count) for at, count in zip(times, series[key], strict=True))
        width = 3 if key in growing else 1.5
        lines.append(f'<polyline fill="none" stroke="{colour}" stroke-width="{width}" points="{points}"/>')
        tag = ' <span class="tag">growing</span>' if key in growing else ""
        why = f" <span class=muted>({_e(growing[key])})</span>" if key in growing else ""
        legend.append(f'<li><span style="color:{colour}">■</span> {_e(key)}{tag}{why}</li>')
    minutes = span / 60
    axes = (
        f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" stroke="#999"/>'
        f'<line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{HEIGHT - PAD}" stroke="#999"/>'
        f'<text x="{PAD}" y="{PAD - 8}" font-size="12">{top} units</text>'
        f'<text x="{PAD}" y="{HEIGHT - 12}" font-size="12">{minutes:.1f} min ago</text>'
        f'<text x="{WIDTH - PAD}" y="{HEIGHT - 12}" font-size="12" text-anchor="end">now</text>'
    )
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" role="img" '
        f'aria-label="units by place over {minutes:.1f} minutes">{axes}{"".join(lines)}</svg>'
    )
    return f"{svg}<ul>{''.join(legend)}</ul>"


def _row(group: Group, now: float, series: Mapping[str, Sequence[int]], growing: Mapping[str, str]) -> str:
    key = group_key(group)
    counts = series.get(key, ())
    change = f"{counts[0]} → {counts[-1]}" if len(counts) >= 2 else "—"
    ages = group.ages(now)
    oldest = f"{max(ages):.0f} s" if ages else "—"
    site = group.origin.site if group.origin is not None else None
    created = f"{_e(site.qualified_name)}<br><code>{_e(site.place)}</code>" if site is not None else "—"
    proven = "yes" if group.units[0].proof is not None else "no"
    tag = ' <span class="tag">growing</span>' if key in growing else ""
    stack = "\n".join(f"{frame.qualified_name}  {frame.place}" for frame in group.stack[:MAX_STACK])
    names = ", ".join(unit.name for unit in group.units[:MAX_NAMES])
    names += f", and {len(group.units) - MAX_NAMES} more" if len(group.units) > MAX_NAMES else ""
    details = (
        f"<details><summary>{_e(group.blocked_on.code)}</summary>"
        f"<div>{_e(group.blocked_on.description)}</div><pre>{_e(stack)}</pre>"
        f'<div class="muted">units: {_e(names)}</div></details>'
    )
    css = ' class="growing"' if key in growing else ""
    return (
        f'<tr{css}><td class="n">{group.count}{tag}</td><td>{_e(group.kind)}</td><td>{details}</td>'
        f"<td>{oldest}</td><td>{created}</td><td>{proven}</td><td>{_e(change)}</td></tr>"
    )
