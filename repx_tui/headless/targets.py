"""`repx-tui targets [--check] [--json]`."""

from __future__ import annotations

import argparse
import asyncio
import json

from repx_tui.backend.config import load_config
from repx_tui.backend.session import TargetSession


async def main(args: argparse.Namespace) -> int:
    config = load_config()
    targets = list(config.targets.values())
    # every target at once; a check never asks for a code (a kept login is used when there is one)
    health = await asyncio.gather(*(TargetSession(t).health() for t in targets)) if args.check else []
    by_name = {h.target: h for h in health}
    if args.json:
        out = []
        for target in targets:
            entry = target.to_json()
            if target.name in by_name:
                h = by_name[target.name]
                entry["health"] = {
                    "ok": h.ok,
                    "seconds": round(h.seconds, 3),
                    "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail, "hint": c.hint} for c in h.checks],
                }
            out.append(entry)
        print(json.dumps({"config": config.source, "targets": out}, indent=2))
    else:
        print(f"targets from {config.source}:")
        for target in targets:
            where = target.address or "this machine"
            print(f"  {target.name:<16} {where:<28} {target.scheduler():<6} {target.base_path}")
            if target.name in by_name:
                for check in by_name[target.name].checks:
                    mark = "ok " if check.ok else "FAIL"
                    print(f"      [{mark}] {check.name}: {check.detail}")
                    if check.hint and not check.ok:
                        print(f"             try: {check.hint}")
    return 0 if all(h.ok for h in health) else 1
