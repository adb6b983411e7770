"""The image (Dockerfile) is built from the sources and uv.lock only: no development secret."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from docker.utils.build import exclude_paths

ROOT = Path(__file__).resolve().parent.parent
#: deploy/local.env entries whose value is a credential or a key.
SECRET_KEY = re.compile(r"PASSWORD|SECRET|_KEYS?$|_URL$")


def copied_sources() -> list[str]:
    """The build-context paths of the Dockerfile's COPY instructions (not --from stages)."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    sources: list[str] = []
    for line in text.splitlines():
        words = shlex.split(line, comments=True)
        if not words or words[0].upper() != "COPY" or any(w.startswith("--from") for w in words):
            continue
        sources += [w.rstrip("/") for w in words[1:-1] if not w.startswith("--")]
    return sources


def image_files() -> set[str]:
    """Files of the build context, less .dockerignore, that a COPY puts in the image."""
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    context = exclude_paths(str(ROOT), patterns)
    sources = copied_sources()
    return {
        path
        for path in context
        if (ROOT / path).is_file()
        and any(path == s or path.startswith(s + "/") or s == "." for s in sources)
    }


def development_secrets() -> dict[str, str]:
    secrets: dict[str, str] = {}
    for line in (ROOT / "deploy" / "local.env").read_text().splitlines():
        key, _, value = line.strip().partition("=")
        if value and not key.startswith("#") and SECRET_KEY.search(key):
            secrets[key] = value
    return secrets


def test_the_image_gets_the_sources_and_the_jobs_scripts() -> None:
    files = image_files()

    assert {"uv.lock", "deploy/migrate.py", "deploy/topics.py"} <= files
    assert any(path.startswith("services/enrollment/src/") for path in files)


def test_no_env_file_is_copied_into_the_image() -> None:
    assert not [path for path in image_files() if path.endswith(".env")]


def test_no_development_secret_is_copied_into_the_image() -> None:
    secrets = development_secrets()
    assert "TPP_AUTH_DEV_SECRET" in secrets

    leaks = {
        (path, key)
        for path in image_files()
        for key, value in secrets.items()
        if value in (ROOT / path).read_text(errors="replace")
    }
    assert not leaks
