"""Load demo data through the services' HTTP APIs (safe to run again: nothing is doubled).

Every POST carries a fixed Idempotency-Key, so a second run gets the first run's results
back instead of creating copies. Ports come from TPP_<SERVICE>_PORT (deploy/local.env); the
requests carry an operator's development token (TPP_AUTH_DEV_SECRET, deploy/local.env).
"""

from __future__ import annotations

import os
import sys
import time
from datetime import date
from typing import Any

import httpx
from tpp_plumbing.web.auth import dev_headers

YEAR = date.today().year

ORGANIZERS = [
    ("Zhejiang University", "university", "Zhejiang"),
    ("Chinese Academy of Agricultural Sciences", "research_institute", "Beijing"),
    ("China Three Gorges Corporation", "enterprise", "Hubei"),
    ("International Center for Science and Technology Exchange", "international_center", None),
]
# (title, field, organizer index, year, month, venue city, venue country, capacity)
SESSIONS = [
    (
        "Smart agriculture and precision irrigation",
        "agriculture_forestry",
        1,
        YEAR - 1,
        4,
        "Beijing",
        "CN",
        30,
    ),
    (
        "Hydropower plant operation and maintenance",
        "new_energy",
        2,
        YEAR - 1,
        6,
        "Yichang",
        "CN",
        25,
    ),
    ("Digital public services", "information_technology", 0, YEAR - 1, 9, "Hangzhou", "CN", 40),
    ("Rice breeding and seed systems", "agriculture_forestry", 1, YEAR, 3, "Changsha", "CN", 30),
    ("Solar micro-grids for rural areas", "new_energy", 2, YEAR, 5, "Nairobi", "KE", 20),
    ("Telemedicine and primary health care", "medical_health", 0, YEAR, 7, "Hangzhou", "CN", 35),
    (
        "Environmental monitoring with remote sensing",
        "resources_environment",
        3,
        YEAR,
        10,
        "Bangkok",
        "TH",
        25,
    ),
]
COUNTRIES = [
    "KE",
    "ET",
    "PK",
    "TH",
    "VN",
    "EG",
    "NG",
    "BR",
    "KH",
    "LK",
    "GH",
    "TZ",
    "ZM",
    "LA",
    "MN",
]
GENDERS = ["female", "male"]
PROFESSIONS = ["expert", "scholar", "st_official", "technical_professional"]
#: How many 429 answers one demo request waits out before the loader gives up.
RATE_LIMITED_RETRIES = 30


def post(client: httpx.Client, path: str, body: dict[str, Any] | None, key: str) -> dict[str, Any]:
    headers = {"Idempotency-Key": f"demo-{key}"}
    response = client.post(path, json=body, headers=headers)
    # The services limit commands per principal (TPP_HTTP_RATE_LIMIT_COMMANDS): a well-behaved
    # client waits as told and sends the same request again (the key makes it safe).
    for _ in range(RATE_LIMITED_RETRIES):
        if response.status_code != 429:
            break
        time.sleep(float(response.headers.get("Retry-After", "1")))
        response = client.post(path, json=body, headers=headers)
    if response.status_code >= 400:
        sys.exit(f"demo data: POST {path} failed: {response.status_code} {response.text}")
    result: dict[str, Any] = response.json()
    return result


def main() -> None:
    ports = {
        s: os.environ.get(f"TPP_{s.upper()}_PORT", d)
        for s, d in [("registry", "8001"), ("enrollment", "8002"), ("reporting", "8003")]
    }
    operator = dev_headers("operator")
    registry = httpx.Client(
        base_url=f"http://127.0.0.1:{ports['registry']}", timeout=30, headers=operator
    )
    enrollment = httpx.Client(
        base_url=f"http://127.0.0.1:{ports['enrollment']}", timeout=30, headers=operator
    )
    organizer_ids = [
        post(
            registry,
            "/organizers",
            {"name": name, "kind": kind, "province": province, "country": "CN"},
            f"org-{i}",
        )["id"]
        for i, (name, kind, province) in enumerate(ORGANIZERS)
    ]
    session_ids = []
    for i, (title, field, org, year, month, city, country, capacity) in enumerate(SESSIONS):
        session = post(
            registry,
            "/sessions",
            {
                "organizer_id": organizer_ids[org],
                "title": title,
                "field": field,
                "year": year,
                "start_date": f"{year}-{month:02d}-05",
                "end_date": f"{year}-{month:02d}-25",
                "venue_city": city,
                "venue_country": country,
                "capacity": capacity,
                "languages": ["en"],
                "description": f"{title}: a sponsored training session.",
            },
            f"session-{i}",
        )
        post(registry, f"/sessions/{session['id']}/publish", None, f"publish-{i}")
        session_ids.append(session["id"])
    trainee_ids = [
        post(
            enrollment,
            "/trainees",
            {
                "full_name": f"Demo Trainee {n}",
                "country": COUNTRIES[n % len(COUNTRIES)],
                "gender": GENDERS[n % 2],
                "profession": PROFESSIONS[n % 4],
                "organization": "Ministry of Science",
                "passport_number": f"DEMO{n:05d}",
            },
            f"trainee-{n}",
        )["id"]
        for n in range(60)
    ]
    # The enrollment service learns of sessions from Kafka: wait until it has them all.
    deadline = time.monotonic() + 60
    for session_id in session_ids:
        while enrollment.get(f"/sessions/{session_id}").json().get("status") != "published":
            if time.monotonic() > deadline:
                sys.exit("demo data: the enrollment service did not receive the sessions")
            time.sleep(0.2)
    enrolled = 0
    for s, session_id in enumerate(session_ids):
        for n in range(s * 7, s * 7 + 24):
            post(
                enrollment,
                f"/sessions/{session_id}/enrollments",
                {"trainee_id": trainee_ids[n % len(trainee_ids)]},
                f"enroll-{s}-{n}",
            )
            enrolled += 1
    print(
        f"[demo] {len(organizer_ids)} organizers, {len(session_ids)} sessions, "
        f"{len(trainee_ids)} trainees, {enrolled} enrollment requests"
    )


if __name__ == "__main__":
    main()
