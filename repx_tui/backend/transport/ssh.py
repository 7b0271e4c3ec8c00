"""SshTransport: ONE authenticated asyncssh connection per target session.

Every command, upload, poll and rsync (through the bridge in rsync_bridge.py) is a channel on
that one connection, so a whole session costs one login. Channels are capped below sshd's
stock MaxSessions (10); keepalives detect a dead link; a dropped connection is re-opened with
exponential backoff and reported as ConnectionState events.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import asyncssh

from repx_tui.backend.auth import AuthCancelled, Authenticator, AuthFailed, AuthRequired, Login, NoAuthenticator
from repx_tui.backend.errors import ConnectionDropped, HostKeyError, TransportError
from repx_tui.backend.events import ConnectionState, EventSink, discard
from repx_tui.backend.transport import rsync_bridge
from repx_tui.backend.transport.base import ByteProgress, CommandResult, StdinFeed, Transport, quote_argv
from repx_tui.backend.transport.sshlogin import LoginClient, refused_login, within_connect_timeout
from repx_tui.backend.transport.streams import StreamStdin, read_lines

#: exec channels open at once; + the long-lived SFTP channel + the command runner = 9, below
#: sshd's stock MaxSessions 10
MAX_CHANNELS = 7
#: commands whose stdin is larger than this use their own channel (the runner buffers stdin)
RUNNER_MAX_INPUT = 1 << 20

# The command runner: ONE long-lived `bash` on its own channel, fed length-framed commands.
# Every exec channel makes sshd start the login shell, which on clusters (module systems) and
# here as root (pyenv in ~/.bashrc) costs 0.1-0.5 s; through the runner a later command costs
# about one network round trip. Framing, client -> runner: "<command bytes> <stdin bytes>\n",
# the command line, its stdin. Runner -> client: "<exit> <stdout bytes> <stderr bytes>\n", then
# stdout, then stderr. A command runs in a child bash (`bash FILE`), so nothing it does
# (cd, variables, exit) touches the runner; its output goes to files first, so any bytes
# are fine. Needs head, stat, mktemp (coreutils); without them the runner never says READY
# and every command keeps its own channel.
RUNNER_SCRIPT = r"""
set -u
REPX_OUTER_LC_ALL=${LC_ALL-}
dir=$(mktemp -d "${TMPDIR:-/tmp}/repx-runner.XXXXXX") || exit 1
trap 'rm -rf -- "$dir"' EXIT
echo READY
export LC_ALL=C  # read -N counts bytes
n=0
while IFS=' ' read -r clen ilen; do
  n=$((n + 1))
  IFS= read -r -N "$clen" cmd || exit 1
  printf '%s' "$cmd" > "$dir/cmd.$n"
  stdin=/dev/null
  if [ "$ilen" -gt 0 ]; then stdin="$dir/in.$n"; head -c "$ilen" > "$stdin"; fi
  (export LC_ALL="${REPX_OUTER_LC_ALL-}"; [ -n "$LC_ALL" ] || unset LC_ALL
   exec bash "$dir/cmd.$n") < "$stdin" > "$dir/out.$n" 2> "$dir/err.$n"
  status=$?
  printf '%s %s %s\n' "$status" "$(stat -c %s -- "$dir/out.$n")" "$(stat -c %s -- "$dir/err.$n")"
  cat -- "$dir/out.$n" "$dir/err.$n"
  rm -f -- "$dir/cmd.$n" "$dir/in.$n" "$dir/out.$n" "$dir/err.$n"
