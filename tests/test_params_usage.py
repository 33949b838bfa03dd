"""Every parameter is read, and every pipeline stage tracks what it reads.

* `params.yaml`'s keys are exactly the schema's fields (`vqe.config`), section by section: conf/ gives
  every value and nothing else.
* Every key is read by some code: a static data-flow analysis follows `params = load_params(...)` from
  every notebook and from the CLI through the calls into `vqe` (aliases such as `cfg = params.stage_b`,
  `replace(...)`, arguments, `self.cfg = cfg` in a class, properties and methods of the schema classes,
  `asdict(section)["key"]`) and records the attribute chains it reads (`params.stage_b.train.warmup`).
  A key counts as read only when its own value is used; a whole section handed to foreign code (a
  fingerprint of `asdict(cfg)`, say) reads no particular key. The few keys read in another way are in
  `READ_ELSEWHERE`, each with the reason.
* Each DVC stage's `params:` cover every chain its notebook reads, here counting whole sections handed
  on as reads of the whole section (conservative), and its `deps:` cover every `vqe` module its notebook
  imports, transitively (lazy imports inside functions included, package `__init__` files too).

The analysis is name-based and intraprocedurally flow-insensitive; what it cannot follow (a tracked value
in a foreign call, an `if` expression, a loop variable) it counts as a read of the whole value, so it
errs towards demanding more `params:` entries, never fewer.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import re
import typing
from functools import lru_cache
from pathlib import Path
from typing import Any, Optional, Union

import pytest
import yaml

from vqe import config as schema
from vqe.config import Params, compose, params_from_dict
from vqe.util.errors import VQEError

ROOT = Path(__file__).resolve().parents[1]
VQE = ROOT / "vqe"

# Keys no Python code reads by attribute, with where they are read instead.
READ_ELSEWHERE = {
    ("paths", "notebooks"): "vqe/util/notebook.py (every stage's command) and vqe/reporting/headline.py read it from "
                            "params.yaml as it is; dvc.yaml templates the stages' outputs with it",
    ("eval", "baselines"): "dvc.yaml: the `baselines` stage's `foreach: ${eval.baselines}`",
    ("eval", "adapt"): "dvc.yaml: the `evaluate_adapt` stage's `foreach: ${eval.adapt}`",
    ("eval", "adapt_seconds"): "dvc.yaml: the `evaluate_adapt` stage's `-p adapt_seconds ${eval.adapt_seconds}`",
    ("baselines", "rows"): "dvc.yaml: the `train_baseline` and `evaluate_baseline` stages' `foreach: ${baselines.rows}`",
}

# vqe functions that return (a copy of) a Params argument rather than reading it: {qualified name: index}.
RETURNS_ITS_ARGUMENT = {
    # asdict(params) + dotlist overrides + params_from_dict: the same parameters, some of them changed; the
    # keys are read where the returned copy is used.
    "vqe.config.with_overrides": 0,
}

# The keys removed from sections that never read them (issue 16): each must now be an unknown key.
REMOVED = [
    ("stage_b", "train", "offset_lr_mult"), ("nogan", "train", "offset_lr_mult"),
    ("nogan_fast", "train", "offset_lr_mult"),
    ("stage_b", "train", "ssim_weight"), ("nogan", "train", "ssim_weight"), ("nogan_fast", "train", "ssim_weight"),
    ("nogan_fast", "train", "stage_a_lr"),
]


# --- the schema -----------------------------------------------------------------------------------

def _unwrap(t: Any) -> Any:
    """Optional[X] -> X."""
    if typing.get_origin(t) is Union:
        args = [a for a in typing.get_args(t) if a is not type(None)]
        return args[0] if len(args) == 1 else t
    return t


@lru_cache(maxsize=None)
def _hints(cls: type) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in typing.get_type_hints(cls).items() if k in names}


def _child(t: Any, key: str) -> Any:
    """The schema type of `key` inside a value of type `t` (dict keys: any name), or None."""
    t = _unwrap(t)
    if dataclasses.is_dataclass(t):
        return _hints(t).get(key)
    if typing.get_origin(t) is dict:
        return typing.get_args(t)[1]
    return None


def type_at(path: tuple[str, ...]) -> Any:
    t: Any = Params
    for key in path:
        t = _child(t, key)
        if t is None:
            return None
    return t


def is_section(t: Any) -> bool:
    return dataclasses.is_dataclass(_unwrap(t))


def leaves(cls: type = Params, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every key of the schema down to the values that are not sections (lists and maps are values)."""
    out = []
    for name, t in _hints(cls).items():
        out += leaves(_unwrap(t), prefix + (name,)) if is_section(t) else [prefix + (name,)]
    return out


