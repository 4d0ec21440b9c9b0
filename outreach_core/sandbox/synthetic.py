"""Messy synthetic lead lists, deterministic for a seed: the benchmark's input and the demo's
sample files. Vectorised with numpy so 1M rows take a couple of seconds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

FIRST = [
    "James",
    "Mary",
    "Robert",
    "Patricia",
    "John",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Elizabeth",
    "William",
    "Barbara",
    "Richard",
    "Susan",
    "José",
    "Zoë",
]
LAST = [
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "O'Brien",
    "Nguyen",
    "Müller",
]
TRADES = [
    "Plumbing",
    "Heating & Air",
    "Roofing",
    "Electric",
    "Builders",
    "Landscaping",
    "Dental",
    "Bistro",
    "Auto Repair",
    "Realty",
    "Insurance",
    "Law Group",
]
SUFFIX = ["LLC", "Inc", "Co", "Corp", "& Sons", "Group", "Services"]
PLACES = [
    ("New York", "Kings", "NY", "11201"),
    ("Buffalo", "Erie", "New York", "14201"),
    ("Newark", "Essex", "NJ", "07102"),
    ("Miami", "Miami-Dade", "FL", "33101"),
    ("Houston", "Harris", "TX", "77002"),
    ("Austin", "Travis", "Texas", "78701-1234"),
    ("Los Angeles", "Los Angeles", "CA", "90012"),
    ("Boston", "Suffolk", "MA", "2108"),
]
TITLES = ["Owner", "CEO", "President", "Office Manager", "Founder", "Director", "", "Partner"]
SICS = ["1711", "1731", "1761", "5812", "8021", "7538", "6531", "6411", "8111"]
HEADER = [
    "Company Name",
    "First Name",
    "Last Name",
    "Phone Number",
    "E-mail",
    "Job Title",
    "Street Address",
    "City",
    "County",
    "State",
    "Zip Code",
    "SIC Code",
    "LinkedIn URL",
]


def _phone_formats(area: np.ndarray, exch: np.ndarray, line: np.ndarray, pick: np.ndarray):
    a, e, n = area.astype(str), exch.astype(str), np.char.zfill(line.astype(str), 4)
    forms = [
        np.char.add(np.char.add(np.char.add(np.char.add("(", a), ") "), np.char.add(e, "-")), n),
        np.char.add(np.char.add(np.char.add(a, "."), np.char.add(e, ".")), n),
        np.char.add(np.char.add("+1 ", np.char.add(a, " ")), np.char.add(np.char.add(e, " "), n)),
        np.char.add(np.char.add(np.char.add("1-", a), np.char.add("-", e)), np.char.add("-", n)),
        np.char.add(np.char.add(a, e), np.char.add(n, " x12")),
        np.char.add(np.char.add(a, e), n),
    ]
    return np.choose(pick, forms)


def generate(
    rows: int,
    seed: int = 7,
    duplicate_share: float = 0.2,
    invalid_share: float = 0.03,
    first_contact: int = 0,
) -> pl.DataFrame:
    """`first_contact` shifts the contact ids, so files made with distant values share no
    contact."""
    rng = np.random.default_rng(seed)
    unique = max(1, int(rows * (1 - duplicate_share)))
    # Each row is a contact id; ~duplicate_share of rows repeat an earlier contact.
    contact = first_contact + np.concatenate(
        [np.arange(unique), rng.integers(0, unique, rows - unique)]
    )
    rng.shuffle(contact)
    # (area, exchange) fix the contact modulo 560,000 and the line number the rest, so
    # distinct contacts never share a phone number.
    area = 201 + (contact * 7919) % 700
    exch = 200 + (contact // 700) % 800
    line = ((contact // 560_000) * 3331 + (contact % 560_000) * 31) % 10000
    phone = _phone_formats(area, exch, line, rng.integers(0, 6, rows))
    first = np.array(FIRST)[contact % len(FIRST)]
    last = np.array(LAST)[(contact // len(FIRST)) % len(LAST)]
    email_user = np.char.add(np.char.add(np.char.lower(first), "."), contact.astype(str))
    email = np.char.add(email_user, "@example.com")
    email = np.where(rng.random(rows) < 0.15, np.char.upper(np.char.add(" ", email)), email)
    email = np.where(rng.random(rows) < 0.25, "", email)
    place = contact % len(PLACES)
    company = np.char.add(
        np.char.add(np.array(LAST)[contact % len(LAST)], " "),
        np.char.add(
            np.char.add(np.array(TRADES)[contact % len(TRADES)], " "),
            np.array(SUFFIX)[contact % len(SUFFIX)],
        ),
    )
    bad = rng.random(rows) < invalid_share
    phone = np.where(
        bad, np.array(["555-0100", "123", "n/a", "(000) 000-0000"])[contact % 4], phone
    )
    email = np.where(bad, np.array(["not-an-email", "", "x@", "@y.com"])[contact % 4], email)
    return pl.DataFrame(
        {
            "Company Name": company,
            "First Name": first,
            "Last Name": last,
            "Phone Number": phone,
            "E-mail": email,
            "Job Title": np.array(TITLES)[contact % len(TITLES)],
            "Street Address": np.char.add((100 + contact % 9000).astype(str), " Main St"),
            "City": np.array([p[0] for p in PLACES])[place],
            "County": np.array([p[1] for p in PLACES])[place],
            "State": np.array([p[2] for p in PLACES])[place],
            "Zip Code": np.array([p[3] for p in PLACES])[place],
            "SIC Code": np.array(SICS)[contact % len(SICS)],
            "LinkedIn URL": np.where(
                contact % 3 == 0, np.char.add("linkedin.com/in/", email_user), ""
            ),
        }
    )


def write_csv(path: Path, rows: int, seed: int = 7, **kwargs: float) -> Path:
    generate(rows, seed, **kwargs).write_csv(path)
    return path
