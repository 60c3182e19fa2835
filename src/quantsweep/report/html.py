"""``report.html``: one self-contained page (images embedded) with the decision and its evidence."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

from quantsweep.evaluate.confirm import points
from quantsweep.files import atomic_write_text
from quantsweep.quantize.sensitivity import score_text
from quantsweep.report.decision import Decision
from quantsweep.report.table import COLUMNS, HIGHER_IS_BETTER, Row

__all__ = ["write_report"]


def _img(path: Path, alt: str) -> str:
    if not path.is_file():
        return f"<p>({alt}: not produced)</p>"
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}" style="max-width:100%">'


def _table(rows: list[Row], columns: tuple[str, ...], arrows: dict[str, bool]) -> str:
    head = "".join(f"<th>{html.escape(c)}{' ↑' if arrows.get(c) else (' ↓' if c in arrows else '')}</th>"
                   for c in columns)
    body = []
    for r in rows:
        cls = ' class="rec"' if r.recommended else (' class="err"' if r.error else "")
        cells = []
        for c in columns:
            v = getattr(r, c)
            text = "" if v is None else ("✓" if v is True else "" if v is False else
                                         (f"{v:.4g}" if isinstance(v, float) else str(v)))
            if c == "error" and len(text) > 90:  # full text on hover, the row stays one line
                cells.append(f'<td title="{html.escape(text)}">{html.escape(text[:90])}…</td>')
                continue
            cells.append(f"<td>{html.escape(text)}</td>")
        body.append(f"<tr{cls}>{''.join(cells)}</tr>")
    return f'<table id="summary"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _confirmation_html(rows: list[Row], confirmation: dict[str, Any] | None) -> str:
    """Search-subset and confirmation Δ side by side, so the optimism of selection is visible."""
    if confirmation is None:
        return "<p>Off (<code>--confirm-images 0</code>): the decision rests on the search subset.</p>"
    if not confirmation["results"]:
        return (f"<p>No finalist: no candidate on {html.escape(str(confirmation['target']))} beat FP32 with a "
                "search-subset ΔmAP within the budget.</p>")
    by_name = {r.candidate: r for r in rows if r.backend == confirmation["target"]}
    body = []
    for c in confirmation["results"]:
        r = by_name.get(c["candidate"])
        search = (points(r.delta_map50_95, r.delta_ci95_low, r.delta_ci95_high)
                  if r and r.delta_map50_95 is not None else "")
        settle = f" (about {c['needed']} images would settle it)" if c.get("needed") else ""
        body.append(f"<tr><td>{html.escape(c['candidate'])}</td><td>{search}</td>"
                    f"<td>{points(c['delta'], c['low'], c['high'])}</td>"
                    f"<td>{c['images']}</td><td>{html.escape(c['verdict'])}{settle}</td></tr>")
    return (f"<p>Finalists on {html.escape(str(confirmation['target']))}, fastest first; ΔmAP50-95 in points with "
            f"paired 95% intervals; confirmation pool {confirmation['pool']} images after the search subset, "
            f"scored {confirmation['step']} at a time until decided.</p><table id=\"confirmation\"><tr>"
            "<th>finalist</th><th>search subset Δ</th><th>confirmation Δ</th><th>images</th><th>verdict</th></tr>"
            + "".join(body) + "</table>")


def _search_html(search: dict[str, Any] | None) -> str:
    """The search trace: every probe, per placement, with why each placement stopped."""
    if search is None:
        return "<p>No search in this run (<code>--grid</code>, or no runtime was measured).</p>"
    stops = "".join(f"<li><b>{html.escape(p['placement'])}</b> ({p['k0_speedup']:.2f}× FP32 at K=0): "
                    f"{html.escape(p.get('stopped', ''))}{' → ' + html.escape(p['best']) if p.get('best') else ''}</li>"
                    for p in search["placements"])
    body = []
    for t in search["trace"]:
        delta = points(t["delta"], t["low"], t["high"]) if t["delta"] is not None else html.escape(str(t["error"]))
        speed = f"{t['speedup_vs_fp32']:.2f}×" if t.get("speedup_vs_fp32") else ""
        kept = html.escape(", ".join(t["kept_float"][-3:])) + (" …" if len(t["kept_float"]) > 3 else "")
        expected = "" if t["expected_low"] is None else f"{100 * t['expected_low']:+.2f}"
        body.append(f"<tr><td>{html.escape(t['placement'])}</td><td>{t['k']}</td><td>{delta}</td>"
                    f"<td>{expected}</td>"
                    f"<td>{'yes' if t['qualifies'] else 'no'}</td><td>{speed}</td><td>{html.escape(str(t['label']))}</td>"
                    f"<td>{t['seconds']:.0f}</td><td><small>{kept}</small></td></tr>")
    return (f"<p>Target <b>{html.escape(str(search['target']))}</b>; {search['evaluations']} probe(s) beyond K=0 "
            f"(cap {search['max_evals']}), {search['seconds']:.0f} s. {html.escape(search['rule'])}.</p>"
            f"<ul>{stops}</ul><table id=\"search\"><tr><th>placement</th><th>K</th><th>search Δ (points)</th>"
            "<th>expected low</th><th>qualifies</th><th>speed-up</th><th>label</th><th>s</th>"
            f"<th>last kept-float nodes</th></tr>{''.join(body)}</table>")


def write_report(run_dir: Path, cfg: Any, rows: list[Row], decision: Decision,
                 verdict: dict[str, Any] | None, sensitivity: dict[str, Any],
                 confirmation: dict[str, Any] | None = None, search: dict[str, Any] | None = None) -> Path:

    env = json.loads((run_dir / "env.json").read_text()) if (run_dir / "env.json").exists() else {}
    sens_html = []
    for fam, res in sensitivity.items():
        if "ranking" not in res:
            sens_html.append(f"<h3>{html.escape(fam)}</h3><p>error: {html.escape(str(res.get('error')))}</p>")
            continue
        top = "".join(f"<tr><td>{r['rank']}</td><td><code>{html.escape(r['node'])}</code></td><td>{r['op']}</td>"
                      f"<td>{score_text(r)}</td></tr>" for r in res["ranking"][:20])
        sens_html.append(f"<h3>{html.escape(fam)} — top 20 of {len(res['ranking'])} nodes "
                         f"({res['images']} calibration images)</h3><table><tr><th>rank</th><th>node</th>"
                         f"<th>op</th><th>score ↑</th></tr>{top}</table>")
    verdict_html = (f'<p class="{"ok" if verdict["ok"] else "bad"}">{html.escape(verdict["verdict"])}</p>'
                    if verdict else "<p>No W8A16 candidate in this sweep.</p>")
    cpu = env.get("cpu", {})
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>quantsweep report</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1400px}}table{{border-collapse:collapse;font-size:12px}}
td,th{{border:1px solid #ccc;padding:3px 6px}}tr.rec{{background:#e6ffe6;font-weight:bold}}tr.err{{color:#a00}}
.ok{{color:#060}}.bad{{color:#a00;font-weight:bold}}pre{{background:#f6f6f6;padding:1em}}</style></head><body>
<h1>quantsweep report</h1>
<h2>Recommendation</h2><p id="recommendation"><b>{html.escape(str(decision.candidate))}</b> —
{html.escape(decision.reason)}</p>
<h2>Confirmation on held-out images</h2>{_confirmation_html(rows, confirmation)}
<h2>Search</h2>{_search_html(search)}
<h2>W8A16 sanity check</h2>{verdict_html}
<h2>Summary</h2><p>mAP on {cfg.max_images} evaluation images; latency per batch; speed-up vs FP32 on the same
backend, measured in the same interleaved rounds; ΔmAP 95% CI from a paired bootstrap over images.
Machine: {html.escape(str(cpu.get('model')))}, {cpu.get('physical_cores')} cores, VNNI {cpu.get('vnni')}.</p>
{_table(rows, COLUMNS, HIGHER_IS_BETTER)}
<h2>Accuracy vs latency</h2>{_img(run_dir / 'results' / 'pareto.png', 'Pareto plot')}
<h2>K curve</h2>{_img(run_dir / 'results' / 'k_curve.png', 'K curve')}
<h2>Sensitivity</h2>{''.join(sens_html) or '<p>No K-sets in this sweep.</p>'}
<h2>Settings</h2><pre>{html.escape(cfg.to_yaml())}</pre>
<h2>Environment</h2><pre>{html.escape(json.dumps(env, indent=1))}</pre>
</body></html>"""
    out = run_dir / "report.html"
    atomic_write_text(out, page)
    return out
