"""``voxdesk backup --out DIR`` and ``voxdesk restore --from DIR``: everything a desk cannot rebuild, and back.

A backup holds what exists nowhere else:

- the database: SQLite through its online backup API (a consistent copy while the server runs), PostgreSQL
  through ``pg_dump --format=custom`` inside an exported snapshot, so the row counts in the manifest describe
  exactly the rows in the dump;
- the files under the data directory the database points at: ``uploads/`` (the stored originals of every
  knowledge document) and ``recordings/``, plus ``models/acoustic-adapted/`` (``voxdesk asr-adapt``'s default
  output) when it exists;
- ``manifest.json``: the sha256 and size of every file in the backup, the Alembic revision, the row count of
  every table, the versions that wrote it, and the data directory it came from.

The knowledge index (``<data_dir>/knowledge``) and the derived models (domain LM, ONNX export) are left out:
the database is the record of every chunk and its embedding, and the index is restored from it. A restore
verifies every file against the manifest before it changes anything, restores the database and the files,
rewrites stored file paths when the data directory moved, upgrades the schema to this code's revision,
rebuilds the knowledge index from the database, and checks the row counts and that every file the database
references exists. It refuses a target that already holds a database or files unless ``force`` is given.

Exit codes of both commands: 0 done, 1 failed (one line says why).
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.metadata
import json
import os
import platform
import shutil
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy.engine import URL, make_url

from config import Settings

__all__ = ["BackupError", "create_backup", "restore_backup", "run_backup", "run_restore"]

FORMAT = 1
MANIFEST = "manifest.json"
SQLITE_FILE = "database.sqlite3"
PG_FILE = "database.pgdump"
DATA = "data"
# Under the data directory: what the database points at and what cannot be rebuilt from it.
KEPT_DIRS = ("uploads", "recordings", "models/acoustic-adapted")
# Derived from the database, rebuilt on restore.
INDEX_DIR = "knowledge"
PG_BIN_DIRS = ("/usr/lib/postgresql",)
CHUNK = 1 << 20

Echo = Callable[[str], None]


class BackupError(Exception):
    """A backup or restore that cannot proceed; the message says why, for one line of output."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What a database copy holds: its Alembic revision, rows per table, and the files its rows reference."""

    revision: str | None
    counts: dict[str, int]
    referenced: list[str]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _is_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite"


def _sqlite_path(url: URL) -> Path:
    if not url.database or url.database == ":memory:":
        raise BackupError(f"cannot back up an in-memory SQLite database ({url.render_as_string()})")
    return Path(url.database)


def _libpq(url: URL) -> tuple[str, dict[str, str]]:
    """A libpq URL without the password, and the environment carrying it (never on a command line)."""
    env = dict(os.environ)
    if url.password is not None:
        env["PGPASSWORD"] = str(url.password)
    plain = url.set(drivername="postgresql", password=None).render_as_string(hide_password=False)
    return plain, env


def pg_tool(name: str) -> str:
    """Path of ``pg_dump``/``pg_restore``: from PATH, else the newest ``/usr/lib/postgresql/*/bin``."""
    found = shutil.which(name)
    if found:
        return found
    candidates: list[tuple[int, Path]] = []
    for root in PG_BIN_DIRS:
        for version_dir in Path(root).glob("*"):
            tool = version_dir / "bin" / name
            if tool.is_file() and version_dir.name.isdigit():
                candidates.append((int(version_dir.name), tool))
    if not candidates:
        raise BackupError(f"{name} not found on PATH or under /usr/lib/postgresql/*/bin (install postgresql-client)")
    return str(max(candidates)[1])


def _snapshot(cursor: Any, *, tables_sql: str) -> Snapshot:
    """Read revision, counts and referenced files through a DB-API cursor (SQLite or psycopg)."""
    cursor.execute(tables_sql)
    tables = sorted(str(row[0]) for row in cursor.fetchall())
    counts: dict[str, int] = {}
    for table in tables:
        if table == "alembic_version":
            continue
        # Table names come from the database's own catalogue, quoted as identifiers.
        cursor.execute(f'SELECT count(*) FROM "{table}"')  # noqa: S608 - identifier from the catalogue
        counts[table] = int(cursor.fetchone()[0])
    revision = None
    if "alembic_version" in tables:
        cursor.execute("SELECT version_num FROM alembic_version")
        row = cursor.fetchone()
        revision = str(row[0]) if row else None
    referenced: list[str] = []
    if "knowledge_documents" in tables:
        cursor.execute("SELECT storage_path FROM knowledge_documents")
        referenced.extend(str(row[0]) for row in cursor.fetchall() if row[0])
    if "recordings" in tables:
        cursor.execute("SELECT path FROM recordings WHERE deleted_at IS NULL")
        referenced.extend(str(row[0]) for row in cursor.fetchall() if row[0])
    return Snapshot(revision=revision, counts=counts, referenced=sorted(referenced))


