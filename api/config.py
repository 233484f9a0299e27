"""Service settings (environment variables ``LINKAGE_*``, or passed to ``create_app``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from linkage.signup import VELOCITY_WINDOW_S


class ServiceSettings(BaseSettings):
    """Everything the HTTP service needs; frozen once built.

    Environment: ``LINKAGE_STORE_URL``, ``LINKAGE_RUN_DIR``, ``LINKAGE_FAIL_OPEN``,
    ``LINKAGE_MAX_BODY_BYTES``, ``LINKAGE_VELOCITY_WINDOW_SECONDS``,
    ``LINKAGE_AUTH_FAIL_LIMIT``, ``LINKAGE_AUTH_FAIL_WINDOW_SECONDS``,
    ``LINKAGE_READY_WRITE_PROBE_SECONDS``, ``LINKAGE_READY_ANONYMOUS_LIMIT``,
    ``LINKAGE_READY_ANONYMOUS_WINDOW_SECONDS``.
    """

    model_config = SettingsConfigDict(env_prefix="LINKAGE_", frozen=True, extra="ignore")

    store_url: str = Field(
        "sqlite:///linkage.db", description="SQLAlchemy URL of the store (SQLite file by default)"
    )
    run_dir: Path | None = Field(
        None,
        description="run directory to load the signup model from; "
        "None = the latest run imported in the store",
    )
    fail_open: bool = Field(
        True,
        description="if the model is missing or fails, answer `clear` with degraded=true "
        "(False = answer 503)",
    )
    max_body_bytes: int = Field(64 * 1024, ge=1024, description="largest accepted request body")
    velocity_window_seconds: int = Field(
        int(VELOCITY_WINDOW_S),
        ge=1,
        description="sliding window for signup velocity (distinct accounts on one identifier, "
        "server clock); default linkage.signup.VELOCITY_WINDOW_S",
    )
    auth_fail_limit: int = Field(
        20,
        ge=1,
        description="failed key checks per client address (and per key id) in the window "
        "before 429",
    )
    auth_fail_window_seconds: float = Field(
        60.0, gt=0, description="window of auth_fail_limit, seconds"
    )
    ready_write_probe_seconds: float = Field(
        5.0,
        ge=0,
        description="/readyz without a `metrics` key reuses the last store write probe when it is "
        "at most this old (a read per call, at most one committed write per interval)",
    )
    ready_anonymous_limit: int = Field(
        20, ge=1, description="anonymous /readyz calls per client address in the window before 429"
    )
    ready_anonymous_window_seconds: float = Field(
        1.0, gt=0, description="window of ready_anonymous_limit, seconds"
    )
    warm_velocity: bool = Field(
        True, description="on start, replay the store's signups of the last window into the scorer"
    )