def _check_keys(data: Any, t: Any, path: str, problems: list[str]) -> None:
    """Compare a composed dict with the schema, both ways (list items: no missing-key check, see ClipSpec)."""
    t = _unwrap(t)
    if dataclasses.is_dataclass(t):
        fields = _hints(t)
        for key in sorted(set(data) - set(fields)):
            problems.append(f"{path}{key}: in the YAML, not in {t.__name__}")
        for key in sorted(set(fields) - set(data)):
            problems.append(f"{path}{key}: in {t.__name__}, not in the YAML")
        for key in set(data) & set(fields):
            _check_keys(data[key], fields[key], f"{path}{key}.", problems)
    elif typing.get_origin(t) is dict and isinstance(data, dict):
        for key, value in data.items():
            _check_keys(value, typing.get_args(t)[1], f"{path}{key}.", problems)
    elif typing.get_origin(t) is list and isinstance(data, list):
        item = typing.get_args(t)[0]
        if dataclasses.is_dataclass(item):
            for i, value in enumerate(data):
                extra = set(value) - set(_hints(item))
                problems += [f"{path}[{i}].{k}: not in {item.__name__}" for k in sorted(extra)]


# --- sources: vqe modules and notebooks -----------------------------------------------------------

def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@lru_cache(maxsize=None)
def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(VQE.rglob("*.py"))}


def notebook_source(path: Path) -> str:
    cells = json.loads(path.read_text())["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")


@lru_cache(maxsize=None)
def _tree(name: str) -> ast.Module:
    if name.startswith("notebooks/"):
        return ast.parse(notebook_source(ROOT / name), filename=name)
    return ast.parse(_modules()[name].read_text(), filename=str(_modules()[name]))


def _is_package(name: str) -> bool:
    return name in _modules() and _modules()[name].name == "__init__.py"


def _absolute(module: Optional[str], level: int, importer: str) -> str:
    """The absolute name of `from <level dots><module> import ...` inside `importer`."""
    if level == 0:
        return module or ""
    package = importer if _is_package(importer) else importer.rpartition(".")[0]
    for _ in range(level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{module}" if module else package


def imported_modules(name: str) -> set[str]:
    """The vqe modules a module (or notebook) imports anywhere in it, with their parent packages."""
    out: set[str] = set()
    for node in ast.walk(_tree(name)):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node.module, node.level, name)
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for target in targets:
            parts = target.split(".")
            out |= {m for m in (".".join(parts[:i]) for i in range(1, len(parts) + 1)) if m in _modules()}
    return out


def import_closure(notebook: str) -> set[str]:
    todo, seen = list(imported_modules(notebook)), set()
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo += imported_modules(m)
    return seen


# --- the data-flow analysis -------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Tracked:
    """The parameters at `path` (() = the whole Params), or with `view` their `asdict()` dict."""

    path: tuple[str, ...]
    view: bool = False


@dataclasses.dataclass(frozen=True)
class Ref:
    kind: str  # module | func | class | ext
    module: str
    name: str = ""


LOAD_PARAMS = Ref("func", "vqe.config", "load_params")
REPLACE, ASDICT = Ref("ext", "dataclasses", "replace"), Ref("ext", "dataclasses", "asdict")
Read = tuple[tuple[str, ...], bool]  # (path, generic): generic = a whole value handed on, no key of it used


