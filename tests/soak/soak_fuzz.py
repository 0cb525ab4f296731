"""Fuzz soak: the input fuzzing of ``test_soak_fuzz.py`` with the ``soak`` profile (1,000
cases per test, at least 1,000 per parser), with a fixed seed; writes the cases run and
the failures per parser.

    python tests/soak/soak_fuzz.py          # -> bench/results/soak_fuzz.json
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE.parent.parent / "bench" / "results"

PARSERS = {  # test name prefix -> parser, as counted in test_soak_fuzz.CASES
    "test_run_files": "run file", "test_preset_files": "preset file", "test_sweep_files": "sweep file",
    "test_wiring_files": "wiring file", "test_limits_files": "limits file", "test_trace_csv": "trace CSV",
    "test_cli_train": "cli train", "test_cli_fit": "cli fit",
    "test_cli_device_response": "cli device-response", "test_cli_sweep": "cli sweep",
    "test_cli_inspect": "cli inspect",
}


class _Outcomes:
    """A pytest plugin that keeps each test's outcome and failure text."""

    def __init__(self) -> None:
        self.failed: dict[str, str] = {}
        self.passed: list[str] = []
        self.seconds: Counter[str] = Counter()

    def pytest_runtest_logreport(self, report: Any) -> None:
        name = report.nodeid.split("::")[-1]
        self.seconds[name] += report.duration
        if report.when == "call":
            if report.passed:
                self.passed.append(name)
            elif report.failed:
                self.failed[name] = str(report.longrepr)[-3000:]
        elif report.failed:
            self.failed[name] = str(report.longrepr)[-3000:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=20261122)
    parser.add_argument("--profile", default="soak", help="hypothesis profile (conftest.py): soak or ci")
    parser.add_argument("-k", default="", help="only the tests matching this pytest -k expression")
    parser.add_argument("--out", type=Path, default=RESULTS / "soak_fuzz.json")
    args = parser.parse_args(argv)
    os.environ["BSL_FUZZ_PROFILE"] = args.profile
    import pytest

    outcomes = _Outcomes()
    t0 = time.perf_counter()
    pytest_args = [str(HERE / "test_soak_fuzz.py"), "-q", "-p", "no:cacheprovider",
                   "-W", "ignore::DeprecationWarning", f"--hypothesis-seed={args.seed}"]
    pytest_args += ["-k", args.k] if args.k else []
    code = pytest.main(pytest_args, plugins=[outcomes])
    seconds = time.perf_counter() - t0
    cases: Counter[str] = getattr(sys.modules.get("test_soak_fuzz"), "CASES", Counter())
    per_parser: dict[str, dict[str, Any]] = {}
    for prefix, name in PARSERS.items():
        tests = sorted({t for t in [*outcomes.passed, *outcomes.failed] if t.startswith(prefix)})
        if not tests:
            continue
        per_parser[name] = {
            "cases": cases.get(name, 0), "tests": tests,
            "failures": sum(t in outcomes.failed for t in tests),
            "seconds": round(sum(outcomes.seconds[t] for t in tests), 1),
        }
    extra = {name: n for name, n in cases.items() if name not in PARSERS.values()}
    sys.path.insert(0, str(HERE.parent.parent / "bench"))
    from report import write_report

    report = {"profile": args.profile, "seed": args.seed, "pytest_exit": int(code),
              "seconds": round(seconds, 1),
              "parsers": per_parser, "total_cases": sum(row["cases"] for row in per_parser.values()),
              "details": extra,
              "failures": {name: text for name, text in outcomes.failed.items()}}
    write_report(args.out, report)
    for name, row in per_parser.items():
        print(f"  {name:<22} {row['cases']:>6} cases  {row['failures']} failure(s)")
    print(f"{report['total_cases']} cases, {len(outcomes.failed)} failing test(s), {seconds:.0f} s; "
          f"report in {args.out}")
    return 0 if not outcomes.failed and code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
