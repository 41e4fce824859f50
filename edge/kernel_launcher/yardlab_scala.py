"""Scala cells in the PySpark kernel: the ``%%scala`` cell magic, run by the Scala 2.13 REPL in the driver JVM.

The pyspark wheel's jars hold the Scala 2.13 compiler and its REPL (``scala.tools.nsc.interpreter.IMain``).
The magic drives one IMain inside the kernel's own driver JVM through py4j (``spark._jvm``), so Scala
and Python share the one SparkSession (bound as ``spark`` in Scala, ``sc`` beside it, with the imports
spark-shell makes), its temp views, its job tags and its executors.

* The interpreter is made on the first ``%%scala`` cell (starting the compiler costs seconds, which a
  kernel that never runs Scala does not pay).  Its compile-time class path is the driver's: the
  entries of ``java.class.path`` (``dir/*`` wildcards expanded, as YARN containers write them) and the
  jars of the context class loaders (``--jars``, an environment's Maven packages); its run-time
  parent is the context class loader, so compiled code sees the classes Spark sees.
* Classes the REPL compiles go to ``spark.repl.class.outputDir``, which the launcher sets before
  the SparkContext starts (as spark-shell does): the context serves that folder and executors load
  REPL classes from it, so Scala closures (``rdd.map(x => ...)``, UDFs) run on executors too.
* Output is the REPL's: what the code prints (``df.show()``, shown while the cell runs) and the value
  lines (``val n: Long = 5``).  A compile error or an exception becomes the cell's error (``ScalaCompileError`` /
  ``ScalaRuntimeError``) naming the line that failed, counted in the cell (the ``%%scala`` line is
  line 1), so the cell is marked failed and "run all" stops.
* Sharing: ``%%scala -o df`` copies the Scala value ``df`` to Python after the cell (a Dataset
  becomes a PySpark DataFrame, numbers and strings become Python's, anything else a py4j object);
  ``%%scala -i df`` binds the Python DataFrame ``df`` in Scala before it.  Temp views are shared as
  they are (one SparkSession).
"""
from __future__ import annotations

import glob
import os
import sys
import re
import threading
import time
from collections.abc import Callable, Iterable
from urllib.parse import unquote, urlsplit

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

#: the Spark property naming the folder REPL classes are written to and served from (spark-shell's)
OUTPUT_DIR_PROPERTY = "spark.repl.class.outputDir"
#: what every interpreter runs first: spark-shell's names and imports
PRELUDE = ("@transient val sc = spark.sparkContext\n"
           "import org.apache.spark.SparkContext._\n"
           "import spark.implicits._\n"
           "import spark.sql\n"
           "import org.apache.spark.sql.functions._\n")
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: the REPL names a failing line "On line 2: error: ..."; a one-line cell's error names none
ERROR_LINE = re.compile(r"^(?:On line (\d+): )?error: (.*)$")
ERROR_LINE_SUB = re.compile(r"^[ \t]*(?:On line (\d+): )?(error|warning): ", re.MULTILINE)


# -- the class path -----------------------------------------------------------------------------------------
def expand_class_path(entries: Iterable[str], exists: Callable[[str], bool] = os.path.exists) -> list[str]:
    """The files and folders of a JVM class path: ``dir/*`` expanded to the folder's jars (sorted) as the
    java launcher does, ``file:`` URLs turned into paths, missing entries, other URLs and duplicates
    dropped, order kept.  scalac reads its ``-classpath`` literally: a wildcard would be a missing folder."""
    out: list[str] = []
    seen: set[str] = set()
    for raw in entries:
        entry = raw.strip()
        if entry.startswith("file:"):
            entry = unquote(urlsplit(entry).path)
        elif "://" in entry or not entry:
            continue
        if entry.endswith("*") and os.path.basename(entry) == "*":
            found = sorted(p for p in glob.glob(os.path.join(glob.escape(entry[:-1]), "*"))
                           if p.lower().endswith(".jar"))
        else:
            found = [entry] if exists(entry) else []
        for path in found:
            path = os.path.abspath(path)
            if path not in seen:
                seen.add(path)
                out.append(path)
    return out