class Program:
    """Resolves names across the vqe modules and analyses functions, memoised by their tracked arguments."""

    def __init__(self) -> None:
        self.memo: dict[Any, tuple[Optional[Tracked], frozenset[Read], dict[str, Tracked]]] = {}

    @lru_cache(maxsize=None)
    def defs(self, module: str) -> dict[str, ast.AST]:
        return {n.name: n for n in _tree(module).body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}

    def bindings(self, module: str, nodes: list[ast.AST]) -> dict[str, Ref]:
        out: dict[str, Ref] = {}
        for node in nodes:
            if isinstance(node, ast.Import):
                for a in node.names:
                    top = a.name if a.asname else a.name.split(".")[0]
                    kind = "module" if top in _modules() else "ext"
                    out[a.asname or top] = Ref(kind, top)
            elif isinstance(node, ast.ImportFrom):
                base = _absolute(node.module, node.level, module)
                for a in node.names:
                    if f"{base}.{a.name}" in _modules():
                        out[a.asname or a.name] = Ref("module", f"{base}.{a.name}")
                    else:
                        out[a.asname or a.name] = Ref("sym" if base in _modules() else "ext", base, a.name)
        return out

    @lru_cache(maxsize=None)
    def module_bindings(self, module: str) -> dict[str, Ref]:
        return self.bindings(module, list(ast.walk(_tree(module))) if module.startswith("notebooks/")
                             else list(_tree(module).body))

    def symbol(self, module: str, name: str, depth: int = 0) -> Optional[Ref]:
        node = self.defs(module).get(name)
        if node is not None:
            return Ref("class" if isinstance(node, ast.ClassDef) else "func", module, name)
        ref = self.module_bindings(module).get(name)
        if ref is not None and ref.kind == "sym" and depth < 10:
            return self.symbol(ref.module, ref.name, depth + 1)
        return ref

    def method(self, module: str, cls: str, name: str) -> Optional[tuple[str, ast.ClassDef, ast.FunctionDef]]:
        """`name` in class `cls` of `module` or in its vqe base classes."""
        node = self.defs(module).get(cls)
        if not isinstance(node, ast.ClassDef):
            return None
        for item in node.body:
            if isinstance(item, ast.FunctionDef) and item.name == name:
                return module, node, item
        for base in node.bases:
            ref = self.symbol(module, base.id) if isinstance(base, ast.Name) else None
            if ref is not None and ref.kind == "class":
                found = self.method(ref.module, ref.name, name)
                if found:
                    return found
        return None

    def run(self, module: str, fn: ast.AST, env: dict[str, Tracked], owner: Optional[str] = None,
            consts: Optional[dict[str, Any]] = None):
        """Analyse `fn` (a def, or a module body) with `env`: (returned value, reads, self.* bindings).
        `consts`: a notebook's parameters as the stage's command sets them."""
        key = (module, id(fn), owner, frozenset(env.items()), frozenset((consts or {}).items()))
        if key in self.memo:
            return self.memo[key]
        self.memo[key] = (None, frozenset(), {})  # recursion: nothing more
        scope = Scope(self, module, env, owner, fn, consts or {})
        body = fn.body if isinstance(fn, (ast.FunctionDef, ast.Module, ast.AsyncFunctionDef)) else []
        scope.dry = True
        for _ in range(3):  # the aliases first, flow-insensitively (an alias may be used above its assignment)
            scope.block(body)
        scope.dry, scope.returns = False, []
        scope.block(body)
        result = scope.result()
        self.memo[key] = result
        return result


