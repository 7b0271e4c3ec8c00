"""Where the Lab picker finds Labs: the recent list (any content read without an error, written
atomically, newest first, each path once), ./result and result* links, the browser's Lab check."""

from __future__ import annotations

import json
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from repx_tui.ui.labsources import (
    RECENT_MAX,
    LabCandidate,
    demo_lab_path,
    find_candidates,
    load_recent,
    looks_like_lab,
    parse_recent,
    recent_file,
    remember,
    shown_path,
)  # fmt: skip
from tests.labgen import make_lab, make_lab_tar

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@settings(deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=200), json_values.map(json.dumps),
                 st.lists(st.dictionaries(st.sampled_from(["path", "lab_id", "used", "x"]), json_values, max_size=4),
                          max_size=5).map(lambda labs: json.dumps({"labs": labs}))))  # fmt: skip
def test_any_recent_file_reads_as_a_list_of_wellformed_entries(text):
    for lab in parse_recent(text):
        assert os.path.isabs(lab.path) and isinstance(lab.lab_id, str) and isinstance(lab.used, float)


def test_remember_puts_the_lab_first_once_and_leaves_no_temp_file(tmp_path):
    state = tmp_path / "state" / "recent-labs.json"
    clock = iter(range(1000))
    for name in ("a", "b", "a"):
        remember(str(tmp_path / name), f"id-{name}", state, now=lambda: float(next(clock)))
    labs = load_recent(state)
    assert [(lab.path, lab.lab_id) for lab in labs] == [(str(tmp_path / "a"), "id-a"), (str(tmp_path / "b"), "id-b")]
    assert labs[0].used > labs[1].used
    assert os.listdir(state.parent) == ["recent-labs.json"]  # written under a temp name, then renamed
    for n in range(RECENT_MAX + 5):
        remember(str(tmp_path / f"lab{n}"), "x", state)
    assert len(load_recent(state)) == RECENT_MAX


def test_recent_file_is_under_xdg_state(isolated_xdg):
    assert recent_file() == isolated_xdg / "state" / "repx-tui" / "recent-labs.json"


def test_a_broken_recent_file_is_no_error(tmp_path):
    state = tmp_path / "recent-labs.json"
    state.write_bytes(b"\xff\xfe{not json")
    assert load_recent(state) == []
    state.unlink()
    state.mkdir()  # not a file at all
    assert load_recent(state) == []


def test_candidates_are_result_links_then_recent_labs_that_still_exist(tmp_path):
    lab = make_lab(tmp_path / "lab", "quick")
    other = make_lab(tmp_path / "other", "quick", runs=["simulation"])
    work = tmp_path / "work"
    work.mkdir()
    (work / "result").symlink_to(lab)
    (work / "result-2").symlink_to(other)
    (work / "result-notes").mkdir()  # a directory that is not a link: not a candidate
    (work / "resultless").symlink_to(tmp_path / "gone")  # a dangling link: not a candidate
    state = tmp_path / "recent.json"
    remember(str(lab), "id", state)  # the same Lab as ./result: listed once
    remember(str(tmp_path / "deleted"), "id", state)  # no longer there: not listed
    remember(str(other / ".." / "lab"), "id", state)
    found = find_candidates(work, load_recent(state))
    assert [(c.origin, c.path) for c in found] == [
        ("./result", str(work / "result")),
        ("./result-2", str(work / "result-2")),
    ]


def test_the_browser_knows_a_lab_dir_and_a_tar(tmp_path):
    lab = make_lab(tmp_path / "lab", "quick")
    tar = make_lab_tar(tmp_path / "t", "quick")
    assert looks_like_lab(lab) and looks_like_lab(tar)
    assert not looks_like_lab(tmp_path) and not looks_like_lab(lab / "lab")


def test_shown_path_is_short(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert shown_path(str(tmp_path / "work" / "result"), tmp_path / "work") == "./result"
    assert shown_path(str(tmp_path / "home" / "labs" / "x"), tmp_path / "work") == "~/labs/x"
    assert shown_path("/elsewhere/x", tmp_path / "work") == "/elsewhere/x"


def test_with_nothing_found_the_demo_lab_is_offered(tmp_path, isolated_xdg):
    demo = demo_lab_path()
    assert demo == isolated_xdg / "data" / "repx-tui" / "demo" / "lab"
    assert find_candidates(tmp_path, [], demo) == [LabCandidate(str(demo), "demo")]
    (tmp_path / "result").symlink_to(make_lab(tmp_path / "lab", "quick"))
    assert [c.origin for c in find_candidates(tmp_path, [], demo)] == ["./result"]  # a Lab found: no demo
