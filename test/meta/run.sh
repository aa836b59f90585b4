#!/bin/bash
# test/meta/run.sh: the PGXN metadata and archive.
#
# META.json must validate against the PGXN Meta Spec and agree with the
# tree (test/meta/check_meta.py); the validator must refuse each of a set of
# broken copies, so that a pass means something; and "make dist" must give
# a zip whose one top directory holds a META.json that validates and the
# files it names.  Runs from a git checkout (make dist archives HEAD).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
check=$here/check_meta.py
work=$(mktemp -d /tmp/pg_shorturl-meta.XXXXXX)
trap 'rm -rf "$work"' EXIT

"$check" "$repo/META.json" --tree "$repo"

# broken copies: each edit is a Python expression on the parsed META.json m
refuse() {
	local what=$1 edit=$2
	/usr/bin/python3 - "$repo/META.json" "$work/broken.json" "$edit" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
exec(sys.argv[3])
json.dump(m, open(sys.argv[2], "w"))
PY
	if "$check" "$work/broken.json" --tree "$repo" >"$work/out" 2>&1; then
		echo "FAIL: the validator accepted META.json with $what"
		exit 1
	fi
	echo "refused, as it must be: $what ($(head -n 1 "$work/out" | sed 's/^[^:]*: //'))"
}
refuse "no license" 'del m["license"]'
refuse "a license the spec does not name" 'm["license"] = "postgres"'
refuse "a two-part version" 'm["version"] = "0.10"'
refuse "a version other than the control file's" 'm["provides"]["pg_shorturl"]["version"] = "0.9.0"'
refuse "a provided file that does not exist" 'm["provides"]["pg_shorturl"]["file"] = "nowhere.control"'
refuse "a bad version range" 'm["prereqs"]["runtime"]["requires"]["PostgreSQL"] = ">= fifteen"'
refuse "an unknown phase" 'm["prereqs"]["install"] = {"requires": {"foo": 0}}'
refuse "an unknown top-level key" 'm["homepage"] = "https://example.com/"'
refuse "a tag with a slash" 'm["tags"].append("a/b")'
refuse "a release status of beta" 'm["release_status"] = "beta"'
refuse "a meta-spec 2.0.0" 'm["meta-spec"]["version"] = "2.0.0"'

# the archive
version=$(/usr/bin/python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["version"])' "$repo/META.json")
# make reads PGXS for every target: any pg_config will do
pg_config=${PG_CONFIG:-$(command -v pg_config || echo /usr/lib/postgresql/15/bin/pg_config)}
make -s -C "$repo" dist DIST_DIR="$work" PG_CONFIG="$pg_config" >/dev/null
zip=$work/pg_shorturl-$version.zip
[ -s "$zip" ] || { echo "FAIL: make dist made no $zip"; exit 1; }
(cd "$work" && /usr/bin/python3 -m zipfile -e "$zip" unpacked)
tops=$(ls "$work/unpacked")
[ "$tops" = "pg_shorturl-$version" ] || { echo "FAIL: the zip's top is '$tops', not pg_shorturl-$version"; exit 1; }
"$check" "$work/unpacked/$tops/META.json" --tree "$work/unpacked/$tops"
[ ! -e "$work/unpacked/$tops/.ci" ] || { echo "FAIL: the zip holds .ci"; exit 1; }
echo "make dist: pg_shorturl-$version.zip, $(stat -c %s "$zip") bytes, $(/usr/bin/python3 -m zipfile -l "$zip" | tail -n +2 | wc -l) files"
