"""The drill's invariants, each judged from outside (SQL on ops.*/report.*, what the receivers and
probes saw) into one row of the table: invariant | held? | numbers."""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Sequence
from typing import Any

from syncd.devtools.simulators.alert_receiver import AlertReceiver
from tests.drills.configs import HOOK_TIMEOUT
from tests.drills.probes import PROBE_EVERY, LedgerSample, Pushed, Query, Sample
from tests.drills.processes import Replica

MAX_OUTAGE = 10.0  # seconds a live replica may go without a good answer (a hiccup, not a stall)
PG_RECOVERY = 15.0  # seconds after PostgreSQL is back before probes count again
# A run whose replica died is closed by a live replica "within a minute" (issue 19 item 2); the
# extra 15 s allow for the sweep's own period.
ABANDONED_WITHIN = 75.0
POLL_SLACK = 5.0  # `syncd status` asked back to back: the granularity of "within a minute"


@dataclasses.dataclass(frozen=True)
class Row:
    """One line of the table. `held` None: not checked by this drill (the numbers say why)."""

    key: str
    invariant: str
    held: bool | None
    numbers: str


@dataclasses.dataclass
class Observed:
    """What the drill did and saw, for the judges below."""

    replicas: list[Replica]
    pushed: list[Pushed] = dataclasses.field(default_factory=list)
    vendor_pushes: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    receivers: dict[str, AlertReceiver] = dataclasses.field(default_factory=dict)
    samples: list[Sample] = dataclasses.field(default_factory=list)
    ledger: list[LedgerSample] = dataclasses.field(default_factory=list)
    pg_restarts: list[tuple[float, float]] = dataclasses.field(default_factory=list)
    started_at: float = 0.0
    alert_cutoff: float = 0.0  # alerts created after the drill settled are not judged

    def killed(self) -> list[Replica]:
        """Replicas killed with SIGKILL."""
        return [r for r in self.replicas if r.killed_at is not None]

    def name_of(self, runner: str) -> str:
        """The replica name of a runner id ("host:pid"), else the runner id (e.g. a CLI run)."""
        for replica in self.replicas:
            if replica.proc is not None and runner.endswith(f":{replica.pid}"):
                return replica.name
        return "a one-shot command"

    def killed_at(self, runner: str) -> float | None:
        """When the replica whose runner id is `runner` ("host:pid") was killed, if it was."""
        for replica in self.replicas:
            if replica.proc is not None and runner.endswith(f":{replica.pid}"):
                return replica.killed_at
        return None


async def pushes_stored_and_processed_once(seen: Observed, query: Query) -> Row:
    """Every push some replica acknowledged (200) is one inbox row, processed."""
    ours = {p.event_id for p in seen.pushed if p.acknowledged}
    theirs = {d["id"] for d in seen.vendor_pushes if d["state"] == "delivered"}
    keys = [f"id:{i}" for i in ours | theirs]
    rows = await query("SELECT status, attempts FROM ops.inbox "
                       "WHERE source = 'neolock' AND dedupe_key = ANY($1::text[])", keys)
    status = collections.Counter(r["status"] for r in rows)
    retried = sum(r["attempts"] > 1 for r in rows)
    replicas_per_push = max((len(p.statuses) for p in seen.pushed), default=0)
    held = len(rows) == len(keys) and status["processed"] == len(keys) and bool(keys)
    return Row("pushes", "every acknowledged push stored and processed exactly once", held,
               f"acknowledged {len(keys)} ({len(ours)} of {len(seen.pushed)} posted to up to "
               f"{replicas_per_push} replicas at once, {len(theirs)} pushed by the simulator); "
               f"stored {len(rows)}; processed {status['processed']}; pending {status['pending']}; "
               f"failed {status['failed']}; taken again after a lapsed lease or retry {retried}")


