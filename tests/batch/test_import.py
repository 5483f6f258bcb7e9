from __future__ import annotations

import inspect
import subprocess
import sys

import streamkit.batch


def test_import_streamkit_and_its_batch_and_cli_never_imports_ray() -> None:
    code = (
        "import streamkit, streamkit.batch, streamkit._cli, sys; "
        "assert 'ray' not in sys.modules and 'pyarrow' not in sys.modules, "
        "sorted(m for m in sys.modules if m.startswith(('ray', 'pyarrow')))"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_every_public_name_of_streamkit_batch_is_documented() -> None:
    for name in streamkit.batch.__all__:
        value = getattr(streamkit.batch, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert inspect.getdoc(value), name
            for member, method in vars(value).items() if inspect.isclass(value) else []:
                if not member.startswith("_") and callable(method):
                    assert inspect.getdoc(method), f"{name}.{member}"


def test_without_ray_the_ray_engine_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['ray'] = None\n"
        "from streamkit.batch import run_batch\n"
        "rows = [{'messages': [{'role': 'user', 'content': 'Hi'}]}]\n"
        "try:\n"
        "    run_batch(rows, model='m', offline=True, engine='ray')\n"
        "except ImportError as error:\n"
        '    assert "cohere-streamkit[ray]" in str(error), error\n'
        "else:\n"
        "    raise AssertionError('ran')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