class Scope:
    """One function's (or notebook's) evaluation: `env` maps local names (and `self.x`) to tracked values."""

    def __init__(self, program: Program, module: str, env: dict[str, Tracked], owner: Optional[str], fn: ast.AST,
                 consts: dict[str, Any]):
        self.p, self.module, self.owner, self.consts = program, module, owner, consts
        self.env = dict(env)
        self.local = program.bindings(module, list(ast.walk(fn))) if isinstance(fn, ast.FunctionDef) else {}
        if owner and isinstance(fn, ast.FunctionDef) and any(
                isinstance(d, ast.Name) and d.id == "classmethod" for d in fn.decorator_list):
            self.local["cls"] = Ref("class", module, owner)  # `cls(...)` in a classmethod builds its class
        self.reads: set[Read] = set()
        self.returns: list[Tracked] = []
        self.dry = False

    def decide(self, test: ast.AST) -> Optional[bool]:
        """`name == constant` (or !=) on a notebook parameter that the stage's command sets, else None."""
        if isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.left, ast.Name) \
                and test.left.id in self.consts and isinstance(test.comparators[0], ast.Constant) \
                and isinstance(test.ops[0], (ast.Eq, ast.NotEq)):
            equal = self.consts[test.left.id] == test.comparators[0].value
            return equal if isinstance(test.ops[0], ast.Eq) else not equal
        return None

    def unrecorded(self, *nodes: ast.AST) -> None:
        """Evaluate for aliases and calls but record no reads: what only decides whether to raise an error
        cannot change a stage's outputs (a failed stage has none)."""
        dry, self.dry = self.dry, True
        for node in nodes:
            if isinstance(node, ast.stmt):
                self.stmt(node)
            else:
                self.use(node)
        self.dry = dry

    def result(self):
        ret = self.returns[0] if self.returns and all(r == self.returns[0] for r in self.returns) else None
        if ret is None:
            for r in self.returns:
                self.use_tracked(r)
        return ret, frozenset(self.reads), {k: v for k, v in self.env.items() if k.startswith("self.")}

    # reads
    def use_tracked(self, t: Tracked) -> None:
        if not self.dry:
            self.reads.add((t.path, t.view or is_section(type_at(t.path))))

    def use(self, node: Optional[ast.AST]) -> None:
        if node is not None:
            t = self.value(node)
            if t is not None:
                self.use_tracked(t)

    def merge(self, reads: frozenset[Read]) -> None:
        if not self.dry:
            self.reads |= reads

    # statements
    def block(self, stmts: list[ast.stmt]) -> None:
        for stmt in stmts:
            self.stmt(stmt)

    def bind(self, target: ast.AST, value: Optional[ast.AST]) -> None:
        if isinstance(target, (ast.Tuple, ast.List)) and isinstance(value, (ast.Tuple, ast.List)) \
                and len(target.elts) == len(value.elts):
            for t, v in zip(target.elts, value.elts):
                self.bind(t, v)
            return
        t = self.value(value) if value is not None else None
        name = (target.id if isinstance(target, ast.Name) else
                f"self.{target.attr}" if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name)
                and target.value.id == "self" else None)
        if t is not None and name is not None:
            self.env[name] = t
        elif t is not None:
            self.use_tracked(t)
        if not isinstance(target, ast.Name):
            for child in ast.iter_child_nodes(target):
                if isinstance(child, ast.expr) and not isinstance(child, ast.Name):
                    self.use(child)

    def stmt(self, node: ast.stmt) -> None:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                self.bind(target, node.value)
        elif isinstance(node, ast.AnnAssign):
            self.bind(node.target, node.value)
        elif isinstance(node, ast.Return):
            t = self.value(node.value) if node.value is not None else None
            if t is not None:
                self.returns.append(t)
        elif isinstance(node, (ast.Import, ast.ImportFrom, ast.ClassDef)):
            pass
        elif isinstance(node, ast.Raise):
            self.unrecorded(*[n for n in (node.exc, node.cause) if n is not None])
        elif isinstance(node, ast.If) and self.decide(node.test) is not None:
            self.block(node.body if self.decide(node.test) else node.orelse)
        elif isinstance(node, ast.If) and not node.orelse and all(isinstance(s, ast.Raise) for s in node.body):
            self.unrecorded(node.test, *node.body)  # a guard: `if <not valid>: raise ...`
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):  # a closure: read with our names
            for d in [*node.decorator_list, *node.args.defaults, *node.args.kw_defaults]:
                self.use(d)
            self.block(node.body)
        else:
            for _, value in ast.iter_fields(node):
                for item in value if isinstance(value, list) else [value]:
                    if isinstance(item, ast.stmt):
                        self.stmt(item)
                    elif isinstance(item, ast.expr):
                        self.use(item)
                    elif isinstance(item, ast.excepthandler):
                        self.use(item.type)
                        self.block(item.body)
                    elif isinstance(item, ast.withitem):
                        self.use(item.context_expr)
                    elif isinstance(item, ast.match_case):
                        self.use(item.guard)
                        self.block(item.body)

    # expressions
    def value(self, node: ast.AST) -> Optional[Tracked]:
        """The tracked value `node` evaluates to, if any; reads of its parts in other contexts are recorded."""
        if isinstance(node, ast.Name):
            return self.env.get(node.id)
        if isinstance(node, ast.Attribute):
            if isinstance(node.value, ast.Name) and node.value.id == "self" and f"self.{node.attr}" in self.env:
                return self.env[f"self.{node.attr}"]
            base = self.value(node.value)
            if base is None:
                return None
            t = type_at(base.path)
            if not base.view and is_section(t):
                if node.attr in _hints(_unwrap(t)):
                    return Tracked(base.path + (node.attr,))
                found = self.schema_method(base, node.attr)
                if found is not None and isinstance(getattr(_unwrap(t), node.attr, None), property):
                    return self.call_schema_method(base, found, [], {})
            self.use_tracked(base)  # a method of a value, or a method we cannot follow
            return None
        if isinstance(node, ast.Subscript):
            base = self.value(node.value)
            self.use(node.slice)
            if base is None:
                return None
            t = _unwrap(type_at(base.path))
            key = node.slice.value if isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str) \
                else "*"
            child = _child(t, key)
            if child is not None and (base.view or typing.get_origin(t) is dict):
                return Tracked(base.path + (key,), base.view and (is_section(child) or typing.get_origin(
                    _unwrap(child)) is dict))
            self.use_tracked(base)
            return None
        if isinstance(node, ast.Call):
            return self.call(node)
        if isinstance(node, ast.Lambda):
            self.use(node.body)
            return None
        if isinstance(node, ast.IfExp) and self.decide(node.test) is not None:
            return self.value(node.body if self.decide(node.test) else node.orelse)
        if isinstance(node, ast.Compare) and len(node.ops) == 1 and isinstance(node.ops[0], (ast.In, ast.NotIn)):
            container = self.value(node.comparators[0])
            if container is not None and typing.get_origin(_unwrap(type_at(container.path))) is dict:
                self.use(node.left)  # `key in params.<map>` reads one entry of the map, not all of them
                self.use_tracked(Tracked(container.path + ("*",)))
                return None
            if container is not None:
                self.use_tracked(container)
            self.use(node.left)
            return None
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.comprehension):
                for part in (child.iter, *child.ifs):
                    self.use(part)
            elif isinstance(child, ast.expr):
                self.use(child)
        return None

    def resolve(self, node: ast.AST) -> list[Ref]:
        if isinstance(node, ast.IfExp):
            decided = self.decide(node.test)
            if decided is not None:
                return self.resolve(node.body if decided else node.orelse)
            self.use(node.test)
            return self.resolve(node.body) + self.resolve(node.orelse)
        if isinstance(node, ast.Name):
            ref = self.local.get(node.id) or self.p.symbol(self.module, node.id)
            if ref is not None and ref.kind == "sym":
                ref = self.p.symbol(ref.module, ref.name)
            return [ref] if ref is not None else []
        if isinstance(node, ast.Attribute):
            if isinstance(node.value, ast.Name) and node.value.id == "self" and self.owner:
                found = self.p.method(self.module, self.owner, node.attr)
                return [Ref("method", self.module, node.attr)] if found else []
            bases = self.resolve(node.value) if isinstance(node.value, (ast.Name, ast.Attribute)) else []
            if len(bases) == 1 and bases[0].kind == "module":
                ref = self.p.symbol(bases[0].module, node.attr)
                if f"{bases[0].module}.{node.attr}" in _modules():
                    ref = Ref("module", f"{bases[0].module}.{node.attr}")
                return [ref] if ref is not None else []
            if len(bases) == 1 and bases[0].kind == "ext":
                return [Ref("ext", f"{bases[0].module}.{bases[0].name}".strip("."), node.attr)]
            if len(bases) == 1 and bases[0].kind == "class" and self.p.method(bases[0].module, bases[0].name, node.attr):
                return [Ref("classmethod", bases[0].module, f"{bases[0].name}.{node.attr}")]
        return []

    def schema_method(self, base: Tracked, name: str) -> Optional[tuple[str, ast.ClassDef, ast.FunctionDef]]:
        cls = _unwrap(type_at(base.path))
        for klass in cls.__mro__:
            if klass.__module__ == "vqe.config" and name in vars(klass):
                return self.p.method("vqe.config", klass.__name__, name)
        return None

    def call_schema_method(self, base: Tracked, found, args: list, kwargs: dict) -> Optional[Tracked]:
        module, cls, fn = found
        if fn.name == "validate":  # checking values is not using them
            return None
        ret, reads, _ = self.p.run(module, fn, {**self.params_env(fn, [base, *args], kwargs)}, cls.name)
        self.merge(reads)
        return ret

    def params_env(self, fn: ast.FunctionDef, args: list, kwargs: dict) -> dict[str, Tracked]:
        """Bind tracked arguments to `fn`'s parameters; those it can only take as *args/**kwargs are read."""
        names = [a.arg for a in [*fn.args.posonlyargs, *fn.args.args]]
        env: dict[str, Tracked] = {}
        for i, t in enumerate(args):
            if t is None:
                continue
            if i < len(names):
                env[names[i]] = t
            else:
                self.use_tracked(t)
        known = set(names) | {a.arg for a in fn.args.kwonlyargs}
        for k, t in kwargs.items():
            if t is not None and k in known:
                env[k] = t
            elif t is not None:
                self.use_tracked(t)
        return env

    def call(self, node: ast.Call) -> Optional[Tracked]:
        refs = self.resolve(node.func)
        schema_call = None
        if not refs and isinstance(node.func, ast.Attribute):
            base = self.value(node.func.value)
            if base is not None and not base.view and is_section(type_at(base.path)):
                schema_call = (base, self.schema_method(base, node.func.attr))
                if schema_call[1] is None:
                    self.use_tracked(base)
                    schema_call = None
            elif base is not None:
                self.use_tracked(base)
        elif not refs:
            self.use(node.func)
        args: list[Optional[Tracked]] = []
        for a in node.args:
            if isinstance(a, ast.Starred):
                self.use(a.value)
                args.append(None)
            else:
                args.append(self.value(a))
        kwargs: dict[str, Optional[Tracked]] = {}
        for kw in node.keywords:
            if kw.arg is None:  # `**asdict(section)`: one keyword argument per key of the section
                t = self.value(kw.value)
                if t is not None and t.view and is_section(type_at(t.path)):
                    for name in _hints(_unwrap(type_at(t.path))):
                        kwargs.setdefault(name, Tracked(t.path + (name,)))
                elif t is not None:
                    self.use_tracked(t)
            else:
                kwargs[kw.arg] = self.value(kw.value)
        if schema_call is not None:
            return self.call_schema_method(schema_call[0], schema_call[1], args, kwargs)
        vqe_refs = [r for r in refs if r.kind in ("func", "method", "classmethod", "class") and r != LOAD_PARAMS
                    and f"{r.module}.{r.name}" not in RETURNS_ITS_ARGUMENT]
        if vqe_refs and len(vqe_refs) == len(refs):  # (f if c else g)(...): both are followed
            results = [self.call_vqe(ref, args, kwargs) for ref in vqe_refs]
            return results[0] if len(results) == 1 else None
        handled: set[int] = set()
        result: Optional[Tracked] = None
        for ref in refs:
            qual = f"{ref.module}.{ref.name}"
            if ref == LOAD_PARAMS:
                result = Tracked(())
            elif ref == REPLACE and args and args[0] is not None:
                result, handled = args[0], handled | {0}
            elif ref == ASDICT and args and args[0] is not None:
                result, handled = Tracked(args[0].path, True), handled | {0}
            elif qual in RETURNS_ITS_ARGUMENT:
                i = RETURNS_ITS_ARGUMENT[qual]
                result, handled = (args[i] if i < len(args) else None), handled | {i}
        for i, t in enumerate(args):
            if t is not None and i not in handled:
                self.use_tracked(t)
        for t in kwargs.values():
            if t is not None:
                self.use_tracked(t)
        return result

    def call_vqe(self, ref: Ref, args: list, kwargs: dict) -> Optional[Tracked]:
        if ref.kind == "method":
            found = self.p.method(self.module, self.owner, ref.name)
            assert found is not None
            module, cls, fn = found
            selfs = {k: v for k, v in self.env.items() if k.startswith("self.")}
            ret, reads, _ = self.p.run(module, fn, {**selfs, **self.params_env(fn, [None, *args], kwargs)}, cls.name)
            self.merge(reads)
            return ret
        if ref.kind == "classmethod":  # `Class.method(...)`: the class itself as its first argument
            module, cls, fn = self.p.method(ref.module, *ref.name.split("."))
            ret, reads, _ = self.p.run(module, fn, self.params_env(fn, [None, *args], kwargs), cls.name)
            self.merge(reads)
            return ret
        if ref.kind == "func":
            fn = self.p.defs(ref.module)[ref.name]
            ret, reads, _ = self.p.run(ref.module, fn, self.params_env(fn, args, kwargs))
            self.merge(reads)
            return ret
        # a class: its __init__ with the arguments, then every other method with the self.* it kept
        init = self.p.method(ref.module, ref.name, "__init__")
        selfs: dict[str, Tracked] = {}
        if init is not None:
            module, cls, fn = init
            _, reads, selfs = self.p.run(module, fn, self.params_env(fn, [None, *args], kwargs), cls.name)
            self.merge(reads)
        else:
            for t in [*args, *kwargs.values()]:
                if t is not None:
                    self.use_tracked(t)
        if selfs:
            node = self.p.defs(ref.module)[ref.name]
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name != "__init__":
                    _, reads, _ = self.p.run(ref.module, item, selfs, ref.name)
                    self.merge(reads)
        return None


