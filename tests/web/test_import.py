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


def test_every_public_name_of_streamkit_web_is_documented() -> None:
    import inspect

    import streamkit.web

    assert len(set(streamkit.web.__all__)) == len(streamkit.web.__all__)
    for name in streamkit.web.__all__:
        value = getattr(streamkit.web, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert inspect.getdoc(value), name
            for member, method in vars(value).items() if inspect.isclass(value) else []:
                if not member.startswith("_") and callable(method):
                    assert inspect.getdoc(method), f"{name}.{member}"


def test_without_the_web_extra_the_error_names_it() -> None:
    code = (
        "import sys; sys.modules['starlette'] = None\n"
        "try:\n"
        "    import streamkit.web\n"
        "except ImportError as error:\n"
        '    assert "cohere-streamkit[web]" in str(error), error\n'
        "else:\n"
        "    raise AssertionError('imported')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
