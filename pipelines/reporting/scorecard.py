"""The owner's scorecard: one self-contained HTML file (inline CSS, charts as inline SVG, no
network resources) with a tile per KPI, a milestone timeline and a department roll-up.

Every value taken from data is HTML-escaped. Status and data trust are given in words as well
as colour; every chart has a text description and a data-table alternative.
"""
from __future__ import annotations

import datetime as dt
import decimal
import html
import json
from dataclasses import dataclass

from kpimodel import display, periods
from pipelines.warehouse import rows as _rows

STATUS_WORDS = {"green": "On track", "amber": "Slipping", "red": "Off track", "grey": "No data / not yet due"}
# A KPI judged by its standing standard is met or not met: no "slipping" band.
STANDARD_WORDS = {"green": "Standard met", "red": "Standard not met"}
BAND_WORDS = {"green": "Within range", "amber": "Just outside range", "red": "Outside range"}
AGGREGATION_NOTES = {
    "latest": "A stock at period end: organisations' figures add up, periods never do.",
    "as_published": "As published: a median or percentile, never recomputed across organisations.",
}
TRUST_WORDS = {"trusted": "Data trusted", "stale": "Data stale", "failed_checks": "Data failed checks",
               "anomalous": "Data anomalous"}
MILESTONE_WORDS = {"met": "Met", "missed": "Missed", "no_data": "No data", "at_risk": "At risk", "upcoming": "Upcoming"}
MILESTONE_TESTS = {"by_date": "reached by the due date", "in_period": "reached in the period of the due date",
                   "manual": "completed and recorded by hand"}
# Colours chosen for contrast >= 4.5:1 with white text (badges) and on white (lines).
COLOURS = {"green": "#1b6e3a", "amber": "#8a5300", "red": "#b3261e", "grey": "#5f6368",
           "trusted": "#1b6e3a", "stale": "#8a5300", "failed_checks": "#b3261e", "anomalous": "#6a1b9a",
           "met": "#1b6e3a", "missed": "#b3261e", "at_risk": "#8a5300", "upcoming": "#3c4a9e",
           "no_data": "#5f6368"}

CSS = """
:root { color-scheme: light; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1f1f1f;
       margin: 0 auto; max-width: 1200px; padding: 1.5rem; background: #fff; }
h1 { font-size: 1.6rem; margin: 0 0 .25rem; } h2 { margin-top: 2rem; border-bottom: 2px solid #ddd; }
h3 { font-size: 1.05rem; margin: 0 0 .4rem; }
.meta { color: #444; margin: 0 0 1rem; }
.tiles { display: grid; grid-template-columns: repeat(auto-fill, minmax(340px, 1fr)); gap: 1rem; }
.tile { border: 1px solid #ccc; border-left: 6px solid var(--c); border-radius: 6px; padding: .8rem;
        break-inside: avoid; page-break-inside: avoid; }
.badge { display: inline-block; color: #fff; border-radius: 4px; padding: .05rem .45rem; font-size: .85rem;
         font-weight: 600; margin-right: .3rem; }
.figures { margin: .4rem 0; } .figures dt { font-weight: 600; display: inline; }
.figures dd { display: inline; margin: 0 .8rem 0 .2rem; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0; font-size: .9rem; }
th, td { border: 1px solid #ccc; padding: .25rem .45rem; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
details summary { cursor: pointer; color: #1a4d8f; } details summary:focus { outline: 2px solid #1a4d8f; }
svg { width: 100%; height: auto; }
.reason { color: #444; font-size: .88rem; }
ul.attention { padding-left: 1.2rem; } ul.attention li { margin: .2rem 0; }
a { color: #1a4d8f; }
@media print { body { padding: 0; max-width: none; } details { display: block; }
               details > summary { display: none; } .tile { border-left-width: 4px; } }
"""


