#!/usr/bin/env python3
"""Checks a kamiyo monitor's event log with nothing but the Python standard library.

Reads every entry of GET /security/log and every event of GET /security/events, then checks
that each entry links to the one before it, that each event hashes to its entry's digest, and
(with --head) that a head you kept earlier is still in the chain. The rules are those of
docs/EVENT-LOG.md; this script shares no code with kamiyo, so it is a second, independent
implementation of them.

    python3 docs/verify-event-log.py http://127.0.0.1:8080 --key "$KAMIYO_API_KEY" \
        --head 1042:9f2c…   # a head you noted earlier (seq:chain)

Exit status 0 when everything verifies, 1 when something does not (the first fault is
printed), 2 on a usage or network error.
"""

import argparse
import hashlib
import json
import sys
import urllib.parse
import urllib.request

GENESIS = "0" * 64


def sha256(text):
    return hashlib.sha256(text.encode("utf-8") if isinstance(text, str) else text).hexdigest()


def canonical(obj):
    """An event object as the log hashes it: keys sorted, no whitespace, UTF-8."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def fetch(base, path, key):
    headers = {"Accept": "application/json"}
    if key:
        headers["Authorization"] = "Bearer " + key
    req = urllib.request.Request(base.rstrip("/") + path, headers=headers)
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)


def read_log(base, key):
    entries, after, head = [], 0, None
    while True:
        page = fetch(base, "/security/log?after=%d&limit=1000" % after, key)
        if head is None:
            head = page["head"]
        entries.extend(page["entries"])
        if "next_after" not in page:
            return entries, head
        after = page["next_after"]


def read_events(base, key):
    events, path = [], "/security/events?limit=1000"
    while True:
        page = fetch(base, path, key)
        events.extend(page["events"])
        cursor = page.get("next_cursor")
        if not cursor:
            return events
        path = "/security/events?limit=1000&cursor=" + urllib.parse.quote(cursor)


def verify_chain(entries):
    prev, last = GENESIS, None
    for e in entries:
        if last is not None and e["seq"] <= last["seq"]:
            return "entry %d follows entry %d: sequence numbers must increase" % (e["seq"], last["seq"])
        if last is not None and e["logged_ms"] < last["logged_ms"]:
            return "entry %d was logged before entry %d" % (e["seq"], last["seq"])
        expected = sha256("%s:%d:%d:%s" % (prev, e["seq"], e["logged_ms"], e["digest"]))
        if expected != e["chain"]:
            return "entry %d: chain %s is not the link of its predecessor (%s)" % (e["seq"], e["chain"], expected)
        prev, last = e["chain"], e
    return None


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("url", help="the monitor's API, e.g. http://127.0.0.1:8080")
    p.add_argument("--key", help="an API key (sent as a bearer token)")
    p.add_argument("--head", action="append", default=[], metavar="SEQ:CHAIN",
                   help="a head you kept earlier; it must still be in the chain (repeatable)")
    args = p.parse_args()
    witnessed = []
    for h in args.head:
        seq, sep, chain = h.partition(":")
        if not sep or not seq.isdigit() or len(chain) != 64:
            print("--head %r: expected SEQ:CHAIN (a 64-digit hex chain)" % h, file=sys.stderr)
            return 2
        witnessed.append((int(seq), chain.lower()))
    try:
        entries, head = read_log(args.url, args.key)
        events = read_events(args.url, args.key)
    except (OSError, ValueError, KeyError) as e:
        print("could not read the log: %s" % e, file=sys.stderr)
        return 2
    fault = verify_chain(entries)
    if fault:
        print("FAIL: " + fault)
        return 1
    by_seq = {e["seq"]: e for e in entries}
    if head is not None and by_seq.get(head["seq"], {}).get("chain") != head["chain"]:
        print("FAIL: the head served (%d) is not in the chain" % head["seq"])
        return 1
    for seq, chain in witnessed:
        if by_seq.get(seq, {}).get("chain") != chain:
            print("FAIL: the head you kept (%d:%s) is not in the chain: the log was rewritten" % (seq, chain))
            return 1
    matched, before_log = 0, 0
    first = entries[0]["seq"] if entries else None
    for ev in events:
        entry = by_seq.get(ev["seq"])
        if entry is None:
            if first is None or ev["seq"] < first:
                before_log += 1
                continue
            print("FAIL: event %d has no log entry" % ev["seq"])
            return 1
        found = sha256(canonical(ev))
        if found != entry["digest"]:
            print("FAIL: event %d hashes to %s, the log says %s" % (ev["seq"], found, entry["digest"]))
            return 1
        matched += 1
    print("ok: %d entries link up to head %s; %d events match their entries; %d stored before the log began; %d kept heads found"
          % (len(entries), "%d:%s" % (head["seq"], head["chain"]) if head else "(empty)", matched, before_log, len(witnessed)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
