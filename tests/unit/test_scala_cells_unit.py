"""The ``%%scala`` cell magic's pure-Python parts, without a JVM: the compiler's class path (wildcards
expanded), names for -o/-i, compile and runtime errors naming the cell's line, and the magic's flow
around a stand-in interpreter (the real one runs in tests/stack/test_scala_cells.py)."""
from __future__ import annotations

import os
from types import SimpleNamespace

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from yardlab.edge import kernelspecs
from yardlab.edge.kernel_launcher import yardlab_scala as ys


# -- the class path -----------------------------------------------------------------------------------------
def test_wildcards_expand_to_the_folders_jars_and_missing_entries_go(tmp_path):
    libs = tmp_path / "__spark_libs__"
    libs.mkdir()
    for name in ("b.jar", "a.jar", "c.JAR", "notes.txt"):
        (libs / name).write_text("x")
    (libs / "sub").mkdir()
    (libs / "sub" / "deep.jar").write_text("x")
    conf = tmp_path / "__spark_conf__"
    conf.mkdir()
    entries = [str(conf), f"{libs}/*", str(tmp_path / "missing.jar"), f"{libs}/a.jar", "",
               f"file:{libs}/b.jar", "https://repo.example/x.jar", f"{tmp_path}/nothing-here/*"]
    assert ys.expand_class_path(entries) == [str(conf), str(libs / "a.jar"), str(libs / "b.jar"),
                                             str(libs / "c.JAR")]


def test_relative_entries_are_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    os.mkdir("jars")
    (tmp_path / "jars" / "x.jar").write_text("x")
    assert ys.expand_class_path(["jars/*", "."]) == [str(tmp_path / "jars" / "x.jar"), str(tmp_path)]


def test_file_urls_with_escapes_are_paths(tmp_path):
    jar = tmp_path / "with space.jar"
    jar.write_text("x")
    assert ys.expand_class_path([jar.as_uri()]) == [str(jar)]


# -- names and errors --------------------------------------------------------------------------------------
def test_names_split_commas_keep_order_and_drop_repeats():
    assert ys.names(["df", "a, b", "df"]) == ["df", "a", "b"]
    assert ys.names([]) == []


@pytest.mark.parametrize("bad", ["1df", "a-b", "", "x.y", "df; rm"])
def test_a_name_that_is_no_identifier_is_refused(bad):
    with pytest.raises(ValueError, match="is not a name"):
        ys.names([bad])


def test_a_compile_error_names_the_cells_line():
    messages = "       val b = foo + 1\n               ^\nOn line 2: error: not found: value foo\n"
    err = ys.compile_error(messages)
    assert isinstance(err, ys.ScalaCompileError)
    assert str(err) == "line 3: not found: value foo"  # the %%scala line is line 1
    assert err._render_traceback_() == ["       val b = foo + 1\n               ^\nOn line 3: error: not found: value foo"]


def test_a_one_line_cells_error_is_on_line_two():
    err = ys.compile_error("       ^\n       error: not found: value foo\n")
    assert str(err) == "line 2: not found: value foo"
    assert "On line 2: error: not found: value foo" in err.lines[0]


def test_warnings_count_lines_in_the_cell_and_summaries_stay():
    assert ys.in_cell_lines("On line 2: warning: Auto-application\nval a: Int = 1\n") == (
        "On line 3: warning: Auto-application\nval a: Int = 1\n")
    assert ys.in_cell_lines("warning: 1 deprecation\n") == "warning: 1 deprecation\n"


def test_a_compile_error_without_a_line_keeps_the_compilers_words():
    assert str(ys.compile_error("something odd happened\n")) == "something odd happened"
    assert str(ys.compile_error("")) == "the cell does not compile"


def frame(cls: str, line: int, file: str = "<console>") -> SimpleNamespace:
    return SimpleNamespace(getClassName=lambda: cls, getLineNumber=lambda: line, getFileName=lambda: file,
                           toString=lambda: f"{cls}.<init>({file}:{line})")


def throwable(text: str, frames: list, cause=None) -> SimpleNamespace:
    return SimpleNamespace(toString=lambda: text, getStackTrace=lambda: frames, getCause=lambda: cause)


def test_a_runtime_error_names_the_cells_line_and_leaves_the_repls_machinery_out():
    frames = [frame("java.lang.Math", 10, "Math.java"), frame("$line2.$read$$iw", 7),  # a def of an earlier cell
              frame("$line6.$read$$iw", 3), frame("$line6.$read", 4), frame("$line6.$eval$", 6, "<synthetic>"),
              frame("jdk.internal.reflect.Method", 1, "Method.java")]
    cause = throwable("java.io.IOException: disk", [])
    err = ys.runtime_error(throwable("java.lang.ArithmeticException: / by zero", frames, cause))
    assert isinstance(err, ys.ScalaRuntimeError)
    assert str(err) == "line 4: java.lang.ArithmeticException: / by zero"
    assert err.lines[0].splitlines() == [
        "java.lang.ArithmeticException: / by zero",
        "    at java.lang.Math.<init>(Math.java:10)",
        "    at $line2.$read$$iw.<init>(<console>:7)  <- code of an earlier cell",
        "    at $line6.$read$$iw.<init>(<console>:3)  <- line 4 of the cell",
        "Caused by: java.io.IOException: disk"]


