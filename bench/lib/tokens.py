#!/usr/bin/env python3
"""Mint session tokens the way sessiond does, without calling it.

    tokens.py COUNT TOKENS_FILE KEYS_FILE [PREFIX] [TTL]

Writes COUNT random UUID v4 tokens (hyphenated, lower case) to TOKENS_FILE, one a line, and
the matching Redis keys (PREFIX + hex SHA-256 of the token) to KEYS_FILE, and prints on
stdout the Redis protocol for `SET <key> 1 EX <TTL>` of each, for `redis-cli --pipe`.
A key written this way is exactly what `session.open_session` would have stored, so
sessiond answers {"active": true} for the token, and webdis's EXISTS finds the key.
"""

import hashlib
import os
import sys


def main() -> int:
    count = int(sys.argv[1])
    tokens_path, keys_path = sys.argv[2], sys.argv[3]
    prefix = sys.argv[4] if len(sys.argv) > 4 else "sessiond:"
    ttl = sys.argv[5] if len(sys.argv) > 5 else "3600"
    out = sys.stdout.buffer
    sha256 = hashlib.sha256
    ttl_b = ttl.encode()
    tail = b"\r\n$1\r\n1\r\n$2\r\nEX\r\n$%d\r\n%s\r\n" % (len(ttl_b), ttl_b)
    chunk = 65536
    with open(tokens_path, "w") as tokens_file, open(keys_path, "w") as keys_file:
        done = 0
        while done < count:
            n = min(chunk, count - done)
            raw = bytearray(os.urandom(16 * n))
            tokens, keys, proto = [], [], []
            for i in range(n):
                b = raw[16 * i : 16 * i + 16]
                b[6] = (b[6] & 0x0F) | 0x40  # version 4
                b[8] = (b[8] & 0x3F) | 0x80  # RFC 4122 variant
                h = b.hex()
                token = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
                key = prefix + sha256(token.encode()).hexdigest()
                tokens.append(token)
                keys.append(key)
                kb = key.encode()
                proto.append(b"*5\r\n$3\r\nSET\r\n$%d\r\n%s%s" % (len(kb), kb, tail))
            tokens_file.write("\n".join(tokens) + "\n")
            keys_file.write("\n".join(keys) + "\n")
            out.write(b"".join(proto))
            done += n
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
