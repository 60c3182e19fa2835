"""``report.html``: one self-contained page (images embedded, no CDN), the decision first.

Above the fold, a card: what to deploy on which runtime, its evidence (search-subset and
confirmation ΔmAP with intervals, speed-up, label), the file and the one command that runs it,
and why the faster candidates were not chosen. Then the plots, the confirmation and the search,
the table grouped by runtime (Δ in points with intervals, emulated rows set apart), and, collapsed,
the settings, versions, machine, subsets and reproduce commands.

A small inline script records, once the page has loaded, the card's position and every image's
decoded width in ``<html data-check=...>`` (the headless-browser test reads it; nothing is sent
anywhere).
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

from quantsweep.bench.timing import speedup_text
from quantsweep.env import cpu_class
from quantsweep.files import atomic_write_text
from quantsweep.quantize.sensitivity import score_text
from quantsweep.report.cost import cost_html, read_cost
from quantsweep.report.profiles import profile_html
from quantsweep.results import Decision, Row, points, tested, what_they_confirm

__all__ = ["write_report"]

_E = html.escape


def _img(path: Path, alt: str) -> str:
    if not path.is_file():
        return f"<p>({_E(alt)}: not produced)</p>"
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{_E(alt)}" src="data:image/png;base64,{data}">'


def _speedup(r: Row) -> str:
    return speedup_text(r.speedup_vs_fp32, r.speedup_ci95_low, r.speedup_ci95_high)


def _ci(r: Row) -> str:
    """`` [low, high] 95 %`` after a speed-up, when it was measured with an interval."""
    if r.speedup_ci95_low is None or r.speedup_ci95_high is None:
        return ""
    return f" [{r.speedup_ci95_low:.2f}, {r.speedup_ci95_high:.2f}] (95 % over interleaved rounds)"


def _pts(r: Row) -> str:
    if r.delta_map50_95 is None:
        return ""
    return points(r.delta_map50_95, r.delta_ci95_low, r.delta_ci95_high)


def _why_not(r: Row, chosen: Row | None, budget: float, confirmed: dict[str, dict[str, Any]]) -> str:
    """Why a candidate at least as fast as the chosen one was not recommended."""
    if r.collapsed:
        return f"collapsed ({r.collapsed})"
    if r.label not in ("accelerated", "float"):
        return f"{r.label} here"
    c = confirmed.get(r.candidate)
    if c is not None and c["verdict"] != "pass":
        return f"confirmation {c['verdict']}: Δ {points(c['delta'], c['low'], c['high'])} on {c['images']} images"
    if r.delta_map50_95 is not None and r.delta_map50_95 < -budget / 100:
        return f"Δ {_pts(r)} misses the {budget:g}-point budget on the search subset"
    if r.ablation:
        return "ablation (head policy off), a diagnostic"
    return "not a finalist"


def _card(rows: list[Row], decision: Decision, budget: float, command: str | None,
          confirmation: dict[str, Any] | None, file: str | None = None) -> str:
    target = decision.backend
    chosen = next((r for r in rows if r.recommended), None)
    confirmed = {c["candidate"]: c for c in (confirmation or {}).get("results", [])}
    on_target = [r for r in rows if r.backend == target and r.candidate != "fp32" and r.speedup_vs_fp32]
    bar = chosen.speedup_vs_fp32 if chosen is not None and chosen.speedup_vs_fp32 else 1.0
    faster = sorted((r for r in on_target if r is not chosen and (r.speedup_vs_fp32 or 0) >= bar and r.error is None),
                    key=lambda r: -(r.speedup_vs_fp32 or 0))[:4]
    rejected = "".join(f"<li>{_E(r.candidate)} ({r.speedup_vs_fp32:.2f}×): {_E(_why_not(r, chosen, budget, confirmed))}"
                       "</li>" for r in faster)
    rejected_html = f"<p>Faster, not chosen:</p><ul>{rejected}</ul>" if rejected else ""
    if chosen is None or decision.candidate in (None, "fp32"):
        return (f'<section id="decision" class="card stay"><h1>Stay on FP32 on {_E(str(target))}</h1>'
                f"<p>{_E(decision.reason)}</p>{rejected_html}</section>")
    c = decision.confirmed or {}
    design = (confirmation or {}).get("design") or {}
    held = (f"<b>{_E(tested(c, budget))}</b> points on {c['images']} held-out images "
            f"(<b>confirmed</b> within the {budget:g}-point budget at α={design.get('alpha', '?')})" if c else
            f"<b>not confirmed</b> on held-out images: {_E(decision.note or '')}")
    title = (f"Deploy <code>{_E(chosen.candidate)}</code> on {_E(str(target))}" if decision.status == "deploy" else
             f"Best candidate, not confirmed: <code>{_E(chosen.candidate)}</code> on {_E(str(target))}")
    css = "card" if decision.status == "deploy" else "card stay"
    return f"""<section id="decision" class="{css}"><h1>{title}</h1>
