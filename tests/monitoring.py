"""What the monitoring tests share: the deploy/ files, the series names and label matchers their
PromQL uses, and promtool."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
RULES = REPO / "deploy" / "prometheus" / "syncd-rules.yml"
RULE_TESTS = sorted((REPO / "deploy" / "prometheus" / "tests").glob("*.yml"))
DASHBOARD = REPO / "deploy" / "grafana" / "syncd.json"


@dataclasses.dataclass(frozen=True)
class Selector:
    """One series selector of a PromQL expression: the metric name and its label matchers."""

    name: str
    matchers: tuple[tuple[str, str, str], ...]  # (label, operator, value)

    @property
    def labels(self) -> set[str]:
        """The label names it matches on."""
        return {label for label, _, _ in self.matchers}


_TOKENS = re.compile(r"""
    (?P<space>\s+)
  | (?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
  | (?P<range>\[[^\]]*\])
  | (?P<var>\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*)
  | (?P<number>(?:\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)(?:ms|[smhdwy])?(?:\d+(?:ms|[smhdwy]))*)
  | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<op>=~|!~|!=|==|>=|<=|[-+*/%^<>=,(){}])
""", re.VERBOSE)
# Keywords that take a parenthesised list of label names, and the other reserved words.
_LABEL_LISTS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
_KEYWORDS = _LABEL_LISTS | {"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan"}


def _tokens(expr: str) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    at = 0
    while at < len(expr):
        match = _TOKENS.match(expr, at)
        if match is None:
            raise ValueError(f"cannot read PromQL at {expr[at:at + 20]!r} in {expr!r}")
        at = match.end()
        kind = match.lastgroup
        assert kind is not None
        if kind not in ("space", "var", "range"):
            found.append((kind, match.group()))
    return found


def selectors(expr: str) -> list[Selector]:
    """Every series selector in a PromQL expression (or a promtool series line), in order.

    Function and aggregation names (an identifier before `(`, `by` or `without`), keywords and
    the label lists of by/without/on/ignoring/group_* are not series; a string never is.
    """
    tokens = _tokens(expr)
    found: list[Selector] = []
    i = 0
    while i < len(tokens):
        kind, text = tokens[i]
        following = tokens[i + 1][1] if i + 1 < len(tokens) else ""
        if kind == "ident" and text.lower() in _LABEL_LISTS and following == "(":
            i = tokens.index(("op", ")"), i)  # label names end at the first `)`
        elif kind == "ident" and text.lower() not in _KEYWORDS and following != "(" \
                and following.lower() not in ("by", "without"):  # `sum by (…) (…)`
            matchers, i = _matchers(tokens, i + 1) if following == "{" else ((), i)
            found.append(Selector(text, matchers))
        elif kind == "op" and text == "{":  # a selector without a name: {__name__="…"}
            matchers, i = _matchers(tokens, i)
            names = [value for label, op, value in matchers if label == "__name__" and op == "="]
            if not names:
                raise ValueError(f"a selector without a literal metric name in {expr!r}")
            found.append(Selector(names[0], matchers))
        i += 1
    return found


def _matchers(tokens: list[tuple[str, str]], brace: int) -> tuple[tuple[tuple[str, str, str], ...], int]:
    """The matchers between the `{` at `brace` and its `}`; the index of that `}`."""
    matchers: list[tuple[str, str, str]] = []
    i = brace + 1
    while tokens[i] != ("op", "}"):
        (label_kind, label), (_, op), (value_kind, value) = tokens[i:i + 3]
        if label_kind != "ident" or value_kind != "string":
            raise ValueError(f"cannot read the label matcher at {label!r}")
        matchers.append((label, op, json.loads(value) if value.startswith('"') else value[1:-1]))
        i += 3
        if tokens[i] == ("op", ","):
            i += 1
    return tuple(matchers), i


def rules() -> list[dict[str, Any]]:
    """Every rule of syncd-rules.yml."""
    doc = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [rule for group in doc["groups"] for rule in group["rules"]]


def rule_selectors() -> Iterator[tuple[str, Selector]]:
    """(where, selector) of every series an alert rule reads."""
    for rule in rules():
        for selector in selectors(rule["expr"]):
            yield f"rule {rule['alert']}", selector


def rule_test_selectors() -> Iterator[tuple[str, Selector]]:
    """(where, selector) of every series the promtool tests feed in or query."""
    for path in RULE_TESTS:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        for test in doc["tests"]:
            for series in test.get("input_series", []):
                for selector in selectors(series["series"]):
                    yield f"{path.name}: {test['name']}", selector
            for case in test.get("promql_expr_test", []):
                for selector in selectors(case["expr"]):
                    yield f"{path.name}: {test['name']}", selector


def dashboard() -> dict[str, Any]:
    """deploy/grafana/syncd.json, parsed."""
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return loaded


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel of the dashboard, those inside collapsed rows too (rows themselves not)."""
    for panel in board["panels"]:
        if panel["type"] == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def dashboard_selectors() -> Iterator[tuple[str, Selector]]:
    """(where, selector) of every series a Prometheus panel queries."""
    for panel in panels(dashboard()):
        for target in panel.get("targets", []):
            if "expr" in target:
                for selector in selectors(target["expr"]):
                    yield f"panel {panel['title']!r}", selector


def promtool() -> str:
    """promtool's path; skip the test when it cannot be had (fail in CI, which installs it)."""
    beside_python = Path(sys.executable).parent / "promtool"  # where `make promtool` puts it
    found = shutil.which("promtool") or (str(beside_python) if beside_python.exists() else None)
    if found is None:
        reason = "promtool not found (Debian package prometheus; `make promtool` fetches it)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}: CI must run the rule tests")
        pytest.skip(reason)
    return found
