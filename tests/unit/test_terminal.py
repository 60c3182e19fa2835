"""The terminal summary: the decision first, at most 30 lines at 100 columns, however many rows."""

from pathlib import Path

from quantsweep.report.terminal import terminal_summary


def _row(name, backend, delta, speed, **kw):
    return {"candidate": name, "backend": backend, "delta_map50_95": delta, "delta_ci95_low": delta - 0.007,
            "delta_ci95_high": delta + 0.007, "speedup_vs_fp32": speed, "latency_p50_ms": 20 / speed if speed else None,
            "label": kw.pop("label", "accelerated"), "error": kw.pop("error", None), **kw}


def _summary(recommended=True):
    rows = [_row("fp32", b, 0.0, 1.0, label="float") for b in ("openvino", "ort-cpu")]
    for i in range(16):  # a long grid: 32 rows over two runtimes
        for b in ("openvino", "ort-cpu"):
            rows.append(_row(f"int8-variant-with-a-long-name-k{i}", b, -0.002 * i, 1.5 - 0.03 * i))
    rows.append(_row("w4a16-mse", "openvino", -0.04, None, label="unsupported", error="RuntimeError: " + "x" * 300))
    rows.append(_row("int8-ov", "openvino", -0.005, 1.45, recommended=recommended))
    rows.append(_row("int8-collapsing", "openvino", -0.001, 1.6, collapsed="3: 0.40→0.10"))
    confirmed = {"candidate": "int8-ov", "images": 400, "delta": -0.006, "low": -0.01, "high": -0.002,
                 "verdict": "pass"}
    return {"rows": rows, "budget_points": 1.0, "search_images": 100,
            "recommendation": {"candidate": "int8-ov" if recommended else "fp32", "backend": "openvino",
                               "reason": "fastest confirmed finalist " * 10,
                               "confirmed": confirmed if recommended else None},
            "confirmation": {"results": [confirmed, {**confirmed, "candidate": "int8-trt", "verdict": "fail"}]},
            "w8a16": {"verdict": "pipeline OK: w8a16 loses 0.14 mAP50-95 points (≤ 1.0)"},
            "search": {"target": "openvino", "evaluations": 3, "max_evals": 8, "seconds": 61.0,
                       "placements": [{"placement": "int8-ov", "stopped": "qualified at K=0"}]}}


def test_summary_fits_a_screen_and_leads_with_the_decision():
    text = terminal_summary(_summary(), Path("runs/demo/x"), width=100)
    lines = text.splitlines()
    assert len(lines) <= 30 and max(map(len, lines)) <= 100
    assert lines[0].startswith("DEPLOY int8-ov on openvino: 1.45×") and "on 400 held-out images" in lines[0] and lines[1].startswith("  confirmed within")
    assert "Δ -0.60 [-1.00, -0.20] points" in lines[0]
    assert any("runs/demo/x/recommended/int8-ov.onnx" in line for line in lines)
    assert any(line.startswith("W8A16 check: pipeline OK") for line in lines)
    assert any("int8-trt fail" in line for line in lines)
    assert any("unsupported (w4a16-mse@openvino)" in line and "collapsed (int8-collapsing)" in line
               for line in lines)
    listed = [line for line in lines if line.startswith("  int8-")]
    assert listed[0].split()[0] == "int8-collapsing" and "(collapsed)" in listed[0]
    assert any("int8-ov" in line and "← deploy" in line for line in listed)
    assert "-0.01257" not in text  # points, not raw fractions


def test_staying_on_fp32_says_so_and_why():
    text = terminal_summary(_summary(recommended=False), Path("r"), width=80)
    assert text.splitlines()[0].startswith("STAY ON FP32 (on openvino): fastest confirmed")
    assert max(map(len, text.splitlines())) <= 80


def test_speed_ups_show_their_interval_and_an_empty_search_says_why():
    s = _summary(recommended=False)
    first = "int8-variant-with-a-long-name-k0"
    s["rows"] = [{**r, "speedup_ci95_low": 1.41, "speedup_ci95_high": 1.58} if r["candidate"] == first else r
                 for r in s["rows"]]
    s["search"].update(placements=[], evaluations=0)
    text = terminal_summary(s, Path("r"), width=200)
    assert any(first in line and "1.50× [1.41, 1.58]" in line for line in text.splitlines())
    assert "0 probe(s) beyond K=0 (cap 8), 61 s — no placement measurably faster than FP32 at K=0" in text
