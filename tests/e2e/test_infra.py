"""The real-services test bed is real: OpenSSH with verified host keys, SLURM
with accounting, reachable as root and as an unprivileged user."""

from __future__ import annotations

import subprocess

import asyncssh
import pytest

from tests.helpers import async_wait_until

pytestmark = pytest.mark.sshd

USERS = ["root", "e2e"]


@pytest.fixture(params=USERS)
def target(request) -> dict:
    """Both test-bed logins: root@ (sshd_target) and e2e@ (sshd_user_target)."""
    name = "sshd_target" if request.param == "root" else "sshd_user_target"
    return request.getfixturevalue(name)


def connect(target: dict, **overrides) -> asyncssh.SSHClientConnection:
    kwargs = dict(target["connect_kwargs"])
    kwargs.update(overrides)
    return asyncssh.connect(**kwargs)


async def run(conn: asyncssh.SSHClientConnection, command: str) -> str:
    result = await conn.run(command, check=True, timeout=30)
    return str(result.stdout)


async def test_asyncssh_exec_with_verified_host_key(target, sshd_auth_count):
    async with connect(target) as conn:
        port = conn.get_extra_info("sockname")[1]
        # Exactly one authentication for this connection, however many commands.
        await async_wait_until(
            lambda: sshd_auth_count(user=target["user"], source_port=port) == 1,
            timeout=30,  # sshd writes its log on its own time; a loaded box may take a while
            message="sshd to log 'Accepted publickey' for this connection",
        )
        assert await run(conn, "echo ok") == "ok\n"
        assert (await run(conn, "id -un")).strip() == target["user"]
        assert (await run(conn, "command -v sbatch")).strip() == "/usr/bin/sbatch"
        assert sshd_auth_count(user=target["user"], source_port=port) == 1


async def test_empty_known_hosts_is_refused(sshd_target, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(asyncssh.HostKeyNotVerifiable):
        async with connect(sshd_target, known_hosts=str(empty)):
            pass


def test_openssh_client_with_generated_ssh_config(target):
    out = subprocess.run(
        ["ssh", "-F", target["ssh_config"], "-o", "BatchMode=yes", target["alias"], "echo ok; id -un"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["ok", target["user"]]
    assert out.stderr == ""  # host key known: no "Permanently added" warning


# ---------------------------------------------------------------- SLURM


async def sbatch(conn, wrap: str) -> str:
    out = await run(conn, f"sbatch --parsable --wrap {wrap!r}")
    job_id = out.strip().split(";")[0]
    assert job_id.isdigit(), out
    return job_id


async def wait_job_left_queue(conn, job_id: str) -> None:
    async def gone() -> bool:
        return (await run(conn, f"squeue -h -j {job_id}")).strip() == ""

    await async_wait_until(gone, timeout=120, interval=0.2, message=f"job {job_id} to leave squeue")


async def wait_sacct(conn, job_id: str, fields: str, expected: str) -> str:
    # slurmdbd lags a little behind slurmctld: retry until the row is final.
    async def row() -> str:
        out = (await run(conn, f"sacct -n -P -X -j {job_id} -o {fields}")).strip()
        assert out == expected, f"sacct says {out!r}"
        return out

    return await async_wait_until(
        row,
        timeout=60,
        interval=0.2,
        message=f"sacct job {job_id} {fields} == {expected!r}",
        ignore_exceptions=(AssertionError,),
    )


@pytest.mark.slurm
async def test_sbatch_completes_and_is_accounted(target, slurm_available):
    async with connect(target) as conn:
        job_id = await sbatch(conn, "echo hi")
        await wait_job_left_queue(conn, job_id)
        await wait_sacct(conn, job_id, "State", "COMPLETED")
        # Associations exist (pitfall: without them a non-root job shows as root).
        await wait_sacct(conn, job_id, "User", target["user"])
        # Default output file lands in the submit directory (the user's home).
        assert await run(conn, f"cat slurm-{job_id}.out") == "hi\n"
        await run(conn, f"rm -f slurm-{job_id}.out")


@pytest.mark.slurm
async def test_failed_job_exit_code_in_sacct(sshd_target, slurm_available):
    async with connect(sshd_target) as conn:
        job_id = await sbatch(conn, "exit 3")
        await wait_job_left_queue(conn, job_id)
        await wait_sacct(conn, job_id, "State,ExitCode", "FAILED|3:0")
        await run(conn, f"rm -f slurm-{job_id}.out")
