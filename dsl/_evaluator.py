"""Evaluate a parsed `.pvp` program into plain manifest data plus a source map.

Evaluation is pure and total: the only input is the text of the files a program
imports (read through a `Reader` the caller supplies), and every run ends, because
each evaluation step is charged against a budget, function calls are bounded in
depth, and integers, strings and lists are bounded in size. Running out of any of
these is a `DslError` at the position that was being evaluated, never a hang, a
`RecursionError` or a `MemoryError`.

The result is not yet a `Manifest`: it is the same shape of plain data the YAML front
end produces, so both go through one schema check and one set of tree rules.

Scoping: `let` in a block binds for the rest of that block and nested blocks. Functions
capture their scope by reference, so a function may call itself or a function bound
later in the same block; using a plain value before its `let` is an error.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

from . import _ast as A
from ._builtins import make_builtins
from ._errors import DslError, did_you_mean, location_in_text
from ._operators import INT_MAX, INT_MIN, binary, check_length, show
from ._positions import Path, SourceMap
from ._values import Builtin, Closure, Record, type_name

Reader = Callable[[str], bytes]

MAX_CALL_DEPTH = 100
BASE_STEP_BUDGET = 2_000_000
STEPS_PER_SOURCE_CHAR = 10
MANIFEST_DEFAULTS = {"schema_version": 2}


class Scope:
    """Names visible at a point: this block's bindings, then the enclosing scope's."""

    __slots__ = ("parent", "pending", "vars")

    def __init__(self, parent: Scope | None, pending: frozenset[str] = frozenset()) -> None:
        self.vars: dict[str, Any] = {}
        self.parent = parent
        self.pending = pending

    def lookup(self, name: str) -> Any:
        scope: Scope | None = self
        while scope is not None:
            if name in scope.vars:
                return scope.vars[name]
            if name in scope.pending:
                raise _UsedBeforeLet(name)
            scope = scope.parent
        raise KeyError(name)

    def visible(self) -> set[str]:
        names: set[str] = set()
        scope: Scope | None = self
        while scope is not None:
            names.update(scope.vars)
            scope = scope.parent
        return names


class _UsedBeforeLet(Exception):
    pass


class _Target:
    """What a block's fields are written into: the manifest itself, or one node."""

    __slots__ = ("explicit", "fields", "key_pos", "kind", "name", "value_pos")

    def __init__(self, kind: str, name: str) -> None:
        self.kind = kind  # "manifest" | "node"
        self.name = name
        self.fields: dict[str, Any] = {}
        self.key_pos: dict[str, tuple[str, int, int]] = {}
        self.value_pos: dict[str, tuple[str, int, int]] = {}
        self.explicit: dict[str, tuple[str, int, int]] = {}


class _ModuleResult:
    __slots__ = ("exports", "manifest")

    def __init__(self, exports: Record, manifest: tuple[dict[str, Any], SourceMap] | None) -> None:
        self.exports = exports
        self.manifest = manifest


def evaluate_file(path: str, reader: Reader) -> tuple[dict[str, Any], SourceMap]:
    """Evaluate the manifest file at `path`: (plain manifest data, source map)."""
    evaluator = Evaluator(reader)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 20_000))
    try:
        result = evaluator.load(path, importer=None)
    except RecursionError:
        raise evaluator.error(evaluator.last_span, "evaluation nested too deeply") from None
    finally:
        sys.setrecursionlimit(limit)
    if result.manifest is None:
        raise DslError.at(
            location_in_text(path, evaluator.texts.get(path, ""), 1, 1),
            "no manifest block in this file",
            'a manifest file needs one block: manifest "name" { ... }',
        )
    return result.manifest


