from __future__ import annotations

import ast
import subprocess
import sys

import servicelog

EXPECTED = {
    "CaptureOptions", "ConfigError", "ContextThreadPoolExecutor", "LogLevel", "Logger", "RateLimit", "RedactionPolicy", "Route",
    "ServicelogError", "Settings", "__version__", "bind", "bound_context", "configure", "flush",
    "get_context", "get_logger", "install_signal_handlers", "log_execution_time", "read_records", "reset", "run_in_executor", "settings",
    "stats", "unbind",
}  # fmt: skip


def test_exported_names_are_guarded() -> None:
    """Changing the public API must be a deliberate edit of this test."""
    assert set(servicelog.__all__) == EXPECTED
    assert servicelog.__all__ == sorted(servicelog.__all__, key=str)
    for name in servicelog.__all__:
        assert hasattr(servicelog, name)


def test_importing_the_core_imports_no_framework_and_patches_nothing() -> None:
    code = (
        "import logging, sys, warnings, threading\n"
        "before = (sys.excepthook, threading.excepthook, warnings.showwarning,"
        " list(logging.getLogger().handlers))\n"
        "import servicelog\n"
        "after = (sys.excepthook, threading.excepthook, warnings.showwarning,"
        " list(logging.getLogger().handlers))\n"
        "assert before == after, 'import had side effects'\n"
    )
    heavy = {"fastapi", "starlette", "structlog", "loguru", "uvicorn", "httpx", "asyncio"}
    assert modules_loaded_after(code, heavy) == []


def test_a_library_that_only_gets_a_logger_does_not_load_sinks_or_orjson() -> None:
    """``import servicelog`` + ``get_logger()`` at module level must stay cheap: orjson (~11 ms
    here), the sinks and the redaction patterns load at configure() or first use, and the core
    modules import ``typing`` only under ``TYPE_CHECKING`` (~8 ms with what it pulls in)."""
    code = "import servicelog\nservicelog.get_logger('lib')\n"
    heavy = {
        "orjson", "dataclasses", "typing", "re", "servicelog.sinks.base", "servicelog.redaction",
        "servicelog.render.json", "servicelog.options",
    }  # fmt: skip
    assert modules_loaded_after(code, heavy) == []


def modules_loaded_after(code: str, modules: set[str]) -> list[str]:
    """Which of *modules* a fresh interpreter has loaded after running *code*."""
    probe = f"{code}import sys\nprint(sorted({sorted(modules)!r} & sys.modules.keys()))\n"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return list(ast.literal_eval(out.stdout.strip()))
