#!/usr/bin/python3
"""test/bench/redirect_plain.py: the baseline of test/bench/redirect.sh.

The reference service (examples/redirect-service/redirect_service.py),
configured and run the same way, with its redirect statements swapped for a
plain SELECT of the URL from bench.plain (code text PRIMARY KEY, url text,
the same codes and URLs as shorturl.links): no visit counted, no analytics,
no scan guard, no expiry.  Everything else (HTTP, the visitor hash, the
pool, the batching) is the service's own code.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "redirect-service"))
import redirect_service  # noqa: E402

redirect_service.RESOLVE_SQL = "SELECT url FROM bench.plain WHERE code = %(code)s"
redirect_service.RESOLVE_BATCH_SQL = """SELECT p.url
FROM unnest(%(code)s::text[]) WITH ORDINALITY AS t(c, n)
     LEFT JOIN bench.plain p ON p.code = t.c
ORDER BY t.n"""

if __name__ == "__main__":
    redirect_service.main()