async def no_overlapping_runs(seen: Observed, query: Query) -> Row:
    """No two runs of one job overlap in ops.sync_runs (a killed replica's run ends at the kill)."""
    rows = await query("SELECT job, runner, extract(epoch FROM started_at) AS started, "
                       "extract(epoch FROM finished_at) AS finished FROM ops.sync_runs "
                       "ORDER BY job, started_at")
    now = max((float(r["finished"] or 0) for r in rows), default=0.0) + 1e6
    overlaps: list[str] = []
    latest_end: dict[str, tuple[float, str]] = {}
    for row in rows:
        start = float(row["started"])
        end = float(row["finished"]) if row["finished"] is not None else now
        killed = seen.killed_at(row["runner"])
        if killed is not None:
            end = min(end, killed)  # the process ended then, whatever the row says
        previous = latest_end.get(row["job"])
        if previous is not None and start < previous[0]:
            overlaps.append(f"{row['job']} ({seen.name_of(previous[1])} and "
                            f"{seen.name_of(row['runner'])}, "
                            f"{previous[0] - start:.1f}s)")
        if previous is None or end > previous[0]:
            latest_end[row["job"]] = (end, row["runner"])
    runners = {r["runner"] for r in rows}
    return Row("overlap", "no two runs of one job overlapping (ops.sync_runs)",
               bool(rows) and not overlaps,
               f"{len(rows)} runs of {len(latest_end)} jobs by {len(runners)} runners; "
               f"overlaps {len(overlaps)}" + (": " + "; ".join(overlaps[:3]) if overlaps else ""))


def _windows(seen: Observed) -> list[tuple[float, float, str]]:
    """Moments after which a second delivery of one alert is expected (at least once)."""
    found = [(r.killed_at - HOOK_TIMEOUT - 2, r.killed_at + 1, f"kill -9 of {r.name}")
             for r in seen.killed() if r.killed_at is not None]
    found += [(down - HOOK_TIMEOUT - 2, up + 2, "PostgreSQL restart")
              for down, up in seen.pg_restarts]
    return found


async def alerts_delivered_to_every_hook(seen: Observed, query: Query) -> Row:
    """Every ops.outbox row reached every hook, signed; duplicates counted and explained."""
    outbox = {r["event_id"] for r in await query(
        "SELECT event_id FROM ops.outbox WHERE created_at <= to_timestamp($1)", seen.alert_cutoff)}
    rows = await query("SELECT hook, status, count(*) AS n FROM report.alert_deliveries "
                       "WHERE event_id = ANY($1::text[]) GROUP BY hook, status ORDER BY hook, status",
                       list(outbox))
    stored = "; delivery rows " + (", ".join(f"{r['hook']} {r['status']} {r['n']}" for r in rows)
                                   or "none")
    missing: dict[str, int] = {}
    explained: collections.Counter[str] = collections.Counter()
    unexplained = bad = 0
    windows = _windows(seen)
    for hook, receiver in seen.receivers.items():
        first: dict[str, float] = {}
        for got in receiver.received:
            bad += not got.verified
            if got.webhook_id is None:
                continue
            if got.webhook_id not in first:
                first[got.webhook_id] = got.at
                continue
            why = next((w for lo, hi, w in windows if lo <= first[got.webhook_id] <= hi), None)
            if why is None:
                unexplained += 1
            else:
                explained[why] += 1
        missing[hook] = len(outbox - set(first))
    held = bool(outbox) and not any(missing.values()) and not bad and not unexplained
    dupes = ", ".join(f"{n} around the {w}" for w, n in explained.items()) or "none explained"
    return Row("alerts", "every alert delivered to every hook", held,
               f"{len(outbox)} alerts × {len(seen.receivers)} hooks; missing "
               + ", ".join(f"{h}: {n}" for h, n in missing.items())
               + f"; bad signatures {bad}; duplicates: {dupes}, unexplained {unexplained}" + stored
               + (" (at least once: a replica that died or lost the database after posting "
                  "sends again when the lease lapses)" if explained else ""))


