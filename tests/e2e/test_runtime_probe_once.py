"""A session asks the target about its container runtimes once: `run` checks podman before the
sync and the submission would check it again; a later submission on the same connection (the
TUI's retry) does not ask either. A dropped connection forgets the answer: the next submission
asks again. On the real sshd (root, root podman), counting the probe scripts the transport runs."""

from __future__ import annotations

import pytest

from repx_tui.backend.config import SchedulerConfig, Target
from repx_tui.backend.events import ConnectionState, Event, JobStateKind
from repx_tui.backend.lab import Lab
from repx_tui.backend.runtimes import PROBE_FUNCTION
from repx_tui.backend.session import TargetSession
from repx_tui.backend.transport.ssh import SshTransport
from tests.e2e.test_container_runtimes import image_lab, remove_images  # noqa: F401 (a fixture)
from tests.helpers import async_wait_until

pytestmark = [pytest.mark.sshd, pytest.mark.timeout(300)]


class ProbeCounter:
    """Counts the runtime probes (runtimes.PROBE_FUNCTION scripts) a transport runs."""

    def __init__(self, transport) -> None:
        self.probes: list[tuple[str, ...]] = []
        run_script = transport.run_script

        async def counting(script: str, *args: str, **kwargs):
            if script.startswith(PROBE_FUNCTION):
                self.probes.append(args)
            return await run_script(script, *args, **kwargs)

        transport.run_script = counting


async def test_one_runtime_probe_per_connection(tmp_path, sshd_target, podman_available, remove_images, monkeypatch):  # noqa: F811
    monkeypatch.setenv("REPX_SSH_CONFIG", sshd_target["ssh_config"])
    lab_dir, producer = image_lab(tmp_path, "")
    target = Target(name="cluster", address=sshd_target["alias"], base_path=str(tmp_path / "store"),
                    default_scheduler="local", default_execution_type="podman",
                    local=SchedulerConfig(("podman", "native")))  # fmt: skip
    events: list[Event] = []
    async with TargetSession(target, events.append, lab=Lab.load(lab_dir), scheduler="local") as session:
        counter = ProbeCounter(session.transport)
        result = await session.run([producer])
        assert [job for job, _ in result.submitted] == [producer]
        assert counter.probes == [("podman",)]  # before the sync; the submission asked nobody

        await session.submit([producer])  # a retry on the same connection
        assert counter.probes == [("podman",)]

        transport = session.transport
        assert isinstance(transport, SshTransport) and transport.connection is not None
        transport.connection.abort()
        await async_wait_until(
            lambda: any(isinstance(e, ConnectionState) and e.state == "lost" for e in events), timeout=30
        )
        await session.submit([producer])  # on the new connection: asked again, once
        assert counter.probes == [("podman",), ("podman",)]

        async def finished() -> bool:
            return (await session.poll())[producer].state.finished

        await async_wait_until(finished, timeout=180, interval=1.0, message="the producer to finish")
        assert session.watcher().states[producer].state is JobStateKind.SUCCEEDED
    loaded = (tmp_path / "store" / "outputs" / producer / "repx" / "stderr.log").read_text()
    remove_images.append(("podman", loaded.split(" as ", 1)[1].split()[0]))