def driver_class_path(jvm) -> list[str]:  # noqa: ANN001 (py4j's JVM view)
    """The driver JVM's class path for the compiler: java.class.path, then the jars of the context class
    loaders (Spark's MutableURLClassLoader holds ``--jars`` and an environment's packages in cluster mode)."""
    entries = str(jvm.java.lang.System.getProperty("java.class.path") or "").split(os.pathsep)
    loader = jvm.java.lang.Thread.currentThread().getContextClassLoader()
    urls: list[str] = []
    while loader is not None:
        if jvm.java.lang.Class.forName("java.net.URLClassLoader").isInstance(loader):
            urls = [u.toString() for u in loader.getURLs()] + urls
        loader = loader.getParent()
    return expand_class_path([*entries, *urls])


# -- errors a cell shows --------------------------------------------------------------------------------------
class ScalaError(Exception):
    """A Scala cell that failed; IPython shows :attr:`lines` as its traceback (no Python frames)."""

    def __init__(self, message: str, lines: list[str]) -> None:
        super().__init__(message)
        self.lines = lines

    def _render_traceback_(self) -> list[str]:
        return self.lines


class ScalaCompileError(ScalaError):
    """The Scala compiler refused the cell."""


class ScalaRuntimeError(ScalaError):
    """The cell compiled, and an exception escaped it while it ran."""


def cell_line(scala_line: int) -> int:
    """A line of the Scala code as a line of the notebook cell (the ``%%scala`` line is line 1)."""
    return scala_line + 1


def in_cell_lines(messages: str) -> str:
    """The compiler's messages with their "On line N" counted in the cell; a one-line cell's error,
    which names no line, gets its line too."""
    def renumber(m: re.Match) -> str:
        if m.group(1) is None and m.group(2) == "warning":  # a summary ("warning: 1 deprecation; ...")
            return m.group(0)
        return f"On line {cell_line(int(m.group(1) or 1))}: {m.group(2)}: "

    return ERROR_LINE_SUB.sub(renumber, messages)


def compile_error(messages: str) -> ScalaCompileError:
    """The REPL's compiler messages as the cell's error, naming the cell's line of the first error."""
    first = None
    for text in messages.splitlines():
        m = ERROR_LINE.match(text.strip())
        if m:
            first = (cell_line(int(m.group(1) or 1)), m.group(2))
            break
    if first is None:
        first = (None, messages.strip().splitlines()[-1] if messages.strip() else "the cell does not compile")
    line, what = first
    shown = in_cell_lines(messages)
    message = f"line {line}: {what}" if line else what
    return ScalaCompileError(message, [shown.rstrip("\n")])


#: the REPL's wrapper machinery around a cell's code ($line7.$read, $line7.$eval$ ...): not the user's frames
WRAPPER = re.compile(r"^\$line\d+\.\$(?:read|eval)\$?$")
#: Java frames shown above the cell's own (Spark's stacks run to a hundred)
JAVA_FRAMES = 8


def runtime_error(throwable) -> ScalaRuntimeError:  # noqa: ANN001 (a py4j java.lang.Throwable)
    """An exception thrown by the cell's code, naming the line of the cell it came from: the exception,
    its first Java frames, the frames of code compiled from cells (this one's with their line in the
    cell), then its causes; the REPL's machinery below the cell's code is left out."""
    frames = [(str(f.getClassName()), int(f.getLineNumber()), str(f.getFileName()), str(f.toString()))
              for f in throwable.getStackTrace()]
    cut = next((i for i, f in enumerate(frames) if WRAPPER.match(f[0])), len(frames))
    frames = frames[:cut]
    # the outermost frame of REPL code is this cell's (``$line7.$read$$iw.<init>``): its $lineN names the cell
    repl = [f for f in frames if f[0].startswith("$line")]
    this = repl[-1][0].split(".", 1)[0] + "." if repl else None
    ours = [f for f in repl if f[0].startswith(this or "-") and f[2] == "<console>" and f[1] > 0]
    header = str(throwable.toString())
    lines = [header]
    java = [f for f in frames if not f[0].startswith("$line")]
    shown = java[:JAVA_FRAMES]
    elided = False
    for f in frames:
        if f[0].startswith("$line"):
            where = f"line {cell_line(f[1])} of the cell" if f in ours else "code of an earlier cell"
            lines.append(f"    at {f[3]}  <- {where}")
        elif f in shown:
            lines.append(f"    at {f[3]}")
        elif not elided:
            lines.append(f"    ... {len(java) - len(shown)} more Java frames")
            elided = True
    cause, depth = throwable.getCause(), 0
    while cause is not None and depth < 5:
        lines.append(f"Caused by: {cause.toString()}")
        cause, depth = cause.getCause(), depth + 1
    message = f"line {cell_line(ours[0][1])}: {header}" if ours else header
    return ScalaRuntimeError(message, ["\n".join(lines)])