PROGRAM = Program()


def notebook_parameters(notebook: str) -> dict[str, Any]:
    """The constants of a notebook's `parameters` cell (papermill's defaults)."""
    cells = json.loads((ROOT / notebook).read_text())["cells"]
    out = {}
    for cell in cells:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            for node in ast.parse("".join(cell["source"])).body:
                if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
                    out.update({t.id: node.value.value for t in node.targets if isinstance(t, ast.Name)})
    return out


def notebook_reads(notebook: str, consts: Optional[dict[str, Any]] = None) -> frozenset[Read]:
    """Every params chain read by a notebook (a relative path such as notebooks/09_table1.ipynb), with
    its parameters `consts` (papermill's -p; None: its defaults, those not given being unknown)."""
    consts = notebook_parameters(notebook) if consts is None else consts
    return PROGRAM.run(notebook, _tree(notebook), {}, consts=consts)[1]


def annotated_roots() -> frozenset[Read]:
    """The reads of every vqe function with a parameter annotated by a schema class that occurs at one
    place in Params only (e.g. `synth: SynthParams`): code the analysis may not reach from a notebook,
    such as functions run in worker processes."""
    places: dict[str, list[tuple[str, ...]]] = {}

    def walk(cls: type, prefix: tuple[str, ...]) -> None:
        for name, t in _hints(cls).items():
            if is_section(t):
                places.setdefault(_unwrap(t).__name__, []).append(prefix + (name,))
                walk(_unwrap(t), prefix + (name,))

    walk(Params, ())
    unique = {name: paths[0] for name, paths in places.items() if len(paths) == 1}
    reads: frozenset[Read] = frozenset()
    for module in _modules():
        if module == "vqe.config":
            continue
        for node in _tree(module).body:
            if isinstance(node, ast.FunctionDef):
                env = {a.arg: Tracked(unique[a.annotation.id]) for a in [*node.args.args, *node.args.kwonlyargs]
                       if isinstance(a.annotation, ast.Name) and a.annotation.id in unique}
                if env:
                    reads |= PROGRAM.run(module, node, env)[1]
    return reads