async def no_run_left_running(seen: Observed, query: Query, live: Sequence[Replica]) -> Row:
    """After the drill settles and the other replicas stop, no run is left 'running' except by a
    replica still alive, and the runs a killed replica left open were closed by a live one
    within ABANDONED_WITHIN of the kill (not when the job next came due)."""
    rows = await query("SELECT job, runner, status, extract(epoch FROM finished_at) AS finished "
                       "FROM ops.sync_runs")
    live_ids = {f":{r.pid}" for r in live}
    stuck = [r for r in rows if r["status"] == "running"
             and not any(r["runner"].endswith(i) for i in live_ids)]
    delays: list[float] = []
    for replica in seen.killed():
        assert replica.killed_at is not None
        delays += [float(r["finished"]) - replica.killed_at for r in rows
                   if r["runner"].endswith(f":{replica.pid}") and r["finished"] is not None
                   and float(r["finished"]) > replica.killed_at]
    late = [d for d in delays if d > ABANDONED_WITHIN]
    closed = f"; runs a kill -9 left open, closed later: {len(delays)}" + (
        f", the last {max(delays):.0f}s after the kill (bound {ABANDONED_WITHIN:.0f}s)"
        if delays else "")
    return Row("running", "no run left \"running\" after the drill settles",
               not stuck and not late,
               f"left running {len(stuck)}"
               + (" (" + ", ".join(sorted({f"{r['job']} of {seen.name_of(r['runner'])}"
                                           for r in stuck})) + ")" if stuck else "")
               + closed)


def ledger_never_above_quota(seen: Observed) -> Row:
    """At every sample: vendor-billed calls ≤ ledger calls ≤ quota."""
    counted = [s for s in seen.ledger if s.quota is not None]
    over = [s for s in counted if s.quota is not None and s.calls > s.quota]
    under = [s for s in seen.ledger if s.vendor_billed > s.calls]
    last = seen.ledger[-1] if seen.ledger else None
    return Row("ledger", "the Codelocks ledger never above the quota", bool(counted) and
               not over and not under,
               f"{len(seen.ledger)} samples; calls above quota {len(over)}; vendor billed more "
               f"than the ledger counted {len(under)}"
               + (f"; last: ledger {last.calls}/{last.quota}, vendor billed {last.vendor_billed}"
                  if last else ""))


def responsive_while_slow(seen: Observed) -> Row:
    """/readyz and POST /v2/device answer within the bound on every live replica; the longest
    stretch without a good answer stays short (the PostgreSQL restart window excepted)."""
    excluded = [(down, up + PG_RECOVERY) for down, up in seen.pg_restarts]
    usable = [s for s in seen.samples if not any(lo <= s.at <= hi for lo, hi in excluded)]
    parts: list[str] = []
    worst = 0.0
    for key in sorted({(s.replica, s.what) for s in usable}):
        series = sorted((s for s in usable if (s.replica, s.what) == key), key=lambda s: s.at)
        outage, began, bad_since = 0.0, 0.0, None
        for sample in [*series, None]:
            ended = sample is None or sample.ok
            if sample is not None and not sample.ok and bad_since is None:
                bad_since = sample.at
            elif ended and bad_since is not None:
                end = series[-1].at + PROBE_EVERY if sample is None else sample.at
                if end - bad_since > outage:
                    outage, began = end - bad_since, bad_since
                bad_since = None
        worst = max(worst, outage)
        good = sum(s.ok for s in series)
        slowest = max(s.seconds for s in series)
        when = f" from t+{began - seen.started_at:.0f}s" if outage else ""
        parts.append(f"{key[0]} {key[1]} {good}/{len(series)} (slowest {slowest:.1f}s), "
                     f"longest outage {outage:.0f}s{when}")
    held = bool(usable) and worst <= MAX_OUTAGE
    return Row("responsive", "/readyz and POST /v2/device answered within 3 s while vendors "
               "were slow", held, "; ".join(parts) or "no samples")


async def every_job_ran(seen: Observed, query: Query, jobs: Sequence[str]) -> Row:
    """Every scheduled job finished at least one run (a stall lets one or two run)."""
    rows = await query("SELECT job, count(*) FILTER (WHERE status = 'ok') AS ok, "
                       "count(*) FILTER (WHERE status = 'failed') AS failed "
                       "FROM ops.sync_runs GROUP BY job")
    finished = {r["job"]: (r["ok"], r["failed"]) for r in rows}
    never = [j for j in jobs if sum(finished.get(j, (0, 0))) == 0]
    ok = sum(v[0] for v in finished.values())
    failed = sum(v[1] for v in finished.values())
    return Row("progress", "every job finished runs while vendors were slow", not never,
               f"{len(jobs) - len(never)}/{len(jobs)} jobs finished a run; runs ok {ok}, "
               f"failed {failed}" + (f"; never: {', '.join(never)}" if never else ""))