class Evaluator:
    """One evaluation: the files it has read, its budget, and where it is."""

    def __init__(self, reader: Reader) -> None:
        self.reader = reader
        self.texts: dict[str, str] = {}
        self.modules: dict[str, _ModuleResult] = {}
        self.loading: list[str] = []
        self.steps = 0
        self.budget = BASE_STEP_BUDGET
        self.call_depth = 0
        self.file = ""
        self.last_span: A.Span = (1, 1, 1, 1)
        self.smap = SourceMap()
        self.nodes: list[_Target] = []
        self.builtins = Scope(None)
        for builtin in make_builtins(self):
            self.builtins.vars[builtin.name] = builtin

    # --- errors and positions ------------------------------------------------------------

    def error(self, span: A.Span, summary: str, detail: str = "") -> DslError:
        line, col = (span[0], span[1]) if span[0] else (1, 1)
        return DslError.at(
            location_in_text(self.file, self.texts.get(self.file, ""), line, col), summary, detail
        )

    def pos(self, span: A.Span) -> tuple[str, int, int]:
        return (self.file, span[0] or 1, span[1] or 1)

    # --- modules -------------------------------------------------------------------------

    def load(self, path: str, importer: A.Import | None) -> _ModuleResult:
        from ._parser import parse
        from ._positions import decode_source

        key = os.path.normpath(path)
        if key in self.loading:
            chain = " -> ".join([*self.loading[self.loading.index(key) :], key])
            raise self.error(importer.span if importer else (1, 1, 1, 1), f"import cycle: {chain}")
        if key in self.modules:
            return self.modules[key]
        try:
            data = self.reader(path)
        except OSError as exc:
            if importer is None:
                raise DslError.at(None, f"cannot read {path}: {exc.strerror or exc}") from None
            raise self.error(
                importer.span,
                f"cannot import {importer.path!r}: {exc.strerror or exc}",
                f"looked for {path}",
            ) from None
        text = decode_source(data, path)
        self.texts[path] = text
        self.smap.texts[path] = text
        self.budget += STEPS_PER_SOURCE_CHAR * len(text)
        module, _comments = parse(text, path)
        saved_file = self.file
        self.loading.append(key)
        self.file = path
        try:
            result = self._module(module, path)
        finally:
            self.loading.pop()
            self.file = saved_file
        self.modules[key] = result
        return result

    def _module(self, module: A.Module, path: str) -> _ModuleResult:
        lets = frozenset(item.name for item in module.items if isinstance(item, A.Let))
        scope = Scope(self.builtins, lets)
        exports = Record({})
        manifest: A.ManifestBlock | None = None
        for item in module.items:
            if isinstance(item, A.Import):
                target = os.path.join(os.path.dirname(path), item.path)
                imported = self.load(target, item)
                if imported.manifest is not None:
                    raise self.error(
                        item.span, f"{item.path!r} declares a manifest and cannot be imported"
                    )
                self._bind(scope, item.alias, imported.exports, item.span)
            elif isinstance(item, A.Let):
                value = self._let(scope, item)
                exports.fields[item.name] = value
                exports.key_pos[item.name] = self.pos(item.span)
            else:
                if manifest is not None:
                    raise self.error(item.span, "a file holds one manifest block; this is a second")
                manifest = item
        if manifest is None:
            return _ModuleResult(exports, None)
        return _ModuleResult(exports, self._manifest(manifest, scope))

    def _bind(self, scope: Scope, name: str, value: Any, span: A.Span) -> None:
        if name in scope.vars:
            raise self.error(span, f"{name!r} is already bound in this block")
        scope.vars[name] = value

    def _let(self, scope: Scope, item: A.Let) -> Any:
        value = self.eval(item.value, scope)
        if isinstance(value, Closure) and not value.name:
            value.name = item.name
        self._bind(scope, item.name, value, item.span)
        return value

    # --- the manifest and its nodes ------------------------------------------------------

    def _manifest(self, block: A.ManifestBlock, scope: Scope) -> tuple[dict[str, Any], SourceMap]:
        name = self.eval(block.name, scope)
        target = _Target("manifest", name)
        self.nodes = []
        self.smap.values[()] = self.pos(block.span)
        self._block(block.body, scope, target, parent=None)
        data: dict[str, Any] = dict(MANIFEST_DEFAULTS)
        self.smap.values[("name",)] = self.pos(block.name.span)
        data["name"] = name
        for key, value in target.fields.items():
            data[key] = self._to_data(value, (key,), target.value_pos.get(key))
            if key in target.key_pos:
                self.smap.keys[(key,)] = target.key_pos[key]
        if self.nodes:
            if "nodes" in target.fields:
                raise self.error(block.span, "use node blocks or a nodes list, not both")
            data["nodes"] = [self._node_data(i, node) for i, node in enumerate(self.nodes)]
        return data, self.smap

    def _node_data(self, index: int, node: _Target) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in node.fields.items():
            path = ("nodes", index, key)
            out[key] = self._to_data(value, path, node.value_pos.get(key))
            if key in node.key_pos:
                self.smap.keys[path] = node.key_pos[key]
        self.smap.values[("nodes", index)] = node.value_pos["@"]
        return out

    def _to_data(self, value: Any, path: Path, pos: tuple[str, int, int] | None) -> Any:
        """A runtime value as plain data (dicts, lists), recording positions along the way."""
        if pos is not None:
            self.smap.values[path] = pos
        if isinstance(value, Record):
            out = {}
            for key, item in value.fields.items():
                if key in value.key_pos:
                    self.smap.keys[(*path, key)] = value.key_pos[key]
                out[key] = self._to_data(item, (*path, key), value.value_pos.get(key))
            return out
        if isinstance(value, tuple):
            return [self._to_data(item, (*path, i), None) for i, item in enumerate(value)]
        if isinstance(value, (Closure, Builtin)):
            where = self.smap.locate(path)
            raise DslError.at(where, f"{value!r} is a function, not a value a manifest can hold")
        return value

    def _block(self, block: A.Block, outer: Scope, target: _Target, parent: str | None) -> None:
        lets = frozenset(item.name for item in block.items if isinstance(item, A.Let))
        scope = Scope(outer, lets)
        for item in block.items:
            self._stmt(item, scope, target, parent)

    def _stmt(self, item: A.Stmt, scope: Scope, target: _Target, parent: str | None) -> None:
        self.charge(1, item.span)
        if isinstance(item, A.Field):
            self._set_field(
                target, item.name, self.eval(item.value, scope), item.span, item.value.span
            )
        elif isinstance(item, A.Spread):
            record = self.eval(item.value, scope)
            if not isinstance(record, Record):
                raise self.error(item.span, f"... needs a record, got {type_name(record)}")
            for key, value in record.fields.items():
                if key == "name":
                    raise self.error(
                        item.span, f"a spread record cannot set the {target.kind}'s name"
                    )
                target.fields[key] = value
                target.key_pos[key] = record.key_pos.get(key) or self.pos(item.span)
                target.value_pos[key] = record.value_pos.get(key) or self.pos(item.span)
        elif isinstance(item, A.Let):
            self._let(scope, item)
        elif isinstance(item, A.NodeBlock):
            self._node(item, scope, parent)
        elif isinstance(item, A.ForBlock):
            iterable = self.eval(item.iterable, scope)
            if not isinstance(iterable, tuple):
                raise self.error(item.iterable.span, f"for needs a list, got {type_name(iterable)}")
            for value in iterable:
                inner = Scope(scope)
                inner.vars[item.var] = value
                self._block(item.body, inner, target, parent)
        elif isinstance(item, A.IfBlock):
            branch: A.Block | A.IfBlock | None = item
            while isinstance(branch, A.IfBlock):
                if self._bool(branch.cond, scope, "if"):
                    self._block(branch.body, scope, target, parent)
                    return
                branch = branch.orelse
            if branch is not None:
                self._block(branch, scope, target, parent)

    def _set_field(
        self, target: _Target, name: str, value: Any, span: A.Span, value_span: A.Span
    ) -> None:
        if name == "name":
            what = (
                "node's name is given after `node`"
                if target.kind == "node"
                else "manifest's name is given after `manifest`"
            )
            raise self.error(span, f"the {what}", "remove this field")
        if name in target.explicit:
            first = target.explicit[name]
            if first == self.pos(span):
                raise self.error(span, f"field {name!r} is set again on each pass of a loop")
            raise self.error(
                span,
                f"field {name!r} is set twice",
                f"first set at {first[0]}:{first[1]}:{first[2]}",
            )
        target.explicit[name] = self.pos(span)
        target.fields[name] = value
        target.key_pos[name] = self.pos(span)
        target.value_pos[name] = self.pos(value_span)

    def _node(self, item: A.NodeBlock, scope: Scope, parent: str | None) -> None:
        name = self.eval(item.name, scope)
        node = _Target("node", name)
        node.fields["name"] = name
        node.value_pos["name"] = self.pos(item.name.span)
        node.value_pos["@"] = self.pos(item.span)
        if parent is not None:
            node.fields["parent"] = parent
            node.value_pos["parent"] = self.pos(item.span)
        self.nodes.append(node)
        self.charge(1, item.span)
        self._block(item.body, scope, node, parent=name)
        if parent is not None and node.fields.get("parent") != parent:
            raise self.error(
                item.span,
                f"node {name!r} is nested in {parent!r} but sets parent = {show(node.fields.get('parent'))}",
                "a nested node block's parent is the enclosing node; remove the parent field",
            )

    # --- expressions ---------------------------------------------------------------------

    def charge(self, steps: int, span: A.Span) -> None:
        self.steps += steps
        if self.steps > self.budget:
            raise self.error(
                span,
                f"evaluation exceeded its budget of {self.budget:,} steps",
                "a loop or recursion runs too long; manifests must evaluate quickly",
            )

    def _bool(self, expr: A.Expr, scope: Scope, what: str) -> bool:
        value = self.eval(expr, scope)
        if not isinstance(value, bool):
            raise self.error(expr.span, f"{what} needs a boolean, got {type_name(value)}")
        return value

    def checked_int(self, value: int, span: A.Span) -> int:
        if not INT_MIN <= value <= INT_MAX:
            raise self.error(span, "integer out of range", "integers are 64-bit signed")
        return value

    def eval(self, expr: A.Expr, scope: Scope) -> Any:
        self.steps += 1
        if self.steps > self.budget:
            self.charge(0, expr.span)
        method = _DISPATCH[type(expr)]
        return method(self, expr, scope)

    def _e_int(self, expr: A.IntLit, scope: Scope) -> int:
        return self.checked_int(expr.value, expr.span)

    def _e_str(self, expr: A.StrLit, scope: Scope) -> str:
        if len(expr.parts) == 1 and isinstance(expr.parts[0], str):
            return expr.parts[0]
        out = []
        for part in expr.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            value = self.eval(part, scope)
            if isinstance(value, bool) or not isinstance(value, (int, str)):
                raise self.error(
                    part.span, f"cannot interpolate a {type_name(value)} into a string"
                )
            out.append(str(value))
        text = "".join(out)
        self.check_string(text, expr.span)
        return text

    def check_string(self, text: str, span: A.Span) -> None:
        check_length(self, len(text), span)

    def _e_bool(self, expr: A.BoolLit, scope: Scope) -> bool:
        return expr.value

    def _e_null(self, expr: A.NullLit, scope: Scope) -> None:
        return None

    def _e_var(self, expr: A.Var, scope: Scope) -> Any:
        self.last_span = expr.span
        try:
            return scope.lookup(expr.name)
        except _UsedBeforeLet:
            raise self.error(expr.span, f"{expr.name!r} is used before its let-binding") from None
        except KeyError:
            raise self.error(
                expr.span,
                f"unknown name {expr.name!r}",
                did_you_mean(expr.name, scope.visible(), "names"),
            ) from None

    def _e_list(self, expr: A.ListLit, scope: Scope) -> tuple[Any, ...]:
        return tuple(self.eval(item, scope) for item in expr.items)

    def _e_comp(self, expr: A.ListComp, scope: Scope) -> tuple[Any, ...]:
        iterable = self.eval(expr.iterable, scope)
        if not isinstance(iterable, tuple):
            raise self.error(expr.iterable.span, f"for needs a list, got {type_name(iterable)}")
        out = []
        for value in iterable:
            inner = Scope(scope)
            inner.vars[expr.var] = value
            if expr.condition is None or self._bool(
                expr.condition, inner, "the if of a comprehension"
            ):
                out.append(self.eval(expr.element, inner))
        return tuple(out)

    def _e_record(self, expr: A.RecordLit, scope: Scope) -> Record:
        record = Record({})
        explicit: set[str] = set()
        for item in expr.items:
            if isinstance(item, A.Field):
                if item.name in explicit:
                    raise self.error(item.span, f"field {item.name!r} is set twice in this record")
                explicit.add(item.name)
                record.fields[item.name] = self.eval(item.value, scope)
                record.key_pos[item.name] = self.pos(item.span)
                record.value_pos[item.name] = self.pos(item.value.span)
            else:
                other = self.eval(item.value, scope)
                if not isinstance(other, Record):
                    raise self.error(item.span, f"... needs a record, got {type_name(other)}")
                record.fields.update(other.fields)
                for key in other.fields:
                    record.key_pos[key] = other.key_pos.get(key) or self.pos(item.span)
                    record.value_pos[key] = other.value_pos.get(key) or self.pos(item.span)
        return record

    def _e_lambda(self, expr: A.Lambda, scope: Scope) -> Closure:
        return Closure(expr.params, expr.body, scope, self.file)

    def _e_call(self, expr: A.Call, scope: Scope) -> Any:
        func = self.eval(expr.func, scope)
        args = [self.eval(arg, scope) for arg in expr.args]
        self.last_span = expr.span
        if isinstance(func, Builtin):
            if not func.min_args <= len(args) <= func.max_args:
                want = (
                    str(func.min_args)
                    if func.min_args == func.max_args
                    else f"{func.min_args} to {func.max_args}"
                )
                raise self.error(
                    expr.span, f"{func.name}() takes {want} argument(s), got {len(args)}"
                )
            return func.fn(expr.span, *args)
        if not isinstance(func, Closure):
            raise self.error(expr.func.span, f"cannot call a {type_name(func)}")
        if len(args) != len(func.params):
            raise self.error(
                expr.span,
                f"{func.name or 'function'}() takes {len(func.params)} argument(s), got {len(args)}",
            )
        if self.call_depth >= MAX_CALL_DEPTH:
            raise self.error(
                expr.span,
                f"calls nested more than {MAX_CALL_DEPTH} deep in {func.name or 'a function'}()",
                "does a function call itself without end?",
            )
        inner = Scope(func.scope)
        inner.vars.update(zip(func.params, args, strict=True))
        saved_file = self.file
        self.call_depth += 1
        self.file = func.file
        try:
            return self.eval(func.body, inner)
        finally:
            self.call_depth -= 1
            self.file = saved_file

    def _e_attr(self, expr: A.Attr, scope: Scope) -> Any:
        obj = self.eval(expr.obj, scope)
        if not isinstance(obj, Record):
            raise self.error(expr.span, f"cannot read .{expr.name} of a {type_name(obj)}")
        if expr.name not in obj.fields:
            raise self.error(
                expr.span,
                f"record has no field {expr.name!r}",
                did_you_mean(expr.name, obj.fields, "fields"),
            )
        return obj.fields[expr.name]

    def _e_index(self, expr: A.Index, scope: Scope) -> Any:
        obj = self.eval(expr.obj, scope)
        index = self.eval(expr.index, scope)
        if isinstance(obj, tuple):
            if isinstance(index, bool) or not isinstance(index, int):
                raise self.error(
                    expr.index.span, f"a list index must be an int, got {type_name(index)}"
                )
            if not 0 <= index < len(obj):
                raise self.error(
                    expr.index.span, f"index {index} is out of range for a list of {len(obj)}"
                )
            return obj[index]
        if isinstance(obj, Record):
            if not isinstance(index, str):
                raise self.error(
                    expr.index.span, f"a record key must be a string, got {type_name(index)}"
                )
            if index not in obj.fields:
                raise self.error(
                    expr.index.span,
                    f"record has no field {index!r}",
                    did_you_mean(index, obj.fields, "fields"),
                )
            return obj.fields[index]
        raise self.error(expr.span, f"cannot index a {type_name(obj)}")

    def _e_if(self, expr: A.IfExpr, scope: Scope) -> Any:
        return self.eval(expr.then if self._bool(expr.cond, scope, "if") else expr.orelse, scope)

    def _e_unary(self, expr: A.UnaryOp, scope: Scope) -> Any:
        if expr.op == "not":
            return not self._bool(expr.operand, scope, "not")
        value = self.eval(expr.operand, scope)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(expr.span, f"cannot negate a {type_name(value)}")
        return self.checked_int(-value, expr.span)

    def _e_binop(self, expr: A.BinOp, scope: Scope) -> Any:
        op = expr.op
        if op == "and":
            return self._bool(expr.left, scope, "and") and self._bool(expr.right, scope, "and")
        if op == "or":
            return self._bool(expr.left, scope, "or") or self._bool(expr.right, scope, "or")
        return binary(self, expr, self.eval(expr.left, scope), self.eval(expr.right, scope))


_DISPATCH: dict[type, Callable[[Evaluator, Any, Scope], Any]] = {
    A.IntLit: Evaluator._e_int,
    A.StrLit: Evaluator._e_str,
    A.BoolLit: Evaluator._e_bool,
    A.NullLit: Evaluator._e_null,
    A.Var: Evaluator._e_var,
    A.ListLit: Evaluator._e_list,
    A.ListComp: Evaluator._e_comp,
    A.RecordLit: Evaluator._e_record,
    A.Lambda: Evaluator._e_lambda,
    A.Call: Evaluator._e_call,
    A.Attr: Evaluator._e_attr,
    A.Index: Evaluator._e_index,
    A.IfExpr: Evaluator._e_if,
    A.UnaryOp: Evaluator._e_unary,
    A.BinOp: Evaluator._e_binop,
}
