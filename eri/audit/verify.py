"""The offline verifier: checks an export against the log's public key (and witnesses' keys).

Nothing here touches the server or the database: a committee member runs
``eri audit verify EXPORT --key LOG_VKEY [--witness VKEY ...]`` on their own machine.

It checks, streaming through the export once:

- every checkpoint's log signature, and every cosignature by a given witness key (each given
  witness must have cosigned at least one checkpoint);
- every entry: its ``seq`` is its position, and the SHA-256 leaf hash of its bytes equals the
  tree's recorded leaf hash; the first entry that fails is named (an edited, deleted,
  inserted or reordered row);
- the Merkle root recomputed from the entries at every checkpoint size equals the signed root;
- the server's consistency proofs between consecutive checkpoints and inclusion proofs
  (RFC 9162 2.1.3.2 and 2.1.4.2) against the signed roots.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eri.audit import leaf, merkle, note
from eri.audit.log import EXPORT_FORMAT

_PREFIX = ("[" + json.dumps(leaf.VERSION) + ",").encode()


@dataclass
class Report:
    entries: int = 0
    checkpoints: int = 0
    cosignatures: int = 0
    proofs: int = 0
    covered: int = 0  # entries under the latest verified checkpoint
    first_bad_index: int | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def bad(self, index: int, why: str) -> None:
        if self.first_bad_index is None or index < self.first_bad_index:
            self.first_bad_index = index
        self.problems.append(f"entry {index}: {why}")

    def summary(self) -> str:
        if self.ok:
            return (
                f"OK: {self.entries} entries, {self.checkpoints} checkpoints, "
                f"{self.cosignatures} cosignatures, {self.proofs} proofs verified; "
                f"{self.covered} entries covered by the latest checkpoint"
            )
        head = (
            f"FAILED: first bad index {self.first_bad_index}"
            if self.first_bad_index is not None
            else "FAILED"
        )
        return head + "\n" + "\n".join("  " + p for p in self.problems[:20])


def _hashes(values: list[str]) -> list[bytes]:
    return [base64.b64decode(v, validate=True) for v in values]


def verify_export(
    path: Path,
    log_key: note.VerifierKey,
    witnesses: Sequence[note.VerifierKey] = (),
) -> Report:
    report = Report()
    with path.open("rb") as fh:
        try:
            header = json.loads(fh.readline())
        except ValueError:
            header = None
        if not isinstance(header, dict) or header.get("format") != EXPORT_FORMAT:
            report.problems.append(f"not an {EXPORT_FORMAT} file")
            return report
        lines = fh.read().split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if not lines:
        report.problems.append("the export has no trailer")
        return report
    try:
        trailer: dict[str, Any] = json.loads(lines.pop())
        stored_blob = base64.b64decode(trailer["leaf_hashes"], validate=True)
    except (ValueError, KeyError, TypeError, binascii.Error):
        report.problems.append("the export's trailer is malformed")
        return report

    # 1. Checkpoints: signatures first, so everything after is checked against signed roots.
    signed: dict[int, bytes] = {}
    cosigned_by: set[str] = set()
    for text in trailer.get("checkpoints", []):
        try:
            parsed = note.Note.parse(text)
            body = note.Checkpoint.parse_body(parsed.text)
            note.verify(parsed, log_key)
        except note.NoteError as exc:
            report.problems.append(f"checkpoint: {exc}")
            continue
        if body.origin != log_key.name:
            report.problems.append(f"checkpoint of size {body.size}: origin {body.origin!r}")
            continue
        for witness in witnesses:
            if any(s.name == witness.name and s.key_id == witness.id for s in parsed.signatures):
                try:
                    note.verify(parsed, witness)
                except note.NoteError as exc:
                    report.problems.append(f"checkpoint of size {body.size}: {exc}")
                    continue
                cosigned_by.add(witness.name)
                report.cosignatures += 1
        signed[body.size] = body.root
        report.checkpoints += 1
    for witness in witnesses:
        if witness.name not in cosigned_by:
            report.problems.append(f"no checkpoint is cosigned by witness {witness.name}")
    if not signed:
        report.problems.append("no checkpoint signed by the log key")

    # 2. Entries: position, leaf hash against the tree's record; then the whole tree, level by
    #    level (every perfect subtree), from which any root or proof is O(log n).
    sha = hashlib.sha256
    hashes = [sha(b"\x00" + line).digest() for line in lines]
    n_stored = len(stored_blob) // 32
    for index, line in enumerate(lines):
        if not line.startswith(b"%s%d," % (_PREFIX, index)):
            report.bad(
                index, "out of place: its seq is not its position (deleted, inserted or moved)"
            )
            break
    if b"".join(hashes[:n_stored]) != stored_blob[: 32 * len(hashes)]:
        for index, h in enumerate(hashes[:n_stored]):
            if h != stored_blob[32 * index : 32 * index + 32]:
                report.bad(index, "its leaf hash differs from the log's tree (edited or moved)")
                break
    if len(lines) > n_stored:
        report.bad(n_stored, "not in the log's tree (inserted)")
    elif len(lines) < n_stored:
        report.bad(len(lines), "missing: the tree records more entries than the export holds")
    report.entries = len(lines)
    if header.get("size") != n_stored:
        report.problems.append("the header's size differs from the tree's record")
    levels = _levels(hashes)
    roots = {size: _root(levels, size) for size in signed if size <= len(hashes)}
    leaf_hashes = levels[0] if levels else []

    # 3. Signed roots against the recomputed ones; if they differ although every leaf matched the
    #    tree's record, the record itself was rewritten: name the range the checkpoints bound.
    previous = 0
    for size in sorted(signed):
        if size not in roots:
            report.bad(
                min(size, len(lines)), f"the checkpoint of size {size} covers missing entries"
            )
        elif roots[size] != signed[size]:
            if report.first_bad_index is None:
                report.bad(
                    previous,
                    f"the root at size {size} differs from the signed checkpoint "
                    f"(a change among entries {previous}..{size - 1})",
                )
            else:
                report.problems.append(
                    f"the root at size {size} differs from the signed checkpoint"
                )
        else:
            report.covered = size
        previous = size

    # 4. The server's proofs, against the signed roots.
    try:
        for item in trailer.get("consistency", []):
            first, second = int(item["first"]), int(item["second"])
            if first not in signed or second not in signed:
                report.problems.append(f"consistency proof {first} -> {second}: unsigned size")
            else:
                if merkle.verify_consistency(
                    first, second, signed[first], signed[second], _hashes(item["proof"])
                ):
                    report.proofs += 1
                else:
                    report.problems.append(f"consistency proof {first} -> {second} fails")
        for item in trailer.get("inclusion", []):
            index, size = int(item["index"]), int(item["size"])
            if size not in signed or size > len(leaf_hashes):
                report.problems.append(f"inclusion proof of entry {index} in {size}: unsigned")
            else:
                if merkle.verify_inclusion(
                    index, size, leaf_hashes[index], _hashes(item["proof"]), signed[size]
                ):
                    report.proofs += 1
                else:
                    report.problems.append(f"inclusion proof of entry {index} in {size} fails")
    except (KeyError, TypeError, ValueError, binascii.Error):
        report.problems.append("the export's proofs are malformed")
    return report


def _levels(leaves: list[bytes]) -> list[list[bytes]]:
    """Every perfect subtree's hash: ``levels[l][i]`` is node ``(l, i)`` (as in ``audit_nodes``)."""
    sha = hashlib.sha256
    levels = [leaves]
    while len(levels[-1]) > 1:
        below = levels[-1]
        levels.append(
            [sha(b"\x01" + a + b).digest() for a, b in zip(below[0::2], below[1::2], strict=False)]
        )
    return levels


def _root(levels: list[list[bytes]], size: int) -> bytes:
    return merkle.fold([levels[level][index] for level, index in merkle.root_nodes(size)])
