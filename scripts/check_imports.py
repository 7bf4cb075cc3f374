"""Check the project's layout: one direction of dependency, no import cycles, thin jobs.

Reads every import of the project (module level and inside functions, ``import x`` and
``from x import y``, relative ones resolved) and fails, naming file and line, on:

- an import cycle among the project's modules;
- ``seqstream.model`` importing ``seqstream.pipeline``, ``jobs``, ``bench`` or a test;
- ``seqstream.pipeline.kafka`` importing any of seqstream but itself and ``seqstream.pipeline.errors``;
- the two drivers importing each other: ``seqstream.pipeline.stream`` and
  ``seqstream.pipeline.backfill`` are thin drivers over the same steps;
- ``seqstream.pipeline.sinks`` importing ``seqstream.pipeline.scoring``: the writer writes what a
  batch scored, the stream driver chooses the model around it;
- ``seqstream.pipeline.records`` or ``.state`` importing Spark's session code
  (``seqstream.pipeline.spark``): they are steps over rows, run inside Spark's tasks;
- the library (``seqstream.*``) importing ``jobs``, ``bench`` or a test module;
- a test or bench module importing ``jobs``;
- ``jobs/`` holding more than ``JOBS_MAX_LINES`` lines;
- a library module over ``MODULE_MAX_LINES`` lines, or a library function over
  ``FUNCTION_MAX_LINES`` (one responsibility each: split it where the code's own seams are).

    python scripts/check_imports.py [--root DIR]     # exit 0 when clean, 1 with the findings
"""

from __future__ import annotations

import argparse
import ast
import sys
from dataclasses import dataclass
from pathlib import Path

JOBS_MAX_LINES = 200
MODULE_MAX_LINES = 400
FUNCTION_MAX_LINES = 80
# Repository folder -> the import name it has once installed (see pyproject.toml).
PACKAGES = {"pipeline": "seqstream.pipeline", "model": "seqstream.model"}
SCRIPT_FOLDERS = ("jobs", "bench", "scripts")  # imported by their folder name, if at all
TESTS = "tests"  # on pytest's pythonpath: test modules import each other by bare name


@dataclass(frozen=True)
class Import:
    source: str  # importing module
    target: str  # imported project module
    path: Path
    line: int


def module_names(root: Path) -> dict[str, Path]:
    """Every project module's import name -> its file."""
    names: dict[str, Path] = {}
    for folder, package in PACKAGES.items():
        for path in sorted((root / folder).rglob("*.py")):
            parts = list(path.relative_to(root / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            names[".".join([package, *parts])] = path
    for folder in SCRIPT_FOLDERS:
        for path in sorted((root / folder).glob("*.py")):
            stem = path.stem
            names[folder if stem == "__init__" else f"{folder}.{stem}"] = path
    for path in sorted((root / TESTS).glob("*.py")):
        names[f"{TESTS}:{path.stem}"] = path
    return names


def _resolve(name: str, known: dict[str, Path], tests: set[str]) -> str | None:
    """The project module ``name`` refers to: itself, or its closest known parent."""
    if name in tests:
        return f"{TESTS}:{name}"
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in known:
            return candidate
        parts.pop()
    return None


def imports_of(module: str, path: Path, known: dict[str, Path]) -> list[Import]:
    tests = {m.split(":", 1)[1] for m in known if m.startswith(f"{TESTS}:")}
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            # ``from pkg import mod`` imports the module pkg.mod; ``from mod import name`` mod.
            names = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names
            ]
        for name in names:
            target = _resolve(name, known, tests)
            if target is not None and target != module:
                found.append(Import(module, target, path, node.lineno))
    return found


def find_cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))
    return cycles


STREAM_DRIVER = ("seqstream.pipeline.stream",)
BACKFILL_DRIVER = ("seqstream.pipeline.backfill",)
SINKS = ("seqstream.pipeline.sinks",)
SCORING = ("seqstream.pipeline.scoring",)
ROW_STEPS = ("seqstream.pipeline.records", "seqstream.pipeline.state")
SPARK_SESSION = ("seqstream.pipeline.spark",)