class OutputPump:
    """Copies what a running cell prints into JVM byte buffers to Python's streams, every ``every`` seconds
    while it runs (from a thread of its own) and once more at the end, so long cells show output as
    Python cells do."""

    def __init__(self, buffers: list, writers: list[Callable[[str], object]], every: float = 0.5) -> None:
        import codecs

        self.buffers, self.writers, self.every = buffers, writers, every
        self.sent = [0] * len(buffers)
        self.decoders = [codecs.getincrementaldecoder("utf-8")("replace") for _ in buffers]
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._loop, name="yardlab-scala-output", daemon=True)

    def __enter__(self) -> OutputPump:
        self.thread.start()
        return self

    def __exit__(self, *_exc) -> None:  # noqa: ANN002
        self.stop.set()
        self.thread.join()
        self.drain(final=True)

    def _loop(self) -> None:
        while not self.stop.wait(self.every):
            try:
                self.drain()
            except Exception:  # noqa: BLE001, S110 - the final drain, in the cell's thread, reports for real
                pass

    def drain(self, final: bool = False) -> None:
        with self.lock:
            for i, buf in enumerate(self.buffers):
                if buf.size() <= self.sent[i] and not final:
                    continue
                data = bytes(buf.toByteArray())
                text = self.decoders[i].decode(data[self.sent[i]:], final)
                self.sent[i] = len(data)
                if text:
                    self.writers[i](text)