SQLITE_TABLES = "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
PG_TABLES = "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"


def _sqlite_snapshot(path: Path) -> Snapshot:
    conn = sqlite3.connect(path)
    try:
        return _snapshot(conn.cursor(), tables_sql=SQLITE_TABLES)
    finally:
        conn.close()


def _sqlite_copy(source: Path, target: Path) -> None:
    """Copy a live SQLite database page by page (WAL included) with the online backup API."""
    target.parent.mkdir(parents=True, exist_ok=True)
    src = sqlite3.connect(source)
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)
        finally:
            dst.close()
    finally:
        src.close()


def _dump_postgres(url: URL, target: Path) -> tuple[Snapshot, str]:
    """``pg_dump`` inside an exported snapshot, counting rows in the same snapshot."""
    conninfo, env = _libpq(url)
    pg_dump = pg_tool("pg_dump")
    password = str(url.password) if url.password is not None else None
    with psycopg.connect(conninfo, password=password, connect_timeout=10) as conn:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        row = conn.execute("SELECT pg_export_snapshot()").fetchone()
        assert row is not None  # pg_export_snapshot always returns one row
        snapshot = _snapshot(conn.cursor(), tables_sql=PG_TABLES)
        result = subprocess.run(  # noqa: S603 - fixed program, arguments are ours
            [
                pg_dump,
                "--format=custom",
                "--no-owner",
                "--no-privileges",
                f"--snapshot={row[0]}",
                f"--file={target}",
                f"--dbname={conninfo}",
            ],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        conn.rollback()
    if result.returncode != 0:
        raise BackupError(f"pg_dump failed: {result.stderr.strip().splitlines()[-1] if result.stderr else '?'}")
    version = subprocess.run(  # noqa: S603 - fixed program
        [pg_dump, "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return snapshot, version


def _postgres_snapshot(url: URL) -> Snapshot:
    conninfo, _ = _libpq(url)
    password = str(url.password) if url.password is not None else None
    with psycopg.connect(conninfo, password=password, connect_timeout=10) as conn:
        return _snapshot(conn.cursor(), tables_sql=PG_TABLES)


def _postgres_has_schema(url: URL) -> bool:
    conninfo, _ = _libpq(url)
    password = str(url.password) if url.password is not None else None
    with psycopg.connect(conninfo, password=password, connect_timeout=10) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename = 'alembic_version'"
        ).fetchone()
        return bool(row and row[0])


def _restore_postgres(url: URL, dump: Path) -> None:
    conninfo, env = _libpq(url)
    result = subprocess.run(  # noqa: S603 - fixed program, arguments are ours
        [
            pg_tool("pg_restore"),
            "--clean",
            "--if-exists",
            "--no-owner",
            "--no-privileges",
            "--single-transaction",
            "--exit-on-error",
            f"--dbname={conninfo}",
            str(dump),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise BackupError(f"pg_restore failed: {result.stderr.strip().splitlines()[-1] if result.stderr else '?'}")


def _kept_files(data_dir: Path) -> Iterator[tuple[Path, str]]:
    """``(absolute file, path relative to the data dir)`` of every file a backup keeps."""
    for kept in KEPT_DIRS:
        root = data_dir / kept
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*")):
            if path.is_file() and not path.is_symlink():
                yield path, path.relative_to(data_dir).as_posix()


def _resolve_stored(stored: str, data_dir: Path) -> Path:
    """Where a path stored in the database points (relative ones: from the working directory)."""
    path = Path(stored)
    if path.is_absolute():
        return path
    recordings = data_dir / "recordings" / path
    return recordings if recordings.exists() else path


def create_backup(settings: Settings, out: Path, *, echo: Echo) -> dict[str, Any]:
    """Write a backup of ``settings``' database and data files to the empty or new directory ``out``.

    Returns:
        The manifest written to ``out/manifest.json``.

    Raises:
        BackupError: ``out`` holds files, the database cannot be read, or ``pg_dump`` fails.

    """
    if out.exists() and any(out.iterdir()):
        raise BackupError(f"{out} is not empty; back up into a new directory")
    out.mkdir(parents=True, exist_ok=True)
    url = make_url(settings.database_url)
    database: dict[str, Any]
    if _is_sqlite(url):
        source = _sqlite_path(url)
        if not source.is_file():
            raise BackupError(f"no database at {source} (run `voxdesk migrate` first)")
        _sqlite_copy(source, out / SQLITE_FILE)
        snapshot = _sqlite_snapshot(out / SQLITE_FILE)
        database = {"backend": "sqlite", "file": SQLITE_FILE, "sqlite": sqlite3.sqlite_version}
    else:
        snapshot, pg_dump_version = _dump_postgres(url, out / PG_FILE)
        database = {"backend": "postgresql", "file": PG_FILE, "pg_dump": pg_dump_version}
    echo(f"database    {database['backend']} at revision {snapshot.revision}: {sum(snapshot.counts.values())} rows")
    # Files after the database: every file a backed-up row points at already exists (or was deleted since).
    data_dir = settings.data_dir
    files: dict[str, dict[str, Any]] = {}
    for path, relative in _kept_files(data_dir):
        target = out / DATA / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            shutil.copy2(path, target)
        except FileNotFoundError:
            continue  # deleted (retention purge, erasure) while the backup ran
        files[f"{DATA}/{relative}"] = {"sha256": _sha256(target), "bytes": target.stat().st_size}
    dump = out / database["file"]
    files[database["file"]] = {"sha256": _sha256(dump), "bytes": dump.stat().st_size}
    missing = [p for p in snapshot.referenced if not _resolve_stored(p, data_dir).is_file()]
    for stored in missing:
        echo(f"warning     a row references {stored}, which does not exist (not in the backup)")
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": {
            "voxdesk": _version("voxdesk"),
            "python": platform.python_version(),
            "sqlalchemy": _version("sqlalchemy"),
            "alembic": _version("alembic"),
        },
        "alembic_revision": snapshot.revision,
        "database": database,
        "data_dir": str(data_dir),
        "data_dir_resolved": str(data_dir.resolve()),
        "tables": snapshot.counts,
        "missing_at_backup": missing,
        "files": dict(sorted(files.items())),
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    kept = sum(1 for name in files if name.startswith(DATA + "/"))
    echo(f"files       {kept} ({sum(f['bytes'] for f in files.values())} bytes with the database)")
    echo(f"backup      {out} (manifest.json lists every file's sha256)")
    return manifest


def read_manifest(source: Path) -> dict[str, Any]:
    """The manifest of a backup, with every file checked against its sha256.

    Raises:
        BackupError: No manifest, an unknown format, or a file missing or different from the manifest.

    """
    path = source / MANIFEST
    if not path.is_file():
        raise BackupError(f"{source} has no {MANIFEST}: not a Voxdesk backup")
    manifest: dict[str, Any] = json.loads(path.read_text())
    if manifest.get("format") != FORMAT:
        raise BackupError(f"backup format {manifest.get('format')!r} is not {FORMAT}; restore it with its version")
    for name, entry in manifest["files"].items():
        file = source / name
        if not file.is_file():
            raise BackupError(f"{name} is listed in the manifest but missing from the backup")
        if file.stat().st_size != entry["bytes"] or _sha256(file) != entry["sha256"]:
            raise BackupError(f"{name} does not match its sha256 in the manifest: the backup is damaged")
    return manifest


def _known_revision(revision: str | None) -> bool:
    from alembic.script import ScriptDirectory

    from control_api.db.migrate import alembic_config

    if revision is None:
        return True
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return any(rev.revision == revision for rev in script.walk_revisions())


def _relocate(stored: str, manifest: dict[str, Any], data_dir: Path) -> str:
    """``stored`` moved from the backed-up data directory to ``data_dir`` (unchanged if outside it)."""
    path = Path(stored)
    base = Path(manifest["data_dir_resolved"] if path.is_absolute() else manifest["data_dir"])
    try:
        relative = path.relative_to(base)
    except ValueError:
        return stored
    target = data_dir.resolve() if path.is_absolute() else data_dir
    return str(target / relative)


async def _after_restore(settings: Settings, manifest: dict[str, Any], *, echo: Echo) -> int:
    """Relocate stored paths, upgrade the schema and rebuild the knowledge index; returns chunks indexed."""
    from sqlalchemy import select

    from control_api.db.engine import create_engine, session_factory
    from control_api.db.migrate import current_revision, upgrade
    from control_api.db.models import KnowledgeDocument, Recording
    from control_api.services import knowledge as knowledge_service

    engine = create_engine(settings.database_url)
    try:
        moved = 0
        sessions = session_factory(engine)
        if manifest["data_dir_resolved"] != str(settings.data_dir.resolve()):
            async with sessions() as session:
                for document in await session.scalars(select(KnowledgeDocument)):
                    new = _relocate(document.storage_path, manifest, settings.data_dir)
                    if new != document.storage_path:
                        document.storage_path, moved = new, moved + 1
                for recording in await session.scalars(select(Recording)):
                    new = _relocate(recording.path, manifest, settings.data_dir)
                    if new != recording.path:
                        recording.path, moved = new, moved + 1
                await session.commit()
            echo(f"paths       {moved} stored file paths moved to {settings.data_dir}")
        await upgrade(engine)
        echo(f"schema      at revision {await current_revision(engine)}")
        service = await knowledge_service.start(settings=settings, sessions=sessions, run_worker=False)
        try:
            chunks = await service.kb.store.count()
        finally:
            await knowledge_service.stop(service)
        echo(f"index       rebuilt from the database: {chunks} chunks")
        return chunks
    finally:
        await engine.dispose()


def restore_backup(settings: Settings, source: Path, *, force: bool = False, echo: Echo) -> dict[str, Any]:
    """Restore the backup in ``source`` into ``settings``' database and data directory.

    Returns:
        The backup's manifest.

    Raises:
        BackupError: The backup is damaged or from a newer schema, the target holds data and ``force`` is
            off, a tool fails, or the restored database differs from the manifest.

    """
    manifest = read_manifest(source)
    echo(f"verified    {len(manifest['files'])} files against the manifest")
    if not _known_revision(manifest.get("alembic_revision")):
        raise BackupError(
            f"the backup is at schema revision {manifest['alembic_revision']}, which this version does not know: "
            "restore it with the version that wrote it (or a newer one)"
        )
    url = make_url(settings.database_url)
    backend = "sqlite" if _is_sqlite(url) else "postgresql"
    if backend != manifest["database"]["backend"]:
        raise BackupError(
            f"the backup holds a {manifest['database']['backend']} database and the target is {backend}: "
            "restore it into the same kind of database"
        )
    data_dir = settings.data_dir
    occupied = [d for d in (*KEPT_DIRS, INDEX_DIR) if (data_dir / d).is_dir() and any((data_dir / d).iterdir())]
    has_database = (
        _sqlite_path(url).is_file() and bool(_sqlite_snapshot(_sqlite_path(url)).revision)
        if backend == "sqlite"
        else _postgres_has_schema(url)
    )
    if (occupied or has_database) and not force:
        what = ", ".join([*(["a database"] if has_database else []), *occupied])
        raise BackupError(f"the target already holds {what}; restore into an empty one, or pass --force to replace it")
    data_dir.mkdir(parents=True, exist_ok=True)
    if backend == "sqlite":
        target = _sqlite_path(url)
        for suffix in ("-wal", "-shm"):
            Path(f"{target}{suffix}").unlink(missing_ok=True)
        _sqlite_copy(source / SQLITE_FILE, target)
        restored = _sqlite_snapshot(target)
    else:
        _restore_postgres(url, source / PG_FILE)
        restored = _postgres_snapshot(url)
    if restored.counts != manifest["tables"] or restored.revision != manifest["alembic_revision"]:
        expected: dict[str, int] = manifest["tables"]
        differ = sorted(t for t in {*restored.counts, *expected} if restored.counts.get(t) != expected.get(t))
        raise BackupError(f"the restored database differs from its manifest (tables: {', '.join(differ) or 'none'})")
    echo(f"database    {backend}: {sum(restored.counts.values())} rows in {len(restored.counts)} tables, as backed up")
    for kept in (*KEPT_DIRS, INDEX_DIR):
        shutil.rmtree(data_dir / kept, ignore_errors=True)
    copied = 0
    for name in manifest["files"]:
        if not name.startswith(DATA + "/"):
            continue
        target_file = data_dir / name[len(DATA) + 1 :]
        target_file.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / name, target_file)
        copied += 1
    echo(f"files       {copied} restored under {data_dir}")
    asyncio.run(_after_restore(settings, manifest, echo=echo))
    after = _sqlite_snapshot(_sqlite_path(url)) if backend == "sqlite" else _postgres_snapshot(url)
    missing = [p for p in after.referenced if not _resolve_stored(p, data_dir).is_file()]
    lost = len(missing) - len(manifest.get("missing_at_backup", []))
    if lost > 0:
        raise BackupError(f"{lost} files the database references are missing after the restore (e.g. {missing[0]})")
    echo(f"restored    from {source} (backup of {manifest['created_at']})")
    return manifest


def run_backup(settings: Settings, out: Path, *, echo: Echo, fail: Echo) -> int:
    """``voxdesk backup``: returns the exit code."""
    try:
        create_backup(settings, out, echo=echo)
    except BackupError as err:
        fail(f"voxdesk: backup failed: {err}")
        return 1
    return 0


def run_restore(settings: Settings, source: Path, *, force: bool, echo: Echo, fail: Echo) -> int:
    """``voxdesk restore``: returns the exit code."""
    try:
        restore_backup(settings, source, force=force, echo=echo)
    except BackupError as err:
        fail(f"voxdesk: restore failed: {err}")
        return 1
    return 0
