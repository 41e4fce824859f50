"""Scala cells (``%%scala``) in the PySpark kernel on YARN (real stack: one kernel of alice's through the edge,
the Scala 2.13 REPL in its driver JVM, its executors)."""
from __future__ import annotations

import re

import pytest

from jupyter_ws import KernelConnection


@pytest.fixture(scope="module")
def alice_pyspark(stack):
    """One PySpark kernel of alice's for the module: Scala's compiler starts once."""
    kc = KernelConnection.start(stack["edge_url"] + "/gateway", stack["user_tokens"]["alice"], "yardlab_pyspark",
                                username="alice")
    yield kc
    kc.shutdown()


def test_a_dataframe_built_in_scala_is_read_by_the_next_python_cell(alice_pyspark):
    kc = alice_pyspark
    scala = kc.execute(
        "%%scala -o squares\n"
        "val squares = spark.range(1, 11).toDF(\"n\").withColumn(\"sq\", col(\"n\") * col(\"n\"))\n"
        "squares.createOrReplaceTempView(\"squares_view\")\n"
        "// a closure: executors load this cell's classes from the driver\n"
        "val tripled = sc.parallelize(1 to 4).map(_ * 3).collect().sum\n"
        "println(s\"user=${sc.sparkUser}\")")
    assert scala.status == "ok", scala
    started = re.search(r"\(Scala 2\.13\.\d+ started in ([\d.]+) s\)", scala.stdout)
    assert started, scala.stdout  # the first Scala cell of the kernel starts the compiler
    print(f"Scala interpreter start: {started.group(1)} s")
    assert "user=alice" in scala.stdout  # what the code printed, then the REPL's value lines
    assert "val squares: org.apache.spark.sql.DataFrame = [n: bigint, sq: bigint]" in scala.stdout
    assert "val tripled: Int = 30" in scala.stdout

    python = kc.execute("print(type(squares).__name__, squares.count(), squares.where('n = 7').first().sq,\n"
                        "      spark.table('squares_view').agg({'sq': 'sum'}).first()[0])")
    assert python.status == "ok", python
    assert python.stdout.split() == ["DataFrame", "10", "49", "385"]

    # and back: a Python DataFrame in Scala, definitions kept from the earlier Scala cell
    kc.execute("evens = spark.range(0, 20, 2)")
    back = kc.execute("%%scala -i evens\nevens.count() + tripled")
    assert back.status == "ok", back
    assert "(Scala" not in back.stdout and "val res" in back.stdout and "= 40" in back.stdout


def test_a_scala_compile_error_is_the_cells_error_naming_its_line(alice_pyspark):
    reply = alice_pyspark.execute("%%scala\nval a = 1\nval b = nosuchthing + a\n")
    assert reply.status == "error", reply
    assert reply.error == "ScalaCompileError: line 3: not found: value nosuchthing"
    after = alice_pyspark.execute("%%scala\na + 1")  # the failing cell defined nothing, the earlier ones stay
    assert after.status == "error" and "not found: value a" in after.error


def test_a_scala_runtime_exception_is_the_cells_error_naming_its_line(alice_pyspark):
    reply = alice_pyspark.execute("%%scala\nprintln(\"before\")\nval zero = 0\n\nval x = 10 / zero\n")
    assert reply.status == "error", reply
    assert reply.error == "ScalaRuntimeError: line 5: java.lang.ArithmeticException: / by zero"
    assert "before" in reply.stdout
    # the kernel goes on: Python and Scala both still answer
    assert alice_pyspark.execute("%%scala\n40 + 2").stdout.strip().endswith("= 42")
