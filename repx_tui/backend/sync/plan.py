"""The sync's plan: ONE probe round trip says what the target already has, and every phase
decides from that answer; PhaseGates is how the concurrent phases wait for each other.

Round trips are what a sync costs on a far login host, so the probe answers all three phases at
once: is base_path writable, are the host tools complete, does the target have its own rsync,
is this very Lab already complete there, and which image layers and image dirs are there, and
what compression and the layer lanes could use (compress.py): the target's CPUs, its zstd, gzip
and openssl: no process is started for any of that.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from dataclasses import dataclass

from repx_tui.backend.errors import SyncError
from repx_tui.backend.hashing import sha256_file
from repx_tui.backend.lab import Lab
from repx_tui.backend.layout import safe_component
from repx_tui.backend.sync.common import SyncContext
from repx_tui.backend.sync.compress import TargetCodecs
from repx_tui.backend.sync.layerstore import LIST_FUNCTION, RemoteState, parse_listing, refuse_links
from repx_tui.backend.textnum import decimal, unsigned

# $1 base, $2 host-tools dir, $3 the Lab's own manifest on the target, $4 the lab-synced marker,
# then (optional) the image listing's arguments (see layerstore.LIST_FUNCTION).
# Prints "complete" or "missing" (or "unwritable <user>"), the target's rsync (or "-"), the
# sha256 of the target's Lab manifest and of the marker's content (or "-"), then the listing,
# then "F <cpus> <zstd> <gzip> <openssl> <start> <end>" ("-" for what it
# does not know; the times are bash's EPOCHREALTIME, to subtract the script from the round trip).
PROBE_SCRIPT = (
    LIST_FUNCTION
    + r"""
started=${EPOCHREALTIME:--}
if ! mkdir -p "$1/artifacts" "$1/host-tools" 2>/dev/null || [ ! -w "$1" ]; then
  echo "unwritable $(id -un 2>/dev/null || echo '?')"
  exit 0