def esc(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def fmt(value, unit: str | None = None) -> str:
    """A figure shown alone (no status beside it)."""
    return display.number(None if value is None else float(value), unit)


def status_words(status: str, judged_by: str | None = None, tolerance: str | None = None,
                 data_only: bool = False) -> str:
    """A status in words; with the tolerance as written ("Slipping: within 10% of target"). A
    figure with neither target nor standard is shown as data only ("No target")."""
    if judged_by == "standard" and status in STANDARD_WORDS:
        return STANDARD_WORDS[status]
    if judged_by == "band" and status in BAND_WORDS:
        if tolerance and status == "amber":
            return f"{BAND_WORDS[status]}: within {tolerance} of the range"
        return BAND_WORDS[status]
    if judged_by == "trajectory" and tolerance and status in ("amber", "red"):
        return (f"{STATUS_WORDS[status]}: within {tolerance} of target" if status == "amber"
                else f"{STATUS_WORDS[status]}: more than {tolerance} from target")
    if data_only and status == "grey":
        return "No target (data only)"
    return STATUS_WORDS.get(status, status)


def tolerance_of(k: dict) -> str | None:
    """The KPI's tolerance as the catalog writes it ("10%", "0.5")."""
    return display.tolerance_text(k.get("tolerance"), k.get("tolerance_kind"), k.get("unit"))


def title_of(k: dict) -> str:
    """"CS01 Calls answered within 20 seconds": the organisation's code beside the name."""
    return display.kpi_title(k["kpi_id"], k.get("kpi_code"), k["kpi_name"])


def _label(day, k: dict) -> str:
    return periods.label(day, k.get("frequency"), k.get("fiscal_start_month"))


def _words(day, k: dict) -> str:
    return periods.words(day, k.get("frequency"), k.get("fiscal_start_month"))


def standard_text(point: dict, unit: str | None) -> str:
    """"Standard 95.0%: not met (94.99%); met in 7 of the last 12 periods, 2 misses in a row"."""
    if point.get("band_lower") is not None:
        actual, (lower, upper) = display.figures(point["actual"], [point["band_lower"], point["band_upper"]], unit)
        text = f"Range {lower} to {upper}: {'within' if point['standard_met'] else 'outside'} ({actual})"
    elif point.get("standard_value") is None:
        return ""
    else:
        actual, (standard,) = display.figures(point["actual"], [point["standard_value"]], unit)
        text = f"Standard {standard}: {'met' if point['standard_met'] else 'not met'} ({actual})"
    if point.get("periods_judged_last_12"):
        text += f"; met in {point['periods_met_last_12']} of the last {point['periods_judged_last_12']} periods"
    if point.get("consecutive_misses", 0) > 1:
        text += f", {point['consecutive_misses']} misses in a row"
    return text


def organisations_text(o: dict | None, k: dict, listed: int = 5) -> str:
    """"1 of 4 organisations met the standard in Oct 2026; not met, worst first: RH3 71.2%, …"."""
    if not o or not o.get("orgs_judged"):
        return ""
    threshold = [o["standard_value"]] if o.get("standard_value") is not None else [o.get("band_lower"), o.get("band_upper")]
    what = "the standard" if o.get("standard_value") is not None else "the range"
    text = (f"{o['orgs_met']} of {o['orgs_judged']} organisations met {what} in "
            f"{_words(o['period'], k)}")
    if o.get("not_met"):
        shown = ", ".join(f"{m['org_id']} {display.figure(m['actual'], k['unit'], threshold)}" for m in o["not_met"][:listed])
        more = f" and {len(o['not_met']) - listed} more" if len(o["not_met"]) > listed else ""
        text += f"; not met, worst first: {shown}{more}"
    return text


def milestone_state_text(m: dict, frequency: str | None = None) -> str:
    """The milestone's state in words; a manual completion says so, with when and by whom."""
    if m["state"] == "met" and m.get("met_how") == "manual":
        text = f"Met manually on {m['completed_on']:%d %b %Y}" if m.get("completed_on") else "Met manually"
        return text + (f", by {m['completed_by']}" if m.get("completed_by") else "")
    if m["state"] == "met" and m.get("met_period"):
        return f"Met ({periods.words(m['met_period'], frequency)})"
    return MILESTONE_WORDS.get(m["state"], m["state"])


@dataclass
class Series:
    kpi: dict
    points: list[dict]  # fct_kpi_progress rows, by period
    targets: list[dict]  # catalog.targets rows of type target
    published: dict | None = None  # publish.kpi_status row: the figure as published, its trust
    orgs: dict | None = None  # organisations against the standard in the latest period
    no_figure: dict | None = None  # no figure for the period due by as_of (pipelines/reporting/gaps.py)


def _x(d: dt.date, lo: dt.date, hi: dt.date, width: float, pad: float) -> float:
    span = max((hi - lo).days, 1)
    return pad + (d - lo).days / span * (width - 2 * pad)


def chart_svg(s: Series, chart_id: str) -> str:
    """Actual (solid), trajectory (dashed), target points (diamonds) and the forecast to the
    next due date (dotted), with a title and a description for screen readers."""
    k, pts = s.kpi, [p for p in s.points if p["actual"] is not None]
    if not pts:
        return '<p class="reason">No data to chart yet.</p>'
    latest = pts[-1]
    dates = [p["period_end"] for p in pts] + [t["point_date"] for t in s.targets]
    values = [p["actual"] for p in pts] + [p["expected_value"] for p in pts if p["expected_value"] is not None]
    values += [t["value"] for t in s.targets]
    values += [p["standard_value"] for p in pts if p.get("standard_value") is not None]
    forecast = None
    if latest.get("forecast_value") is not None and latest.get("target_date"):
        forecast = (latest["target_date"], latest["forecast_value"])
        dates.append(forecast[0])
        values.append(forecast[1])
    lo_d, hi_d = min(dates), max(dates)
    lo_v, hi_v = min(values), max(values)
    if hi_v == lo_v:
        lo_v, hi_v = lo_v - 1, hi_v + 1
    margin = (hi_v - lo_v) * 0.08
    lo_v, hi_v = lo_v - margin, hi_v + margin
    w, h, pad = 360.0, 150.0, 8.0

    def xy(d, v):
        y = pad + (hi_v - v) / (hi_v - lo_v) * (h - 2 * pad)
        return f"{_x(d, lo_d, hi_d, w, pad):.1f},{y:.1f}"

    actual = " ".join(xy(p["period_end"], p["actual"]) for p in pts)
    expected = " ".join(xy(p["period_end"], p["expected_value"]) for p in pts if p["expected_value"] is not None)
    colour = COLOURS.get(latest["status"], "#333")
    parts = [
        f'<svg viewBox="0 0 {w:.0f} {h:.0f}" role="img" aria-labelledby="{chart_id}-t {chart_id}-d" '
        f'xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{chart_id}-t">{esc(k["kpi_name"])}: actual against trajectory</title>',
        f'<desc id="{chart_id}-d">{esc(_describe(s))}</desc>',
        f'<rect x="0" y="0" width="{w:.0f}" height="{h:.0f}" fill="#fff" stroke="#ddd"/>',
    ]
    if expected:
        parts.append(f'<polyline points="{expected}" fill="none" stroke="#555" stroke-width="1.5" stroke-dasharray="5 4"/>')
    standard = " ".join(xy(p["period_end"], p["standard_value"]) for p in pts if p.get("standard_value") is not None)
    if standard:
        parts.append(f'<polyline points="{standard}" fill="none" stroke="#1a4d8f" stroke-width="1.2" '
                     f'stroke-dasharray="2 2"><title>standard</title></polyline>')
    parts.append(f'<polyline points="{actual}" fill="none" stroke="{colour}" stroke-width="2.2"/>')
    for t in s.targets:
        x, y = map(float, xy(t["point_date"], t["value"]).split(","))
        parts.append(f'<path d="M{x:.1f},{y - 5:.1f} L{x + 5:.1f},{y:.1f} L{x:.1f},{y + 5:.1f} L{x - 5:.1f},{y:.1f} Z" '
                     f'fill="#1a4d8f"><title>target {esc(fmt(t["value"], k["unit"]))} by {esc(t["point_date"])}</title></path>')
    if forecast:
        parts.append(f'<polyline points="{xy(latest["period_end"], latest["actual"])} {xy(*forecast)}" fill="none" '
                     f'stroke="{colour}" stroke-width="1.5" stroke-dasharray="1 4"/>')
    parts.append("</svg>")
    return "".join(parts)


def _describe(s: Series) -> str:
    k, pts = s.kpi, [p for p in s.points if p["actual"] is not None]
    first, last = pts[0], pts[-1]
    freq = k.get("frequency")
    text = (f"From {_words(first['period'], k)} to {_words(last['period'], k)} the value went from "
            f"{fmt(first['actual'], k['unit'])} to {fmt(last['actual'], k['unit'])}")
    if last.get("standard_value") is not None or last.get("band_lower") is not None:
        text += f"; {standard_text(last, k['unit'])}"
    if last["expected_value"] is not None:
        text += f"; the trajectory expects {fmt(last['expected_value'], k['unit'])}"
    if last.get("forecast_value") is not None and last.get("target_date"):
        text += (f"; the forecast for {last['target_date']:%d %b %Y} is {fmt(last['forecast_value'], k['unit'])}"
                 f" against a target of {fmt(last['target_value'], k['unit'])}")
    return text + "."


def shown(s: Series) -> dict:
    """What a tile shows for a KPI: status, data trust and its reason, and a publication note.
    What was published wins over the marts: its trust includes drift findings, and a blocked
    publication shows the figure published before (stale)."""
    k = s.kpi
    pts = [p for p in s.points if p["actual"] is not None]
    latest = pts[-1] if pts else None
    out = {"status": latest["status"] if latest else "grey",
           "trust": latest["data_trust"] if latest else "stale",
           "reason": latest["data_trust_reason"] if latest else "no data landed for this KPI",
           "publication": "", "judged_by": latest.get("judged_by") if latest else None}
    pub = s.published
    if pub:
        out["trust"], out["reason"] = pub["data_trust"], pub["data_trust_reason"]
        if not pub["published"]:
            if pub.get("period") is not None:
                out["publication"] = (
                    f"Publication blocked this run: the figure shown as published is for {_words(pub['period'], k)} "
                    f"({fmt(pub['actual'], k['unit'])}, {STATUS_WORDS.get(pub['status'], pub['status'])}).")
                out["status"] = pub["status"]
            else:
                out["publication"] = "Publication blocked: no figure has been published for this KPI yet."
    if s.no_figure:  # the due period has no figure: the latest one is not current
        gap = s.no_figure["text"] + (f"; the latest figure is for {s.no_figure['latest_label']}"
                                     if s.no_figure.get("latest_label") else "")
        keep = out["trust"] not in ("trusted", "stale")  # failed checks stay, with their reason
        out.update(status="grey", judged_by=None, trust=out["trust"] if keep else "stale",
                   reason=f"{gap}; {out['reason']}" if keep else gap)
    return out


def _tolerance_amount(p: dict, k: dict) -> float | None:
    """The tolerance in the KPI's unit for this period (a share of its target: from the mart)."""
    if p.get("tolerance_amount") is not None:
        return float(p["tolerance_amount"])
    return None if k.get("tolerance_kind") == "share" else k.get("tolerance")


def _tile(s: Series, idx: int) -> str:
    k = s.kpi
    pts = [p for p in s.points if p["actual"] is not None]
    latest = pts[-1] if pts else None
    view = shown(s)
    status, trust, reason, publication = view["status"], view["trust"], view["reason"], view["publication"]
    change = ""
    if len(pts) >= 2 and pts[-2]["actual"] is not None:
        change = (f"{display.change(pts[-1]['actual'] - pts[-2]['actual'], k['unit'])} on "
                  f"{_words(pts[-2]['period'], k)}")
    # the latest figure, its expected value and standard with enough decimals to tell met
    # from not met (and green from amber)
    latest_text, expected_text = "–", "–"
    decimals = k.get("decimals")
    tolerance = tolerance_of(k)
    data_only = bool(latest) and latest["expected_value"] is None and latest.get("standard_value") is None \
        and latest.get("band_lower") is None
    if latest:
        points = [latest["expected_value"]] + display.thresholds_of(latest, _tolerance_amount(latest, k))
        latest_text, shown_points = display.figures(latest["actual"], points, k["unit"], decimals)
        expected_text = shown_points[0]
    latest_when = f" ({_words(latest['period'], k)})" if latest else ""
    if s.no_figure:  # never the previous figure as the current one
        latest_text = s.no_figure["text"][0].upper() + s.no_figure["text"][1:]
        latest_when = f"; last figure {display.number(latest['actual'], k['unit'], display.at_least(latest['actual'], decimals))} ({_words(latest['period'], k)})" \
            if latest else ""
    standard_line = standard_text(latest, k["unit"]) if latest and not s.no_figure else ""
    target = (f"{display.number(latest['target_value'], k['unit'], display.at_least(latest['target_value'], decimals))} by {latest['target_date']:%d %b %Y}"
              if latest and latest["target_value"] is not None and latest["target_date"] else "–")
    if data_only and not s.no_figure:
        target = "No target (shown as data only)" + (": withdrawn" if latest.get("target_withdrawn") else "")
    forecast = "–"
    if latest and latest.get("forecast_value") is not None:
        words = {"will_miss": "will miss", "on_track": "on track"}.get(latest["forecast_status"], latest["forecast_status"])
        forecast = f"{fmt(latest['forecast_value'], k['unit'])} ({esc(words)})"
    elif latest and latest.get("forecast_reason"):
        forecast = esc(latest["forecast_reason"][0].upper() + latest["forecast_reason"][1:])

    def row(p: dict) -> str:
        points = [p["expected_value"], p.get("standard_value")] + display.thresholds_of(p, _tolerance_amount(p, k))
        actual, (expected, standard, *_) = display.figures(p["actual"], points, k["unit"], decimals)
        return (f"<tr><td>{esc(_label(p['period'], k))}</td><td class='num'>{esc(actual)}</td>"
                f"<td class='num'>{esc(expected)}</td><td class='num'>{esc(standard)}</td>"
                f"<td>{esc(status_words(p['status'], p.get('judged_by'), tolerance, p['expected_value'] is None))}</td></tr>")

    rows = "".join(row(p) for p in pts[-24:])
    return f"""
<article class="tile" id="kpi-{esc(k['kpi_id'])}" style="--c:{COLOURS.get(status, '#333')}" aria-labelledby="kpi-{idx}-h">
  <h3 id="kpi-{idx}-h">{esc(title_of(k))} <span class="reason">({esc(k['kpi_id'])})</span></h3>
  <p><span class="badge" style="background:{COLOURS.get(status)}">{esc('No figure' if s.no_figure else status_words(status, view['judged_by'], tolerance, data_only))}</span>
     <span class="badge" style="background:{COLOURS.get(trust, '#333')}">{esc(TRUST_WORDS.get(trust, trust))}</span></p>
  <dl class="figures">
    <dt>Latest</dt><dd>{esc(latest_text)}{esc(latest_when)}</dd>
    <dt>Change</dt><dd>{esc(change) or '–'}</dd>
    <dt>Expected</dt><dd>{esc(expected_text)}</dd>
    <dt>Target</dt><dd>{esc(target)}</dd>
    <dt>Forecast</dt><dd>{forecast}</dd>
    <dt>Owner</dt><dd>{esc(k['owner_name'])}</dd>
  </dl>
  {f'<p>{esc(standard_line)}</p>' if standard_line else ''}
  {f'<p class="reason">{esc(organisations_text(s.orgs, k))}</p>' if organisations_text(s.orgs, k) else ''}
  {f'<p class="reason">{esc(AGGREGATION_NOTES[k["aggregation"]])}</p>' if k.get("aggregation") in AGGREGATION_NOTES else ''}
  {chart_svg(s, f"chart-{idx}")}
  <p class="reason">Data trust: {esc(reason)}</p>{f'<p class="reason"><strong>{esc(publication)}</strong></p>' if publication else ''}
  <details><summary>Data table for {esc(k['kpi_name'])}</summary>
    <table><caption class="reason">Last {min(len(pts), 24)} periods</caption>
      <thead><tr><th scope="col">Period</th><th scope="col">Actual</th><th scope="col">Expected</th><th scope="col">Standard</th><th scope="col">Status</th></tr></thead>
      <tbody>{rows}</tbody></table>
  </details>
</article>"""


SNAPSHOT_DDL = """
create schema if not exists publish;
create table if not exists publish.scorecard_snapshots (
    run_id varchar not null,
    taken_at timestamp not null,
    as_of date not null,
    payload varchar not null
);
"""


def scorecard_data(con) -> dict:
    """Everything the scorecard shows, read from the warehouse: the catalog, the marts' series,
    and (after the publication step) the figures as published with their data trust."""
    from pipelines.quality.store import exists

    data = {
        "settings": _rows(con, "select as_of, catalog_name from catalog.settings")[0],
        "kpis": _rows(con, "select * from marts.dim_kpis order by department_id, kpi_id"),
        "points": _rows(con, "select kpi_id, period, period_end, actual, expected_value, target_value, target_date, "
                             "status, judged_by, standard_value, band_lower, band_upper, standard_met, periods_met_last_12, "
                             "periods_judged_last_12, consecutive_misses, "
                             "forecast_value, forecast_status, data_trust, data_trust_reason, tolerance_amount, target_withdrawn, "
                             "forecast_reason from marts.fct_kpi_progress order by kpi_id, period"),
        "targets": _rows(con, "select kpi_id, point_date, value from catalog.targets where point_type = 'target' "
                              "order by kpi_id, point_date"),
        "departments": _rows(con, "select * from marts.fct_department_scorecard order by department_id"),
        "milestones": _rows(con, "select * from marts.fct_milestones order by due_date, milestone_id"),
        "sources": _rows(con, "select source_id, department_id, cadence, fiscal_start_month, latest_period, expected_period, is_overdue, "
                              "periods_overdue, last_loaded_at from marts.fct_source_freshness order by source_id"),
        "published": [],
        "standard_orgs": [],
        "no_figure": {},
    }
    from pipelines.reporting.gaps import missing_figures

    data["no_figure"] = missing_figures(con)
    if exists(con, "marts", "fct_kpi_standard_orgs"):
        from pipelines.reporting.summary import organisations_against_standard

        data["standard_orgs"] = organisations_against_standard(con, 1)
    if exists(con, "publish", "kpi_status"):
        data["published"] = _rows(con, "select kpi_id, period, actual, status, data_trust, data_trust_reason, "
                                       "published, published_at, publication_run_id from publish.kpi_status "
                                       "order by kpi_id")
    return data


def _encode(value):
    if isinstance(value, dt.datetime):
        return {"$ts": value.isoformat()}
    if isinstance(value, dt.date):
        return {"$date": value.isoformat()}
    if isinstance(value, decimal.Decimal):
        return float(value)
    raise TypeError(f"cannot store {type(value).__name__} in a scorecard snapshot")


def _decode(obj: dict):
    if obj.keys() == {"$ts"}:
        return dt.datetime.fromisoformat(obj["$ts"])
    if obj.keys() == {"$date"}:
        return dt.date.fromisoformat(obj["$date"])
    return obj


def save_snapshot(con, run_id: str, taken_at: dt.datetime, data: dict | None = None) -> dict:
    """Keep what the scorecard shows after this run (publish.scorecard_snapshots), so that
    `kpiwatch report --as-of DATE` can show what was known at that date."""
    data = data if data is not None else scorecard_data(con)
    con.execute(SNAPSHOT_DDL)
    con.execute("insert into publish.scorecard_snapshots values (?, ?, ?, ?)",
                [run_id, taken_at, data["settings"]["as_of"], json.dumps(data, default=_encode)])
    return data


class NoSnapshot(LookupError):
    """No scorecard was kept at or before the date asked for."""


def snapshot_as_of(con, day: dt.date) -> tuple[dict, dict]:
    """The scorecard data of the last run whose reporting date is on or before `day` (the latest
    such run if several), and that run's (run_id, taken_at, as_of)."""
    from pipelines.quality.store import exists

    row = None
    if exists(con, "publish", "scorecard_snapshots"):
        row = con.execute(
            "select run_id, taken_at, as_of, payload from publish.scorecard_snapshots where as_of <= ? "
            "order by as_of desc, taken_at desc limit 1", [day]).fetchone()
    if row is None:
        first = (con.execute("select min(as_of) from publish.scorecard_snapshots").fetchone()[0]
                 if exists(con, "publish", "scorecard_snapshots") else None)
        raise NoSnapshot(f"no scorecard was kept for a reporting date on or before {day}"
                         + (f" (the first is {first})" if first else " (no run has kept one yet)"))
    run_id, taken_at, as_of, payload = row
    return json.loads(payload, object_hook=_decode), {"run_id": run_id, "taken_at": taken_at, "as_of": as_of}


def render_scorecard(con, generated_at: dt.datetime | None = None) -> str:
    """The scorecard HTML from the warehouse as it is now."""
    return render(scorecard_data(con), generated_at)


def render(data: dict, generated_at: dt.datetime | None = None, known_at: dict | None = None) -> str:
    """The scorecard HTML from `scorecard_data` (live, or a snapshot when `known_at` says which)."""
    if generated_at is None:
        from pipelines.clock import command_now

        generated_at = command_now()  # outside a run: KPIWATCH_NOW, else the wall clock
    settings, kpis, points, targets = data["settings"], data["kpis"], data["points"], data["targets"]
    departments, milestones = data["departments"], data["milestones"]
    published = {p["kpi_id"]: p for p in data.get("published") or []}
    by_kpi: dict[str, list[dict]] = {}
    for p in points:
        by_kpi.setdefault(p["kpi_id"], []).append(p)
    tgt: dict[str, list[dict]] = {}
    for t in targets:
        tgt.setdefault(t["kpi_id"], []).append(t)

    orgs = {o["kpi_id"]: o for o in data.get("standard_orgs") or []}
    no_figure = data.get("no_figure") or {}
    series = {k["kpi_id"]: Series(k, by_kpi.get(k["kpi_id"], []), tgt.get(k["kpi_id"], []), published.get(k["kpi_id"]),
                                  orgs.get(k["kpi_id"]), no_figure.get(k["kpi_id"]))
              for k in kpis}
    views = {kpi_id: shown(sr) for kpi_id, sr in series.items()}
    untrusted = {d["department_id"]: sum(1 for k in kpis if k["department_id"] == d["department_id"]
                                         and views[k["kpi_id"]]["trust"] != "trusted") for d in departments}
    roll = "".join(
        f"<tr><th scope='row'><a href='#dept-{esc(d['department_id'])}'>{esc(d['department_name'])}</a></th>"
        f"<td class='num'>{d['kpis']}</td><td class='num'>{d['green']}</td><td class='num'>{d['amber']}</td>"
        f"<td class='num'>{d['red']}</td><td class='num'>{d['grey']}</td><td class='num'>{untrusted[d['department_id']]}</td>"
        f"<td class='num'>{d['milestones_met']}</td><td class='num'>{d['milestones_missed']}</td>"
        f"<td class='num'>{d.get('milestones_no_data', 0)}</td>"
        f"<td class='num'>{d['milestones_at_risk']}</td><td class='num'>{d['milestones_upcoming']}</td>"
        f"<td>{'Overdue' if d['source_overdue'] else 'Up to date'}</td></tr>"
        for d in departments)
    # At a glance: the KPIs that slip or whose data cannot be fully trusted, worst first.
    order = {"red": 0, "amber": 1, "grey": 2, "green": 3}
    dept_names = {d["department_id"]: d["department_name"] for d in departments}
    attention = sorted((k for k in kpis if views[k["kpi_id"]]["status"] in ("red", "amber")
                        or views[k["kpi_id"]]["trust"] != "trusted"),
                       key=lambda k: (order.get(views[k["kpi_id"]]["status"], 9), k["department_id"], k["kpi_id"]))
    attention_items = "".join(
        f"<li><a href='#kpi-{esc(k['kpi_id'])}'>{esc(title_of(k))}</a> ({esc(dept_names.get(k['department_id'], k['department_id']))}): "
        f"<span class='badge' style='background:{COLOURS.get(views[k['kpi_id']]['status'], '#333')}'>"
        f"{esc('No figure' if no_figure.get(k['kpi_id']) else status_words(views[k['kpi_id']]['status'], views[k['kpi_id']]['judged_by'], tolerance_of(k)))}</span>"
        f"<span class='badge' style='background:{COLOURS.get(views[k['kpi_id']]['trust'], '#333')}'>"
        f"{esc(TRUST_WORDS.get(views[k['kpi_id']]['trust'], views[k['kpi_id']]['trust']))}</span></li>"
        for k in attention)
    attention_html = (f"<ul class='attention'>{attention_items}</ul>" if attention_items
                      else "<p>Every KPI is on track and its data trusted.</p>")
    sources_by_dept: dict[str, list[dict]] = {}
    for src in data.get("sources") or []:
        sources_by_dept.setdefault(src["department_id"], []).append(src)
    sections, idx = [], 0
    for d in departments:
        tiles = []
        for k in (k for k in kpis if k["department_id"] == d["department_id"]):
            idx += 1
            tiles.append(_tile(series[k["kpi_id"]], idx))
        srcs = "".join(
            f"<li id='source-{esc(src['source_id'])}'>{esc(src['source_id'])} ({esc(src['cadence'])}): latest period "
            + (f"{esc(periods.label(src['latest_period'], src['cadence'], src.get('fiscal_start_month')))}, " if src["latest_period"] else "none yet, ")
            + (f"expected {esc(periods.label(src['expected_period'], src['cadence'], src.get('fiscal_start_month')))} — " if src["expected_period"] else "— ")
            + (f"<strong>overdue by {esc(src['periods_overdue'])} period(s)</strong>" if src["is_overdue"] else "up to date")
            + "</li>" for src in sources_by_dept.get(d["department_id"], []))
        sections.append(f"""
<section aria-labelledby="dept-{esc(d['department_id'])}">
  <h2 id="dept-{esc(d['department_id'])}">{esc(d['department_name'])}</h2>
  <p class="meta">{d['green']} on track, {d['amber']} slipping, {d['red']} off track, {d['grey']} without data;
     {untrusted[d['department_id']]} with data that is not fully trusted; source {'overdue' if d['source_overdue'] else 'up to date'}.</p>
  {f'<ul class="meta">{srcs}</ul>' if srcs else ''}
  <div class="tiles">{''.join(tiles)}</div>
</section>""")
    units = {k["kpi_id"]: k["unit"] for k in kpis}
    frequencies = {k["kpi_id"]: k.get("frequency") for k in kpis}

    def milestone_row(m: dict) -> str:
        unit = units.get(m.get("kpi_id"))
        # the value the test judged: the due date's period (in_period), else the latest
        judged = m.get("judged_actual") if m.get("test") == "in_period" else m["latest_actual"]
        value, (threshold, forecast) = display.figures(judged, [m["threshold"], m["forecast_value"]], unit)
        if m["forecast_value"] is None:
            forecast = "–"
        test = MILESTONE_TESTS.get(m.get("test") or "by_date", "")
        return (f"<tr id='milestone-{esc(m['milestone_id'])}'><td>{esc(m['due_date'])}</td><td>{esc(m['title'])}"
                f"<br><span class='reason'>{esc(test)}</span></td><td>{esc(m['department_id'])}</td>"
                f"<td><span class='badge' style='background:{COLOURS.get(m['state'], '#333')}'>"
                f"{esc(milestone_state_text(m, frequencies.get(m.get('kpi_id'))))}</span></td>"
                f"<td class='num'>{esc(value)}</td><td class='num'>{esc(threshold if m['threshold'] is not None else '–')}</td>"
                f"<td class='num'>{esc(forecast)}</td><td>{esc(m['owner_name'])}</td></tr>")

    ms_rows = "".join(milestone_row(m) for m in milestones)
    title = f"KPI scorecard — {settings['catalog_name']}"
    known = ""
    if known_at:
        title += f" as known on {known_at['asked']}"
        known = (f" <strong>As known on {esc(known_at['asked'])}</strong>: the scorecard kept by run "
                 f"{esc(known_at['run_id'])} at {esc(known_at['taken_at'])} UTC (reporting date {esc(known_at['as_of'])}).")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)}</title><style>{CSS}</style></head>
