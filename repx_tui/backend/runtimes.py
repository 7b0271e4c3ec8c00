"""Container runtimes on a target: is `podman` / `docker` there, and does it answer?

One bash snippet, used by the health checks (`targets --check`) and by the submission (before
anything is sent or runs). Under SLURM it runs on the login host, where sbatch runs; the
executor checks again on the node that runs the job and fails it with one line if the
runtime is missing there.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from repx_tui.backend.transport.base import Transport

#: execution types that need an engine on the target (bwrap comes with the Lab's host tools)
CONTAINER_RUNTIMES = ("podman", "docker")

# Prints one "name<TAB>ok|missing|down<TAB>detail" line per runtime named in its arguments.
# docker is a client: it counts only when a daemon answers it.
PROBE_FUNCTION = r"""
probe_runtimes() {
    local rt out
    for rt in "$@"; do
        if ! command -v "$rt" >/dev/null 2>&1; then
            printf '%s\tmissing\t%s is not on PATH\n' "$rt" "$rt"
        elif out="$("$rt" version --format '{{.Server.Version}}' 2>&1)"; then
            printf '%s\tok\t%s\n' "$rt" "$(printf '%s' "$out" | head -n 1)"
        else
            printf '%s\tdown\t%s\n' "$rt" "$(printf '%s' "$out" | tail -n 1 | tr '\t' ' ')"
        fi
    done
}
"""


@dataclass(frozen=True)
class RuntimeFact:
    name: str
    state: str  # ok | missing | down
    detail: str

    @property
    def ok(self) -> bool:
        return self.state == "ok"

    def problem(self) -> str:
        if self.state == "missing":
            return f"{self.name} is not installed (not on the PATH of a non-interactive login)"
        return f"{self.name} does not answer: {self.detail}"

    def describe(self) -> str:
        return f"{self.name} {self.detail}" if self.ok else self.problem()


def parse_probe(text: str, names: Iterable[str]) -> dict[str, RuntimeFact]:
    facts: dict[str, RuntimeFact] = {}
    for line in text.splitlines():
        name, _, rest = line.partition("\t")
        state, _, detail = rest.partition("\t")
        if name in CONTAINER_RUNTIMES and state in ("ok", "missing", "down"):
            facts[name] = RuntimeFact(name, state, detail.strip())
    for name in names:  # no line at all: the probe itself failed
        facts.setdefault(name, RuntimeFact(name, "down", "the runtime probe printed nothing"))
    return facts


async def probe_runtimes(transport: Transport, names: Sequence[str]) -> dict[str, RuntimeFact]:
    """One round trip for all of `names` (only container runtimes are probed)."""
    wanted = [n for n in dict.fromkeys(names) if n in CONTAINER_RUNTIMES]
    if not wanted:
        return {}
    result = await transport.run_script(PROBE_FUNCTION + 'probe_runtimes "$@"\n', *wanted, check=False)
    return parse_probe(result.stdout, wanted)


def configured_runtimes(execution_types: Iterable[str]) -> list[str]:
    """The container runtimes among a target's execution types, in order, once each."""
    return [t for t in dict.fromkeys(execution_types) if t in CONTAINER_RUNTIMES]
