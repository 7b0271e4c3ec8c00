"""Compression that pays (issue 15): the per-session choice from what the probe and the link
measurement learnt, the parsing of what the target reported, and the layer encoders (their
output decodes, with the target's tools, to the very bytes of the layer)."""

from __future__ import annotations

import asyncio
import gzip
import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from repx_tui.backend.errors import SyncError
from repx_tui.backend.sync import compress
from repx_tui.backend.sync.compress import Compression, LinkEstimate, TargetCodecs, choose
from repx_tui.backend.sync.lab import rsync_label
from repx_tui.backend.sync.plan import parse_facts

MB = 1_000_000
BOTH = TargetCodecs(cpus=2, zstd="/usr/bin/zstd", gzip="/usr/bin/gzip")
ZSTD_RSYNC = frozenset({"zstd", "zlib"})  # what the target's rsync lists (asked during the measurement)
RSYNC_35 = """rsync  version 3.5.0  protocol version 32
Capabilities:
    64-bit files, 64-bit inums
Compress list:
    zstd lz4 zlibx zlib none
Daemon auth list:
    sha512 sha256
"""
RSYNC_31 = "rsync  version 3.1.3  protocol version 31\nCapabilities:\n    64-bit files\n"


@pytest.fixture
def two_cpus_with_zstd(monkeypatch):
    """This machine as the CI VM: 2 CPUs, zstd installed, an rsync that lists zstd."""
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(compress, "local_zstd", lambda: "/usr/bin/zstd")
    monkeypatch.setattr(compress, "rsync_compress_list", lambda _rsync: frozenset({"zstd", "zlib"}))


def pick(mode: str, rate: float | None, target: TargetCodecs = BOTH, same_host: bool = False, **kwargs) -> Compression:
    rsync = kwargs.pop("rsync", ZSTD_RSYNC)
    link = None if rate is None else LinkEstimate(rtt=0.02, rate=rate, rsync_compress=rsync)
    return choose(mode, target, link, same_host=same_host, local_rsync="/usr/bin/rsync", **kwargs)


# --- the choice ---------------------------------------------------------------------------------


def test_auto_is_off_to_this_machine_and_with_nothing_to_send(two_cpus_with_zstd):
    same = pick("auto", 12 * MB, same_host=True)
    assert (same.codec, same.rsync_flags, same.label) == (None, (), "off") and "this machine" in same.reason
    nothing = pick("auto", None, to_send=False)
    assert nothing.label == "off" and "nothing to send" in nothing.reason


def test_unmeasured_a_changed_labs_tree_goes_with_rsync_z_and_no_layer_is_compressed(two_cpus_with_zstd):
    tree = pick("auto", None, layers_compressible=False)
    assert (tree.codec, tree.rsync_flags, tree.label) == (None, ("--compress",), "rsync -z")
    measured = pick("auto", 12 * MB, layers_compressible=False)  # a cold tree: measured, rsync's zstd level
    assert measured.codec is None and measured.rsync_flags[-1] == "--compress-level=6"


def test_auto_compresses_a_100_mbit_link_strongly_and_a_gigabit_lan_lightly(two_cpus_with_zstd):
    slow = pick("auto", 12 * MB)  # 100 Mbit/s: the wire is the limit, spend CPU on the ratio
    assert (slow.codec, slow.level) == ("zstd", 9)  # two threads keep up with the link at level 9
    # rsync compresses in one process: the level one thread keeps up with
    assert slow.rsync_flags == ("--compress", "--compress-choice=zstd", "--compress-level=6")
    lan = pick("auto", 117 * MB)  # 1 Gbit/s: only the fastest level keeps up
    assert (lan.codec, lan.level) == ("zstd", 1) and lan.label == "zstd-1"


def test_auto_is_off_where_the_link_outruns_the_compressor(two_cpus_with_zstd):
    fast = pick("auto", 1200 * MB)  # 10 Gbit/s
    assert fast.label == "off" and "outruns" in fast.reason
    forced = pick("on", 1200 * MB)
    assert (forced.codec, forced.level) == ("zstd", 1)  # `on` compresses anyway