# -- the interpreter --------------------------------------------------------------------------------------------
class ScalaInterpreter:
    """One Scala 2.13 REPL in the driver JVM, bound to a SparkSession (py4j objects underneath)."""

    def __init__(self, spark) -> None:  # noqa: ANN001 (a pyspark SparkSession)
        t0 = time.monotonic()
        self.spark = spark
        jvm = self.jvm = spark._jvm
        settings = jvm.scala.tools.nsc.Settings()
        out_dir = self.output_dir()
        # -deprecation: each warning in full, where the REPL would print a summary pointing at its
        # `:setting` command, which a cell does not have
        settings.processArgumentString(f"-Yrepl-class-based -deprecation -Yrepl-outdir {out_dir}")
        getattr(settings.classpath(), "value_$eq")(os.pathsep.join(driver_class_path(jvm)))
        self.messages = jvm.java.io.StringWriter()
        reporter = jvm.scala.tools.nsc.interpreter.shell.ReplReporterImpl(
            settings, jvm.java.io.PrintWriter(self.messages, True))
        loader = jvm.java.lang.Thread.currentThread().getContextClassLoader()
        self.intp = jvm.scala.tools.nsc.interpreter.IMain(settings, jvm.scala.Some(loader), settings, reporter)
        self.console = jvm.java.lang.Class.forName("scala.Console$").getField("MODULE$").get(None)
        self.out = jvm.java.io.ByteArrayOutputStream()
        self.err = jvm.java.io.ByteArrayOutputStream()
        no_modifiers = jvm.scala.jdk.javaapi.CollectionConverters.asScala(jvm.java.util.ArrayList()).toList()
        bound = self.intp.bind("spark", "org.apache.spark.sql.SparkSession", spark._jsparkSession, no_modifiers)
        if str(bound.toString()) != "Success" or str(self.intp.interpret(PRELUDE).toString()) != "Success":
            raise RuntimeError(f"the Scala interpreter did not start: {self.messages.toString()}")
        self.messages.getBuffer().setLength(0)
        #: seconds the compiler took to start (measured: the first cell waits for them)
        self.start_seconds = time.monotonic() - t0

    def output_dir(self) -> str:
        """The folder REPL classes go to: the context's ``spark.repl.class.outputDir`` (executors load
        classes from it), else a new one (DataFrame code works, closures then fail on executors)."""
        conf = self.spark.sparkContext.getConf()
        folder = conf.get(OUTPUT_DIR_PROPERTY, None)
        if not folder:
            import tempfile

            folder = tempfile.mkdtemp(prefix="yardlab-repl-")
        os.makedirs(folder, exist_ok=True)
        return folder

    def run(self, code: str, out: Callable[[str], object], err: Callable[[str], object]) -> str:
        """Interpret ``code``; what it prints goes to ``out`` and ``err`` while it runs.  Returns the REPL's
        value lines; raises :class:`ScalaError` when the code does not compile or throws."""
        self.messages.getBuffer().setLength(0)
        self.out.reset()
        self.err.reset()
        before = self._last_exception()
        out_ps = self.jvm.java.io.PrintStream(self.out, True, "UTF-8")
        err_ps = self.jvm.java.io.PrintStream(self.err, True, "UTF-8")
        old_out, old_err = self.console.out(), self.console.err()
        # Console.out is a per-thread (inheritable) variable: py4j runs this call on the JVM thread that
        # serves this Python thread, the one the cell's code runs on
        self.console.setOutDirect(out_ps)
        self.console.setErrDirect(err_ps)
        try:
            with OutputPump([self.out, self.err], [out, err]):
                result = str(self.intp.interpret(code).toString())
        finally:
            self.console.setOutDirect(old_out)
            self.console.setErrDirect(old_err)
        messages = str(self.messages.toString())
        if result == "Success":
            return in_cell_lines(messages)
        if result == "Incomplete":
            raise ScalaCompileError("the cell ends inside an expression (an unclosed brace, parenthesis or string?)",
                                    [messages.rstrip("\n") or "incomplete Scala code"])
        after = self._last_exception()
        if after is not None and (before is None or not after.equals(before)):
            raise runtime_error(after)
        raise compile_error(messages)

    def _last_exception(self):  # noqa: ANN202
        """The REPL's ``lastException`` (the exception the last failing line threw), or None."""
        value = self.intp.valueOfTerm("lastException")
        return None if value.isEmpty() else value.get()

    def value(self, name: str):  # noqa: ANN201
        """The Scala term ``name`` for Python: a Dataset as a PySpark DataFrame, primitives as py4j gives them."""
        from py4j.java_gateway import JavaObject
        from pyspark.sql import DataFrame

        found = self.intp.valueOfTerm(name)
        if found.isEmpty():
            raise KeyError(name)
        value = found.get()
        if isinstance(value, JavaObject) and self._is("org.apache.spark.sql.Dataset", value):
            return DataFrame(value.toDF(), self.spark)
        return value

    def bind_dataframe(self, name: str, df) -> None:  # noqa: ANN001 (a pyspark DataFrame)
        """Bind a PySpark DataFrame in Scala as ``name: DataFrame``."""
        no_modifiers = self.jvm.scala.jdk.javaapi.CollectionConverters.asScala(self.jvm.java.util.ArrayList()).toList()
        self.messages.getBuffer().setLength(0)
        bound = self.intp.bind(name, "org.apache.spark.sql.DataFrame", df._jdf, no_modifiers)
        if str(bound.toString()) != "Success":
            raise ScalaCompileError(f"could not bind {name} in Scala", [str(self.messages.toString())])
        self.messages.getBuffer().setLength(0)

    def _is(self, class_name: str, value) -> bool:  # noqa: ANN001
        return bool(self.jvm.java.lang.Class.forName(class_name).isInstance(value))