done
"""
KEEPALIVE_INTERVAL = 15.0
KEEPALIVE_COUNT_MAX = 3
CONNECT_TIMEOUT = 20.0
RECONNECT_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0)
# AES-GCM first: with AES-NI it is ~1.5-2x faster in asyncssh than its default chacha20-poly1305
# (measured in bench/); the server still picks from the rest of the default list if it must.
# An ssh_config that sets `Ciphers` wins over this.
PREFERRED_CIPHERS = "^aes128-gcm@openssh.com,aes256-gcm@openssh.com"
FILE_CHUNK = 256 * 1024


def ssh_config_paths(env: dict[str, str] | None = None) -> list[str]:
    """$REPX_SSH_CONFIG (an extra ssh_config, read first so its Hosts win), then ~/.ssh/config."""
    env = dict(os.environ) if env is None else env
    paths = []
    extra = env.get("REPX_SSH_CONFIG")
    if extra:
        paths.append(str(Path(extra).expanduser()))
    user_config = Path(env.get("HOME", str(Path.home()))) / ".ssh" / "config"
    if user_config.is_file():
        paths.append(str(user_config))
    return paths


def split_address(address: str) -> tuple[str | None, str]:
    """`user@host` -> (user, host); a bare host or ssh_config alias -> (None, host)."""
    user, sep, host = address.rpartition("@")
    return (user or None, host) if sep else (None, address)


class SshTransport(Transport):
    def __init__(
        self,
        name: str,
        address: str,
        emit: EventSink = discard,
        *,
        config_paths: list[str] | None = None,
        authenticator: Authenticator | None = None,
    ) -> None:
        self.name = name
        self.address = address
        self._emit = emit
        self._login = Login(name, address, authenticator or NoAuthenticator())
        self._bridges_open = 0
        self._config_paths = ssh_config_paths() if config_paths is None else config_paths
        self._conn: asyncssh.SSHClientConnection | None = None
        self._sftp: asyncssh.SFTPClient | None = None
        self._channels = asyncio.Semaphore(MAX_CHANNELS)
        self._connect_lock = asyncio.Lock()
        self._authentications = 0
        self._closing = False
        self._home: str | None = None
        self._bridge: rsync_bridge.BridgeServer | None = None
        self._runner: _Runner | None = None
        self._runner_lock = asyncio.Lock()
        self._runner_broken = os.environ.get("REPX_SSH_RUNNER", "1") == "0"

    # --- connection lifecycle -------------------------------------------------------------

    @property
    def authentications(self) -> int:
        return self._authentications

    def is_connected(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    def busy(self) -> bool:
        """An rsync is using the connection through the bridge (the keeper is not idle then)."""
        return self._bridges_open > 0

    @property
    def connection(self) -> asyncssh.SSHClientConnection | None:
        """The live asyncssh connection (tests use it to simulate a drop)."""
        return self._conn

    async def connect(self) -> None:
        self._closing = False
        await self._connection()
        if self._bridge is None:
            self._bridge = rsync_bridge.BridgeServer(self._open_bridge_process)
            await self._bridge.start()

    async def close(self) -> None:
        self._closing = True
        if self._bridge is not None:
            await self._bridge.close()
            self._bridge = None
        await self._drop_runner()
        conn, self._conn, self._sftp = self._conn, None, None
        if conn is not None:
            conn.close()
            await conn.wait_closed()
            self._emit(ConnectionState(self.name, "closed"))

    async def _connection(self) -> asyncssh.SSHClientConnection:
        if self._conn is not None and not self._is_closed(self._conn):
            return self._conn
        async with self._connect_lock:
            if self._conn is not None and not self._is_closed(self._conn):
                return self._conn
            if self._closing:
                raise TransportError(f"connection to {self.name} is closed")
            first = self._authentications == 0
            self._conn = await (self._open() if first else self._reopen())
            self._sftp = None
            return self._conn

    @staticmethod
    def _is_closed(conn: asyncssh.SSHClientConnection) -> bool:
        return conn.is_closed()

    async def _reopen(self) -> asyncssh.SSHClientConnection:
        last: Exception | None = None
        for attempt, delay in enumerate(RECONNECT_DELAYS, start=1):
            self._emit(ConnectionState(self.name, "reconnecting", f"retry in {delay:g} s", attempt))
            await asyncio.sleep(delay)  # backoff between attempts, not synchronisation
            try:
                return await self._open(attempt)
            except (HostKeyError, AuthRequired, AuthCancelled, AuthFailed):
                raise  # waiting does not change these
            except TransportError as exc:
                last = exc
        raise TransportError(
            f"lost the connection to {self.name} and could not reconnect: {last}",
            hint="check the network and that the host is up, then retry",
        )

    async def _open(self, attempt: int = 0) -> asyncssh.SSHClientConnection:
        user, host = split_address(self.address)
        self._emit(ConnectionState(self.name, "connecting", self.address, attempt))
        self._login.reset()
        try:
            connect = asyncssh.connect(
                host,
                username=user or (),
                config=self._config_paths or None,
                client_factory=lambda: LoginClient(self._lost, self._login),
                passphrase=self._login.passphrase,  # asked only for an encrypted key ssh-agent does not hold
                keepalive_interval=KEEPALIVE_INTERVAL,
                keepalive_count_max=KEEPALIVE_COUNT_MAX,
                **self._cipher_options(),
            )
            conn = await within_connect_timeout(connect, self._login, CONNECT_TIMEOUT)
        except asyncssh.HostKeyNotVerifiable:
            raise await self._host_key_error(host, user) from None
        except (TimeoutError, OSError, asyncssh.Error) as exc:
            refused = refused_login(exc, self._login)
            if refused is not None:
                raise refused from None
            raise TransportError(
                f"{self.name}: cannot connect to {self.address}: {_reason(exc)}",
                hint=f"try `ssh {self.address} true` to check the address, port and network",
            ) from None
        self._authentications += 1
        self._emit(ConnectionState(self.name, "connected", self.address, attempt))
        return conn

    def _cipher_options(self) -> dict[str, str]:
        if any(_mentions_ciphers(path) for path in self._config_paths):
            return {}
        return {"encryption_algs": PREFERRED_CIPHERS}

    def _lost(self, exc: Exception | None) -> None:
        if not self._closing:
            self._emit(ConnectionState(self.name, "lost", _reason(exc) if exc else "closed by the server"))

    async def _host_key_error(self, host: str, user: str | None) -> HostKeyError:
        options = await asyncio.to_thread(self._resolved_options, host, user)
        real_host, port = options.host, options.port or 22
        fingerprint = "unknown"
        try:
            key = await asyncssh.get_server_host_key(host, config=self._config_paths or None)
            if key is not None:
                fingerprint = key.get_fingerprint()
        except (OSError, asyncssh.Error):
            pass
        port_flag = f"-p {port} " if port != 22 else ""
        return HostKeyError(
            f"{self.name}: the host key of {real_host}:{port} is not in known_hosts or has changed "
            f"(server offers {fingerprint}); refusing to connect",
            hint=(
                f"if you trust this fingerprint, run `ssh-keyscan {port_flag}{real_host} >> ~/.ssh/known_hosts` "
                f"(compare it first) or connect once with `ssh {self.address}` and accept the key"
            ),
        )

    def _resolved_options(self, host: str, user: str | None) -> asyncssh.SSHClientConnectionOptions:
        return asyncssh.SSHClientConnectionOptions(
            host=host, username=user or (), config=self._config_paths or None, client_keys=None
        )

    async def _sftp_client(self) -> asyncssh.SFTPClient:
        conn = await self._connection()
        if self._sftp is None:
            self._sftp = await conn.start_sftp_client()
        return self._sftp

    # --- commands ---------------------------------------------------------------------------

    async def run(
        self,
        argv: Sequence[str],
        *,
        input: bytes | None = None,
        timeout: float | None = None,
        check: bool = True,
    ) -> CommandResult:
        command = quote_argv(argv)
        result = None
        if self._runner_usable(input):
            result = await self._run_on_runner(argv, command, input, timeout)
        if result is None:
            result = await self._run_on_channel(argv, command, input, timeout)
        if check:
            self._raise_for(argv, result)
        return result

    async def _run_on_channel(
        self, argv: Sequence[str], command: str, input: bytes | None, timeout: float | None
    ) -> CommandResult:
        async with self._channels:
            conn = await self._connection()
            try:
                done = await conn.run(command, input=input, encoding=None, check=False, timeout=timeout)
            except asyncssh.TimeoutError:
                raise TransportError(f"{self.name}: command timed out after {timeout} s: {argv[0]}") from None
            except (asyncssh.ConnectionLost, asyncssh.DisconnectError, asyncssh.ChannelOpenError, OSError) as exc:
                raise self._dropped(exc) from None
        result = CommandResult(
            done.exit_status if done.exit_status is not None else 255,
            _text(done.stdout),
            _text(done.stderr),
        )
        if done.exit_status is None and conn.is_closed():
            raise self._dropped(None)
        return result

    # --- the command runner -----------------------------------------------------------------

    def _runner_usable(self, input: bytes | None) -> bool:
        return not self._runner_broken and not self._runner_lock.locked() and len(input or b"") <= RUNNER_MAX_INPUT

    async def _run_on_runner(
        self, argv: Sequence[str], command: str, input: bytes | None, timeout: float | None
    ) -> CommandResult | None:
        """The command's result through the runner, or None when the runner cannot take it
        (busy, or could not start): then nothing was sent and the caller uses a channel."""
        async with self._runner_lock:
            conn = await self._connection()
            runner = self._runner
            if runner is None or runner.conn is not conn:
                runner = await self._start_runner(conn)
                if runner is None:
                    return None
            try:
                return await asyncio.wait_for(runner.run(command.encode(), input or b""), timeout)
            except _RunnerNotReady:
                await self._drop_runner()
                if conn.is_closed():
                    raise self._dropped(None) from None
                self._runner_broken = True  # this target cannot host it: channels only, quietly
                return None
            except TimeoutError:
                await self._drop_runner()  # it is still busy with the command: start afresh next time
                raise TransportError(f"{self.name}: command timed out after {timeout} s: {argv[0]}") from None
            except (asyncssh.Error, OSError, ValueError, asyncio.IncompleteReadError) as exc:
                await self._drop_runner()
                if conn.is_closed():
                    raise self._dropped(exc if isinstance(exc, (asyncssh.Error, OSError)) else None) from None
                raise TransportError(f"{self.name}: the command runner failed: {_reason(exc)}") from None

    async def _start_runner(self, conn: asyncssh.SSHClientConnection) -> _Runner | None:
        """Open the runner's channel. Its READY line is read with the first reply, so starting it
        costs no extra round trip (a runner that fails to start exits before reading anything)."""
        await self._drop_runner()
        try:
            proc = await conn.create_process(
                quote_argv(["bash", "--noprofile", "--norc", "-c", RUNNER_SCRIPT]), encoding=None
            )
        except (asyncssh.ChannelOpenError, asyncssh.ProcessError):
            self._runner_broken = True
            return None
        except (asyncssh.Error, OSError) as exc:
            raise self._dropped(exc) from None
        self._runner = _Runner(conn, proc)
        return self._runner

    async def _drop_runner(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.proc.close()

    def _dropped(self, exc: BaseException | None) -> ConnectionDropped:
        reason = _reason(exc) if exc else "connection closed"
        return ConnectionDropped(f"{self.name}: connection lost: {reason}", hint="the next operation reconnects")

    async def stream(
        self,
        argv: Sequence[str],
        on_stdout: Callable[[bytes], None],
        on_stderr: Callable[[bytes], None] | None = None,
        *,
        input: bytes | None = None,
    ) -> int:
        async with self._channels:
            conn = await self._connection()
            try:
                proc = await conn.create_process(quote_argv(argv), encoding=None)
                if input is not None:
                    proc.stdin.write(input)
                proc.stdin.write_eof()
                await asyncio.gather(_pump(proc.stdout, on_stdout), _pump(proc.stderr, on_stderr or (lambda _b: None)))
                await proc.wait_closed()
            except (asyncssh.ConnectionLost, asyncssh.DisconnectError, asyncssh.ChannelOpenError, OSError) as exc:
                raise self._dropped(exc) from None
        if proc.exit_status is None:
            raise self._dropped(None)
        return proc.exit_status

    async def run_with_file(
        self,
        argv: Sequence[str],
        local: Path,
        *,
        progress: ByteProgress | None = None,
        check: bool = True,
    ) -> CommandResult:
        """Run argv with the local file as its stdin, streamed (never whole in memory), with
        progress as it is sent. One channel: the remote command can check and place the bytes
        itself, which saves the separate round trips of an SFTP put + verify + rename."""
        total = os.stat(local).st_size
        async with self._channels:
            conn = await self._connection()
            try:
                proc = await conn.create_process(quote_argv(argv), encoding=None)
                output = asyncio.gather(proc.stdout.read(), proc.stderr.read())
                try:
                    await _send_file(proc, local, total, progress)
                    out, err = await output
                    await proc.wait_closed()
                finally:
                    if not output.done():
                        output.cancel()
                        output.add_done_callback(_retrieve)  # no "exception never retrieved" noise
                        proc.close()
            except (asyncssh.ConnectionLost, asyncssh.DisconnectError, asyncssh.ChannelOpenError, OSError) as exc:
                if isinstance(exc, FileNotFoundError):
                    raise
                raise self._dropped(exc) from None
        if proc.exit_status is None:
            raise self._dropped(None)
        result = CommandResult(proc.exit_status, _text(out), _text(err))
        if check:
            self._raise_for(argv, result)
        return result

    async def run_streaming(
        self, argv: Sequence[str], feed: StdinFeed, *, on_line: Callable[[str], None] | None = None, check: bool = True
    ) -> CommandResult:
        """One channel, both ways at once: `feed` writes stdin (the channel's window is the
        back-pressure) while stdout's lines go to `on_line` as they arrive."""
        async with self._channels:
            conn = await self._connection()
            try:
                proc = await conn.create_process(quote_argv(argv), encoding=None)
            except (asyncssh.ConnectionLost, asyncssh.DisconnectError, asyncssh.ChannelOpenError, OSError) as exc:
                raise self._dropped(exc) from None
            output = asyncio.gather(read_lines(proc.stdout, on_line), proc.stderr.read())
            try:
                try:
                    await feed(StreamStdin(proc.stdin))
                    proc.stdin.write_eof()
                except BrokenPipeError:
                    pass  # it stopped reading: its exit status and stderr say why (or the link is gone)
                out, err = await output
                await proc.wait_closed()
            except (asyncssh.ConnectionLost, asyncssh.DisconnectError) as exc:
                raise self._dropped(exc) from None
            finally:
                if not output.done():
                    output.cancel()
                    output.add_done_callback(_retrieve)
                    proc.close()
        if proc.exit_status is None:
            raise self._dropped(None)
        result = CommandResult(proc.exit_status, _text(out), _text(err))
        if check:
            self._raise_for(argv, result)
        return result

    async def _open_bridge_process(self, command: str) -> tuple[asyncssh.SSHClientProcess, Any]:
        """Open a channel for the rsync bridge; returns (process, release) — release the
        channel slot once the process is done."""
        await self._channels.acquire()
        try:
            conn = await self._connection()
            proc = await conn.create_process(command, encoding=None)
        except BaseException:
            self._channels.release()
            raise
        self._bridges_open += 1

        def release() -> None:
            self._bridges_open -= 1
            self._channels.release()

        return proc, release

    # --- files ------------------------------------------------------------------------------

    async def read_file(self, remote: str, offset: int = 0, length: int | None = None) -> bytes:
        try:
            sftp = await self._sftp_client()
            async with sftp.open(remote, "rb") as f:
                await f.seek(offset)
                return await f.read(-1 if length is None else length)
        except asyncssh.SFTPNoSuchFile:
            raise FileNotFoundError(remote) from None
        except asyncssh.SFTPError as exc:
            raise TransportError(f"{self.name}: reading {remote} failed: {exc.reason}") from None
        except (asyncssh.ConnectionLost, asyncssh.DisconnectError, OSError) as exc:
            raise self._dropped(exc) from None

    async def file_size(self, remote: str) -> int | None:
        try:
            sftp = await self._sftp_client()
            return (await sftp.stat(remote)).size
        except asyncssh.SFTPNoSuchFile:
            return None
        except asyncssh.SFTPError as exc:
            raise TransportError(f"{self.name}: stat {remote} failed: {exc.reason}") from None
        except (asyncssh.ConnectionLost, asyncssh.DisconnectError, OSError) as exc:
            raise self._dropped(exc) from None

    async def home(self) -> str:
        if self._home is None:
            home = (await self.run(["sh", "-c", 'printf %s "$HOME"'])).stdout.strip()
            if not home.startswith("/"):
                raise TransportError(f"{self.name}: cannot find the login user's home directory")
            self._home = home
        return self._home

    def peer_address(self) -> str | None:
        peer = self._conn.get_extra_info("peername") if self._conn is not None else None
        return str(peer[0]) if peer else None

    def rsync_shell(self) -> list[str] | None:
        if self._bridge is None:
            raise TransportError(f"{self.name}: not connected (rsync needs the session's connection)")
        return [sys.executable, "-S", rsync_bridge.__file__, self._bridge.socket_path]

    def rsync_destination(self, remote_path: str) -> str:
        # The host part is ignored by the bridge: the connection is already open.
        return f"repx-session:{remote_path}"


