"""The stress command's body (``scripts/stress.py`` is its thin command line): run with progress,
write the report and the chart, print the summary."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from backstop.scenario import Scenario, ScenarioError
from backstop.stress.backend import ScenarioBackend
from backstop.stress.describe import progress_line
from backstop.stress.report import summary_table, write_chart, write_json
from backstop.stress.results import RunResult
from backstop.stress.runner import run


def write_outputs(result: RunResult, out_dir: str | Path) -> tuple[Path, Path]:
    """Writes ``<out>/<name>.json`` and ``<out>/<name>.png``; returns both paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / f"{result.scenario.name}.json"
    png_path = out / f"{result.scenario.name}.png"
    write_json(result, json_path)
    write_chart(result, png_path)
    return json_path, png_path


def check_distinct_names(scenarios: Sequence[Scenario], out_dir: str | Path) -> None:
    """Refuses two scenarios of one invocation with the same ``name``: the second report would
    overwrite the first one's (``ScenarioError`` naming both files and the report)."""
    seen: dict[str, Scenario] = {}
    for scenario in scenarios:
        first = seen.setdefault(scenario.name, scenario)
        if first is not scenario:
            raise ScenarioError(
                f"{first.source or '<text>'} and {scenario.source or '<text>'} are both named "
                f"{scenario.name!r}: the second would overwrite {Path(out_dir) / scenario.name}.json; "
                "give one of them another name"
            )


def main_all(
    scenarios: Sequence[Scenario],
    make_backend: Callable[[], ScenarioBackend],
    out_dir: str | Path,
    echo: Callable[[str], None] = print,
) -> tuple[int, list[RunResult]]:
    """:func:`main` for each scenario in turn, each on a fresh backend; refuses duplicate names
    before playing any (:func:`check_distinct_names`). The exit code is the worst of them."""
    check_distinct_names(scenarios, out_dir)
    code, results = 0, []
    for n, scenario in enumerate(scenarios):
        if n:
            echo("")
        one, result = main(scenario, make_backend(), out_dir, echo=echo)
        code, results = max(code, one), [*results, result]
    return code, results


def main(
    scenario: Scenario, backend: ScenarioBackend, out_dir: str | Path, echo: Callable[[str], None] = print
) -> tuple[int, RunResult]:
    """Runs ``scenario`` on ``backend`` with a progress line per step, writes the report and the
    chart to ``out_dir`` and prints the summary table. Returns ``(exit code, result)``: 0 if the
    run passed, 1 if any step failed its expectation or an invariant broke."""
    last = f", steps[0]..steps[{len(scenario.steps) - 1}]" if scenario.steps else ""
    echo(f"stress: {scenario.name} ({len(scenario.steps)} steps{last}) on {backend.title}")
    if scenario.description:
        echo(f"  {scenario.description}")
    result = run(
        scenario, backend, progress=lambda rec, total, problems: echo(progress_line(rec, total, problems))
    )
    json_path, png_path = write_outputs(result, out_dir)
    echo("")
    echo(summary_table(result))
    echo("")
    echo(f"report: {json_path}  chart: {png_path}")
    return (0 if result.ok else 1), result
