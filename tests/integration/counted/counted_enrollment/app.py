"""``tpp_enrollment.app:create_app``, noting the building process's id in ``COUNTED_BUILDS``."""

from __future__ import annotations

import os

from fastapi import FastAPI
from tpp_enrollment.app import create_app as enrollment_app


def create_app() -> FastAPI:
    with open(os.environ["COUNTED_BUILDS"], "a") as builds:
        builds.write(f"{os.getpid()}\n")
    return enrollment_app()
