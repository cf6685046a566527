"""recforge's static passes: the framework.

``run_passes(files, passes)`` is what a compile calls: ``files`` maps a file name
(``trainer_module.py``) to its source, ``passes`` are pass classes from the plugin registry.
Built-in passes live in ``plugins.passes``; ``python -m compiler.check`` runs them over any file.
"""

from compiler.passes.core import (
    EXAMPLE_FILE,
    EXPECT_MARKER,
    Example,
    Finding,
    Fix,
    Location,
    Pass,
    Project,
    Severity,
    SourceError,
    SourceFile,
    TextEdit,
    example_files,
    expected_lines,
    parse_files,
    run_passes,
    validate_pass,
)
from compiler.passes.fixes import apply_fixes, fix_files

__all__ = [
    "EXAMPLE_FILE",
    "EXPECT_MARKER",
    "Example",
    "Finding",
    "Fix",
    "Location",
    "Pass",
    "Project",
    "Severity",
    "SourceError",
    "SourceFile",
    "TextEdit",
    "apply_fixes",
    "example_files",
    "expected_lines",
    "fix_files",
    "parse_files",
    "run_passes",
    "validate_pass",
]
