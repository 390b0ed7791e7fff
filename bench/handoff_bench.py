"""Cost of sealing, verifying and opening a handoff package (format 1).

Run: ``.venv/bin/python bench/handoff_bench.py [--rounds R]``

Two packages: ``small`` (facts, statements, timeline, custody: a few KiB, i.e. the fixed cost
of HPKE ML-KEM-768+X25519 and the Ed25519+ML-DSA-65 signature) and ``10MiB`` (the same plus one
10 MiB evidence file). Median wall time of R rounds each, real keys and real algorithms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from eri.handoff.keys import InstitutionPrivateKey, RecipientPrivateKey
from eri.handoff.package import (
    CaseRef,
    LegalBasis,
    Part,
    json_part,
    open_package,
    seal_package,
    verify_package,
)

SENDER = InstitutionPrivateKey.generate()
RECIPIENT = RecipientPrivateKey.generate()
TRUSTED = [SENDER.public()]


def parts(evidence: bytes | None) -> list[Part]:
    base = [
        json_part("facts", {"minor": False, "consent": "given", "risk_level": "high"}),
        json_part("statements", {"statement.victim": "Texto sintético. " * 100}),
        json_part("timeline", [{"seq": i, "action": "task.completed"} for i in range(60)]),
        json_part("custody", [{"evidence_id": "ev_bench0001", "sha256": "0" * 64}]),
    ]
    if evidence is not None:
        base.append(Part("evidence/ev_bench0001", evidence, "image/jpeg"))
    return base


def seal(evidence: bytes | None) -> bytes:
    return seal_package(
        parts=parts(evidence),
        case=CaseRef("psn_bench", "gt-eri", "1.0.0"),
        purpose="prosecution",
        legal_basis=LegalBasis("consent"),
        sender_institution="SVET",
        sender_key=SENDER,
        recipient=RECIPIENT.public(),
    )


def median_ms(fn: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    for label, evidence in (("small", None), ("10MiB", os.urandom(10 * 1024 * 1024))):
        package = seal(evidence)
        s = median_ms(lambda e=evidence: seal(e), args.rounds)
        v = median_ms(lambda p=package: verify_package(p, TRUSTED), args.rounds)
        o = median_ms(lambda p=package: open_package(p, RECIPIENT, TRUSTED), args.rounds)
        print(
            f"{label:>6}: {len(package):>9} bytes  seal {s:7.2f} ms  verify {v:7.2f} ms  "
            f"open {o:7.2f} ms"
        )


if __name__ == "__main__":
    main()
