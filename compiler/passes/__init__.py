"""recforge's static passes: the framework.

``run_passes(files, passes)`` is what a compile calls: ``files`` maps a file name
(``trainer_module.py``) to its source, ``passes`` are pass classes from the plugin registry.
Built-in passes live in ``plugins.passes``; ``python -m compiler.check`` runs them over any file.
"""

from compiler.passes.base import (
    EXAMPLE_FILE,
    EXPECT_MARKER,
    Example,
    Pass,
    example_files,
    expected_lines,
    validate_pass,
)
from compiler.passes.cst_fixes import cst_fix
from compiler.passes.findings import (
    AddImport,
    Finding,
    Fix,
    Location,
    NodeChange,
    Severity,
    SourceError,
    TextEdit,
)
from compiler.passes.fixes import apply_fixes, fix_files
from compiler.passes.runner import PassCache, parse_files, run_passes
from compiler.passes.source import Project, SourceFile

__all__ = [
    "AddImport",
    "EXAMPLE_FILE",
    "EXPECT_MARKER",
    "Example",
    "Finding",
    "Fix",
    "Location",
    "NodeChange",
    "Pass",
    "PassCache",
    "Project",
    "Severity",
    "SourceError",
    "SourceFile",
    "TextEdit",
    "apply_fixes",
    "cst_fix",
    "example_files",
    "expected_lines",
    "fix_files",
    "parse_files",
    "run_passes",
    "validate_pass",
]
