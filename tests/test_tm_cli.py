"""``concordia-tm``: unit maintenance from the command line, on a real data folder."""

from __future__ import annotations

import json
from pathlib import Path

from lxml import etree

from service.cli import main
from tests.test_tmx_roundtrip import canonical

DATA = Path(__file__).parent / "data"


def run(capsys, data: Path, *argv: str) -> tuple[int, object, str]:
    code = main(["--data", str(data), *argv])
    out, err = capsys.readouterr()
    return code, json.loads(out) if code == 0 and out.strip() else out, err


def test_import_edit_use_delete_and_audit(tmp_path, capsys):
    data = tmp_path / "data"
    code, result, _ = run(capsys, data, "import", str(DATA / "tmx14_every_element.tmx"))
    assert code == 0 and (result["imported"], result["rule"]) == (3, "merge")
    _, unit, _ = run(capsys, data, "show", "3")
    assert unit["version"] == 1 and unit["attrs"]["tuid"] == "pv8017-003"
    _, edited, _ = run(capsys, data, "edit", "3", "--version", "1", "--en",
                       "The meeting was called to order at 10.10 a.m.", "--changeid", "reviser")
    assert edited["id"] != 3 and edited["version"] == 2
    assert edited["attrs"]["changeid"] == "reviser" and edited["attrs"]["changedate"]
    code, _, err = run(capsys, data, "edit", "3", "--version", "1", "--en", "Again.")
    assert code == 2 and f"it is now unit {edited['id']}" in err and "\n" == err[-1]
    code, _, err = run(capsys, data, "edit", "1", "--version", "1", "--zh", "{9}安理会")
    assert code == 2 and "{9} is not a tag of this segment" in err
    _, used, _ = run(capsys, data, "use", "1")
    assert used["attrs"]["usagecount"] == "5"  # it said 4
    _, gone, _ = run(capsys, data, "delete", "--contains", "散会")
    assert gone == {"deleted": 1, "ids": [2]}
    code, _, err = run(capsys, data, "delete")
    assert code == 2 and "say what to delete" in err
    _, audit, _ = run(capsys, data, "imports")
    assert audit[0]["source"] == "tmx14_every_element.tmx" and audit[0]["imported"] == 3


def test_export_of_an_import_is_the_file(tmp_path, capsys):
    data = tmp_path / "data"
    source = DATA / "tmx14_every_element.tmx"
    run(capsys, data, "import", str(source), "--rule", "keep_both")
    out = tmp_path / "back.tmx"
    code, _, _ = run(capsys, data, "export", "--import-id", "1", "-o", str(out))
    assert code == 0
    assert canonical(out.read_bytes()) == canonical(source.read_bytes())
    assert etree.fromstring(out.read_bytes()).find("header").get("creationtool") == "HandWritten"


def test_bad_input_is_one_line(tmp_path, capsys):
    data = tmp_path / "data"
    bad = tmp_path / "unpaired.tmx"
    bad.write_text(
        '<tmx version="1.4"><header creationtool="x" creationtoolversion="1" segtype="sentence" '
        'o-tmf="x" adminlang="en" srclang="zh-CN" datatype="plaintext"/><body>'
        '<tu><tuv xml:lang="zh-CN"><seg>一</seg></tuv><tuv xml:lang="en"><seg>One</seg></tuv></tu>'
        '<tu><tuv xml:lang="zh-CN"><seg><bpt i="1">&lt;b&gt;</bpt>二</seg></tuv>'
        '<tuv xml:lang="en"><seg>Two</seg></tuv></tu></body></tmx>',
        "utf-8",
    )
    code, _, err = run(capsys, data, "import", str(bad))
    assert code == 2 and "inline tags do not pair" in err and "line 1" in err
    _, audit, _ = run(capsys, data, "imports")
    assert audit[0]["state"] == "failed" and "do not pair" in audit[0]["error"]
    code, _, err = run(capsys, data, "show", "1")  # the first unit was not kept either
    assert code == 2 and "no unit 1" in err
    code, _, err = run(capsys, data, "delete", "--since", "yesterday")
    assert code == 2 and "TMX date" in err
