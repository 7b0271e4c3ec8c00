"""Target health: can we reach it, log in, schedule, and write to base_path?

All targets are checked in parallel; each check that fails carries the step a user would take
next (the seed's troubleshooting steps).
"""

from __future__ import annotations

import asyncio
import time

import humanize

from repx_tui.backend.auth import AuthRequired
from repx_tui.backend.config import Target
from repx_tui.backend.errors import RepxError
from repx_tui.backend.events import EventSink, HealthCheck, TargetHealth, discard
from repx_tui.backend.runtimes import PROBE_FUNCTION, configured_runtimes, parse_probe
from repx_tui.backend.textnum import unsigned
from repx_tui.backend.transport.base import Transport

# One round trip for everything after login. Prints key=value lines, then one line per
# container runtime the target is configured for (see runtimes.py).
_PROBE = (
    PROBE_FUNCTION
    + r"""
base=$1; scheduler=$2; shift 2
if [ "$scheduler" = slurm ]; then
  if command -v sbatch >/dev/null 2>&1 && command -v squeue >/dev/null 2>&1; then
    echo "scheduler=ok"
    echo "partitions=$(sinfo -h -o %P 2>/dev/null | tr '\n' ' ')"
  else
    echo "scheduler=missing"
  fi
else
  echo "scheduler=ok"
fi
if mkdir -p -- "$base" 2>/dev/null && probe=$(mktemp "$base/.repx-write-test.XXXXXX" 2>/dev/null); then
  rm -f -- "$probe"; echo "writable=yes"
else
  echo "writable=no"
fi
echo "free_kib=$(df -Pk -- "$base" 2>/dev/null | awk 'NR==2 {print $4}')"
echo "rsync=$(command -v rsync >/dev/null 2>&1 && echo yes || echo no)"
probe_runtimes "$@"
"""
)

LOW_SPACE_BYTES = 1 << 30


def _ssh_hint(target: Target) -> str:
    return f"ssh -o BatchMode=yes {target.address} echo 'Connection successful'"


async def check_target(
    target: Target, emit: EventSink = discard, timeout: float = 20.0, transport: Transport | None = None
) -> TargetHealth:
    """Every check of one target; on `transport` when given (a session's, connected: left open),
    else on a connection of its own that never asks for a code and is closed after."""
    from repx_tui.backend.transport import open_transport

    started = time.monotonic()
    checks: list[HealthCheck] = []
    scheduler = target.scheduler()
    own = transport is None
    transport = open_transport(target, emit) if transport is None else transport
    try:
        try:
            if own:
                await asyncio.wait_for(transport.connect(), timeout)
        except AuthRequired:  # answered, but wants a code or password: a check never asks
            checks.append(HealthCheck("reachable", True, "answers; the login needs a code, password or passphrase"))
            checks.append(HealthCheck("login", False, "interactive login needed: not checked further",
                                      f"repx-tui login {target.name}   # then --check uses that login"))  # fmt: skip
            return _done(target, checks, started, emit)
        except (TimeoutError, RepxError, OSError) as exc:
            detail = str(exc) if not isinstance(exc, asyncio.TimeoutError) else f"no answer within {timeout:.0f} s"
            checks.append(HealthCheck("reachable", False, detail, None if target.is_local else _ssh_hint(target)))
            return _done(target, checks, started, emit)
        checks.append(HealthCheck("reachable", True, "this machine" if target.is_local else "logged in"))
        base = await transport.resolve_path(target.base_path)
        runtimes = target_runtimes(target, scheduler)
        probe = transport.run_script(_PROBE, base, scheduler, *runtimes, check=False)
        result = await asyncio.wait_for(probe, timeout)
        facts = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line and "\t" not in line)
        checks.extend(_interpret(target, base, scheduler, facts))
        checks.extend(_runtime_checks(target, runtimes, result.stdout))
    except (TimeoutError, RepxError, OSError) as exc:
        checks.append(HealthCheck("probe", False, str(exc) or "timed out", None))
    finally:
        try:
            if own:
                await transport.close()
        except Exception:  # closing a dead connection must not hide the real result
            pass
    return _done(target, checks, started, emit)


def _interpret(target: Target, base: str, scheduler: str, facts: dict[str, str]) -> list[HealthCheck]:
    where = "" if target.is_local else f"ssh {target.address} "
    checks = []
    if facts.get("scheduler") == "ok":
        detail = scheduler
        if facts.get("partitions", "").strip():
            detail += f" (partitions: {facts['partitions'].strip()})"
        checks.append(HealthCheck("scheduler", True, detail))
    else:
        checks.append(
            HealthCheck(
                "scheduler", False, "sbatch/squeue not found on the target", f"{where}sinfo   # is SLURM on PATH?"
            )
        )
    if facts.get("writable") == "yes":
        checks.append(HealthCheck("base_path", True, f"{base} writable"))
    else:
        checks.append(
            HealthCheck(
                "base_path",
                False,
                f"{base} is not writable",
                f'{where}"mkdir -p {base} && touch {base}/.test"',
            )
        )
    free = facts.get("free_kib", "").strip()
    if (free_kib := unsigned(free)) is not None:
        free_bytes = free_kib * 1024
        ok = free_bytes >= LOW_SPACE_BYTES
        checks.append(
            HealthCheck(
                "free_space",
                ok,
                f"{humanize.naturalsize(free_bytes, binary=True)} free",
                None if ok else "free some space under base_path or choose another base_path",
            )
        )
    return checks


def target_runtimes(target: Target, scheduler: str) -> list[str]:
    """The container runtimes this target may run jobs in: its scheduler table's execution
    types and its default execution type."""
    return configured_runtimes([*target.execution_types(scheduler), target.default_execution_type or ""])


def _runtime_checks(target: Target, runtimes: list[str], probe_output: str) -> list[HealthCheck]:
    where = "" if target.is_local else f"ssh {target.address} "
    checks = []
    for name, fact in parse_probe(probe_output, runtimes).items():
        hint = None
        if not fact.ok:
            hint = (
                f"{where}{name} version   # install {name} there, or drop it from the target's execution_types"
                if fact.state == "missing"
                else f"{where}{name} info   # is its daemon/service running?"
            )
        checks.append(HealthCheck(f"runtime {name}", fact.ok, fact.describe(), hint))
    return checks


def _done(target: Target, checks: list[HealthCheck], started: float, emit: EventSink) -> TargetHealth:
    health = TargetHealth(target=target.name, checks=tuple(checks), seconds=time.monotonic() - started)
    emit(health)
    return health
