"""Entry point: argument parsing and dispatch only.

Each subcommand lives in repx_tui/headless/<name>.py as `async def main(args) -> int`
(the TUI in repx_tui/ui). Errors derived from RepxError become one red line and exit 1;
nothing reaches the user as a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import sys
from collections.abc import Sequence

from repx_tui import __version__
from repx_tui.backend.errors import RepxError

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def _lab_target(p: argparse.ArgumentParser, lab_required: bool = True) -> None:
    p.add_argument("--lab", required=lab_required, metavar="PATH", help="Lab directory or tar")
    p.add_argument("--target", metavar="NAME", help="target from config.toml (default: submission_target)")


def _json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="machine-readable JSON output")


def _compress(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--compress",
        choices=("auto", "on", "off"),
        default="auto",
        help="compress the Lab and image layers on the wire (auto: when the link is slower than "
        "the compressor, never to this machine)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="repx-tui",
        description="Take a RepX Lab to a target (this machine, SSH, SLURM) and run it there.",
    )
    parser.add_argument("--version", action="version", version=f"repx-tui {__version__}")
    parser.add_argument("--config", metavar="FILE", help="config.toml (default: $REPX_CONFIG, then XDG)")
    parser.add_argument("--lab", metavar="PATH", help="open the TUI with this Lab")
    parser.add_argument("--target", metavar="NAME", help="open the TUI on this target")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="sync a Lab, then submit runs (TUI unless --headless)")
    run.add_argument("runs", nargs="+", metavar="RUN", help="run name, @group or job-id prefix")
    _lab_target(run)
    run.add_argument("--resources", metavar="FILE", help="resources.toml for SLURM directives")
    run.add_argument("--scheduler", choices=("local", "slurm"), help="override the target's scheduler")
    run.add_argument("--execution-type", choices=("native", "bwrap", "docker", "podman"))
    run.add_argument("--headless", action="store_true", help="no TUI: print progress lines")
    run.add_argument("--wait", action="store_true", help="headless: wait until the jobs finish")
    run.add_argument(
        "--allow-missing-runs",
        action="store_true",
        help="submit even when a run whose results these jobs read is neither included, "
        "queued nor succeeded on the target",
    )
    _compress(run)
    _json(run)

    sync = sub.add_parser("sync", help="sync a Lab to a target (host tools, Lab, images)")
    _lab_target(sync)
    _compress(sync)
    _json(sync)

    status = sub.add_parser("status", help="job states of a Lab on a target")
    _lab_target(status)
    status.add_argument("--watch", action="store_true", help="keep polling, print changes")
    status.add_argument(
        "--resources",
        metavar="FILE",
        help="resources.toml the OOM/TIMEOUT hints name (default: XDG and ./resources.toml)",
    )
    _json(status)

    cancel = sub.add_parser("cancel", help="cancel jobs or runs")
    cancel.add_argument("jobs", nargs="+", metavar="JOB_OR_RUN")
    _lab_target(cancel)
    cancel.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    _json(cancel)

    logs = sub.add_parser("logs", help="print or follow a job's log")
    logs.add_argument("job", metavar="JOB")
    _lab_target(logs)
    logs.add_argument("-f", "--follow", action="store_true")
    logs.add_argument("--stderr", action="store_true")
    logs.add_argument("-n", "--lines", type=int, default=50, metavar="N")

    show = sub.add_parser("show", help="inspect one job: parameters, dependencies, resources and why, state, paths")
    show.add_argument("job", metavar="JOB", help="job id or unique prefix")
    _lab_target(show)
    show.add_argument("--resources", metavar="FILE", help="resources.toml to explain the SLURM request with")
    _json(show)

    pull = sub.add_parser("pull", help="bring jobs' outputs back into a local tree laid out as on the target")
    pull.add_argument("specs", nargs="*", metavar="RUN|JOB", help="run name, @group or job id (default: every job)")
    _lab_target(pull)
    pull.add_argument("--to", metavar="DIR", help="local directory (default: ./repx-results/<target>)")
    _json(pull)

    targets = sub.add_parser("targets", help="list configured targets")
    targets.add_argument("--check", action="store_true", help="check each target's health")
    _json(targets)

    lab = sub.add_parser("lab", help="describe (and verify) a Lab")
    lab.add_argument("path", metavar="PATH")
    lab.add_argument("--verify", action="store_true", help="check every file's sha256")
    _json(lab)

    login = sub.add_parser("login", help="log in once (asking for a code or password) and keep it for later commands")
    login.add_argument("target", nargs="?", metavar="TARGET", help="default: submission_target")
    login.add_argument(
        "--idle",
        metavar="TIME",
        help="end the kept login after this long unused (seconds, or 10m, 1h; default $REPX_KEEPER_IDLE or 10m)",
    )

    logout = sub.add_parser("logout", help="end the kept login of a target (default: of every target)")
    logout.add_argument("target", nargs="?", metavar="TARGET")

    demo = sub.add_parser("demo", help="make a demo Lab and run it on this machine, in the TUI")
    demo.add_argument("--headless", action="store_true")
    demo.add_argument("--dir", metavar="DIR", help="where to put the demo Lab and target")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.config:
        os.environ["REPX_CONFIG"] = args.config
    command = args.command or "tui"
    if command == "run" and not args.headless:
        command = "tui"
    module = importlib.import_module(f"repx_tui.headless.{command.replace('-', '_')}")
    try:
        return asyncio.run(module.main(args))
    except RepxError as exc:
        print(_red(f"error: {exc}"), file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return 0


def _red(text: str) -> str:
    return f"\x1b[31m{text}\x1b[0m" if sys.stderr.isatty() else text


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
