"""A real, throwaway PostgreSQL server for the tests that need one.

In order: an existing server named by $FACESWAP_TEST_POSTGRES_URL; PostgreSQL's own `initdb`,
`pg_ctl` and `postgres` on PATH; else the server the `pgserver` wheel ships (dev extra, so CI always
has one). PostgreSQL refuses to run as root: the PATH route then runs it as `postgres` (Debian's
package creates that account) or `nobody`; pgserver creates an unprivileged `pgserver` account
(useradd) and opens the folders above its data and binaries to it (chmod o+rx up to /), which is
why a system PostgreSQL is preferred when there is one. Each test gets its own schema.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

URL_ENV = "FACESWAP_TEST_POSTGRES_URL"
FAST = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}  # throwaway data


class PostgresUnavailable(RuntimeError):
    pass


@dataclass
class PostgresServer:
    url: str  # the server's own database, as its superuser
    how: str
    stop: Callable[[], None]

    def new_schema(self, password: str | None = None) -> str:
        """A URL whose tables land in a fresh schema (search_path), optionally with a password in it
        (the server trusts local connections, so any password passes)."""
        import psycopg

        name = "t_" + secrets.token_hex(6)
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {name}")
        url = self.url
        if password is not None:
            url = url.replace("postgresql://postgres:@", f"postgresql://postgres:{quote(password, safe='')}@", 1)
            url = url.replace("postgresql://postgres@", f"postgresql://postgres:{quote(password, safe='')}@", 1)
        return f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{name}"

    def sql(self, url: str, statement: str, *params) -> None:
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(statement.replace("?", "%s"), params)


def start_server() -> PostgresServer:
    url = os.environ.get(URL_ENV)
    if url:
        return PostgresServer(url, f"${URL_ENV}", lambda: None)
    folder = Path(tempfile.mkdtemp(prefix="fs-pg-"))  # short (socket paths) and world-traversable
    try:
        return _from_path(folder) or _with_pgserver(folder)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def _with_pgserver(folder: Path) -> PostgresServer:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs: no XDG_RUNTIME_DIR
            import pgserver
    except ImportError:
        raise PostgresUnavailable(
            "no PostgreSQL server for these tests: install the dev extra (pgserver), put PostgreSQL's initdb, "
            f"pg_ctl and postgres on PATH, or set {URL_ENV}"
        ) from None
    import psycopg

    server = pgserver.get_server(folder / "data", cleanup_mode="delete")
    url = server.get_uri()
    with psycopg.connect(url, autocommit=True) as conn:
        for name, value in FAST.items():
            conn.execute(f"ALTER SYSTEM SET {name} = {value}")
        conn.execute("SELECT pg_reload_conf()")

    def stop() -> None:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)

    return PostgresServer(url, "pgserver", stop)


def _from_path(folder: Path) -> PostgresServer | None:
    tools = {name: shutil.which(name) for name in ("initdb", "pg_ctl", "postgres")}
    if not all(tools.values()):
        return None
    user = None
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        user = next((name for name in ("postgres", "nobody") if _account(name)), None)
        if user is None:
            return None
    data, sockets = folder / "data", folder
    data.mkdir(mode=0o700)
    if user is not None:
        entry = pwd.getpwnam(user)
        for path in (folder, data):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    run = {"user": user, "check": True, "capture_output": True, "timeout": 120}
    subprocess.run([tools["initdb"], "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"], **run)
    options = f"-h '' -k {sockets} " + " ".join(f"-c {k}={v}" for k, v in FAST.items())
    subprocess.run([tools["pg_ctl"], "-D", str(data), "-o", options, "-l", str(folder / "log"), "-w", "start"], **run)

    def stop() -> None:
        with contextlib.suppress(subprocess.SubprocessError):
            subprocess.run([tools["pg_ctl"], "-D", str(data), "-m", "immediate", "-w", "stop"], **run)
        shutil.rmtree(folder, ignore_errors=True)

    return PostgresServer(f"postgresql://postgres@/postgres?host={sockets}", f"PATH ({tools['postgres']})", stop)


def _account(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True
