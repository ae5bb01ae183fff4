"""Examples the console writes (nlu/learned.py) read the same in Rasa 3.6 as in our loader: texts
with YAML-special characters, collapsed newlines and annotated (anonymised) numbers, and the
extra file merging into the exported project's existing intents. Rasa's own reader, in its venv."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from nlu import learned, rasa_runtime
from nlu.data import load_training_data
from nlu.rasa_project import export_project
from tests.support import CONTENT

pytestmark = pytest.mark.rasa

READ = """
import json, sys
from rasa.shared.nlu.training_data import loading
from rasa.shared.nlu.training_data.formats.rasa_yaml import RasaYAMLReader
one = RasaYAMLReader().read(sys.argv[1])
every = loading.load_data(sys.argv[2])
print(json.dumps({
    "examples": [
        [m.get("intent"), m.get("text"),
         [[e["entity"], e["start"], e["end"]] for e in m.get("entities") or []]]
        for m in one.intent_examples
    ],
    "total": len(every.intent_examples),
    "intents": sorted(every.intents),
}, ensure_ascii=False))
"""

TEXTS = [
    ("key: value # not a comment", "complaint"),
    ("- \"quoted\" 'single' & *alias ! % @ `tick`", "complaint"),
    ("line one\nline two\r\n\tthree", "complaint"),
    ("[not](an) entity {x}", "complaint"),
    ("мой номер +7 916 123-45-67 не ловит сеть", "internet_down"),
    ("лс 100234567 почему списали", "call_details"),
    ("😡😡 верните деньги 🙏", "complaint"),
]


def test_rasa_reads_the_console_file_like_we_do(tmp_path: Path) -> None:
    venv = rasa_runtime.ensure_venv(rasa_runtime.default_home())
    content = tmp_path / "content"
    shutil.copytree(CONTENT, content, ignore=shutil.ignore_patterns("tests"))
    for text, intent in TEXTS:
        learned.add_example(content / "nlu", text, intent)
    project = export_project(content, tmp_path / "project")
    script = tmp_path / "read.py"
    script.write_text(READ, encoding="utf-8")
    out = subprocess.run(
        [
            str(venv / "bin" / "python"),
            str(script),
            str(project / "data" / learned.FILE_NAME),
            str(project / "data"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    rasa = json.loads(out.stdout.strip().splitlines()[-1])
    ours = load_training_data([content / "nlu"])
    mine = load_training_data([content / "nlu" / learned.FILE_NAME]).examples
    assert rasa["examples"] == [
        [e.intent, e.text, [[name, start, end] for name, start, end in e.entities]] for e in mine
    ]
    assert rasa["total"] == len(ours.examples)
    assert rasa["intents"] == ours.intents
