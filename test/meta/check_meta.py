#!/usr/bin/python3
"""check_meta.py: validate a META.json against the PGXN Meta Spec 1.0.0.

    test/meta/check_meta.py META.json [--tree DIR]

Debian's pgxnclient has no validator, and nothing else that validates a
META.json is packaged for Debian 12, so this checks the spec's rules itself
(https://pgxn.org/meta/spec.txt): the required keys, the type and form of
every key the spec defines (terms, SemVer versions, version ranges,
licenses, URIs), and that no other key appears except the custom x_ ones.
Versions are parsed with pgxnclient's own SemVer class, the one "pgxn
install" compares with: Semantic Versioning 1.0.0, which the spec text
cites, so no build metadata ("1.0.0+build"), which the later JSON schemas
of pgxn/meta allow.  With --tree it also checks the distribution
against the tree: the files it names exist, and each extension's version
is its control file's default_version.  Prints every problem found and
exits 1 if there is any.
"""

import json
import os
import re
import sys

from pgxnclient.utils.semver import SemVer

LICENSES = {
    "agpl_3", "apache_1_1", "apache_2_0", "artistic_1", "artistic_2", "bsd", "freebsd",
    "gfdl_1_2", "gfdl_1_3", "gpl_1", "gpl_2", "gpl_3", "lgpl_2_1", "lgpl_3_0", "mit",
    "mozilla_1_0", "mozilla_1_1", "openssl", "perl_5", "postgresql", "qpl_1_0", "ssleay",
    "sun", "zlib", "open_source", "restricted", "unrestricted", "unknown",
}
PHASES = {"configure", "build", "test", "runtime", "develop"}
RELATIONS = {"requires", "recommends", "suggests", "conflicts"}
RANGE_OP = re.compile(r"^(==|!=|<=|>=|<|>)?\s*(.+)$")
URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:[^\s]+$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")

problems = []


def bad(where, what):
    problems.append("%s: %s" % (where, what))


def custom(key):
    return re.match(r"^[xX]_.", key) is not None


def is_str(where, v, min_len=1):
    if not isinstance(v, str):
        bad(where, "must be a string, not %s" % type(v).__name__)
        return False
    if len(v) < min_len:
        bad(where, "must have at least %d character(s)" % min_len)
        return False
    return True


def check_term(where, v):
    """A term: 2 or more characters, no slash, backslash, space or control."""
    if is_str(where, v, 2) and re.search(r"[/\\\s\x00-\x1f\x7f]", v):
        bad(where, "%r must not contain a slash, backslash, space or control character" % v)


def check_version(where, v):
    if not is_str(where, v):
        return
    try:
        SemVer(v)
    except ValueError:
        bad(where, "%r is not a semantic version (like 1.2.0)" % v)


def check_range(where, v):
    """0, or comma-separated versions each with an optional operator."""
    if v == 0 or v == "0":
        return
    if not is_str(where, v):
        return
    for part in v.split(","):
        m = RANGE_OP.match(part.strip())
        if not m:
            bad(where, "%r is not a version range" % v)
            continue
        check_version(where, m.group(2).strip())


def check_keys(where, obj, allowed, required=()):
    if not isinstance(obj, dict):
        bad(where, "must be an object")
        return False
    for k in required:
        if k not in obj:
            bad(where, "the required key %r is missing" % k)
    for k in obj:
        if k not in allowed and not custom(k):
            bad(where, "unknown key %r (custom keys begin with x_)" % k)
    return True


def check_uri(where, v):
    if is_str(where, v) and not URI.match(v):
        bad(where, "%r is not a URI" % v)