class _RunnerNotReady(Exception):
    """The runner exited before its read loop: the command sent to it did not run."""


class _Runner:
    def __init__(self, conn: asyncssh.SSHClientConnection, proc: asyncssh.SSHClientProcess) -> None:
        self.conn = conn
        self.proc = proc
        self.ready = False

    async def run(self, command: bytes, stdin: bytes) -> CommandResult:
        self.proc.stdin.write(b"%d %d\n" % (len(command), len(stdin)) + command + stdin)
        await self.proc.stdin.drain()
        if not self.ready:
            if (await self.proc.stdout.readline()).strip() != b"READY":
                raise _RunnerNotReady()
            self.ready = True
        header = await self.proc.stdout.readline()
        status, out_len, err_len = (int(x) for x in header.split())
        out = await self.proc.stdout.readexactly(out_len) if out_len else b""
        err = await self.proc.stdout.readexactly(err_len) if err_len else b""
        return CommandResult(status, _text(out), _text(err))


async def _send_file(proc: Any, local: Path, total: int, progress: ByteProgress | None) -> None:
    done = 0
    with open(local, "rb") as f:
        while chunk := f.read(FILE_CHUNK):
            proc.stdin.write(chunk)
            await proc.stdin.drain()  # the channel's window is the back-pressure
            done += len(chunk)
            if progress is not None:
                progress(done, total)
    proc.stdin.write_eof()


def _mentions_ciphers(path: str) -> bool:
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return False
    return any(line.strip().lower().startswith("ciphers") for line in text.splitlines())


async def _pump(stream: Any, callback: Callable[[bytes], None]) -> None:
    while chunk := await stream.read(65536):
        callback(chunk)


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def _reason(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown reason"
    reason = getattr(exc, "reason", None) or str(exc) or type(exc).__name__
    return str(reason)


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
