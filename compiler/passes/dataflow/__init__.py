"""Flow-sensitive passes: a small abstract interpreter over one module's libcst tree.

- ``values``: the engine's abstract values, call records and frames.
- ``statements``: how statements run (branches forked and joined, loops, targets).
- ``engine``: the ``Interpreter`` (driver, calls, expressions) and ``DataflowPass``, the base a
  flow-sensitive pass subclasses to give values their meaning.
"""

from compiler.passes.dataflow.engine import DataflowPass, Interpreter
from compiler.passes.dataflow.values import (
    NONE,
    UNKNOWN,
    ArgV,
    CallInfo,
    ClassV,
    Fact,
    Frame,
    FuncV,
    InstanceV,
    ModuleV,
    SeqV,
    TupleV,
)

__all__ = [
    "NONE",
    "UNKNOWN",
    "ArgV",
    "CallInfo",
    "ClassV",
    "DataflowPass",
    "Fact",
    "Frame",
    "FuncV",
    "InstanceV",
    "Interpreter",
    "ModuleV",
    "SeqV",
    "TupleV",
]