def test_without_zstd_on_either_end_layers_go_as_gzip_and_rsync_negotiates(two_cpus_with_zstd, monkeypatch):
    gzip_only = TargetCodecs(cpus=2, gzip="/bin/gzip")
    choice = pick("auto", 12 * MB, gzip_only, rsync=frozenset({"zlib"}))
    assert (choice.codec, choice.rsync_flags) == ("gzip", ("--compress",))
    monkeypatch.setattr(compress, "local_zstd", lambda: None)  # the target has zstd, this machine not
    assert pick("auto", 12 * MB).codec == "gzip"
    nothing = pick("on", 12 * MB, TargetCodecs(cpus=2))
    assert nothing.codec is None and nothing.rsync_flags[0] == "--compress" and "no zstd or gzip" in nothing.reason


def test_off_is_off_and_a_wrong_mode_is_one_clear_error(two_cpus_with_zstd):
    assert pick("off", 1 * MB).label == "off"
    with pytest.raises(SyncError, match="expected auto, on or off"):
        pick("sometimes", 1 * MB)


def test_rsync_label_names_what_the_flags_do():
    assert rsync_label(("--compress", "--compress-choice=zstd", "--compress-level=6")) == "zstd-6"
    assert rsync_label(("--compress",)) == "rsync -z"
    assert rsync_label(()) == "off"


async def test_decide_measures_the_link_only_for_compressible_layers_or_a_new_labs_tree(tmp_path, monkeypatch):
    measured: list[bool] = []

    async def fake_measure(_transport, _rsync):
        measured.append(True)
        return LinkEstimate(rtt=0.02, rate=12 * MB, rsync_compress=ZSTD_RSYNC)

    monkeypatch.setattr(compress, "measure_link", fake_measure)
    noise, text = tmp_path / "noise", tmp_path / "text"
    noise.write_bytes(random.Random(1).randbytes(1 << 20))
    text.write_bytes(b"".join(b"line %d of a log, value=%d\n" % (i, i * i) for i in range(40_000)))

    async def decide(**kwargs):
        args = {"same_host": False, "local_rsync": None, "target_rsync": "/usr/bin/rsync", "lab_to_send": False,
                "lab_cold": False, "layers_to_send": [], **kwargs}  # fmt: skip
        return await compress.decide("auto", None, BOTH, **args)  # type: ignore[arg-type]

    assert (await decide()).label == "off" and not measured  # an unchanged re-sync: no round trip
    assert (await decide(layers_to_send=[noise])).codec is None and not measured  # incompressible only
    assert (await decide(layers_to_send=[noise], lab_to_send=True)).label == "rsync -z" and not measured
    assert (await decide(layers_to_send=[text], same_host=True, lab_to_send=True)).label == "off" and not measured
    assert (await decide(layers_to_send=[noise, text])).codec is not None and len(measured) == 1
    assert (await decide(lab_to_send=True, lab_cold=True)).codec is None and len(measured) == 2  # a new Lab's tree


# --- what the target reported ------------------------------------------------------------------


def test_compress_lists_of_old_and_new_rsyncs():
    assert compress.parse_compress_list(RSYNC_35) == {"zstd", "lz4", "zlibx", "zlib", "none"}
    assert compress.parse_compress_list(RSYNC_31) == frozenset()
    assert compress.parse_compress_list("Compress list: zstd zlib\n") == {"zstd", "zlib"}


def test_probe_facts_line():
    out = "complete\n/usr/bin/rsync\n- -\nL abc - - -\nF 4 /usr/bin/zstd - /usr/bin/openssl 10.000 10.004\n"
    facts = parse_facts(out, round_trip=0.030)
    assert facts == TargetCodecs(
        cpus=4,
        zstd="/usr/bin/zstd",
        gzip=None,
        openssl="/usr/bin/openssl",
        rtt=pytest.approx(0.026),
    )
    comma = parse_facts("F - - - - 10,5 10,75\n", round_trip=0.5)  # a locale with a decimal comma
    assert comma.cpus is None and comma.rtt == pytest.approx(0.25)
    assert parse_facts("complete\n", 0.1) == TargetCodecs()


@settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(
    words=st.lists(
        st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r"), max_size=12),
        max_size=9,
    ),
    round_trip=st.floats(min_value=0, max_value=10),
)
def test_any_facts_line_parses_to_sane_facts(words, round_trip):
    facts = parse_facts("F " + " ".join(words) + "\n", round_trip)
    assert facts.rtt is not None and 0 <= facts.rtt <= round_trip + 1e-9
    assert facts.cpus is None or facts.cpus >= 0
    for path in (facts.zstd, facts.gzip, facts.openssl):
        assert path is None or path.startswith("/")


# --- is a layer worth it, and do the encoders give back its bytes -------------------------------


def test_sample_ratio_tells_text_from_noise(tmp_path):
    noise, text = tmp_path / "noise", tmp_path / "text"
    noise.write_bytes(random.Random(2).randbytes(3 << 20))
    text.write_bytes(b"".join(b"step %d: value=%d status=ok\n" % (i, i * 7) for i in range(120_000)))
    assert compress.sample_ratio(noise) < compress.MIN_RATIO < 2 < compress.sample_ratio(text)
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert compress.sample_ratio(empty) == 1.0


def _encoded(path: Path, codec: str, level: int) -> tuple[bytes, list[int]]:
    async def collect() -> tuple[bytes, list[int]]:
        frames, progress = [], []
        async for frame, content in compress.encode(path, codec, level, 2):
            assert 0 < len(frame) <= compress.FRAME
            frames.append(frame)
            progress.append(content)
        return b"".join(frames), progress

    return asyncio.run(collect())


@pytest.mark.parametrize("codec", ["zstd", "gzip"])
def test_encoded_frames_decode_with_the_targets_tools_to_the_same_bytes(tmp_path, codec):
    if codec == "zstd" and not shutil.which("zstd"):
        pytest.skip("zstd not installed")
    layer = tmp_path / "layer.tar"
    rng = random.Random(3)
    layer.write_bytes(b"".join(b"%d %s\n" % (i, rng.choice([b"alpha", b"beta", b"gamma"]) * 9) for i in range(300_000)))
    wire, progress = _encoded(layer, codec, 3)
    decoded = subprocess.run([codec, "-dc"], input=wire, capture_output=True, check=True).stdout
    assert decoded == layer.read_bytes() and len(wire) < layer.stat().st_size / 3
    assert progress == sorted(progress) and progress[-1] == layer.stat().st_size
    if codec == "gzip":
        assert gzip.decompress(wire) == layer.read_bytes()  # several members read as one stream


def test_encoding_with_an_unknown_codec_is_refused(tmp_path):
    with pytest.raises(SyncError, match="unknown layer codec"):
        compress.encode(tmp_path, "lzma", 1, 1)


# --- the option on the command line and in the TUI's run options --------------------------------


def test_compress_option_of_sync_and_run_reaches_the_tuis_run_options(tmp_path, monkeypatch):
    from repx_tui.backend.config import load_config
    from repx_tui.cli import build_parser
    from repx_tui.headless.tui import run_options

    parser = build_parser()
    assert parser.parse_args(["sync", "--lab", "L"]).compress == "auto"
    assert parser.parse_args(["sync", "--lab", "L", "--compress", "off"]).compress == "off"
    args = parser.parse_args(["run", "simulation", "--lab", "L", "--compress", "on", "--scheduler", "local"])
    config_file = tmp_path / "config.toml"
    config_file.write_text(f'[targets.local]\nbase_path = "{tmp_path}/base"\n')
    monkeypatch.setenv("REPX_CONFIG", str(config_file))
    assert run_options(args, load_config(), "local")["compress"] == "on"
    with pytest.raises(SystemExit) as bad:
        parser.parse_args(["sync", "--lab", "L", "--compress", "sometimes"])
    assert bad.value.code == 2