<table class="facts"><tr><th>speed-up</th><td><b>{chosen.speedup_vs_fp32:.2f}×</b> FP32{_ci(chosen)} ({chosen.latency_p50_ms:.2f} ms p50,
{chosen.latency_p90_ms or 0:.2f} ms p90, batch {chosen.batch or 1}; interleaved with FP32 on this machine)</td></tr>
<tr><th>ΔmAP50-95</th><td>{held}; search subset: {_pts(chosen)}</td></tr>
<tr><th>how it runs</th><td>{_E(str(chosen.label))} on {_E(str(target))} (read from the executed graph)</td></tr>
<tr><th>file</th><td><code>recommended/{_E(file or chosen.candidate + '.onnx')}</code> with its scheme JSON and README</td></tr></table>
<p>Run it (from <code>recommended/</code>):</p><pre id="deploy-cmd">{_E(command or '')}</pre>{rejected_html}</section>"""


def _zline(c: dict[str, Any]) -> str:
    """The last look's test statistic against its boundary, e.g. ``2.71 ≥ 2.19``."""
    look = (c.get("looks") or [{}])[-1]
    if "z" not in look:
        return ""
    return f"{look['z']:.2f} {'≥' if look['z'] >= look['critical'] else '<'} {look['critical']:.2f}"


def _confirmation_html(rows: list[Row], confirmation: dict[str, Any] | None) -> str:
    """Search-subset and confirmation Δ side by side, so the optimism of selection is visible."""
    if confirmation is None:
        return ("<p>No held-out confirmation in this run (<code>--confirm-images 0</code>, or too few labelled "
                "images): the decision rests on the search subset and is <b>not confirmed</b>.</p>")
    if not confirmation["results"]:
        return (f"<p>No finalist: no candidate on {_E(str(confirmation['target']))} beat FP32 with a "
                "search-subset ΔmAP within the budget.</p>")
    by_name = {r.candidate: r for r in rows if r.backend == confirmation["target"]}
    body = []
    for c in confirmation["results"]:
        r = by_name.get(c["candidate"])
        settle = "".join(f"; {part}" for part in what_they_confirm(c, confirmation["budget_points"]))
        bound = "" if c.get("bound") is None else f"{100 * c['bound']:+.2f}"
        body.append(f"<tr><td>{_E(c['candidate'])}</td><td>{_pts(r) if r else ''}</td>"
                    f"<td>{100 * c['delta']:+.2f}</td><td><b>{bound}</b></td>"
                    f"<td><small>{points(c['delta'], c['low'], c['high'])}</small></td>"
                    f"<td>{c['images']}</td><td>{_zline(c)}</td><td>{_E(c['verdict'])}{_E(settle)}</td></tr>")
    design = confirmation.get("design") or {}
    split = confirmation.get("split") or {}
    how = ("in the order declared before the first look (safest first), stopping at the first that does not pass; "
           "the pick is the fastest that passed" if design.get("finalist_rule") == "fixed-sequence"
           else "fastest first, until one passes")
    return (f"<p>Finalists on {_E(str(confirmation['target']))}, {how}; ΔmAP50-95 in "
            f"points with paired 95% intervals; confirmation pool {confirmation['pool']} images "
            f"({_E(split.get('note') or 'after the search subset')}).</p>"
            f"<p id=\"design\">Design, fixed before the first look: {_E(design.get('rule', ''))}. A pass means "
            f"the chance that a model whose true loss exceeds the budget passes was at most α.</p>"
            "<table id=\"confirmation\"><tr>"
            "<th>finalist</th><th>search subset Δ</th><th>confirmation Δ</th><th>tested bound Δ − c·SE</th>"
            "<th>descriptive 95 % interval</th><th>images</th><th>z vs boundary c</th><th>verdict</th></tr>"
            + "".join(body) + "</table>")


