"""Workers on one study in a real PostgreSQL server (``.ci/run`` starts one).

Skipped unless ``SKFT_TEST_POSTGRES_URL`` names a database, e.g.
``postgresql://postgres@127.0.0.1:5432/skft_test``.
"""

from __future__ import annotations

import os
import uuid

import pytest
from search_storage_checks import check_killed_worker_is_retried, check_two_workers_share

URL = os.environ.get("SKFT_TEST_POSTGRES_URL")
pytestmark = pytest.mark.skipif(
    not URL,
    reason="SKFT_TEST_POSTGRES_URL is not set (.ci/run starts a PostgreSQL server and sets it)",
)


def test_two_workers_share_a_postgres_study():
    pytest.importorskip("psycopg2")
    check_two_workers_share(URL, f"pg-shared-{uuid.uuid4().hex[:8]}")


def test_killed_worker_trial_is_failed_and_retried_postgres(tmp_path):
    pytest.importorskip("psycopg2")
    check_killed_worker_is_retried(URL, f"pg-killed-{uuid.uuid4().hex[:8]}", tmp_path)
