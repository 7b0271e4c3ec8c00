from repx_tui.backend.errors import RemoteCommandError, stderr_summary


def test_summary_prefers_the_cause_over_tars_closing_line():
    stderr = "tar: ./bin/jq: Cannot write: No space left on device\ntar: exiting with failure status due to previous errors\n"
    assert stderr_summary(stderr) == "tar: ./bin/jq: Cannot write: No space left on device"


def test_summary_falls_back_to_the_last_line():
    assert stderr_summary("first\nsecond\n") == "second"
    assert stderr_summary("  \n") == "no output"


def test_remote_command_error_message_and_hint():
    err = RemoteCommandError(
        "mkdir -p /x", 1, "mkdir: cannot create directory '/x': Permission denied\n", hint="pick another base_path"
    )
    assert "exit 1" in str(err) and "Permission denied" in str(err) and "hint: pick another base_path" in str(err)