def check_license(v):
    if isinstance(v, str):
        if v not in LICENSES:
            bad("license", "%r is not one of the spec's license names" % v)
    elif isinstance(v, list):
        if not v:
            bad("license", "an empty list")
        for i, name in enumerate(v):
            if name not in LICENSES:
                bad("license[%d]" % i, "%r is not one of the spec's license names" % name)
    elif isinstance(v, dict):
        if not v:
            bad("license", "an empty object")
        for name, uri in v.items():
            check_uri("license.%s" % name, uri)
    else:
        bad("license", "must be a string, a list or an object")


def check_maintainer(v):
    if isinstance(v, list):
        if not v:
            bad("maintainer", "an empty list")
        for i, m in enumerate(v):
            is_str("maintainer[%d]" % i, m)
    else:
        is_str("maintainer", v)


def check_provides(v):
    if not check_keys("provides", v, set(v) if isinstance(v, dict) else set()):
        return
    if not v:
        bad("provides", "must name at least one extension")
    for name, ext in v.items():
        where = "provides.%s" % name
        check_term(where, name)
        if check_keys(where, ext, {"file", "version", "abstract", "docfile"}, ("file", "version")):
            for k in ("file", "docfile"):
                if k in ext:
                    is_str("%s.%s" % (where, k), ext[k])
            if "version" in ext:
                check_version(where + ".version", ext["version"])
            if "abstract" in ext:
                is_str(where + ".abstract", ext["abstract"])


def check_prereqs(v):
    if not check_keys("prereqs", v, PHASES):
        return
    for phase, rels in v.items():
        if custom(phase):
            continue
        where = "prereqs.%s" % phase
        if not check_keys(where, rels, RELATIONS):
            continue
        if not rels:
            bad(where, "an empty phase")
        for rel, deps in rels.items():
            if custom(rel):
                continue
            w = "%s.%s" % (where, rel)
            if not isinstance(deps, dict):
                bad(w, "must map extension names to version ranges")
                continue
            for dep, rng in deps.items():
                check_term("%s (name)" % w, dep)
                check_range("%s.%s" % (w, dep), rng)


def check_resources(v):
    if not check_keys("resources", v, {"homepage", "bugtracker", "repository"}):
        return
    if not v:
        bad("resources", "an empty object")
    if "homepage" in v:
        check_uri("resources.homepage", v["homepage"])
    if "bugtracker" in v:
        b = v["bugtracker"]
        if check_keys("resources.bugtracker", b, {"web", "mailto"}):
            if "web" not in b and "mailto" not in b:
                bad("resources.bugtracker", "needs web or mailto")
            if "web" in b:
                check_uri("resources.bugtracker.web", b["web"])
            if "mailto" in b and is_str("resources.bugtracker.mailto", b["mailto"]) \
                    and not EMAIL.match(b["mailto"]):
                bad("resources.bugtracker.mailto", "%r is not an address" % b["mailto"])
    if "repository" in v:
        r = v["repository"]
        if check_keys("resources.repository", r, {"url", "web", "type"}):
            if "web" not in r and not ("url" in r and "type" in r):
                bad("resources.repository", "needs web, or url and type")
            for k in ("url", "web"):
                if k in r:
                    check_uri("resources.repository.%s" % k, r[k])
            if "type" in r and is_str("resources.repository.type", r["type"]) \
                    and r["type"] != r["type"].lower():
                bad("resources.repository.type", "must be lower case")


def check_tags(v):
    if not isinstance(v, list) or not v:
        bad("tags", "must be a non-empty list")
        return
    for i, t in enumerate(v):
        w = "tags[%d]" % i
        if is_str(w, t, 2):
            if len(t) > 255:
                bad(w, "longer than 255 characters")
            if re.search(r"[/\\\x00-\x1f\x7f]", t):
                bad(w, "%r must not contain a slash, backslash or control character" % t)


def check_no_index(v):
    if not check_keys("no_index", v, {"file", "directory"}):
        return
    for k, paths in v.items():
        if custom(k):
            continue
        paths = [paths] if isinstance(paths, str) else paths
        if not isinstance(paths, list) or not paths:
            bad("no_index.%s" % k, "must be a path or a non-empty list of paths")
            continue
        for p in paths:
            is_str("no_index.%s" % k, p)


