import subprocess
import sys


def test_import_streamkit_does_not_import_starlette_or_uvicorn() -> None:
    code = (
        "import streamkit, operators, sys; "
        "assert 'starlette' not in sys.modules and 'uvicorn' not in sys.modules, "
        "sorted(m for m in sys.modules if m.startswith(('starlette', 'uvicorn')))"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_import_streamkit_web_needs_no_uvicorn() -> None:
    code = "import streamkit.web, sys; assert 'uvicorn' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
