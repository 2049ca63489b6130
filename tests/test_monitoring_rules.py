"""deploy/prometheus: the alert rules pass promtool's checks and unit tests, and each has the
annotations an on-call person needs and a Runbook entry in the README."""

from __future__ import annotations

import re
import subprocess

import yaml

from tests.monitoring import REPO, RULE_TESTS, RULES, promtool, rules

README = REPO / "README.md"


def test_rule_files_pass_promtool_check() -> None:
    """`promtool check rules` accepts syncd-rules.yml (syntax, PromQL, templates)."""
    done = subprocess.run([promtool(), "check", "rules", str(RULES)], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(rules())} rules found" in done.stdout


def test_rule_unit_tests_pass_promtool() -> None:
    """`promtool test rules` passes every test file in deploy/prometheus/tests."""
    assert RULE_TESTS, "no promtool test files in deploy/prometheus/tests"
    done = subprocess.run([promtool(), "test", "rules", *map(str, RULE_TESTS)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "FAILED" not in done.stdout + done.stderr


def test_every_alert_is_seen_firing_by_a_unit_test() -> None:
    """Each alert rule has a promtool case that expects it to fire (so a rule that can never
    fire fails its test)."""
    fired: set[str] = set()
    for path in RULE_TESTS:
        for test in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]:
            fired |= {case["alertname"] for case in test.get("alert_rule_test", [])
                      if case.get("exp_alerts")}
    assert {rule["alert"] for rule in rules()} - fired == set()


def test_every_alert_has_severity_summary_description_and_runbook() -> None:
    """Each alert has a severity of warning or critical, a summary, a description and a
    runbook_url pointing at README.md#<its name, lower-cased>."""
    for rule in rules():
        name = rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical"), name
        notes = rule["annotations"]
        assert notes["summary"].strip() and notes["description"].strip(), name
        assert notes["runbook_url"] == f"README.md#{name.lower()}", name


def _runbook() -> dict[str, str]:
    """The README's Runbook entries: GitHub anchor of each `####` heading → its text."""
    text = README.read_text(encoding="utf-8")
    section = re.search(r"^### Runbook\n(.*?)(?=^#{1,3} )", text, re.MULTILINE | re.DOTALL)
    assert section is not None, "README.md has no '### Runbook' section"
    entries = re.split(r"^#### (.+)\n", section.group(1), flags=re.MULTILINE)[1:]
    return {heading.strip().lower(): body for heading, body in zip(entries[::2], entries[1::2],
                                                                     strict=True)}


def test_the_readme_runbook_has_one_entry_per_alert_with_a_command() -> None:
    """README's Runbook has exactly one entry per alert, under the heading its runbook_url
    anchors to, saying what it means, what to check and a command to run."""
    runbook = _runbook()
    assert sorted(runbook) == sorted(rule["alert"].lower() for rule in rules())
    for anchor, body in runbook.items():
        parts = re.split(r"\*\*(Means|Check|Do)\*\*:", body)
        assert parts[1::2] == ["Means", "Check", "Do"], f"{anchor}: Means, Check, Do, in order"
        commands = re.findall(r"`((?:syncd|curl|systemctl|journalctl) [^`]+)`", body)
        assert commands, f"runbook entry {anchor} names no command to run"
