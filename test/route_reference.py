#!/usr/bin/python3
"""route_reference.py: pg_shorturl's shard routing, written out in Python.

This is the reference application developers can copy: it computes the same
answers as shorturl.hash64, shard_mod, jump_hash and route, from the formulas
alone, with the xxhash module (Debian: python3-xxhash; pip: xxhash).
test/t/002_routing_crosscheck.pl holds the extension to it, key by key.

Keys are str (hashed as UTF-8, the database encoding the tests use), bytes,
or int (a bigint: its 8-byte little-endian two's-complement form).
"""
import math
import struct
import sys

import xxhash

U64 = (1 << 64) - 1


def key_bytes(key):
    """The bytes a key is hashed as."""
    if isinstance(key, int):
        return struct.pack("<q", key)
    if isinstance(key, str):
        return key.encode("utf-8")
    return bytes(key)


def hash64(key):
    """XXH64 (seed 0) of the key's bytes, unsigned (0 .. 2^64-1)."""
    return xxhash.xxh64_intdigest(key_bytes(key), seed=0)


def as_bigint(h):
    """The unsigned 64-bit hash as SQL shows it: a signed bigint."""
    return h - (1 << 64) if h >= 1 << 63 else h


def shard_mod(key, shard_count):
    """Shard 0 .. shard_count-1: the unsigned hash modulo shard_count."""
    return hash64(key) % shard_count


def jump_hash(key, bucket_count):
    """Lamping & Veach's jump consistent hash (2014) of the unsigned hash."""
    h, b, j = hash64(key), -1, 0
    while j < bucket_count:
        b = j
        h = (h * 2862933555777941757 + 1) & U64
        j = int((b + 1) * (float(1 << 31) / float((h >> 33) + 1)))
    return b


def score(key_hash, name, weight):
    """A shard's weighted rendezvous score for a key, weight / -ln(u), with
    the 53 bits of its hash that make u (the first tie-breaker)."""
    seed = xxhash.xxh64_intdigest(name.encode("utf-8"), seed=0)
    h = xxhash.xxh64_intdigest(struct.pack("<Q", key_hash), seed=seed) >> 11
    u = (h + 0.5) / 2.0**53                  # in (0, 1], rounded as in C
    return (math.inf if u >= 1.0 else weight / -math.log(u), h)


def route(key, names, weights):
    """The shard that owns key: the highest score; among equal scores the
    larger hash; then the name that sorts first bytewise (COLLATE "C")."""
    if not names or len(names) != len(weights):
        raise ValueError("need as many weights as names, at least one")
    if len(set(names)) != len(names) or "" in names:
        raise ValueError("names must be distinct and non-empty")
    if not all(1e-9 <= w <= 1e9 for w in weights):
        raise ValueError("weights must be between 1e-9 and 1e9")
    key_hash = hash64(key)
    shards = sorted(zip(names, weights), key=lambda s: s[0].encode("utf-8"))
    # max() returns the first of equal maxima, i.e. the first name
    return max(shards, key=lambda s: score(key_hash, s[0], s[1]))[0]


def link_key(code, domain=None):
    """The routing key of a link (shorturl.link_key): its code on the
    default domain (None or ''), lower(domain) + '/' + code on another.
    PostgreSQL's lower() under the C locale folds ASCII letters only."""
    if not domain:
        return code
    return domain.translate(str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ",
                                          "abcdefghijklmnopqrstuvwxyz")) + "/" + code


def main():
    """Batch mode for the TAP test.  The arguments are a JSON file
    {"mod": [counts], "jump": [counts], "maps": [[names, weights], ...]};
    weights are decimal strings, parsed as SQL parses float8.  Each stdin
    line is "text HEX", "bytea HEX" (the key's bytes in hex) or "bigint N".
    Each output line has, tab-separated: hash64 as a bigint, shard_mod for
    each count, jump_hash for each count, route for each map (the name as
    hex of its UTF-8 bytes)."""
    import json

    with open(sys.argv[1], encoding="utf-8") as f:
        spec = json.load(f)
    maps = [(names, [float(w) for w in weights]) for names, weights in spec["maps"]]
    for line in sys.stdin:
        kind, _, value = line.rstrip("\n").partition(" ")
        if kind == "bigint":
            key = int(value)
        elif kind == "text":
            key = bytes.fromhex(value).decode("utf-8")
        else:
            key = bytes.fromhex(value)
        row = [as_bigint(hash64(key))]
        row += [shard_mod(key, n) for n in spec["mod"]]
        row += [jump_hash(key, n) for n in spec["jump"]]
        row += [route(key, names, weights).encode("utf-8").hex()
                for names, weights in maps]
        print("\t".join(str(v) for v in row))


if __name__ == "__main__":
    main()