def _hedge_html(hedge: Any) -> str:
    """A placement's hedge probe (a K>0 finalist beside a K=0 that qualified), or why it had none."""
    if isinstance(hedge, dict):
        return (f"; hedge for the confirmation: <code>{_E(hedge['candidate'])}</code> (K={hedge['k']}: "
                f"{_E(hedge['why'])})")
    return f"; {_E(str(hedge))}" if hedge else ""


def _search_html(search: dict[str, Any] | None) -> str:
    """The search trace: every probe, per placement, with why each placement stopped."""
    if search is None:
        return "<p>No search in this run (<code>--grid</code>, or no runtime was measured).</p>"
    stops = "".join(f"<li><b>{_E(p['placement'])}</b> ({p['k0_speedup']:.2f}× FP32 at K=0): "
                    f"{_E(p.get('stopped', ''))}{' → ' + _E(p['best']) if p.get('best') else ''}"
                    f"{_hedge_html(p.get('hedge'))}</li>"
                    for p in search["placements"])
    stops = stops or ("<li>no placement: no K-capable candidate ran accelerated and measurably faster than FP32 "
                      "at K=0 (its speed-up's 95 % interval above 1)</li>")
    body = []
    for t in search["trace"]:
        delta = points(t["delta"], t["low"], t["high"]) if t["delta"] is not None else _E(str(t["error"]))
        speed = (speedup_text(t["speedup_vs_fp32"], t.get("speedup_ci95_low"), t.get("speedup_ci95_high"))
                 if t.get("speedup_vs_fp32") else "")
        kept = _E(", ".join(t["kept_float"][-3:])) + (" …" if len(t["kept_float"]) > 3 else "")
        expected = "" if t["expected_low"] is None else f"{100 * t['expected_low']:+.2f}"
        body.append(f"<tr><td>{_E(t['placement'])}</td><td>{t['k']}</td><td>{delta}</td><td>{expected}</td>"
                    f"<td>{'yes' if t['qualifies'] else 'no'}</td><td>{speed}</td><td>{_E(str(t['label']))}</td>"
                    f"<td>{t['seconds']:.0f}</td><td><small>{kept}</small></td></tr>")
    return (f"<p>Target <b>{_E(str(search['target']))}</b>; {search['evaluations']} probe(s) beyond K=0 "
            f"(cap {search['max_evals']}), {search['seconds']:.0f} s. {_E(search['rule'])}.</p>"
            f"<ul>{stops}</ul><table id=\"search\"><tr><th>placement</th><th>K</th><th>search Δ (points)</th>"
            "<th>expected low</th><th>qualifies</th><th>speed-up</th><th>label</th><th>s</th>"
            f"<th>last kept-float nodes</th></tr>{''.join(body)}</table>{_four_bit_html(search.get('four_bit'))}")


def _four_bit_html(four: dict[str, Any] | None) -> str:
    """The 4-bit (size) search: per family, the fewest 8-bit convs within ``--w4-budget``, with sizes."""
    if four and four.get("skipped"):
        return (f"<h3>Four-bit candidates (for size): not searched</h3><p>{_E(four['skipped'])}. Their K=0 files "
                f"are in the table below. To decide the smallest 4-bit file: <code>{_E(four.get('how', '--size'))}</code>.</p>")
    if not four or not four.get("placements"):
        return ""
    probes = {t["candidate"]: t for t in four["trace"]}
    items = []
    for p in four["placements"]:
        best = probes.get(p.get("best") or "")
        got = (f" → <b>{_E(p['best'])}</b> ({best['k']} conv(s) kept at 8 bits, "
               f"{points(best['delta'], best['low'], best['high'])} points)" if best else " → none within the budget")
        items.append(f"<li><b>{_E(p['placement'])}</b> ({p.get('size_mb') or '?'} MB at K=0, budget "
                     f"{p.get('budget_points', four['budget_points']):g} points): "
                     f"{_E(p.get('stopped', ''))}{got}</li>")
    held_out = "".join(f"<li><b>{_E(c['candidate'])}</b>: {_E(c['verdict'])} at {c['images']} held-out images, "
                       f"{_E(tested(c, c.get('budget_points', four['budget_points'])))} points</li>"
                       for c in (four.get("confirmation") or {}).get("results", []))
    return (f"<h3>Four-bit candidates (for size): fewest 8-bit convs within their budget</h3>"
            f"<p>{four['evaluations']} probe(s) beyond K=0, same rule as above with the 4-bit budget "
            f"(<code>--w4-budget</code> {four['budget_points']:g} points; W4A8, whose int8 activations cost on top, "
            f"<code>--w4a8-budget</code> {four.get('w4a8_budget_points', four['budget_points']):g}); sizes of every "
            "probe are in the table below.</p>"
            f"<ul>{''.join(items)}</ul>"
            + (f"<p>Re-scored on the held-out confirmation images (each family's pick its own verdict, smallest file first, own design):</p>"
               f"<ul>{held_out}</ul>" if held_out else ""))


