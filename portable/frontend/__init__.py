"""The kernel front end: from a decorated Python function to each backend's code.

A portable kernel is a plain Python function whose first parameter is the
accelerator ``acc``. Its source is captured and checked when it is decorated
(:mod:`.source`, :mod:`.syntax`); at its first launch on a backend its calls
are checked against its globals (:mod:`.calls`), its ``acc.<member>`` uses are
rewritten for the backend's :class:`~.dialect.Dialect` (the members and their
lowerings: :mod:`.acc`, :mod:`.loops`, :mod:`.rewrite`), its views of
collections lowered (:mod:`.views`), its device functions resolved to their
compiled versions (:mod:`.names`), and the result assembled into a function
for the backend's compiler (:mod:`.assemble`). The generated code keeps the
user's lines, so every error, the library's and the compiler's
(:mod:`.diagnostics`), names the kernel, the user's file and line, quotes the
line and marks the column (:mod:`.site`).
"""
from .acc import ALL_MEMBERS, CALL_MEMBERS, INDEX_MEMBERS, LOOP_MEMBERS, MEMBERS, Member
from .assemble import build_function, function_fingerprint
from .atomics import ATOMIC_DTYPES, atomic_dtype_problem
from .diagnostics import at_failing_line, compiler_error
from .dialect import Dialect
from .site import Site
from .source import ParsedFunction, parse_function
from .views import ViewParam, view_args

__all__ = ["ALL_MEMBERS", "ATOMIC_DTYPES", "CALL_MEMBERS", "Dialect", "INDEX_MEMBERS",
           "LOOP_MEMBERS", "MEMBERS", "Member", "ParsedFunction", "Site", "ViewParam",
           "at_failing_line", "atomic_dtype_problem", "build_function", "compiler_error",
           "function_fingerprint", "parse_function", "view_args"]