# -- the magic ----------------------------------------------------------------------------------------------
def names(values: list[str]) -> list[str]:
    """``-o a -o b,c`` -> [a, b, c]; a name that is not an identifier is refused with a sentence."""
    out: list[str] = []
    for value in values:
        for name in (part.strip() for part in value.split(",")):
            if not NAME.match(name):
                raise ValueError(f"{name!r} is not a name (letters, digits and _, not starting with a digit)")
            if name not in out:
                out.append(name)
    return out


@magics_class
class ScalaMagics(Magics):
    """The ``%%scala`` cell magic (see :func:`scala`); the interpreter is made on first use."""

    interpreter: ScalaInterpreter | None = None

    def spark(self):  # noqa: ANN201
        """The kernel's SparkSession; while Spark starts, the launcher's placeholder waits for it."""
        if getattr(self.shell.user_ns.get("spark"), "_jsparkSession", None) is None:
            raise UsageError("Scala cells need the PySpark kernel's SparkSession `spark`, and this kernel has none")
        return self.shell.user_ns["spark"]  # the placeholder's wait has put the real session there

    @magic_arguments()
    @argument("-o", "--output", action="append", default=[], metavar="NAME",
              help="after the cell, copy the Scala value NAME to Python under the same name (a Dataset or "
                   "DataFrame becomes a PySpark DataFrame); repeat it or separate names with commas")
    @argument("-i", "--input", action="append", default=[], metavar="NAME",
              help="before the cell, bind the Python DataFrame NAME in Scala (as a DataFrame of that name)")
    @cell_magic
    def scala(self, line: str, cell: str) -> None:
        """Run the cell as Scala 2.13 in this kernel's Spark driver, with the same SparkSession.

        ``spark`` and ``sc`` are bound, with spark-shell's imports (``spark.implicits._``,
        ``org.apache.spark.sql.functions._``).  Definitions stay for the next Scala cell.  The
        first Scala cell of a kernel starts the Scala compiler (a few seconds).  Errors name the line
        of the cell that failed (the ``%%scala`` line is line 1).

        Sharing with Python: ``%%scala -o df`` makes the Scala ``df`` a PySpark DataFrame named ``df``
        after the cell; ``%%scala -i df`` gives Scala the Python DataFrame ``df``; temp views
        (``df.createOrReplaceTempView("t")`` then ``spark.table("t")``) are seen by both.
        """
        args = parse_argstring(self.scala, line)
        try:
            outputs, inputs = names(args.output), names(args.input)
        except ValueError as e:
            raise UsageError(f"%%scala {line}: {e}") from None
        intp = self.start()
        for name in inputs:
            df = self.shell.user_ns.get(name)
            if df is None or not hasattr(df, "_jdf"):
                raise UsageError(f"%%scala -i {name}: there is no Python DataFrame named {name}")
            intp.bind_dataframe(name, df)
        messages = intp.run(cell, self._writer(sys.stdout), self._writer(sys.stderr))
        if messages:
            sys.stdout.write(messages)
            sys.stdout.flush()
        for name in outputs:
            try:
                self.shell.user_ns[name] = intp.value(name)
            except KeyError:
                raise UsageError(f"%%scala -o {name}: no Scala value is named {name}") from None

    def start(self) -> ScalaInterpreter:
        if ScalaMagics.interpreter is None:
            spark = self.spark()
            ScalaMagics.interpreter = ScalaInterpreter(spark)
            print(f"(Scala {self._version()} started in {ScalaMagics.interpreter.start_seconds:.1f} s)",
                  flush=True)
        return ScalaMagics.interpreter

    def _version(self) -> str:
        try:
            return str(self.interpreter.jvm.scala.util.Properties.versionNumberString())
        except Exception:  # noqa: BLE001 - only a label
            return "2.13"

    @staticmethod
    def _writer(stream) -> Callable[[str], None]:  # noqa: ANN001
        def write(text: str) -> None:
            stream.write(text)
            stream.flush()

        return write


def register(shell) -> None:  # noqa: ANN001 (an IPython InteractiveShell)
    """Register the ``%%scala`` cell magic in a kernel's shell (no JVM work: that waits for the first cell)."""
    shell.register_magics(ScalaMagics)