<body>
<header><h1>{esc(title)}</h1>
<p class="meta">Reporting date {esc(settings['as_of'])} · generated {esc(generated_at)} UTC by kpiwatch.{known}
Status compares each KPI's latest value with its trajectory to target, or with its standard (met or
not met); data trust says whether the
data behind it can be relied on.</p></header>
<main>
<section aria-labelledby="attention"><h2 id="attention">Needs attention</h2>
<p class="meta">KPIs off track or slipping, and KPIs whose data is not fully trusted (stale, failed checks or anomalous).</p>
{attention_html}</section>
<section aria-labelledby="rollup"><h2 id="rollup">Departments at a glance</h2>
<table><thead><tr><th scope="col">Department</th><th scope="col">KPIs</th><th scope="col">On track</th>
<th scope="col">Slipping</th><th scope="col">Off track</th><th scope="col">No data</th><th scope="col">Data not trusted</th>
<th scope="col">Milestones met</th><th scope="col">Missed</th><th scope="col">No data</th><th scope="col">At risk</th><th scope="col">Upcoming</th>
<th scope="col">Latest submission</th></tr></thead><tbody>{roll}</tbody></table></section>
{''.join(sections)}
<section aria-labelledby="milestones"><h2 id="milestones">Milestone timeline</h2>
<table><thead><tr><th scope="col">Due</th><th scope="col">Milestone</th><th scope="col">Department</th>
<th scope="col">State</th><th scope="col">Value judged</th><th scope="col">Threshold</th><th scope="col">Forecast at due date</th>
<th scope="col">Owner</th></tr></thead><tbody>{ms_rows}</tbody></table></section>
</main></body></html>
"""