def test_long_java_stacks_are_cut_to_their_top():
    frames = [frame(f"org.apache.spark.X{i}", i, "X.scala") for i in range(30)] + [frame("$line3.$read$$iw", 1),
                                                                                   frame("$line3.$read", 9)]
    lines = ys.runtime_error(throwable("org.apache.spark.sql.AnalysisException: no table", frames)).lines[0]
    lines = lines.splitlines()
    assert len(lines) == 1 + ys.JAVA_FRAMES + 1 + 1
    assert lines[-2] == f"    ... {30 - ys.JAVA_FRAMES} more Java frames"
    assert lines[-1].endswith("<- line 2 of the cell")


def test_a_runtime_error_from_no_cell_line_keeps_the_exception():
    err = ys.runtime_error(throwable("java.lang.OutOfMemoryError", [frame("a.B", 1, "B.java")]))
    assert str(err) == "java.lang.OutOfMemoryError"


# -- the magic around a stand-in interpreter ------------------------------------------------------------------
class StandIn:
    """Behaves as ScalaInterpreter does for the magic: run, value, bind_dataframe."""

    def __init__(self) -> None:
        self.bound: dict = {}
        self.values = {"n": 5, "df": "a DataFrame"}
        self.fail: ys.ScalaError | None = None

    def run(self, code: str, out, err):
        out("printed\n")
        if self.fail is not None:
            raise self.fail
        return "val n: Long = 5\n"

    def value(self, name: str):
        return self.values[name]

    def bind_dataframe(self, name: str, df) -> None:
        self.bound[name] = df


@pytest.fixture
def shell(monkeypatch):
    sh = InteractiveShell.instance()
    ys.register(sh)
    stand_in = StandIn()
    monkeypatch.setattr(ys.ScalaMagics, "interpreter", stand_in)
    yield sh, stand_in
    for name in ("n", "df", "pdf"):
        sh.user_ns.pop(name, None)


def test_the_magic_prints_the_output_then_the_value_lines_and_copies_outputs(shell, capsys):
    sh, _ = shell
    sh.run_cell_magic("scala", "-o n -o df", "val n = 5")
    assert capsys.readouterr().out == "printed\nval n: Long = 5\n"
    assert sh.user_ns["n"] == 5 and sh.user_ns["df"] == "a DataFrame"


def test_the_magic_binds_python_dataframes_and_refuses_what_is_none(shell):
    sh, stand_in = shell
    sh.user_ns["pdf"] = SimpleNamespace(_jdf=object())
    sh.run_cell_magic("scala", "-i pdf", "pdf.count")
    assert stand_in.bound == {"pdf": sh.user_ns["pdf"]}
    sh.user_ns["n"] = 3
    with pytest.raises(UsageError, match="no Python DataFrame named n"):
        sh.run_cell_magic("scala", "-i n", "n")
    with pytest.raises(UsageError, match="no Scala value is named missing"):
        sh.run_cell_magic("scala", "-o missing", "1")
    with pytest.raises(UsageError, match="is not a name"):
        sh.run_cell_magic("scala", "-o 1x", "1")


def test_a_failing_cell_shows_what_it_printed_then_raises(shell, capsys):
    sh, stand_in = shell
    stand_in.fail = ys.compile_error("On line 1: error: boom\n")
    with pytest.raises(ys.ScalaCompileError, match="line 2: boom"):
        sh.run_cell_magic("scala", "", "boom")
    assert capsys.readouterr().out == "printed\n"


class Buffer:
    """A java.io.ByteArrayOutputStream as py4j shows it: size() and toByteArray()."""

    def __init__(self) -> None:
        self.data = b""

    def size(self) -> int:
        return len(self.data)

    def toByteArray(self) -> bytes:  # noqa: N802 - Java's name
        return self.data


def test_the_output_pump_streams_while_the_cell_runs_and_splits_no_character():
    import threading

    out, err, got = Buffer(), Buffer(), {"out": [], "err": []}
    arrived = threading.Event()

    def on_out(text: str) -> None:
        got["out"].append(text)
        arrived.set()

    import time

    with ys.OutputPump([out, err], [on_out, got["err"].append], every=0.01) as pump:
        out.data = "first line\n".encode()
        assert arrived.wait(5), "nothing streamed while the cell ran"
        out.data += "é".encode()[:1]  # half of a two-byte character, drained while the cell runs
        err.data = b"oops\n"
        deadline = time.monotonic() + 5
        while pump.sent[0] < len(out.data) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert got["out"] == ["first line\n"]  # the half character waits for its other half
        out.data += "é\n".encode()[1:] + b"end\n"  # written just before the cell ends
    assert "".join(got["out"]) == "first line\né\nend\n"
    assert got["err"] == ["oops\n"]


def test_the_kernelspec_ships_the_magic_beside_the_launcher(tmp_path):
    assert ",$SPEC_DIR/scripts/yardlab_scala.py," in kernelspecs.RUN_SH
    assert [p.name for p in kernelspecs.SHIPPED if p.exists()] == ["yardlab_scala.py", "yardlab_irkernel.py"]
