#!/usr/bin/env python3
"""Checks the hash chains of an audit-log export, as docs/chain.md specifies them.

Usage: verify_chain.py FILE

FILE is a JSON array of entries or NDJSON (one entry per line), each with its "chain" object;
a chain a purge shortened is preceded by a {"chain_start": {"tenant_id", "seq", "hash"}} line.
Prints, for each chain, how many entries it checked; exits 1 at the first broken link (which
it names, with the reason), 2 when the file cannot be read. Python's standard library only.
"""

import hashlib
import json
import struct
import sys

GENESIS = "0" * 64
ERASED = "[ERASED]"
FIELDS = [
    "id", "occurred_at", "tenant_id", "team_id", "actor_kind", "actor_id", "api_key_id",
    "api_key_name", "action", "entity_type", "entity_id", "entity_name", "details",
]
AFTER_CHANGES = ["outcome"]
AFTER_STATUS = ["request_id", "method", "route"]


def item(value, out):
    """Appends the canonical encoding of a JSON value."""
    if value is None:
        out += b"N"
    elif value is True:
        out += b"T"
    elif value is False:
        out += b"F"
    elif isinstance(value, str):
        data = value.encode("utf-8")
        out += b"S%d:" % len(data) + data
    elif isinstance(value, int):
        if -(2 ** 63) <= value <= 2 ** 64 - 1:
            out += b"I%d;" % value
        else:
            out += b"D" + struct.pack(">d", float(value)).hex().encode()
    elif isinstance(value, float):
        out += b"D" + struct.pack(">d", value).hex().encode()
    elif isinstance(value, list):
        out += b"A%d:" % len(value)
        for element in value:
            item(element, out)
    elif isinstance(value, dict):
        out += b"O%d:" % len(value)
        for key in sorted(value, key=lambda k: k.encode("utf-8")):
            item(key, out)
            item(value[key], out)
    else:
        raise ValueError("not a JSON value: %r" % (value,))


def personal_digest(entry, salt):
    out = bytearray(b"tower-audit personal v1\n")
    item(salt, out)
    for field in ("actor_name", "ip", "user_agent"):
        item(entry.get(field), out)
    return hashlib.sha256(out).hexdigest()


def entry_hash(entry, seq, prev, personal):
    out = bytearray(b"tower-audit chain v1\n")
    item(seq, out)
    item(prev, out)
    for field in FIELDS:
        item(entry.get(field), out)
    changes = entry.get("changes") or []
    out += b"A%d:" % len(changes)
    for change in changes:
        out += b"A3:"
        item(change["field"], out)
        item(change.get("old"), out)
        item(change.get("new"), out)
    for field in AFTER_CHANGES:
        item(entry.get(field), out)
    item(entry.get("status"), out)
    for field in AFTER_STATUS:
        item(entry.get(field), out)
    item(entry.get("metadata") or {}, out)
    item(personal, out)
    # Item 24, only for an entry with a trace id: entries without one encode as before.
    if entry.get("trace_id") is not None:
        item(entry["trace_id"], out)
    return hashlib.sha256(out).hexdigest()


def read(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if text.lstrip().startswith("["):
        return json.loads(text)
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def check(entries):
    """Returns (checked per chain, first break or None)."""
    chains = {}
    starts = {}
    for entry in entries:
        if "checkpoint" in entry:
            # A signed checkpoint (Ed25519: not in the standard library); see docs/chain.md.
            continue
        if "chain" not in entry and "id" in entry:
            # An entry stored before chaining began: nothing to check it against.
            continue
        if "chain_start" in entry:
            # A chain a purge shortened starts after this entry (number and hash).
            start = entry["chain_start"]
            starts[start.get("tenant_id")] = (start["seq"], start["hash"])
            continue
        chains.setdefault(entry.get("tenant_id"), []).append(entry)
    checked = {}
    for tenant, run in chains.items():
        run.sort(key=lambda e: e["chain"]["seq"])
        seq, prev = starts.get(tenant, (0, GENESIS))
        # A purge records, before deleting, the last entry it deletes: a start must be vouched
        # for by a Purge entry of the chain.
        through = [e["metadata"].get("purge_through_seq") for e in run
                   if e.get("action") == "Purge" and isinstance(e.get("metadata"), dict)]
        through = [t for t in through if isinstance(t, int)]
        if seq > 0 and (not through or max(through) < seq):
            return checked, "tenant %r: the chain starts after sequence %d, but no purge in it deleted that far" % (tenant, seq)
        for entry in run:
            chain = entry["chain"]
            where = "tenant %r, entry %s (sequence %s)" % (tenant, entry.get("id"), chain["seq"])
            if chain["seq"] != seq + 1:
                return checked, "%s: expected sequence %d" % (where, seq + 1)
            salt = chain.get("salt")
            if salt is None:
                # Erased: the fields must be the erasure's marker.
                personal_ok = (entry.get("actor_name") == ERASED and entry.get("ip") is None
                               and entry.get("user_agent") == ERASED)
            else:
                personal_ok = personal_digest(entry, salt) == chain["personal"]
            if not personal_ok:
                return checked, "%s: personal fields do not match their digest" % where
            if entry_hash(entry, chain["seq"], prev, chain["personal"]) != chain["hash"]:
                return checked, "%s: content does not match its hash" % where
            seq, prev = chain["seq"], chain["hash"]
            checked[tenant] = checked.get(tenant, 0) + 1
    return checked, None


def main(argv):
    if len(argv) != 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    try:
        entries = read(argv[1])
    except (OSError, ValueError) as error:
        print("cannot read %s: %s" % (argv[1], error), file=sys.stderr)
        return 2
    checked, broken = check(entries)
    for tenant, count in sorted(checked.items(), key=lambda kv: str(kv[0])):
        print("chain %r: %d entries verified" % (tenant, count))
    if broken:
        print("BROKEN: " + broken)
        return 1
    print("all %d entries verified" % sum(checked.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
