"""Human text for targets, lab, login and logout: used by render.py."""

from __future__ import annotations

import humanize

from repx_tui.backend.events import LabReport, LoggedOut, LoginKept, TargetsReport


def targets_text(report: TargetsReport) -> str:
    lines = [f"targets from {report.config}:"]
    for target in report.targets:
        where = target.address or "this machine"
        lines.append(f"  {target.name:<16} {where:<28} {target.scheduler():<6} {target.base_path}")
        health = report.health_of(target.name)
        for check in health.checks if health is not None else ():
            lines.append(f"      [{'ok ' if check.ok else 'FAIL'}] {check.name}: {check.detail}")
            if check.hint and not check.ok:
                lines.append(f"             try: {check.hint}")
    return "\n".join(lines)


def lab_text(report: LabReport) -> str:
    summary = report.summary
    lines = [f"Lab {summary['lab_id']}  ({report.root})"]
    lines += [f"  run {run['name']}: {len(run['jobs'])} jobs" for run in summary["runs"]]
    lines += [f"  group @{group}: {', '.join(runs)}" for group, runs in summary["groups"].items()]
    for image in summary["images"]:
        size = humanize.naturalsize(sum(layer["size"] for layer in image["layers"]), binary=True)
        lines.append(f"  image {image['tag']}: {len(image['layers'])} layers, {size}")
    lines.append(f"  host tools: {summary['host_tools']}")
    lines.append(f"  {summary['jobs']} jobs in all" + ("; every file verified" if report.verified else ""))
    return "\n".join(lines)


def login_text(e: LoginKept) -> str:
    if e.already:
        return f"already logged in to {e.target} ({e.address}), kept by pid {e.pid}"
    return (
        f"logged in to {e.target} ({e.address}); kept by pid {e.pid} "
        f"until it is unused for {duration(e.idle_seconds)}; `repx-tui logout {e.target}` ends it"
    )


def logout_text(e: LoggedOut) -> str:
    if not e.ended:
        return f"no kept login{f' for {e.target}' if e.target else ''}"
    return "\n".join(f"logged out of {k.target} ({k.address}): keeper pid {k.pid} ended" for k in e.ended)


def duration(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    return f"{seconds / 60:g} min" if seconds >= 60 and seconds % 60 == 0 else f"{seconds:g} s"