def _table(rows: list[Row], target: str | None) -> str:
    """One table per runtime (the decision's first): Δ in points with intervals, emulated rows set apart."""
    out = []
    for backend in sorted({r.backend for r in rows}, key=lambda b: (b != target, str(b))):
        on = sorted((r for r in rows if r.backend == backend),
                    key=lambda r: (r.label not in ("accelerated", "float"), -(r.speedup_vs_fp32 or 0)))
        body = []
        for r in on:
            cls = ("rec" if r.recommended else "err" if r.error else
                   "apart" if r.label not in ("accelerated", "float") or r.ablation else "")
            err = _E(r.error or "")
            err_cell = f'<td title="{err}">{err[:70]}{"…" if len(err) > 70 else ""}</td>'
            body.append(
                f'<tr class="{cls}"><td>{_E(r.candidate)}</td><td>{_E(r.precision)}</td><td>{r.k}</td>'
                f"<td>{_E(str(r.label or ''))}</td><td>{'' if r.map50_95 is None else f'{r.map50_95:.4f}'}</td>"
                f"<td>{_pts(r)}</td><td>{'' if r.speedup_vs_fp32 is None else _E(_speedup(r))}</td>"
                f"<td>{'' if r.latency_p50_ms is None else f'{r.latency_p50_ms:.2f}'}</td>"
                f"<td>{'' if r.size_mb is None else f'{r.size_mb:.2f}'}</td><td>{'✓' if r.pareto else ''}</td>"
                f"<td>{_E(r.collapsed or '')}</td>{err_cell}</tr>")
        out.append(f"<h3>{_E(str(backend))}{' (the decision’s runtime)' if backend == target else ''}</h3>"
                   f'<table class="summary" id="summary-{_E(str(backend))}"><tr><th>candidate</th><th>precision</th>'
                   "<th>K</th><th>label</th><th>mAP50-95 ↑</th><th>Δ points [95%] ↑</th><th>speed-up [95%] ↑</th>"
                   "<th>p50 ms ↓</th><th>MB ↓</th><th>Pareto</th><th>collapsed</th><th>error</th></tr>"
                   f"{''.join(body)}</table>")
    return '<div id="summary">' + "".join(out) + "</div>"


_CHECK = """<script>
window.addEventListener('load', function () {
  var card = document.getElementById('decision');
  var imgs = Array.prototype.map.call(document.images, function (i) { return i.naturalWidth; });
  document.documentElement.setAttribute('data-check', JSON.stringify({
    card_bottom: card ? card.getBoundingClientRect().bottom + window.scrollY : null, images: imgs}));
});
</script>"""


def _pts_ci(c: dict[str, Any]) -> str:
    ci = c.get("ci95")
    text = f"{100 * c['delta']:+.2f}"
    return text + (f" [{100 * ci[0]:+.2f}, {100 * ci[1]:+.2f}]" if ci else " (too few boxes for an interval)")