def check_meta(m):
    top = {"name", "version", "abstract", "maintainer", "license", "provides", "meta-spec",
           "description", "generated_by", "tags", "no_index", "prereqs", "release_status",
           "resources"}
    if not check_keys("META.json", m, top, ("name", "version", "abstract", "maintainer",
                                            "license", "provides", "meta-spec")):
        return
    spec = m.get("meta-spec")
    if check_keys("meta-spec", spec, {"version", "url"}, ("version",)):
        if "version" in spec and not re.match(r"^1\.0\.\d+$", str(spec["version"])):
            bad("meta-spec.version", "this checks spec 1.0.x, not %r" % spec["version"])
        if "url" in spec and spec["url"] not in ("https://pgxn.org/meta/spec.txt",
                                                 "http://pgxn.org/meta/spec.txt"):
            bad("meta-spec.url", "must be the spec's own address")
    if "name" in m:
        check_term("name", m["name"])
    if "version" in m:
        check_version("version", m["version"])
    for k in ("abstract", "description", "generated_by"):
        if k in m:
            is_str(k, m[k])
    if "maintainer" in m:
        check_maintainer(m["maintainer"])
    if "license" in m:
        check_license(m["license"])
    if "provides" in m:
        check_provides(m["provides"])
    if "prereqs" in m:
        check_prereqs(m["prereqs"])
    if "release_status" in m and m["release_status"] not in ("stable", "testing", "unstable"):
        bad("release_status", "must be stable, testing or unstable")
    if "resources" in m:
        check_resources(m["resources"])
    if "tags" in m:
        check_tags(m["tags"])
    if "no_index" in m:
        check_no_index(m["no_index"])


def control_version(path):
    with open(path) as f:
        for line in f:
            m = re.match(r"^\s*default_version\s*=\s*'([^']*)'", line)
            if m:
                return m.group(1)
    return None


def check_tree(m, tree):
    """The distribution matches the tree: files exist, versions agree."""
    for name, ext in (m.get("provides") or {}).items():
        if not isinstance(ext, dict):
            continue
        for k in ("file", "docfile"):
            if isinstance(ext.get(k), str) and not os.path.isfile(os.path.join(tree, ext[k])):
                bad("provides.%s.%s" % (name, k), "%s is not a file of the tree" % ext[k])
        f = ext.get("file", "")
        if isinstance(f, str) and f.endswith(".control") and os.path.isfile(os.path.join(tree, f)):
            v = control_version(os.path.join(tree, f))
            # an extension version "0.10" is the SemVer "0.10.0"
            want = v + ".0" if v and v.count(".") == 1 else v
            if ext.get("version") != want:
                bad("provides.%s.version" % name,
                    "%r, but %s has default_version '%s'" % (ext.get("version"), f, v))
    main = (m.get("provides") or {}).get(m.get("name"))
    if isinstance(main, dict) and main.get("version") != m.get("version"):
        bad("version", "%r differs from the version of the extension %s" % (m.get("version"),
                                                                            m.get("name")))


def main(argv):
    if len(argv) not in (2, 4) or (len(argv) == 4 and argv[2] != "--tree"):
        sys.stderr.write("usage: check_meta.py META.json [--tree DIR]\n")
        return 2
    try:
        with open(argv[1]) as f:
            m = json.load(f)
    except (OSError, ValueError) as e:
        print("%s: %s" % (argv[1], e))
        return 1
    check_meta(m)
    if len(argv) == 4 and isinstance(m, dict):
        check_tree(m, argv[3])
    for p in problems:
        print("%s: %s" % (argv[1], p))
    if problems:
        return 1
    print("%s: valid PGXN Meta Spec %s (%s %s)" % (argv[1], m["meta-spec"]["version"],
                                                  m["name"], m["version"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
