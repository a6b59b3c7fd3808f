#!/usr/bin/python3
"""Offline SELinux access decisions against a binary policy, for svirt's tests.

Run with Debian's /usr/bin/python3 (python3-selinux provides selinux.audit2why).
stdin:  {"policy": "/etc/selinux/default/policy/policy.33",
         "queries": [{"scontext": "...", "tcontext": "...", "tclass": "file", "perms": ["read"]}]}
stdout: {"policy": "...", "answers": [{"allowed": true|false, "result": "ALLOW"|"CONSTRAINT"|...,
                                       "detail": "the constraint text or null"}]}
Exit 2 with {"error": "..."} on stdout when the module or the policy cannot be loaded.
"""
import json
import sys

RESULTS = ("ALLOW", "DONTAUDIT", "TERULE", "BOOLEAN", "CONSTRAINT", "RBAC", "BOUNDS",
           "UNKNOWN", "BADSCON", "BADTCON", "BADTCLASS", "BADPERM", "BADCOMPUTE", "NOPOLICY")


def fail(message):
    json.dump({"error": message}, sys.stdout)
    sys.stdout.write("\n")
    sys.exit(2)


def main():
    try:
        import selinux.audit2why as audit2why
    except ImportError as err:
        fail("cannot import selinux.audit2why: %s (install python3-selinux, use /usr/bin/python3)" % err)

    request = json.load(sys.stdin)
    policy = request["policy"]
    try:
        audit2why.init(policy)
    except (OSError, ValueError, RuntimeError, SystemError) as err:
        fail("cannot load policy %s: %s" % (policy, str(err.__cause__ or err).strip()))

    names = {getattr(audit2why, name): name for name in RESULTS if hasattr(audit2why, name)}
    answers = []
    for q in request["queries"]:
        rc, data = audit2why.analyze(q["scontext"], q["tcontext"], q["tclass"], list(q["perms"]))
        if data is None or isinstance(data, str):
            detail = data.strip() if isinstance(data, str) else None
        else:
            detail = repr(data)  # booleans that would allow it: [(name, value), ...]
        answers.append({"allowed": rc == audit2why.ALLOW, "result": names.get(rc, str(rc)), "detail": detail})
    audit2why.finish()
    json.dump({"policy": policy, "answers": answers}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