def cli_reads() -> frozenset[Read]:
    reads: frozenset[Read] = frozenset()
    for node in _tree("vqe.cli").body:
        if isinstance(node, ast.FunctionDef):
            reads |= PROGRAM.run("vqe.cli", node, {})[1]
    return reads


# --- dvc.yaml -------------------------------------------------------------------------------------

def stages() -> dict[str, dict[str, Any]]:
    """Each stage's notebook, params entries (templated parts as '*') and deps."""
    out = {}
    for name, stage in yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"].items():
        body = stage.get("do", stage)
        args = body["cmd"].split()
        if args[:3] != ["python", "-m", "vqe.util.notebook"]:  # a module run as `python -m vqe....`: no notebook
            continue
        notebook = f"notebooks/{args[3]}.ipynb"
        consts = notebook_parameters(notebook)
        for key, value in re.findall(r"-p (\S+) (\S+)", body["cmd"]):
            if "${" in value:
                consts.pop(key, None)  # one value per foreach item: unknown here
            else:
                consts[key] = value if isinstance(consts.get(key, ""), str) else type(consts[key])(value)
        entries = []
        for entry in body.get("params", []):
            keys = [entry] if isinstance(entry, str) else [k for v in entry.values() for k in v]
            entries += [tuple(re.sub(r"\$\{[^}]*\}", "*", k).split(".")) for k in keys]
        out[name] = {"notebook": notebook, "consts": consts, "params": entries,
                     "deps": [d for d in body.get("deps", []) if "${" not in d]}
    return out


