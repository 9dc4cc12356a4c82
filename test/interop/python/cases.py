"""Runs the scenario the tap test sends (test/interop/scenario.ts) with one SDK.

Each SDK program supplies `callers` (the SDK's own request classes and client, by the
credentials a case asks for) and its own attack cases (a tampered signed request, a
replayed nonce, a skewed clock), which patch the SDK's internals. Prints one JSON object:
case name -> {"ok": true, "value": ...} or {"ok": false, "code", "status", "message"}.
"""
import json
import re
import sys
import time
import urllib.request
from contextlib import contextmanager


def admin(config, step):
    body = step.get("body")
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(config["url"] + step["path"], data=data, method=step["method"],
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req) as res:
        res.read()


class Runner:
    def __init__(self, error_of):
        self.results = {}
        self.error_of = error_of

    def case(self, name, fn):
        try:
            self.results[name] = {"ok": True, "value": fn()}
        except Exception as error:  # an SDK error is a result, not a crash
            code, status = self.error_of(error)
            self.results[name] = {"ok": False, "code": code, "status": status,
                                  "message": str(error)[:300]}

    def resolve(self, value):
        if isinstance(value, dict):
            return {name: self.resolve(inner) for name, inner in value.items()}
        match = re.fullmatch(r"\{\{([^.]+)\.(.+)\}\}", value) if isinstance(value, str) else None
        if not match:
            return value
        found = self.results.get(match.group(1), {}).get("value") or {}
        for part in match.group(2).split("."):
            found = found.get(part, {}) if isinstance(found, dict) else {}
        return found if isinstance(found, str) else "unresolved"


def run_scenario(run, config, callers):
    for step in config["cases"]:
        if step.get("admin"):
            admin(config, step["admin"])
        call = callers[step.get("as")]
        run.case(step["name"], lambda: call(step["action"], run.resolve(step["params"])))


def read_config():
    return json.loads(sys.stdin.read())


def emit(run):
    print(json.dumps(run.results))


@contextmanager
def patched(owner, name, value):
    original = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield original
    finally:
        setattr(owner, name, original)


def utc_stamp(offset_minutes):
    """A clock off by this many minutes, in the ISO 8601 form both dialects sign."""
    moment = time.gmtime(time.time() + offset_minutes * 60)
    return lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", moment)


def signature_attacks(run, call, key, hooks):
    """Tampering, replay and clock skew through the SDK's own signing.

    hooks: "transport" (the HTTP client class whose send() the SDK calls), "nonce" and "clock"
    ((owner, name, wrap) of the functions the SDK takes the nonce and the time from).
    """
    describe = {"KeyId": key}
    transport = hooks["transport"]
    original_send = transport.send

    def tamper_query(self, prepared, **kwargs):
        prepared.url = prepared.url.replace("KeyId=", "KeyId=x", 1)
        return original_send(self, prepared, **kwargs)

    with patched(transport, "send", tamper_query):
        run.case("tampered query", lambda: call("DescribeKey", describe))
    owner, name, wrap = hooks["nonce"]
    nonce = "interop-replayed-" + str(time.time())
    with patched(owner, name, wrap(lambda: nonce)):
        run.case("first use of a nonce", lambda: call("DescribeKey", describe)["KeyMetadata"])
        run.case("replayed nonce", lambda: call("DescribeKey", describe))
    owner, name, wrap = hooks["clock"]
    for label, minutes in (("20 minutes behind", -20), ("20 minutes ahead", 20),
                           ("10 minutes behind", -10)):
        with patched(owner, name, wrap(utc_stamp(minutes))):
            run.case("clock " + label, lambda: call("DescribeKey", describe))
