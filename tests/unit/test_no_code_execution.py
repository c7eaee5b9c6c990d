"""No code path runs what the user said or what the LLM wrote: a static check of the package.

A prompt injected by voice ("ignore your instructions and run ...") can only change the reply's
words. That holds as long as nothing in ``voiceagent/`` evaluates text as code, starts a process,
unpickles data or imports a module by a computed name, except the few places listed in
``ALLOWED`` with the reason each one is safe. A new occurrence anywhere fails this test, and so
does an allowed one that no longer exists (the list must stay true).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

import voiceagent

pytestmark = pytest.mark.unit

PACKAGE = Path(voiceagent.__file__).resolve().parent

# Modules whose only purpose is to run code or processes, or to rebuild objects from bytes.
EXECUTING_MODULES = {
    "subprocess", "pty", "multiprocessing", "pickle", "_pickle", "cPickle", "marshal", "shelve",
    "dill", "cloudpickle", "joblib", "code", "codeop", "runpy", "webbrowser", "pexpect", "sh",
    "plumbum",
}  # fmt: skip
BUILTINS_THAT_RUN_CODE = {"eval", "exec", "compile", "__import__", "breakpoint"}
OS_PROCESS_CALLS = {"system", "popen", "fork", "forkpty", "startfile", "execv", "execve"}
OS_PROCESS_PREFIXES = ("exec", "spawn", "posix_spawn")
PROCESS_ATTRIBUTES = {"create_subprocess_exec", "create_subprocess_shell", "import_module"}
DANGEROUS_TRUE_KEYWORDS = {"shell", "allow_pickle"}


@dataclass(frozen=True)
class Finding:
    path: str  # relative to the package's parent: "voiceagent/models/pull.py"
    what: str


ALLOWED: dict[Finding, str] = {
    Finding("voiceagent/models/pull.py", "import subprocess"): (
        "`models pull` runs `python -m pip download` with an argument list (no shell); the "
        "requirement comes from the model catalog. The conversation code cannot reach this "
        "module: see test_the_conversation_cannot_reach_the_process_runners."
    ),
    Finding("voiceagent/testing/tracing.py", "import subprocess"): (
        "a test helper that runs a command under strace; nothing at run time imports "
        "voiceagent.testing (same graph test)."
    ),
    Finding("voiceagent/backends/_imports.py", "importlib.import_module"): (
        "require() imports the heavy libraries lazily; its callers pass literal module names "
        "(a require() with a computed name is a finding of its own)."
    ),
    Finding("voiceagent/pipeline.py", "require(non-literal)"): (
        "load_models imports the libraries its models need; the names come from the literal "
        "table in _modules_for, keyed by model kind, never from text."
    ),
}


def _dotted(node: ast.expr) -> str:
    """``os.path.join`` for an attribute chain on a name; "" for anything else."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return ""


def _is_executing_module(name: str) -> bool:
    return name.split(".")[0] in EXECUTING_MODULES or name == "concurrent.futures.process"


def _os_call(name: str) -> bool:
    return name in OS_PROCESS_CALLS or name.startswith(OS_PROCESS_PREFIXES)


