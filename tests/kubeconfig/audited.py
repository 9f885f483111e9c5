"""Run a Python script under an audit hook that records commands and reads of watched paths.

Usage: ``python audited.py LOG WATCHED_DIR SCRIPT [ARGS...]``. Installs a ``sys.addaudithook`` hook
(it cannot be removed, hence a separate process), runs SCRIPT as ``__main__`` with ``sys.argv =
[SCRIPT, *ARGS]``, and at exit writes a JSON list of ``[phase, event, detail]`` to LOG. ``phase`` is
whatever the script last put in ``os.environ["AUDIT_PHASE"]`` ("setup" until then).

Recorded: every process-creating event (subprocess, os.system, exec*, posix_spawn, spawn*, fork, pty)
and every ``open``/``os.listdir``/``os.scandir``/``shutil.*`` event whose path lies in WATCHED_DIR.
Reads done inside C libraries (OpenSSL loading a CA file) raise no audit event; the test watches the
directory with inotify as well for those.
"""

from __future__ import annotations

import json
import os
import runpy
import sys

PROCESS_EVENTS = {
    "subprocess.Popen",
    "os.system",
    "os.exec",
    "os.posix_spawn",
    "os.spawn",
    "os.fork",
    "os.forkpty",
    "pty.spawn",
    "os.startfile",
}
PATH_EVENTS = {
    "open",
    "os.listdir",
    "os.scandir",
    "shutil.copyfile",
    "shutil.copytree",
    "os.chmod",
    "os.rename",
}


def main() -> None:
    log_path, watched, script, *args = sys.argv[1:]
    watched = os.path.realpath(watched)
    events: list[list[str]] = []

    def hook(event: str, hook_args: tuple) -> None:
        if event in PROCESS_EVENTS:
            events.append([os.environ.get("AUDIT_PHASE", "setup"), event, repr(hook_args)[:500]])
        elif event in PATH_EVENTS and hook_args:
            path = hook_args[0]
            if isinstance(path, str | bytes | os.PathLike):
                text = os.fsdecode(path)
                if os.path.realpath(text).startswith(watched):
                    events.append([os.environ.get("AUDIT_PHASE", "setup"), event, text])

    sys.addaudithook(hook)
    sys.argv = [script, *args]
    code = 0
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if exc.code not in (None, 0) and not isinstance(exc.code, int):
            print(exc.code, file=sys.stderr)
    finally:
        with open(log_path, "w") as fh:
            json.dump(events, fh)
    sys.exit(code)


if __name__ == "__main__":
    main()