def _changes_html(changes: dict[str, Any] | None, res: Path) -> str:
    """Per-class and per-size damage of the pick (the figure and the most damaged classes), a line per other finalist."""
    subjects = (changes or {}).get("candidates") or {}
    if not subjects:
        return "<p>No quantized candidate to compare with FP32 in this run.</p>"
    parts = []
    for k, (name, c) in enumerate(subjects.items()):
        sizes = ", ".join(f"{s} {100 * v['delta']:+.2f} ({v['boxes']} boxes)" for s, v in c["sizes"].items()
                          if v.get("delta") is not None)
        verdicts = c.get("image_verdicts") or {}
        worst = c["classes"][:1]
        head = (f"<p><b>{_E(name)}</b> vs FP32 on {c['num_images']} {_E(c['images'])} images: AP by object size "
                f"{_E(sizes) or '—'} (points). Per image at score ≥ {changes.get('gallery_conf') if changes else ''}: "
                f"{verdicts.get('worse', 0)} worse, {verdicts.get('better', 0)} better, "
                f"{verdicts.get('different', 0)} different boxes with as many errors, {verdicts.get('same', 0)} same."
                + (f" Most damaged class: {_E(worst[0]['name'])} {_E(_pts_ci(worst[0]))} points." if worst else "")
                + "</p>")
        if k == 0:
            rows = "".join(f"<tr><td>{_E(c2['name'])}</td><td>{c2['boxes']}</td><td>{c2['images']}</td>"
                           f"<td>{100 * c2['ap_fp32']:.2f}</td><td>{100 * c2['ap_candidate']:.2f}</td>"
                           f"<td>{_E(_pts_ci(c2))}</td></tr>" for c2 in c["classes"][:10])
            figure = (_img(res / "class_damage.png", f"Δ AP per class and per object size, {name} vs FP32")
                      if (res / "class_damage.png").exists() else "")
            head += (f"{figure}<table><tr><th>class (10 most damaged; classes with too few boxes for an "
                     "interval after those with one)</th><th>boxes</th><th>images</th><th>AP FP32</th>"
                     f"<th>AP {_E(name)}</th><th>Δ points [paired 95% interval] ↑</th></tr>{rows}</table>")
        parts.append(head)
    return "".join(parts) + "<p>All classes: <code>results/changes.json</code> and <code>summary.json</code>.</p>"


def _gallery_html(changes: dict[str, Any] | None, res: Path) -> str:
    """Thumbnails (embedded) of the image pairs, each opening the full-size pair in ``results/gallery/``."""
    from quantsweep.report.gallery import thumbnail_uri

    gallery = (changes or {}).get("gallery") or {}
    pairs = gallery.get("pairs") or []
    if not pairs:
        return "<p>No gallery in this run (no quantized candidate to compare, or <code>--gallery 0</code>).</p>"
    figures = []
    for p in pairs:
        uri = thumbnail_uri(res / p["file"])
        if not uri:
            continue
        cls = {"worse": "bad", "better": "ok"}.get(p["verdict"], "")
        figures.append(f'<figure><a href="results/{_E(p["file"])}"><img alt="{_E(p["caption"])}" src="{uri}"></a>'
                       f'<figcaption class="{cls}">#{p["image_id"]}: {_E(p["caption"])}</figcaption></figure>')
    return (f"<p>{_E(gallery['candidate'])} (right) against FP32 (left) on {_E(gallery['images'])} images, ranked by how "
            f"much the boxes at score ≥ {changes.get('gallery_conf') if changes else ''} changed; ground truth outlined "
            "in thin green; a few images where the candidate is better are included. Click a pair for full size.</p>"
            f'<div class="gallery">{"".join(figures)}</div>')


def write_report(run_dir: Path, cfg: Any, rows: list[Row], decision: Decision,
                 verdict: dict[str, Any] | None, sensitivity: dict[str, Any],
                 confirmation: dict[str, Any] | None = None, search: dict[str, Any] | None = None,
                 command: str | None = None, scored_by: str | None = None, file: str | None = None,
                 changes: dict[str, Any] | None = None) -> Path:
    """Write ``run_dir/report.html``; ``command`` runs the recommended model (``file``) from
    ``recommended/``; ``scored_by`` names the runtime that scored the candidates."""
    env = json.loads((run_dir / "env.json").read_text()) if (run_dir / "env.json").exists() else {}
    sens_html = []
    for fam, res in sensitivity.items():
        if "ranking" not in res:
            sens_html.append(f"<h3>{_E(fam)}</h3><p>error: {_E(str(res.get('error')))}</p>")
            continue
        top = "".join(f"<tr><td>{r['rank']}</td><td><code>{_E(r['node'])}</code></td><td>{r['op']}</td>"
                      f"<td>{score_text(r)}</td></tr>" for r in res["ranking"][:20])
        sens_html.append(f"<h3>{_E(fam)} — top 20 of {len(res['ranking'])} nodes "
                         f"({res['images']} calibration images)</h3><table><tr><th>rank</th><th>node</th>"
                         f"<th>op</th><th>score ↑</th></tr>{top}</table>")
    verdict_html = (f'<p class="{"ok" if verdict["ok"] else "bad"}">{_E(verdict["verdict"])}</p>'
                    if verdict else "<p>No W8A16 candidate in this sweep.</p>")
    cpu = env.get("cpu", {})
    res = run_dir / "results"
    ids = {name: (run_dir / name).read_text().split() for name in ("search_ids.txt", "confirm_ids.txt", "calib_ids.txt")
           if (run_dir / name).exists()}
    ids_html = "".join(f"<p>{_E(n)} ({len(v)}): {_E(' '.join(v[:40]))}{' …' if len(v) > 40 else ''}</p>"
                       for n, v in ids.items())
    changes = changes or {}
    page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>quantsweep report</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font-family:system-ui,sans-serif;margin:1.2em auto;max-width:1200px;padding:0 1em;color:#222}}