async def quota_refusal_not_retried(query: Query, exhausted_at: float,
                                    before: dict[str, Any], after: dict[str, Any]) -> Row:
    """Once the vendor says the quota is used up (429), nobody asks again: at most one refused
    call per run in flight at the time, each counted in report.api_usage.refused."""
    runs = await query("SELECT job, status, items, extract(epoch FROM started_at) AS started, "
                       "extract(epoch FROM coalesce(finished_at, now())) AS finished "
                       "FROM ops.sync_runs WHERE job LIKE 'k3-%' AND started_at >= "
                       "to_timestamp($1) ORDER BY started_at", exhausted_at)
    ledger = await query("SELECT refused FROM report.api_usage WHERE vendor = 'codelocks' "
                         "AND category = 'utility' AND period = $1", after["period"])
    refused_by_vendor = after["refused"] - before["refused"]  # quota refusals, not throttling
    counted = ledger[0]["refused"] if ledger else 0
    edges = sorted([(float(r["started"]), 1) for r in runs]
                   + [(float(r["finished"]), -1) for r in runs])
    in_flight = peak = 0
    for _, step in edges:
        in_flight += step
        peak = max(peak, in_flight)
    held = 1 <= refused_by_vendor <= peak and counted >= refused_by_vendor
    outcomes = ", ".join(f"{r['job']} {r['status']} items={r['items']}" for r in runs)
    return Row("quota429", "a Codelocks quota 429 is not retried and is counted", held,
               f"vendor refused {refused_by_vendor} call(s) after the quota was used up; k3 runs "
               f"since {len(runs)} (at most {peak} at once: {outcomes or 'none'}); "
               f"report.api_usage.refused {counted}")


def status_while_live(readyz: dict[str, int | str], code: int, verdict: str) -> Row:
    """With replicas alive: each answers /readyz 200 and `syncd status` says up (0 OK, or 1
    WARNING with its reason), never CRITICAL or UNKNOWN."""
    held = bool(readyz) and all(v == 200 for v in readyz.values()) and code in (0, 1)
    return Row("status-live", "/readyz and `syncd status` match reality: live daemons → up",
               held, ", ".join(f"{n} /readyz {v}" for n, v in readyz.items())
               + f"; syncd status exit {code} ({verdict})")


def status_when_all_down(polls: Sequence[tuple[float, int]], last_gone: float | None,
                         window: float) -> Row:
    """After the last replica is killed, `syncd status` says CRITICAL (exit 2) within a minute:
    the first invocation that exits 2 was started (`polls`: when asked, exit code) within
    `window` + POLL_SLACK of the kill (one invocation takes seconds; they run back to back)."""
    if last_gone is None:
        return Row("status-down", "`syncd status` exit 2 within a minute of the last kill", None,
                   "long drill only (`make drill`): waiting out the heartbeat window")
    down = next((at - last_gone for at, code in polls if code == 2), None)
    codes = collections.Counter(code for _, code in polls)
    held = down is not None and down <= window + POLL_SLACK
    return Row("status-down", "`syncd status` exit 2 within a minute of the last kill", held,
               "exit codes seen " + ", ".join(f"{c}×{n}" for c, n in sorted(codes.items()))
               + (f"; first 2 asked {down:.0f}s after the kill (bound {window + POLL_SLACK:.0f}s)"
                  if down is not None
                  else "; never 2"))


def render(rows: Sequence[Row], title: str) -> str:
    """The table: invariant | held? | numbers."""
    mark = {True: "yes", False: "NO", None: "n/a"}
    width = max(len(r.invariant) for r in rows)
    lines = [title, f"{'invariant'.ljust(width)} | held? | numbers",
             f"{'-' * width}-|-------|--------"]
    lines += [f"{r.invariant.ljust(width)} | {mark[r.held]:<5} | {r.numbers}" for r in rows]
    return "\n".join(lines)
