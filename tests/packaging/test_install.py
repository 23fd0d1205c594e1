"""The toolkit is an installed project: its packages import from any working
directory with nothing on PYTHONPATH (pyproject.toml; `pip install -e .`,
which tools/setup_env.sh runs), and no file edits sys.path."""
import os
import re
import subprocess
import sys

from helpers import ROOT


def test_packages_import_from_another_directory(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    code = ("import os, unimo, unimo2, vlcore, data_prep; "
            "print(os.path.dirname(os.path.dirname(unimo2.__file__)))")
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert os.path.samefile(r.stdout.strip().splitlines()[-1], ROOT)


def test_no_file_edits_sys_path():
    found = []
    for top in ("vlcore", "unimo", "unimo2", "data_prep", "tools", "bench", "tests"):
        for d, _, files in os.walk(os.path.join(ROOT, top)):
            for f in files:
                if f.endswith(".py") and f != "test_install.py":
                    text = open(os.path.join(d, f), encoding="utf-8", errors="replace").read()
                    if re.search(r"sys\.path\.(insert|append|extend)|sys\.path\s*[+]?=", text):
                        found.append(os.path.relpath(os.path.join(d, f), ROOT))
    assert not found, found