def covered(path: tuple[str, ...], entries: list[tuple[str, ...]]) -> bool:
    """An entry covers a chain it is a prefix of ('*' in an entry: any key; in the chain: a key chosen at run time)."""
    return any(len(e) <= len(path) and all(a == "*" or a == b for a, b in zip(e, path)) for e in entries)


# --- tests ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("profile", ["tiny", "smoke", "paper"])
def test_yaml_keys_are_exactly_the_schema_fields(profile):
    problems: list[str] = []
    _check_keys(compose(profile, ROOT / "conf"), Params, "", problems)
    assert problems == []


def test_committed_params_keys_are_exactly_the_schema_fields():
    problems: list[str] = []
    _check_keys(yaml.safe_load((ROOT / "params.yaml").read_text()), Params, "", problems)
    assert problems == []


def test_schema_classes_have_no_defaults_but_clip_entries():
    """One source of values: conf/. (ClipSpec and its LeavesSpec: Hydra has no defaults for the items of a list.)"""
    with_defaults = {f"{c.__name__}.{f.name}" for c in vars(schema).values()
                     if isinstance(c, type) and dataclasses.is_dataclass(c)
                     and c not in (schema.ClipSpec, schema.LeavesSpec)
                     for f in dataclasses.fields(c)
                     if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING}
    assert with_defaults == set()