def _in(module: str, modules: tuple[str, ...]) -> bool:
    return any(module == m or module.startswith(f"{m}.") for m in modules)


def _forbidden(imp: Import) -> str | None:
    source, target = imp.source, imp.target
    if (_in(source, STREAM_DRIVER) and _in(target, BACKFILL_DRIVER)) or (
        _in(source, BACKFILL_DRIVER) and _in(target, STREAM_DRIVER)
    ):
        return "the stream and the backfill drivers never import each other: share a step instead"
    if _in(source, SINKS) and _in(target, SCORING):
        return "a sink never imports the scoring: the stream driver composes the model choice"
    if _in(source, ROW_STEPS) and _in(target, SPARK_SESSION):
        return "records and state are steps over rows: they never make or configure a Spark session"
    outside = target.startswith(("jobs", "bench", f"{TESTS}:", "scripts"))
    if source.startswith("seqstream.model") and not target.startswith("seqstream.model"):
        return (
            "seqstream.model stands alone: it may import nothing of pipeline, jobs, bench or tests"
        )
    if source.startswith("seqstream.pipeline.kafka") and not target.startswith(
        ("seqstream.pipeline.kafka", "seqstream.pipeline.errors")
    ):
        return "seqstream.pipeline.kafka imports nothing of seqstream but itself and its errors"
    if source.startswith("seqstream.") and outside:
        return "the library imports neither jobs, bench, scripts nor tests"
    if target.startswith("jobs") and not source.startswith("jobs"):
        return "jobs are entry points: nothing imports them"
    return None


def size_problems(root: Path, known: dict[str, Path]) -> list[str]:
    """Library modules and functions over their limits."""
    problems = []
    for module, path in sorted(known.items()):
        if not module.startswith("seqstream."):
            continue
        text = path.read_text()
        where = path.relative_to(root)
        lines = len(text.splitlines())
        if lines > MODULE_MAX_LINES:
            problems.append(f"{where} holds {lines} lines (at most {MODULE_MAX_LINES})")
        for node in ast.walk(ast.parse(text, str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > FUNCTION_MAX_LINES:
                    problems.append(
                        f"{where}:{node.lineno}: {node.name} is {length} lines "
                        f"(at most {FUNCTION_MAX_LINES})"
                    )
    return problems


def check(root: Path) -> list[str]:
    known = module_names(root)
    problems: list[str] = []
    edges: dict[str, set[str]] = {}
    where: dict[tuple[str, str], Import] = {}
    for module, path in known.items():
        for imp in imports_of(module, path, known):
            edges.setdefault(module, set()).add(imp.target)
            where.setdefault((module, imp.target), imp)
            reason = _forbidden(imp)
            if reason:
                problems.append(
                    f"{imp.path.relative_to(root)}:{imp.line}: imports {imp.target}: {reason}"
                )
    for cycle in find_cycles(edges):
        members = set(cycle)
        links = [
            f"{where[(a, b)].path.relative_to(root)}:{where[(a, b)].line} ({a} -> {b})"
            for a in cycle
            for b in sorted(edges.get(a, ()))
            if b in members
        ]
        problems.append(f"import cycle among {', '.join(cycle)}: " + "; ".join(links))
    jobs = sorted((root / "jobs").glob("*.py"))
    lines = sum(len(p.read_text().splitlines()) for p in jobs)
    if lines > JOBS_MAX_LINES:
        problems.append(
            f"jobs/ holds {lines} lines (at most {JOBS_MAX_LINES}): library code belongs in pipeline/"
        )
    return problems + size_problems(root, known)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    args = parser.parse_args(argv)
    problems = check(args.root)
    for problem in problems:
        print(problem)
    modules = len(module_names(args.root))
    print(f"check_imports: {modules} modules, {len(problems)} problem(s)", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