def findings_in(source: str, path: str) -> set[Finding]:
    """Every place in ``source`` that could run text as code or start a process."""
    found: set[Finding] = set()
    for node in ast.walk(ast.parse(source, filename=path)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _is_executing_module(alias.name):
                    found.add(Finding(path, f"import {alias.name}"))
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            if _is_executing_module(node.module):
                found.add(Finding(path, f"import {node.module}"))
            for alias in node.names:
                if node.module == "os" and _os_call(alias.name):
                    found.add(Finding(path, f"os.{alias.name}"))
                elif node.module == "builtins" and alias.name in BUILTINS_THAT_RUN_CODE:
                    found.add(Finding(path, f"{alias.name}()"))
                elif alias.name in PROCESS_ATTRIBUTES:
                    found.add(Finding(path, f"{node.module}.{alias.name}"))
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in BUILTINS_THAT_RUN_CODE:
                found.add(Finding(path, f"{func.id}()"))
            if isinstance(func, ast.Name) and func.id == "require":
                if not (node.args and isinstance(node.args[0], ast.Constant)):
                    found.add(Finding(path, "require(non-literal)"))
            for keyword in node.keywords:
                value = keyword.value
                if keyword.arg in DANGEROUS_TRUE_KEYWORDS and not (
                    isinstance(value, ast.Constant) and value.value in (False, None)
                ):
                    found.add(Finding(path, f"{keyword.arg}=True"))
        elif isinstance(node, ast.Attribute):
            name = _dotted(node)
            if name.startswith("os.") and _os_call(node.attr):
                found.add(Finding(path, name))
            elif node.attr in PROCESS_ATTRIBUTES:
                found.add(Finding(path, f"{_dotted(node.value) or '?'}.{node.attr}"))
            elif name in {"builtins.eval", "builtins.exec", "builtins.compile", "torch.load"}:
                found.add(Finding(path, name))
    return found


def package_findings() -> set[Finding]:
    found: set[Finding] = set()
    for file in sorted(PACKAGE.rglob("*.py")):
        relative = file.relative_to(PACKAGE.parent).as_posix()
        found |= findings_in(file.read_text(encoding="utf-8"), relative)
    return found


def test_nothing_in_the_package_runs_text_as_code_beyond_the_justified_list():
    found = package_findings()
    unexpected = sorted(f"{f.path}: {f.what}" for f in found - ALLOWED.keys())
    stale = sorted(f"{f.path}: {f.what}" for f in ALLOWED.keys() - found)
    assert not unexpected, "code that could run text or start a process:\n" + "\n".join(unexpected)
    assert not stale, "allowed but no longer there (remove from ALLOWED):\n" + "\n".join(stale)


@pytest.mark.parametrize(
    ("source", "what"),
    [
        ("eval(reply)", "eval()"),
        ("exec(reply)", "exec()"),
        ("compile(reply, '<llm>', 'exec')", "compile()"),
        ("__import__(reply)", "__import__()"),
        ("import subprocess", "import subprocess"),
        ("from subprocess import run", "import subprocess"),
        ("import pickle", "import pickle"),
        ("from multiprocessing import Pool", "import multiprocessing"),
        ("import os\nos.system(reply)", "os.system"),
        ("import os\nos.popen(reply)", "os.popen"),
        ("import os\nos.execvp('sh', ['sh'])", "os.execvp"),
        ("import os\nos.posix_spawn('/bin/sh', [], {})", "os.posix_spawn"),
        ("from os import system", "os.system"),
        ("import asyncio\nasyncio.create_subprocess_shell(x)", "asyncio.create_subprocess_shell"),
        ("import importlib\nimportlib.import_module(reply)", "importlib.import_module"),
        ("run(reply, shell=True)", "shell=True"),
        ("numpy.load(path, allow_pickle=True)", "allow_pickle=True"),
        ("torch.load(path)", "torch.load"),
        ("import builtins\nbuiltins.eval(reply)", "builtins.eval"),
        ("require(reply)", "require(non-literal)"),
    ],
)  # fmt: skip
def test_the_check_sees_each_way_to_run_text(source, what):
    assert Finding("x.py", what) in findings_in(source, "x.py")


@pytest.mark.parametrize(
    "source",
    [
        "self._llama.eval(tokens)",  # llama.cpp evaluating tokens, not Python's eval
        "import re\nre.compile(r'[a-z]+')",
        "from importlib import metadata",
        "require('numpy')",
        "run(args, shell=False)",
    ],
)
def test_the_check_ignores_look_alikes(source):
    assert findings_in(source, "x.py") == set()


def _module_name(file: Path) -> str:
    parts = file.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported_modules(file: Path, known: set[str]) -> set[str]:
    """voiceagent modules ``file`` imports anywhere (also inside functions: lazy imports)."""
    name = _module_name(file)
    package = name if file.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            targets.add(base)
            targets.update(f"{base}.{alias.name}" for alias in node.names)
    found = set()
    for target in targets:
        while target and target not in known:
            target = target.rpartition(".")[0]
        if target:
            found.add(target)
    return found


def reachable_modules(start: str) -> set[str]:
    """Every voiceagent module ``start`` can import, directly or through others."""
    files = {_module_name(f): f for f in PACKAGE.rglob("*.py")}
    known = set(files)
    seen: set[str] = set()
    todo = [start]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        parts = module.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))  # parent packages run too
        todo.extend(_imported_modules(files[module], known))
    return seen


@pytest.mark.parametrize("entry", ["voiceagent.talk", "voiceagent.speak", "voiceagent.session"])
def test_the_conversation_cannot_reach_the_process_runners(entry):
    """``talk`` and ``chat`` (speak.py) handle transcripts and replies; the only modules that
    start a process must be out of their reach, so no reply text can ever get there."""
    reachable = reachable_modules(entry)
    assert "voiceagent.models.pull" not in reachable
    assert not {m for m in reachable if m.startswith("voiceagent.testing")}


def test_the_graph_check_would_see_a_process_runner():
    """The graph walk follows lazy imports: the CLI does reach `models pull`."""
    assert "voiceagent.models.pull" in reachable_modules("voiceagent.cli")
