#!/usr/bin/env python3
"""Writes the seed corpus of both fuzz targets (fuzz/seeds/<target>/) from the test cases.

Bodies come from the API page's examples (tests/data/seed-*.json), the JSON-RPC case table
(tests/jsonrpc.rs) and the hostile-input table (tests/hostile_input.rs), whose large cases are
scaled down here so every seed stays small. Run it from anywhere; it rewrites both folders.
"""

import hashlib
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent
SEEDS = ROOT / "fuzz" / "seeds"
TARGETS = ["decoder", "request_path"]
TOKEN = "00890640-ec03-4663-82ce-456ea993807d"
MAX_SEED = 4096


def from_rust_tables():
    """The raw-string literals of the two case tables that look like JSON bodies."""
    for name in ["jsonrpc.rs", "hostile_input.rs"]:
        text = (ROOT / "tests" / name).read_text()
        for literal in re.findall(r'r#"(.*?)"#', text, flags=re.S):
            if "{{" in literal:  # a format! string
                literal = unformat(literal)
                if literal is None:
                    continue  # it takes other arguments: not a whole body
            if literal.lstrip().startswith(("{", "[")):
                yield literal.encode()


def unformat(template):
    """A format! string with the token filled in, or None when it takes other arguments."""
    out, i = [], 0
    while i < len(template):
        pair = template[i:i + 2]
        if pair in ("{{", "}}"):
            out.append(pair[0])
            i += 2
        elif template[i] == "{":
            end = template.index("}", i)
            if template[i + 1:end] not in ("NEVER_ISSUED", "live_token"):
                return None
            out.append(TOKEN)
            i = end + 1
        else:
            out.append(template[i])
            i += 1
    return "".join(out)


def call(method, params, id_="1"):
    return f'{{"jsonrpc":"2.0","method":"{method}","params":{params},"id":{id_}}}'.encode()


def verify(token_json):
    return call("session.verify_session_token", f'{{"token":{token_json}}}')


def hostile():
    """The hostile-input table's bodies, scaled down."""
    deep = 300
    yield b"[" * deep
    yield b"[" * deep + b"]" * deep
    yield b'{"a":' * deep + b"1" + b"}" * deep
    yield b"[" * deep + b"1," + b"]" * deep
    yield verify("[" * deep + "]" * deep)
    yield call("session.verify_session_token", f'["{TOKEN}"]', "[" * 50 + "]" * 50)
    for id_ in ["1e400", "-1e-400", "9" * 400, '"' + "i" * 1000 + '"', "1.50", "null", '"\\u00e9\\ud83d\\ude00"']:
        yield call("session.verify_session_token", f'["{TOKEN}"]', id_)
    for expires_in in ["1e400", "9" * 400, "18446744073709551616", "18446744073709551615",
                       "-9223372036854775809", "0", "-0", "60", "60.0", "6e1", '"60"', "null", "true"]:
        yield call("session.open_session", f'{{"expires_in":{expires_in}}}')
    yield call("session.open_session", "[340282366920938463463374607431768211456]")
    yield b"\xff\xfe\xfd"
    yield b'{"jsonrpc":"2.0","method":"session.verify_session_token","params":["\xc3\x28"],"id":1}'
    yield b'{"jsonrpc":"2.0","method":"session.verify_session_token","params":["a\xc0\xa2"],"id":1}'
    yield b"\xef\xbb\xbf" + verify(f'"{TOKEN}"')
    yield b"\x00" * 16
    yield verify(f'"{TOKEN}"') + b"\x00"
    yield verify(f'"{TOKEN}\x00"')
    yield verify(f'"{TOKEN}\\u0000"')
    yield verify('"\\ud800"')
    yield call("session.open_session\\u0000", "{}")
    yield call("session.open\\u005fsession", '{"expires_in":1}')
    for method in ["Session.Open_Session", "SESSION.VERIFY_SESSION_TOKEN", "session.close_Session",
                   "session.open_session ", "sessi\u043en.open_session", "rpc.discover", "m" * 200]:
        yield call(method, "{}")
    entry = call("session.verify_session_token", f'["{TOKEN}"]').decode()
    note = f'{{"jsonrpc":"2.0","method":"session.verify_session_token","params":["{TOKEN}"]}}'
    yield f"[{','.join([entry] * 17)}]".encode()
    yield f"[{','.join(['1'] * 200)}]".encode()
    yield f"[{','.join([note] * 17)}]".encode()
    yield f"[{','.join([note] * 3)}]".encode()
    yield f"[[{entry}]]".encode()
    close_braces = call("session.close_session", '["{}"]', "9").decode()
    yield f"[{entry},1,[],{close_braces},]".encode()
    for token in ["", TOKEN.upper(), "{" + TOKEN + "}", "urn:uuid:" + TOKEN, TOKEN + "0", TOKEN[:35],
                  TOKEN.replace("-", ""), " " + TOKEN, TOKEN.replace("a", "\u00e4", 1), "a" * 300,
                  "../../../etc/passwd", "sessiond:*", "\r\nFLUSHALL\r\n", "00000000-0000-0000-0000-000000000000"]:
        quoted = '"' + token.replace("\r", "\\r").replace("\n", "\\n") + '"'
        yield verify(quoted)
        yield call("session.close_session", f'{{"token":{quoted}}}')
    for token in ["12", '{"token":"x"}', '["x"]', "true", "null"]:
        yield verify(token)
    yield call("session.verify_session_token", f'{{"token":"{TOKEN}","token":"{TOKEN}"}}')
    for dup in ['"method":"a","method":"b"', '"jsonrpc":"1.0","jsonrpc":"2.0"', '"id":1,"\\u0069d":2']:
        yield f'{{"jsonrpc":"2.0",{dup},"params":[],"id":3}}'.encode()
    # The hostile table's duplicate-key bodies, as it builds them.
    for members in ['"method":"session.verify_session_token","method":"session.open_session"',
                    '"jsonrpc":"1.0","method":"session.verify_session_token"',
                    '"method":"session.verify_session_token","params":{}',
                    '"method":"session.verify_session_token","\\u0069d":2']:
        yield f'{{"jsonrpc":"2.0",{members},"params":["{TOKEN}"],"id":1}}'.encode()
    yield f'{{"jsonrpc":"2.0","method":"session.close_session","params":["{TOKEN}"],"id":7,"id":8}}'.encode()
    yield b'{"jsonrpc":"2.0","method":"session.close_session","params":["x"]}'
    for text in ["", " ", "[]", "[,]", "{,}", "[1,,]", '{"a":,}', ",]", "nul", "1", '"x"', "null",
                 '{"jsonrpc":"2.0","method":"session.open_session","params":{"expires_in":null,},"id":1,}',
                 '[1,\n ]', '{"a": ",}"}', '{"a": "\\",}"}']:
        yield text.encode()


def main():
    bodies = [p.read_bytes() for p in sorted((ROOT / "tests" / "data").glob("seed-*.json"))]
    bodies += list(from_rust_tables())
    bodies += list(hostile())
    unique = {}
    for body in bodies:
        if len(body) <= MAX_SEED:
            unique.setdefault(hashlib.sha1(body).hexdigest()[:16], body)
    for target in TARGETS:
        folder = SEEDS / target
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.iterdir():
            old.unlink()
        for name, body in unique.items():
            (folder / name).write_bytes(body)
    print(f"{len(unique)} seeds in each of {', '.join(TARGETS)}")


if __name__ == "__main__":
    main()
