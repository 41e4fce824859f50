"""Property tests of the edge's input checks, with inputs hypothesis makes up (hostile ones included).

Each check must either refuse with a PublicError (a 4xx and a sentence) or accept, and what it
accepts must keep the promise the check exists for: an HDFS path inside the storage roots with no
``.``/``..`` step, a Spark UI address that stays inside the application's UI and carries nothing
Hadoop would read as who is asking, an environment request whose packages come from the index.
No other exception, ever: that would be a 500.
"""
from __future__ import annotations

import string
from urllib.parse import parse_qsl, quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from yardlab.edge.auth import Identity
from yardlab.edge.environments.request import RequestRules, parse_request
from yardlab.edge.errors import PublicError
from yardlab.edge.sparkui import REFUSED_PARAMS, UI_ROOTS, check_target
from yardlab.edge.storage import HDFSStorage, clean_path

FAST = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ALICE = Identity(name="alice", admin=False)

#: path-ish text: the characters tricks are made of, plus any text at all
TRICKY = st.sampled_from(["/", ".", "..", "%2e", "%2f", "\\", ";", ":", "#", "//", "\x00", "\n", "~", " ",
                          "user", "alice", "bob", "public", "shared", "kill", "KILL", "jobs", "api", "%6bill",
                          "\u212aill", "ſ", "\u0130"])
PATHS = st.one_of(st.lists(TRICKY, max_size=12).map("".join), st.text(max_size=80))


def java_equals_ignore_case(a: str, b: str) -> bool:
    """Java's String.equalsIgnoreCase, which Hadoop's filters use on parameter names (char by char:
    equal, or equal upper-cased, or equal lower-cased; so 'ſ' (U+017F) matches 's')."""
    if len(a) != len(b):
        return False
    return all(x == y or x.upper() == y.upper() or x.lower() == y.lower() for x, y in zip(a, b))


@FAST
@given(PATHS)
def test_clean_path_accepts_only_plain_absolute_paths(raw):
    try:
        path = clean_path(raw)
    except PublicError as e:
        assert 400 <= e.status < 500 and len(e.message.split()) >= 3
        return
    assert path.startswith("/") and "//" not in path.replace("://", "")
    steps = path.split("/")[1:]
    assert all(s not in (".", "..") for s in steps if s)
    assert not any(c in path for c in "\x00\n\\:#")


@FAST
@given(PATHS)
def test_storage_roots_hold_every_accepted_path(raw):
    storage = HDFSStorage(webhdfs_url="http://127.0.0.1:1", service_user="yardlab")
    try:
        path = clean_path(raw)
        storage.check_within_roots(ALICE, path)
    except PublicError as e:
        assert 400 <= e.status < 500
        return
    roots = (storage.shared_path, storage.public_path, "/user")
    assert any(path == r or path.startswith(r + "/") for r in roots[:2]) or path.startswith("/user/"), path


SEGMENTS = st.lists(st.one_of(TRICKY, st.sampled_from(sorted(UI_ROOTS)), st.text(string.printable, max_size=8)),
                    max_size=6)
PARAM_NAMES = st.one_of(st.sampled_from(["user.name", "doAs", "doas", "DOAS", "doaſ", "user%2Ename", "delegation",
                                         "proxyapproved", "id", "attempt", "user.name ", " doAs"]),
                        st.text(max_size=12))


@FAST
@given(SEGMENTS)
def test_spark_ui_addresses_stay_in_the_application_ui(segments):
    rest = "/" + "/".join(segments) if segments else ""
    try:
        target = check_target("application_1700000000000_0001", rest, "")
    except PublicError as e:
        assert 400 <= e.status < 500 and len(e.message.split()) >= 3
        return
    steps = target.path.split("/")[1:]
    assert all(s not in (".", "..") and "%" not in s and ";" not in s and "\\" not in s for s in steps)
    assert "//" not in target.path
    if steps:
        assert steps[0] in UI_ROOTS
    assert not any(s.lower() == "kill" for s in steps)


@FAST
@given(st.lists(st.tuples(PARAM_NAMES, st.text(max_size=8)), max_size=4), st.booleans())
def test_spark_ui_queries_never_say_who_is_asking(params, encode):
    query = "&".join(f"{quote(k) if encode else k}={quote(v)}" for k, v in params)
    try:
        target = check_target("application_1700000000000_0001", "/jobs/", query)
    except PublicError as e:
        assert 400 <= e.status < 500 and len(e.message.split()) >= 3
        return
    for name, _ in parse_qsl(target.query, keep_blank_values=True):
        for refused in REFUSED_PARAMS:
            assert not java_equals_ignore_case(name.strip(), refused), (name, target.query)


def test_a_unicode_look_alike_of_doas_is_refused():
    """'doaſ' (long s, U+017F) is 'doas' to Java's equalsIgnoreCase, which Hadoop's proxy-user filter uses."""
    with pytest.raises(PublicError) as info:
        check_target("application_1700000000000_0001", "/jobs/", "doa%C5%BF=bob")
    assert info.value.status == 400


JSONISH = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
              st.text(max_size=20)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=20)
FIELDS = st.sampled_from(["name", "display_name", "kind", "visibility", "resources", "packages"])
BODIES = st.one_of(JSONISH, st.dictionaries(FIELDS, JSONISH, max_size=6),
                   st.fixed_dictionaries({"name": st.sampled_from(["tab", "x" * 41, "../etc", "Tab", "t b"]),
                                          "packages": st.fixed_dictionaries({"pip": st.lists(
                                              st.one_of(st.text(max_size=30), st.sampled_from([
                                                  "-r /etc/passwd", "--index-url=http://evil", "git+https://x/y",
                                                  "pkg @ file:///tmp/x", "./local", "pandas==2.2.3",
                                                  "pandas; os_name=='posix'", "a\nb", "http://evil/x.whl"])),
                                              max_size=3)})}))
RULES = RequestRules(defaults={"driver_memory_mb": 1024, "driver_cores": 1, "executor_memory_mb": 1024,
                               "executor_cores": 1, "executor_instances": 1, "queue": "default"},
                     limits={"driver_memory_mb": 8192, "driver_cores": 4, "executor_memory_mb": 8192,
                             "executor_cores": 4, "executor_instances": 8},
                     max_packages=50, max_spec_length=200, conda_channels=[], allowed_queues={})


@FAST
@given(BODIES)
def test_environment_requests_are_parsed_or_refused_with_a_sentence(body):
    try:
        env = parse_request(ALICE, body, RULES)
    except PublicError as e:
        assert 400 <= e.status < 500 and len(e.message.split()) >= 3
        return
    for spec in env["packages"]["pip"]:
        assert not spec.startswith("-") and "://" not in spec and "@" not in spec and "\n" not in spec
    assert env["visibility"] == "personal"
