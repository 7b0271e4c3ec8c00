"""The keeper: one login kept alive for later commands, like OpenSSH's ControlPersist.

`repx-tui login TARGET` starts a per-user keeper process (server.py) that logs in once (asking
the login command's terminal for a code or password) and holds that asyncssh connection.
Later commands for the same target, headless or the TUI, find its unix socket (paths.py) and use
it as their Transport (client.py): each command, file read and rsync runs on a channel of the
kept connection, so they log in zero times. The keeper ends after an idle time (default 10 min),
on `repx-tui logout`, or when its connection is gone for good.

Why a Transport-level tunnel and not SSH forwarding: the commands need exactly the Transport
verbs (run, stream, a file streamed to a command, read a file from an offset, rsync over the
connection), and the keeper already has the session's transport with its command runner,
channel limit and rsync bridge. A client that speaks JSON lines and frames over a unix socket
needs neither asyncssh nor a key exchange: a CLI process through the keeper imports less and does
no handshake at all.
"""
