"""`promtool test rules` input for the instance counts a stack file declares (`expected_instances`).

The catalogue's own cases (pharos-tests.yml) feed the declared count as an input series, without
the stack's rule file: its constants would be in every test group. These tests load the rule file
`pharos build` wrote for the environment together with the alerts, so that they prove what runs:
for every declared service, fewer targets fire PharosServiceTargetsMissing and as many keep it quiet.
"""

from __future__ import annotations

from .catalogue import SERVICE_TARGETS_MISSING, declared_count_cases, declared_targets
from .model import TEST_INTERVAL_SECONDS, Case
from .prometheus_rules import Tuning
from .recording import ExpectedInstances
from .rule_tests import test_group


def unit_tests(declared: tuple[ExpectedInstances, ...], runbook_base: str, rule_files: list[str], tuning: Tuning = Tuning()) -> dict:
    """The content of a promtool test file; `rule_files`: the expected-instances and alerts files,
    relative to where it is written. The series hold no rates: any rate window will do."""
    declared = tuple(sorted(declared, key=lambda each: (each.environment, each.service)))
    # The rule file declares every service in every test group: the others have all their targets.
    complete = {each: declared_targets(each, each.count) for each in declared}
    return {
        "rule_files": rule_files,
        "evaluation_interval": f"{TEST_INTERVAL_SECONDS}s",
        "tests": [
            test_group(
                SERVICE_TARGETS_MISSING,
                Case(case.title, case.series + tuple(series for other in declared if other != each for series in complete[other]), case.firing),
                each.environment,
                runbook_base,
                tuning,
            )
            for each in declared
            for case in declared_count_cases(each)
        ],
    }