fi
if [ -f "$2/.repx-complete" ]; then echo complete; else echo missing; fi
# REPLY = where PATH finds $1, or "-"; through bash's command hash: no process started
find_tool() { if hash "$1" 2>/dev/null; then REPLY=${BASH_CMDS[$1]}; else REPLY=-; fi; }
find_tool rsync
rsync=$REPLY
echo "$rsync"
manifest=- marker=-
if [ -f "$3" ]; then manifest=$(sha256sum < "$3"); manifest=${manifest%% *}; fi
if [ -f "$4" ]; then marker=$(cat "$4"); fi
echo "$manifest $marker"
tools=$2
shift 4
if [ "$#" -gt 0 ]; then list_images "$@"; fi
cpus=0 online=
{ read -r online < /sys/devices/system/cpu/online; } 2>/dev/null || true
IFS=, read -r -a ranges <<<"$online"
for range in "${ranges[@]}"; do
  if [[ $range == *-* ]]; then cpus=$((cpus + ${range#*-} - ${range%-*} + 1)); else cpus=$((cpus + 1)); fi
done
if [ "$cpus" = 0 ]; then cpus=-; fi
find_tool zstd
zstd=$REPLY
find_tool gzip
gzip=$REPLY
if [ "$gzip" = - ] && [ -x "$tools/bin/gzip" ] && [ -f "$tools/.repx-complete" ]; then gzip=$tools/bin/gzip; fi
find_tool openssl
openssl=$REPLY
echo "F $cpus $zstd $gzip $openssl $started ${EPOCHREALTIME:--}"
"""
)


@dataclass(frozen=True)
class SyncPlan:
    """What the probe learnt; the phases act on it and on nothing else they would have to ask."""

    tools_dir: str  # <base>/host-tools/<hash>
    tools_complete: bool
    target_rsync: str | None  # the target's own rsync, None when it has none
    lab_current: bool  # this Lab's tree was completed on this base_path, and is still there
    images: RemoteState | None  # layers and image dirs there; None when no image was listed
    codecs: TargetCodecs = TargetCodecs()  # what compression and the layer lanes can use there
    lab_present: bool = False  # the target has this Lab's own manifest (from an earlier sync), current or not
    same_host: bool = False  # both ends are this machine: a local target, or SSH to loopback

    @property
    def tools_bin(self) -> str:
        return f"{self.tools_dir}/bin"


def lab_marker_path(ctx: SyncContext, lab: Lab) -> str:
    """Holds the sha256 of this Lab's manifest once phase 2 completed its tree on this base."""
    return f"{ctx.layout.base}/.repx/synced/{safe_component(lab.lab_id, 'lab id')}"


async def probe(ctx: SyncContext, lab: Lab, listing_args: list[str]) -> SyncPlan:
    tools_dir = ctx.layout.host_tools(lab.host_tools_dir)
    manifest = ctx.layout.lab_manifest(lab.lab_id)  # the Lab's own copy: no other Lab replaces it
    local_manifest = asyncio.create_task(asyncio.to_thread(sha256_file, lab.root / lab.manifest_path))
    sent = time.monotonic()
    try:
        result = await ctx.run_script(
            PROBE_SCRIPT,
            ctx.layout.base,
            tools_dir,
            manifest,
            lab_marker_path(ctx, lab),
            *listing_args,
        )
    except BaseException:
        local_manifest.cancel()
        raise
    round_trip = time.monotonic() - sent
    lines = result.stdout.splitlines()[:3] + ["-", "- -"]
    first = lines[0].split() if lines else ["?"]
    if first[0] == "unwritable":
        local_manifest.cancel()
        user = first[1] if len(first) > 1 else "the login user"
        raise SyncError(
            f"{ctx.transport.name}: base_path {ctx.layout.base} cannot be created or written by {user}",
            hint="fix the directory's permissions, or set another base_path for this target in config.toml",
        )
    remote_manifest, marker = (lines[2].split() + ["-", "-"])[:2]
    images = None
    if listing_args:
        images = parse_listing("\n".join(result.stdout.splitlines()[3:]))
        refuse_links(ctx.transport.name, images)
    return SyncPlan(
        tools_dir=tools_dir,
        tools_complete=first[0] == "complete",
        target_rsync=lines[1].strip() if lines[1].startswith("/") else None,
        lab_current=remote_manifest != "-" and marker == await local_manifest,
        images=images,
        codecs=parse_facts(result.stdout, round_trip),
        lab_present=remote_manifest != "-",
        same_host=same_host(ctx),
    )


def parse_facts(stdout: str, round_trip: float) -> TargetCodecs:
    """The probe's "F ..." line (TargetCodecs() when it printed none)."""
    line = next((x for x in reversed(stdout.splitlines()) if x.startswith("F ")), None)
    if line is None:
        return TargetCodecs()
    cpus, zstd, gzip, openssl, started, ended = (line.split()[1:] + ["-"] * 6)[:6]
    script = _seconds(ended) - _seconds(started) if started != "-" and ended != "-" else 0.0
    return TargetCodecs(
        cpus=unsigned(cpus),
        zstd=_path(zstd), gzip=_path(gzip), openssl=_path(openssl),
        rtt=max(round_trip - max(script, 0.0), 0.0),
    )  # fmt: skip


def same_host(ctx: SyncContext) -> bool:
    """A local target, or SSH to a loopback address: the "link" is this machine's memory."""
    if ctx.transport.rsync_shell() is None:
        return True
    address = ctx.transport.peer_address()
    try:
        return address is not None and ipaddress.ip_address(address.split("%")[0]).is_loopback
    except ValueError:
        return False


def _seconds(value: str) -> float:
    return decimal(value) or 0.0  # EPOCHREALTIME follows the locale's decimal point


def _path(value: str) -> str | None:
    return value if value.startswith("/") else None


class PhaseGates:
    """How the three concurrent phases wait for each other. The orchestrator (sync/__init__.py)
    starts the phases and owns this; a phase only awaits a gate or opens one."""

    def __init__(self) -> None:
        self.lab_content_placed = asyncio.Event()  # phase 2 put the Lab's content on the target
        self._tools: asyncio.Task | None = None
        self._images: asyncio.Task | None = None

    def started(self, tools: asyncio.Task, images: asyncio.Task) -> None:
        self._tools, self._images = tools, images

    async def tools_installed(self, what: str) -> None:
        """Returns once phase 1 succeeded; SyncError naming `what` could not happen otherwise."""
        await _succeeded(self._tools, f"{what} because the host tools phase failed")

    async def images_installed(self, what: str) -> None:
        await _succeeded(self._images, f"{what} because the images phase failed")


async def _succeeded(task: asyncio.Task | None, message: str) -> None:
    if task is None:
        return
    await asyncio.wait([task])
    if task.cancelled() or task.exception() is not None:
        raise SyncError(message)