@pytest.mark.parametrize("section,group,key", REMOVED)
def test_unread_keys_are_rejected(section, group, key):
    data = compose("tiny", ROOT / "conf")
    assert key not in data[section][group]
    data[section][group][key] = 0.0
    with pytest.raises(VQEError, match=f"{section}.{group}.{key}"):
        params_from_dict(data)


def test_a_missing_key_is_an_error_naming_it():
    data = compose("tiny", ROOT / "conf")
    del data["stage_b"]["train"]["ramp"]
    with pytest.raises(VQEError, match="missing parameter 'stage_b.train.ramp'"):
        params_from_dict(data)
    data = compose("tiny", ROOT / "conf")
    del data["resilience"]
    with pytest.raises(VQEError, match="'resilience'"):
        params_from_dict(data)


def test_every_key_is_read():
    notebooks = sorted(f"notebooks/{p.name}" for p in (ROOT / "notebooks").glob("*.ipynb"))
    # {}: a notebook's parameters unknown, so both sides of `if model == "nogan"` are followed
    reads = {path for nb in notebooks for path, generic in notebook_reads(nb, {}) if not generic}
    reads |= {path for path, generic in cli_reads() | annotated_roots() if not generic}
    dvc = (ROOT / "dvc.yaml").read_text()
    for key, where in READ_ELSEWHERE.items():
        assert "${" + ".".join(key) + "}" in dvc, f"{'.'.join(key)}: not read by {where} either"
    unread = [".".join(leaf) for leaf in leaves()
              if leaf not in READ_ELSEWHERE and not any(r[:len(leaf)] == leaf for r in reads)]
    assert unread == [], f"keys that no code reads: {unread}"


def test_the_analysis_sees_what_it_must():
    """Its own check: reads through aliases, classes, properties, replace() and asdict() views."""
    reads = {p for p, generic in notebook_reads("notebooks/04_nogan.ipynb", {"model": "nogan"}) if not generic}
    assert ("nogan", "train", "handoff_fraction") in reads  # the handoff_iters property
    assert ("nogan", "train", "critic_patience") in reads  # self.cfg in the schedule class
    assert ("stage_a", "train", "offset_lr_mult") in reads and ("stage_b", "train", "warmup") in reads
    assert not any(p[0] == "nogan_fast" for p in reads)  # the notebook's `model` parameter decides
    fast = {p for p, generic in notebook_reads("notebooks/04_nogan.ipynb", {"model": "nogan_fast"}) if not generic}
    assert ("nogan_fast", "model", "encoder_weights") in fast  # asdict(cfg)["encoder_weights"] in the model
    assert ("nogan_fast", "train", "handoff_fraction") in fast and not any(p[0] == "nogan" for p in fast)
    resilience = {p for p, _ in notebook_reads("notebooks/08b_resilience.ipynb", {"train_at": "lowest"})}
    assert ("nogan_fast", "train", "iters") in resilience  # through replace(params, nogan_fast=...)
    assert ("resilience", "train_at") not in resilience  # read only by a guard that raises
    ablation = {p for p, _ in notebook_reads("notebooks/05b_ablation.ipynb")}
    assert ("ablation", "variants", "*", "stage_a") in ablation and ("stage_b", "loss", "pp") in ablation


STAGES = stages()


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_params_cover_what_its_notebook_reads(stage):
    s = STAGES[stage]
    missing = sorted(".".join(path) or "<all params>" for path, _ in notebook_reads(s["notebook"], s["consts"])
                     if not covered(path, s["params"]))
    assert missing == [], f"{stage}: add to its params: {missing}"


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_deps_cover_the_modules_its_notebook_imports(stage):
    s = STAGES[stage]
    deps = [d.rstrip("/") for d in s["deps"]]
    files = sorted(_modules()[m].relative_to(ROOT).as_posix() for m in import_closure(s["notebook"]))
    missing = [f for f in files if not any(f == d or f.startswith(d + "/") for d in deps)]
    assert missing == [], f"{stage}: add to its deps: {missing}"


def test_the_import_closure_follows_lazy_and_package_imports():
    closure = import_closure("notebooks/01b_baselines.ipynb")
    assert {"vqe", "vqe.evaluation.evaluate", "vqe.data", "vqe.data.video", "vqe.metrics.perceptual"} <= closure
    assert "vqe.util.weights" in import_closure("notebooks/03_train_stage_b.ipynb")  # via vqe.losses
