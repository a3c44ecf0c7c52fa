#!/usr/bin/python3
"""Writes deploy/seccomp-herald.json: the container runtime's default seccomp
profile plus the three io_uring system calls.

Why: Docker (since 25.0) and podman's containers-common leave io_uring_setup,
io_uring_enter and io_uring_register out of their default profiles, so inside
a container they fail with ENOSYS and herald (all of whose I/O runs on
io_uring) cannot start. Everything else stays as restrictive as the default.

  deploy/gen-seccomp.py [BASE_PROFILE [OUT]]
BASE_PROFILE defaults to /usr/share/containers/seccomp.json (Debian package
golang-github-containers-common, installed with podman); Docker's
profiles/seccomp/default.json from moby works the same way.
"""
import json
import os
import sys

base = sys.argv[1] if len(sys.argv) > 1 else "/usr/share/containers/seccomp.json"
out = sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                         "seccomp-herald.json")
with open(base) as f:
    prof = json.load(f)
names = ["io_uring_enter", "io_uring_register", "io_uring_setup"]
for rule in prof.get("syscalls", []):
    clash = set(rule.get("names", [])) & set(names)
    if clash and rule.get("action") != "SCMP_ACT_ALLOW":
        rule["names"] = [n for n in rule["names"] if n not in names]
prof["syscalls"] = [r for r in prof["syscalls"] if r.get("names")]
prof["syscalls"].append({
    "names": names,
    "action": "SCMP_ACT_ALLOW",
    "args": [],
    "comment": "herald: every gateway and router socket runs on io_uring",
    "includes": {},
    "excludes": {},
})
with open(out, "w") as f:
    json.dump(prof, f, indent=1)
    f.write("\n")
print(f"gen-seccomp: wrote {out} from {base}", file=sys.stderr)
