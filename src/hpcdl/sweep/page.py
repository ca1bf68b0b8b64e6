"""The sweep's page: headline cards, leaderboard, the metric against each hyperparameter, parallel
coordinates, a heat map of two keys, timing (efficiency, cluster against one local worker) and the
failed trials. Self-contained like every report page; every string from a trial is escaped.

The per-key plots, the parallel coordinates and the heat map use rung 0, where every point had the
same budget; the leaderboard ranks points by the highest rung they reached.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape
from typing import TYPE_CHECKING, Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from hpcdl.report.figures import png
from hpcdl.report.html import badge, document, fmt_number, fmt_seconds, img
from hpcdl.sweep.results import Trial
from hpcdl.sweep.space import Sweep, rung_epochs, rung_sizes

if TYPE_CHECKING:
    from hpcdl.sweep.report import Timing

BINS = 5  # heat-map bins of a sampled (continuous) key
NO_DATA = "no finished trial"


def _categorical(sweep: Sweep, key: str) -> bool:
    return isinstance(sweep.space[key], list)


def _log(sweep: Sweep, key: str) -> bool:
    axis = sweep.space[key]
    if isinstance(axis, dict):
        return axis["distribution"] == "loguniform"
    nums = [v for v in axis if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return len(nums) == len(axis) and min(nums) > 0 and max(nums) / min(nums) >= 20


def _label(trial: Trial) -> str:
    return f"validation {trial.metric}" if trial.metric else "metric"


def _empty(ax: Any) -> None:
    ax.text(0.5, 0.5, NO_DATA, transform=ax.transAxes, ha="center", va="center", color="#5b6475")


def per_key(sweep: Sweep, trials: list[Trial], key: str) -> bytes:
    """Metric against one key: a box and the points per value, or a scatter for a sampled key."""
    fig = Figure(figsize=(5.0, 3.4), layout="constrained")
    ax = fig.subplots()
    ax.set(title=f"{key}", xlabel=key, ylabel=_label(trials[0]) if trials else "metric")
    ax.grid(True, alpha=0.3)
    if not trials:
        _empty(ax)
    elif _categorical(sweep, key):
        values = sweep.space[key]
        groups = [[t.value for t in trials if t.point[key] == v] for v in values]
        ax.boxplot([g or [math.nan] for g in groups], positions=range(len(values)), widths=0.5, showfliers=False)
        jitter = np.random.default_rng(0)
        for i, g in enumerate(groups):
            ax.scatter(i + jitter.uniform(-0.18, 0.18, len(g)), g, s=10, alpha=0.6, color="C0")
        ax.set_xticks(range(len(values)), [str(v) for v in values])
    else:
        ax.scatter([t.point[key] for t in trials], [t.value for t in trials], s=12, alpha=0.7)
        if _log(sweep, key):
            ax.set_xscale("log")
    return png(fig)


def _position(sweep: Sweep, key: str, value: Any) -> float:
    """A value's place on its axis in [0, 1]: a list's index, or the (log) range of a distribution."""
    axis = sweep.space[key]
    if isinstance(axis, list):
        return axis.index(value) / max(1, len(axis) - 1)
    low, high, x = axis["low"], axis["high"], value
    if axis["distribution"] == "loguniform":
        low, high, x = math.log(low), math.log(high), math.log(x)
    return (x - low) / (high - low)


def parallel(sweep: Sweep, trials: list[Trial]) -> bytes:
    """One line per trial across every key and the metric, coloured by the metric (best on top)."""
    keys = list(sweep.space)
    fig = Figure(figsize=(max(6.4, 1.3 * (len(keys) + 1)), 3.8), layout="constrained")
    ax = fig.subplots()
    ax.set_title("parallel coordinates (colour: metric)")
    if not trials:
        _empty(ax)
        return png(fig)
    vals = np.array([t.value for t in trials], dtype=float)
    lo, hi = float(vals.min()), float(vals.max())
    span = hi - lo or 1.0
    maximise = trials[0].mode == "max"
    cmap = matplotlib.colormaps["viridis"]
    for t in sorted(trials, key=lambda t: t.value if maximise else -t.value):  # type: ignore[arg-type,operator]
        share = (t.value - lo) / span if maximise else (hi - t.value) / span  # type: ignore[operator]
        ys = [_position(sweep, k, t.point[k]) for k in keys] + [(t.value - lo) / span]  # type: ignore[operator]
        ax.plot(range(len(ys)), ys, color=cmap(share), alpha=0.35 + 0.6 * share, linewidth=0.6 + 1.2 * share)
    ax.set_xticks(range(len(keys) + 1), keys + [_label(trials[0])])
    ax.set_yticks([])
    for i, k in enumerate(keys):
        axis = sweep.space[k]
        ends = (axis[0], axis[-1]) if isinstance(axis, list) else (axis["low"], axis["high"])
        ax.text(i, -0.06, str(ends[0]), ha="center", va="top", fontsize=7)
        ax.text(i, 1.04, str(ends[1]), ha="center", va="bottom", fontsize=7)
    ax.text(len(keys), -0.06, f"{lo:.4g}", ha="center", va="top", fontsize=7)
    ax.text(len(keys), 1.04, f"{hi:.4g}", ha="center", va="bottom", fontsize=7)
    ax.set_ylim(-0.15, 1.15)
    for i in range(len(keys) + 1):
        ax.axvline(i, color="#888", linewidth=0.8)
    return png(fig)


def _cells(sweep: Sweep, key: str, trials: list[Trial]) -> tuple[list[str], list[int]]:
    """Tick labels of ``key``'s heat-map axis and each trial's cell index on it."""
    axis = sweep.space[key]
    if isinstance(axis, list):
        return [str(v) for v in axis], [axis.index(t.point[key]) for t in trials]
    raw = np.array([t.point[key] for t in trials], dtype=float)
    edges = np.quantile(raw, np.linspace(0, 1, BINS + 1)) if len(raw) else np.zeros(BINS + 1)
    index = np.clip(np.searchsorted(edges, raw, side="right") - 1, 0, BINS - 1)
    return [f"{edges[i]:.3g}–{edges[i + 1]:.3g}" for i in range(BINS)], [int(i) for i in index]


def heatmap(sweep: Sweep, trials: list[Trial], keys: Sequence[str]) -> bytes:
    """The best metric over the other keys, per pair of values of two keys."""
    a, b = keys
    fig = Figure(figsize=(5.6, 4.2), layout="constrained")
    ax = fig.subplots()
    ax.set(title=f"best {_label(trials[0]) if trials else 'metric'}", xlabel=b, ylabel=a)
    rows, ri = _cells(sweep, a, trials)
    cols, ci = _cells(sweep, b, trials)
    grid = np.full((len(rows), len(cols)), np.nan)
    maximise = not trials or trials[0].mode == "max"
    for t, r, c in zip(trials, ri, ci):
        cur = grid[r, c]
        if math.isnan(cur) or (t.value > cur if maximise else t.value < cur):  # type: ignore[operator]
            grid[r, c] = t.value
    shown = ax.imshow(grid, cmap="viridis" if maximise else "viridis_r", aspect="auto")
    fig.colorbar(shown, ax=ax)
    ax.set_xticks(range(len(cols)), cols, rotation=30, ha="right")
    ax.set_yticks(range(len(rows)), rows)
    for (r, c), v in np.ndenumerate(grid):
        if not math.isnan(v):
            ax.text(c, r, f"{v:.3f}", ha="center", va="center", fontsize=7, color="w")
    if not trials:
        _empty(ax)
    return png(fig)


def heatmap_keys(sweep: Sweep) -> tuple[str, str] | None:
    if sweep.heatmap:
        return sweep.heatmap
    keys = list(sweep.space)
    return (keys[0], keys[1]) if len(keys) >= 2 else None


def figures(sweep: Sweep, rung0: list[Trial]) -> dict[str, bytes]:
    """Every figure of the page by file name, from the finished trials of rung 0."""
    out = {f"key_{k}": per_key(sweep, rung0, k) for k in sweep.space}
    out["parallel"] = parallel(sweep, rung0)
    keys = heatmap_keys(sweep)
    if keys:
        out["heatmap"] = heatmap(sweep, rung0, keys)
    return out


def _table(head: Sequence[str], rows: list[list[str]], numeric: set[int] = frozenset()) -> str:  # type: ignore[assignment]
    body = "".join("<tr>" + "".join(f"<td class='num'>{c}</td>" if i in numeric else f"<td>{c}</td>"
                                    for i, c in enumerate(r)) + "</tr>" for r in rows)
    return ("<table><thead><tr>" + "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr></thead><tbody>"
            + body + "</tbody></table>")


def _leaderboard(sweep: Sweep, ranked: list[Trial]) -> str:
    keys = list(sweep.space)
    top = [t for t in ranked if t.ok][: sweep.options.top]
    if not top:
        return f"<p class='muted'>{NO_DATA}.</p>"
    tests = sorted({k for t in top for k in t.test})
    rows = [[str(i + 1), escape(t.run)] + [escape(fmt_number(t.point[k])) for k in keys]
            + [str(t.rung), str(t.epochs), fmt_number(t.value)] + [fmt_number(t.test.get(k)) for k in tests]
            + [fmt_seconds(t.wall_s)] for i, t in enumerate(top)]
    head = ["#", "run", *keys, "rung", "epochs", f"validation {top[0].metric}",
            *(k.replace("_", " ") for k in tests),
            "trial time"]
    return _table(head, rows, numeric={0} | set(range(len(keys) + 2, len(head))))


def _timing(when: Timing) -> str:
    eff = "—" if when.efficiency is None else f"{100 * when.efficiency:.1f} %"
    speed = "—" if when.speedup is None else f"{when.speedup:.2f}×"
    rows = [
        ["trial time summed (one local worker running every trial in turn)", fmt_seconds(when.busy_s)],
        ["measured wall time (union of the sessions)", fmt_seconds(when.wall_s)],
        [f"faster than one local worker ({when.max_ranks} rank(s) at most)", speed],
        ["efficiency: trial time / (ranks × wall time)", eff],
        ["sessions (runs and reruns of the sweep, array elements)", str(when.sessions)],
    ]
    return _table(["", ""], [[escape(a), escape(b)] for a, b in rows], numeric={1})


def _failures(trials: list[Trial]) -> str:
    failed = [t for t in trials if not t.ok]
    if not failed:
        return "<p class='muted'>No trial failed.</p>"
    rows = [[escape(t.run), str(t.rung), escape(" ".join(f"{k}={v}" for k, v in t.point.items())),
             escape(t.status), escape((t.error or "")[:300])] for t in failed[:100]]
    more = f"<p class='muted'>... and {len(failed) - 100} more in trials.jsonl.</p>" if len(failed) > 100 else ""
    return _table(["run", "rung", "values", "status", "error"], rows) + more


def render(sweep: Sweep, ranked: list[Trial], trials: list[Trial], when: Timing, gaps: list[str],
           figs: dict[str, bytes]) -> str:
    """The whole page."""
    o = sweep.options
    best = next((t for t in ranked if t.ok), None)
    state = (badge("complete: every point has a result", True) if not gaps
             else badge("incomplete", False) + "<ul>" + "".join(f"<li>{escape(g)}</li>" for g in gaps) + "</ul>")
    cards = [("points", fmt_number(len(sweep.points))), ("trials", fmt_number(len(trials))),
             ("failed", fmt_number(sum(not t.ok for t in trials))),
             (f"best {best.metric}" if best else "best", fmt_number(best.value) if best else "—"),
             ("efficiency", "—" if when.efficiency is None else f"{100 * when.efficiency:.1f} %"),
             ("wall time", fmt_seconds(when.wall_s))]
    rungs = _table(["rung", "points", "epochs"], [[str(r), fmt_number(n), str(e)] for r, (n, e) in
                                                 enumerate(zip(rung_sizes(sweep), rung_epochs(sweep)))], {0, 1, 2})
    body = [
        f"<h1>Sweep {escape(o.name)}</h1>",
        f"<p class='muted'>{escape(sweep.workload)} workload · {escape(o.mode)} over {len(sweep.space)} key(s),"
        f" {len(sweep.points):,} point(s) · ranked by validation {escape(best.metric if best else '')}</p>",
        state,
        "<div class='cards'>" + "".join(f"<div class='card'><b>{escape(v)}</b><span>{escape(k)}</span></div>"
                                        for k, v in cards) + "</div>",
        "<h2>Leaderboard</h2>",
        "<p>The best point's settings: <a href='best/spec.json'>best/spec.json</a> (<code>hpcdl train --spec"
        " best/spec.json</code>) and <a href='best/config.yaml'>best/config.yaml</a> (a config overlay).</p>"
        if best else "",
        _leaderboard(sweep, ranked),
        "<h2>Metric against each hyperparameter</h2><p class='muted'>Rung 0: every point at the same budget.</p>",
        "<div class='figs'>" + "".join(f"<figure>{img(figs[f'key_{k}'], k)}<figcaption>{escape(k)}</figcaption>"
                                       "</figure>" for k in sweep.space) + "</div>",
        "<h2>Parallel coordinates and heat map</h2><div class='figs'>",
        f"<figure>{img(figs['parallel'], 'parallel coordinates')}<figcaption>One line per trial of rung 0 across"
        " every key (a list's values evenly spaced, a distribution's range linearly or on a log scale) and the"
        " metric; brighter and thicker is better.</figcaption></figure>",
    ]
    if "heatmap" in figs:
        a, b = heatmap_keys(sweep)  # type: ignore[misc]
        body += [f"<figure>{img(figs['heatmap'], 'heat map')}<figcaption>Heat map of {escape(a)} × {escape(b)}:"
                 " the best metric of rung 0 per pair of values (over every value of the other keys; a sampled key"
                 " in quantile bins).</figcaption></figure>"]
    body.append("</div>")
    if o.rungs:
        body += ["<h2>Successive halving</h2>", f"<p>η = {o.eta}: each rung keeps the best 1/η.</p>", rungs]
    body += ["<h2>Time: cluster against a local run</h2>", _timing(when),
             "<h2>Failed trials</h2>", _failures(trials)]
    return document(f"Sweep {o.name}", "\n".join(body))
