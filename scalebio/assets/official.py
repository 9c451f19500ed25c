"""Files of the official ScaleBiO repository at a pinned commit, with checksums (the paper's data).

    python -m scalebio official resources/official/scalebio-b9ccce84dbe1 \\
        --repo https://github.com/research4pan/scalebio.git --commit b9ccce84dbe17b2017bf642d49b501f12fb106fc \\
        --path math/dev_scalebio/exp_rlhflow_less_oss

Needs ``git`` and a network route to the repository (run it once on a machine with internet; the folder is
an ordinary Snakemake output and can be copied). The commit must be a full 40-digit hash: the checkout is
verified against it, so a moved branch or tag can never change the data. Only ``--path`` folders/files are
kept. ``manifest.json`` records the repository, the commit and the size and sha256 of every kept file; data
specs refer to the files as ``official:<path>`` (workflow) and the data folder's ``card.json`` repeats the
hashes of what it used.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
from pathlib import Path

from scalebio.common.runtime import AssetError, ConfigError, atomic_dir, atomic_write_json, file_sha256, main_guard

MANIFEST = "manifest.json"


def _git(*args: str, cwd: Path) -> str:
    r = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0:
        raise AssetError(f"git {' '.join(args)} failed: {(r.stderr or r.stdout).strip()[-500:]}")
    return r.stdout.strip()


def checkout(repo: str, commit: str, work: Path) -> None:
    """``work`` becomes a checkout of ``repo`` at ``commit``: a shallow fetch of that commit, else a full clone."""
    work.mkdir(parents=True)
    _git("init", "-q", cwd=work)
    try:
        _git("fetch", "-q", "--depth", "1", repo, commit, cwd=work)
        _git("checkout", "-q", "FETCH_HEAD", cwd=work)
    except AssetError:  # servers that refuse fetching a commit by hash: clone everything, then check it out
        shutil.rmtree(work)
        _git("clone", "-q", "--no-checkout", repo, str(work), cwd=work.parent)
        _git("checkout", "-q", commit, cwd=work)
    head = _git("rev-parse", "HEAD", cwd=work)
    if head != commit:
        raise AssetError(f"'{repo}' checked out at {head}, not the pinned commit {commit}")


def fetch(repo: str, commit: str, paths: list[str], out: str | Path) -> Path:
    """Write ``out`` = the ``paths`` of ``repo`` at ``commit`` + ``manifest.json`` (nothing on failure)."""
    if not re.fullmatch(r"[0-9a-f]{40}", commit):
        raise ConfigError(f"official.commit must be a full 40-digit commit hash, got '{commit}'")
    if not paths:
        raise ConfigError("official.paths: name at least one folder or file of the repository to keep")
    out = Path(out)
    with atomic_dir(out) as tmp:
        work = tmp / ".checkout"
        checkout(repo, commit, work)
        files = {}
        for rel in paths:
            src = work / rel
            if not src.exists():
                raise AssetError(f"'{rel}' does not exist in {repo} at {commit}; check official.paths")
            found = [src] if src.is_file() else sorted(p for p in src.rglob("*") if p.is_file())
            for f in found:
                name = f.relative_to(work).as_posix()
                (tmp / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(f, tmp / name)
                files[name] = {"bytes": f.stat().st_size, "sha256": file_sha256(f)}
        shutil.rmtree(work)
        atomic_write_json(tmp / MANIFEST, {"repo": repo, "commit": commit, "paths": paths, "files": files})
    return out


@main_guard
def main(argv=None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m scalebio official", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("out", help="output folder")
    ap.add_argument("--repo", required=True, help="git URL (or a local repository folder)")
    ap.add_argument("--commit", required=True, help="full 40-digit commit hash")
    ap.add_argument("--path", action="append", default=[], help="folder or file to keep (repeatable)")
    a = ap.parse_args(argv)
    fetch(a.repo, a.commit, a.path, a.out)


if __name__ == "__main__":
    main()
