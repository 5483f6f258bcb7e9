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
