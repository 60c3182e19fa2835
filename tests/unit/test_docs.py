"""The docs are reference, the history is history: no page or module names a work period, and the
README reads in a 120-column terminal."""

import re
from pathlib import Path

ROOT = Path(__file__).parents[2]
WORK_PERIOD = re.compile(r"\b(session \d+|sessions? \d+[–-]\d+|this session|last session|next session)\b", re.I)


def test_no_page_or_module_names_a_work_period():
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "src").rglob("*.py")),
             *sorted((ROOT / "benchmarks").glob("*.py"))]
    found = [f"{p.relative_to(ROOT)}:{n}: {line.strip()[:80]}" for p in files
             for n, line in enumerate(p.read_text().splitlines(), 1) if WORK_PERIOD.search(line)]
    assert not found, "name dates, not work periods:\n" + "\n".join(found)


def test_readme_lines_fit_120_columns():
    long = [n for n, line in enumerate((ROOT / "README.md").read_text().splitlines(), 1) if len(line) > 120]
    assert not long, f"README.md lines over 120 characters: {long}"


def test_benchmarks_is_by_question_and_history_by_date():
    heads = [line for line in (ROOT / "docs" / "benchmarks.md").read_text().splitlines() if line.startswith("## ")]
    assert heads and not [h for h in heads if re.match(r"## \d{4}-\d{2}-\d{2}", h)], heads  # questions, not dates
    assert all(re.search(r"\(\d{4}-\d{2}-\d{2}\)|CPU class", h) for h in heads), heads  # each says when
    history = [line for line in (ROOT / "docs" / "history.md").read_text().splitlines() if line.startswith("## ")]
    assert history and all(re.match(r"## \d{4}-\d{2}-\d{2}: ", h) for h in history), history
