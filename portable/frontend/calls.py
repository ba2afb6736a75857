"""The checks of a kernel's calls that need its globals, made at its first launch.

Globals may be defined after the kernel (a device function further down the
module), so these run when the kernel is first compiled, the same way for
every backend: kernels are not callable from device code, device functions get
``acc`` exactly when they take it, plain Python functions and classes are
refused, module attributes exist, shared arrays have constant shapes and
atomics on them a dtype every backend takes.
"""
from __future__ import annotations

import ast
import copy
import difflib
import types
from typing import TYPE_CHECKING, Any

import numpy as np

from .atomics import ATOMIC_DTYPES, atomic_dtype_problem
from .names import global_value, python_only
from .site import Site
from .source import base_name
from .syntax import acc_member, is_name

if TYPE_CHECKING:
    from .source import ParsedFunction

_CONSTANT_NODES = (ast.Constant, ast.Name, ast.Attribute, ast.Tuple, ast.BinOp, ast.UnaryOp,
                   ast.operator, ast.unaryop, ast.expr_context)


def _constant(expr: ast.expr, what: str, site: Site, namespace: dict[str, Any],
              local: set[str]) -> Any:
    """The value of ``expr``, which must be known when the function is compiled."""
    fix = ("use a number, a module-level constant or arithmetic on them (GPUs size "
           "shared memory when the kernel is compiled)")
    for sub in ast.walk(expr):
        if isinstance(sub, ast.Name) and (sub.id in local or sub.id not in namespace):
            known = "known only when the kernel runs" if sub.id in local else "not defined"
            raise site.error(expr, f"{what} must be a compile-time constant, but {sub.id!r} "
                                   f"is {known}; {fix}")
        if not isinstance(sub, _CONSTANT_NODES):
            raise site.error(expr, f"{what} must be a compile-time constant, got "
                                   f"{ast.unparse(expr)!r}; {fix}")
    code = compile(ast.fix_missing_locations(ast.Expression(copy.deepcopy(expr))),
                   site.filename, "eval")
    try:
        return eval(code, dict(namespace))  # names and arithmetic only, checked above
    except Exception as err:
        raise site.error(expr, f"{what} ({ast.unparse(expr)}) cannot be computed: "
                               f"{err}") from None


def _check_shared_array(node: ast.Call, site: Site, namespace: dict[str, Any],
                        local: set[str]) -> np.dtype:
    """Check ``acc.shared_array(shape, dtype)``, make its shape a literal, and
    return its dtype."""
    shape = _constant(node.args[0], "the shape of acc.shared_array", site, namespace, local)
    dims = shape if isinstance(shape, tuple) else (shape,)
    if not dims or not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool)
                           and d > 0 for d in dims):
        raise site.error(node, f"the shape of acc.shared_array must be a positive integer "
                               f"or a tuple of them, got {shape!r}")
    literal = tuple(int(d) for d in dims) if isinstance(shape, tuple) else int(shape)
    node.args[0] = ast.copy_location(ast.Constant(literal), node.args[0])  # type: ignore[arg-type]
    kind = _constant(node.args[1], "the dtype of acc.shared_array", site, namespace, local)
    try:
        dtype = np.dtype(kind)
    except TypeError:
        dtype = None
    if dtype is None or dtype.kind not in "biufc":
        raise site.error(node, f"the dtype of acc.shared_array must be a numeric type such "
                               f"as np.float64, got {kind!r}")
    return dtype


def _check_device_call(node: ast.Call, callee: Any, site: Site, acc: str | None) -> None:
    """A call of the device function ``callee``: ``acc`` passed first exactly
    when it takes ``acc``, and the right number of arguments."""
    name, parsed = callee.__name__, callee.parsed
    passes = [k for k, arg in enumerate(node.args) if is_name(arg, acc)]
    if parsed.acc is not None:
        if acc is None:
            raise site.error(node, f"device function {name} takes acc, so only kernels and "
                                   f"device functions that take acc can call it; add acc as "
                                   f"the first parameter here and call {name}(acc, ...)")
        if passes != [0]:
            raise site.error(node, f"device function {name} takes acc first: call it as "
                                   f"{name}({acc}, ...)")
    elif passes:
        raise site.error(node, f"device function {name} does not take acc; drop {acc} from "
                               f"the call (or declare def {name}(acc, ...))")
    given = len(node.args) + len(node.keywords)
    starred = any(isinstance(a, ast.Starred) for a in node.args)
    if not starred and given != len(parsed.params):
        raise site.error(node, f"device function {name} takes {len(parsed.params)} "
                               f"argument(s) ({', '.join(parsed.params)}), {given} given")


def check_calls(parsed: ParsedFunction, fdef: ast.FunctionDef,
                namespace: dict[str, Any], local: set[str]) -> None:
    """Check every call of ``fdef`` (still written with ``acc.<member>``) against
    the globals it names (see the module); shared arrays' shapes become literals."""
    from ..kernel import DeviceFunction, Kernel
    site, acc = parsed.site, parsed.acc
    shared: dict[str, np.dtype] = {}
    for node in ast.walk(fdef):  # shared arrays first: atomics below look them up
        if isinstance(node, ast.Call) and acc_member(node.func, acc) == "shared_array":
            dtype = _check_shared_array(node, site, namespace, local)
            for assign in ast.walk(fdef):
                if isinstance(assign, ast.Assign) and assign.value is node:
                    shared.update((t.id, dtype) for t in assign.targets
                                  if isinstance(t, ast.Name))
    for node in ast.walk(fdef):
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
            ok, module = global_value(node.value, namespace, local)
            if ok and isinstance(module, types.ModuleType) and not hasattr(module, node.attr):
                close = difflib.get_close_matches(node.attr, dir(module), n=3)
                hint = f"; did you mean {', '.join(close)}?" if close else ""
                raise site.error(node, f"module {module.__name__} has no attribute "
                                       f"{node.attr!r}{hint}")
        if not isinstance(node, ast.Call):
            continue
        member = acc_member(node.func, acc)
        array = base_name(node.args[0]) if member in ATOMIC_DTYPES else None
        if member is not None and array is not None and array in shared:
            problem = atomic_dtype_problem(member, shared[array])
            if problem:
                raise site.error(node, problem)
        if member is not None:
            continue
        ok, callee = global_value(node.func, namespace, local)
        called = ast.unparse(node.func)
        if ok and isinstance(callee, Kernel):
            raise site.error(node, f"kernel {callee.__name__} is called from device code; "
                                   f"kernels are launched from the host. Make the shared "
                                   f"part a @pt.device_function")
        if ok and isinstance(callee, DeviceFunction):
            _check_device_call(node, callee, site, acc)
            continue
        if any(is_name(arg, acc) for arg in node.args):
            raise site.error(node, f"{acc} is passed to {called}, which is not a "
                                   f"@pt.device_function that takes acc; only device "
                                   f"functions declared def f(acc, ...) receive the "
                                   f"accelerator")
        what = python_only(callee) if ok else None
        if what is not None:
            raise site.error(node, f"{called} is a {what} ({callee.__module__}), which "
                                   f"device code cannot call; decorate it with "
                                   f"@pt.device_function to call it from kernels on "
                                   f"every backend")