table{{border-collapse:collapse;font-size:12px;margin:.4em 0}}td,th{{border:1px solid #ccc;padding:2px 6px;text-align:left}}
tr.rec{{background:#e6ffe6;font-weight:bold}}tr.err{{color:#a00}}tr.apart{{color:#888;font-style:italic}}
.card{{border:2px solid #2a7;border-radius:8px;padding:.6em 1em;background:#f4fff8}}.card.stay{{border-color:#c80;background:#fffaf0}}
.card h1{{font-size:1.5em;margin:.2em 0}}.facts th{{width:8em;background:#eef}}.ok{{color:#060}}.bad{{color:#a00;font-weight:bold}}
pre{{background:#f6f6f6;padding:.6em;white-space:pre-wrap;font-size:12px}}img{{max-width:100%}}
.gallery{{display:grid;grid-template-columns:repeat(auto-fill,minmax(380px,1fr));gap:.6em}}figure{{margin:0}}
figcaption{{font-size:11px}}
@media print{{details{{display:block}}.card{{break-inside:avoid}}}}</style></head><body>
{_card(rows, decision, cfg.budget, command, confirmation, file)}
<p id="recommendation"><small>{_E(decision.reason)}</small></p>
<h2>Accuracy vs speed</h2>{_img(res / 'pareto.png', 'ΔmAP vs speed-up per runtime')}
<h2>Confirmation on held-out images</h2>{_confirmation_html(rows, confirmation)}
<h2>What changed</h2>{_changes_html(changes, res)}
<h2>Gallery: the images that changed most</h2>{_gallery_html(changes, res)}
<h2>Search</h2>{_search_html(search)}
{_img(res / 'k_curve.png', 'ΔmAP and speed-up against K') if (res / 'k_curve.png').exists() else
 '<p>No ΔmAP / speed-up against K plot: no candidate in this run keeps any layer in float or at 8 bits (K = 0 '
 'only: the search needed no probe).</p>'}
{_img(res / 'kept_float.png', 'where the float-kept nodes sit') if (res / 'kept_float.png').exists() else ''}
<h2>Where the time goes</h2>{profile_html(res, decision, _img(res / 'profile.png', 'node time by operator'))}
<h2>W8A16 sanity check</h2>{verdict_html}
<h2>All candidates</h2><p>mAP on {cfg.max_images} search images, scored by {_E(str(scored_by))} (the decision's
runtime: runtimes do not compute a low-precision graph alike); ΔmAP in points with a paired bootstrap 95% interval;
speed-up vs FP32 on the same runtime, measured in the same interleaved rounds; grey italic rows are emulated,
unsupported or ablations (not deployable there). Full table: <code>results/summary.csv</code>.</p>
{_table(rows, decision.backend)}
<h2>Sensitivity</h2>{''.join(sens_html) or '<p>No ranking in this run.</p>'}
{cost_html(read_cost(run_dir), cpu_class(cpu))}
<details><summary>Settings, machine, subsets, reproduce</summary>
<p>Machine: {_E(str(cpu.get('model')))}, {cpu.get('physical_cores')} cores, VNNI {cpu.get('vnni')}.</p>
<p>Reproduce: <code>quantsweep run --config {_E(str(run_dir / 'config.yaml'))} --out NEW_FOLDER</code>;
finish an interrupted run: <code>quantsweep run --resume {_E(str(run_dir))}</code>.</p>
<pre>{_E(cfg.to_yaml())}</pre>{ids_html}<pre>{_E(json.dumps(env, indent=1))}</pre></details>
{_CHECK}</body></html>"""
    out = run_dir / "report.html"
    atomic_write_text(out, page)
    return out
