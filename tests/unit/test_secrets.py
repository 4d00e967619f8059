"""A secret is masked in every form it is printed in, not only as its parsed value (issue 12, item 6).

A traceback quotes the config's source line (the literal as written, escapes and
all), ``repr()`` escapes quotes and backslashes, JSON escapes them another way.
"""

from __future__ import annotations

import ast
import json
import random
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote

import pytest

from steps import load_recipe
from wizard.config.instance import Instance
from wizard.config.redact import MASK, Redactor
from wizard.config.secrets import secrets_for, secrets_in_text


def printed(value: str) -> set[str]:
    """What Python itself prints for a string, written out here independently of the code under test."""
    forms = {value, repr(value), ascii(value), json.dumps(value), json.dumps(value, ensure_ascii=False)}
    return forms | {form[1:-1] for form in forms - {value}}


def run_python_file(path: Path) -> bytes:
    """Run a config file as Indico does (executing it), as the wizard's step would: stdout and stderr together."""
    code = "import runpy, sys; runpy.run_path(sys.argv[1])"
    result = subprocess.run([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            timeout=60)  # fmt: skip
    return result.stdout


LEAKS = (
    "import json\n"
    "print('value', {name})\n"
    "print('repr', repr({name}), 'ascii', ascii({name}), 'json', json.dumps({name}))\n"
    "print('json unicode', json.dumps({name}, ensure_ascii=False), 'in a dict', {{'k': {name}}})\n"
)

# Each literal as written in indico.conf; the assignment line also raises, so the traceback quotes it.
LITERALS = {
    "quotes and backslashes": r"""'ab\'c\\d"e-0123'""",
    "double quotes": r'''"dq\"uo'te\\back\tslash é"''',
    "raw string": r"""r'raw\key"with\'quote'""",
    "escapes": r"""'\x41\u00e9\N{BULLET}\101-oct\q-unknown'""",
    "implicit concatenation": r"""'first-half\'' "second-half\\" """.strip(),
}


@pytest.mark.filterwarnings("ignore:invalid escape sequence")
@pytest.mark.parametrize("literal", LITERALS.values(), ids=LITERALS.keys())
def test_a_traceback_quoting_an_indico_conf_line_shows_no_form_of_the_secret_key(tmp_path, literal):
    conf = tmp_path / "indico.conf"
    text = LEAKS.format(name="SECRET_KEY").replace("import json\n", f"import json\nSECRET_KEY = {literal}\n")
    text += f"SECRET_KEY = {literal}; raise RuntimeError(f'bad key {{SECRET_KEY!r}}')\n"
    conf.write_text(text, encoding="utf-8")
    value = ast.literal_eval(literal)
    output = run_python_file(conf)
    assert literal.encode() in output and b"RuntimeError" in output  # the traceback really quotes the source line

    redactor = Redactor(secrets_in_text(text, "python"))
    masked = redactor.mask_bytes(output).decode()
    inner = literal.removeprefix("r")[1:-1]  # as written, without its quotes
    leaks = [form for form in printed(value) | {literal, inner} if form in masked]
    assert leaks == [], masked
    assert f'File "{conf}", line' in masked and "RuntimeError: bad key ********" in masked, masked
    assert redactor.mask(output.decode()) == masked


def test_a_database_url_password_is_masked_as_written_encoded_and_decoded(tmp_path):
    conf = tmp_path / "indico.conf"
    literal = r"""'postgresql://indico:p%40ss\'w\\rd%25x@localhost/indico'"""
    text = (LEAKS.format(name="DB").replace("import json\n", f"import json\nDB = {literal}\n")
            + "from urllib.parse import urlsplit, unquote\n"
            + "print('decoded', unquote(urlsplit(DB).password), repr(unquote(urlsplit(DB).password)))\n"
            + f"SQLALCHEMY_DATABASE_URI = {literal}; raise RuntimeError(SQLALCHEMY_DATABASE_URI)\n")  # fmt: skip
    conf.write_text(text)
    output = run_python_file(conf)
    assert literal.encode() in output
    masked = Redactor(secrets_in_text(text, "python")).mask_bytes(output).decode()
    encoded = "p%40ss'w\\rd%25x"
    written = r"p%40ss\'w\\rd%25x"
    forbidden = printed(encoded) | printed(unquote(encoded)) | {written}
    assert [form for form in forbidden if form in masked] == [], masked
    # Only the password: where the database is stays readable.
    assert "SQLALCHEMY_DATABASE_URI = 'postgresql://indico:********@localhost/indico'; raise" in masked, masked
    assert "RuntimeError: postgresql://indico:********@localhost/indico" in masked, masked


def test_a_pretalx_cfg_password_with_percent_semicolon_quotes_backslashes_and_spaces(tmp_path):
    password = r"""p%ss;w "q" 'x' \back\\slash %%end"""
    secret = "dj'ango\\secret\"key"
    cfg = tmp_path / "pretalx.cfg"
    text = f"[database]\nbackend = postgresql\npassword = {password}\n\n[django]\nsecret = {secret}\n"
    cfg.write_text(text)
    code = (
        "import configparser, json, sys\n"
        "print(open(sys.argv[1]).read())\n"
        "parser = configparser.RawConfigParser(); parser.read(sys.argv[1])\n"
        "for value in (parser['database']['password'], parser['django']['secret']):\n"
        "    print(value, repr(value), json.dumps(value), {'k': value}, ascii(value))\n"
        "value = parser['database']['password'].replace('%%', '%')\n"  # an app interpolating % would use this
        "print(value, repr(value), json.dumps(value))\n"
        "raise RuntimeError(repr(parser['database']['password']))\n"
    )
    result = subprocess.run([sys.executable, "-c", code, str(cfg)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            timeout=60)  # fmt: skip
    output = result.stdout.decode()
    assert password in output and "RuntimeError" in output
    masked = Redactor(secrets_in_text(text, "ini")).mask(output)
    forbidden = printed(password) | printed(secret) | printed(password.replace("%%", "%"))
    assert [form for form in forbidden if form in masked] == [], masked
    assert "[database]\nbackend = postgresql\npassword = ********\n" in masked and "secret = ********" in masked


def test_an_ini_value_on_several_lines_is_masked_line_by_line():
    text = "[django]\nsecret = first-line-of-it\n    second-line-of-it\n[database]\nname = pretalx\n"
    masked = Redactor(secrets_in_text(text, "ini")).mask(text + "\nsecret='first-line-of-it\\nsecond-line-of-it'\n")
    assert "line-of-it" not in masked and "name = pretalx" in masked, masked


def test_a_python_literal_on_several_lines_is_masked_line_by_line():
    # A traceback shows one line of a statement (Python 3.11): each line's part must be masked alone.
    text = "SECRET_KEY = (\n    'first-part-of-the-key'\n    \"second\\x41part\"\n)\n"
    masked = Redactor(secrets_in_text(text, "python")).mask(text)
    assert "part" not in masked, masked


def test_a_config_that_does_not_parse_still_masks_the_lines_that_do():
    # Indico fails on the broken line, but a step may still print the file (or the error quote a neighbour).
    text = ("SECRET_KEY = 'still-a-secret\\'s-key'\n"
            "BROKEN = (\n"
            "SQLALCHEMY_DATABASE_URI = 'postgresql://u:pw-s3cret@h/db'\n")  # fmt: skip
    masked = Redactor(secrets_in_text(text, "python")).mask(text)
    assert "still-a" not in masked and "pw-s3cret" not in masked and "BROKEN = (" in masked, masked
    text = "[database]\npassword = ini-s3cret\nthis line is not INI\n[database]\nuser = x\n"  # a ParsingError, a repeat
    assert "ini-s3cret" not in Redactor(secrets_in_text(text, "ini")).mask(text)


def test_short_secrets_stay_unmasked_in_every_form():
    # Three characters would mask ordinary words; quoted, they would be long enough: still not masked.
    text = "SECRET_KEY = 'abc'\nDB = 'postgresql://u:xy@h/db'\n"
    assert Redactor(secrets_in_text(text, "python")).mask(text + "'abc' \"abc\" 'xy'") == text + "'abc' \"abc\" 'xy'"
    assert Redactor(secrets_in_text("[django]\nsecret = abc\n", "ini")).secrets == []


def test_environment_secrets_are_masked_in_their_printed_forms_too(tmp_path):
    instance = Instance(name="t", recipe="pretalx", venv=tmp_path, config=tmp_path / "missing.cfg",
                        env={"PRETALX_DB_PASS": "env'pa\\ss\"word"})  # fmt: skip
    redactor = Redactor(secrets_for(load_recipe("pretalx"), instance))
    value = instance.env["PRETALX_DB_PASS"]
    masked = redactor.mask(" ".join(printed(value)))
    assert [form for form in printed(value) if form in masked] == [], masked


SPLIT_TEXT = "SECRET_KEY = 'ab\\'c\\\\d\"e-0123'\n"


def test_partial_output_holds_back_the_start_of_any_form_and_masks_a_form_whole():
    redactor = Redactor(secrets_in_text(SPLIT_TEXT, "python"))
    # The opening of the literal as written could be the secret: held back, never shown.
    assert redactor.split_safe(b"SECRET_KEY = 'ab\\'c") == (b"SECRET_KEY = ", b"'ab\\'c")
    # Whole, the quoted literal is masked as one (longest form first), not as quotes around a masked inside.
    assert redactor.split_safe(b"key 'ab\\'c\\\\d\"e-0123' and more") == (f"key {MASK} and more".encode(), b"")
    # The inside is complete but the closing quote may follow: held back from the opening quote.
    assert redactor.split_safe(b"repr 'ab\\'c\\\\d\"e-0123") == (b"repr ", b"'ab\\'c\\\\d\"e-0123")
    assert redactor.split_safe(b"value ab'c\\d\"e-0123 ok") == (f"value {MASK} ok".encode(), b"")


@pytest.mark.parametrize("seed", range(5))
def test_output_in_any_pieces_never_shows_a_form_of_the_secret(seed):
    redactor = Redactor(secrets_in_text(SPLIT_TEXT, "python"))
    value = ast.literal_eval(SPLIT_TEXT.split(" = ")[1])
    forms = printed(value) | {SPLIT_TEXT.split(" = ")[1].strip(), SPLIT_TEXT.split(" = ")[1].strip()[1:-1]}
    stream = ("line " + SPLIT_TEXT + " then ".join(sorted(forms)) + " 'ab' end").encode()
    rng = random.Random(seed)
    shown, pending, at = b"", b"", 0
    while at < len(stream):
        size = rng.randint(1, 7)
        pending += stream[at : at + size]
        at += size
        part, pending = redactor.split_safe(pending)
        shown += part
    shown += redactor.mask_bytes(pending)
    assert shown == redactor.mask_bytes(stream)
    assert [form for form in forms if form.encode() in shown] == []
    assert shown.startswith(f"line SECRET_KEY = {MASK}\n".encode()) and shown.endswith(b" 'ab' end")
