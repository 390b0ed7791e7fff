"""The ledger's Merkle tree in the database: the perfect-subtree nodes (``audit_nodes``).

An append writes the leaf and the nodes it completes (amortised two rows, at most
``log2 n + 1``) after reading the left siblings it needs: O(log n). A root or a proof at any
size reads only the O(log n) nodes :mod:`eri.audit.merkle` names.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import and_, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from eri.audit import merkle
from eri.db.models import AuditNode, LedgerHead


async def fetch(session: AsyncSession, keys: Iterable[merkle.Node]) -> dict[merkle.Node, bytes]:
    wanted = sorted(set(keys))
    found: dict[merkle.Node, bytes] = {}
    for start in range(0, len(wanted), 200):
        chunk = wanted[start : start + 200]
        query = select(AuditNode.level, AuditNode.index, AuditNode.hash).where(
            or_(*(and_(AuditNode.level == lv, AuditNode.index == ix) for lv, ix in chunk))
        )
        for level, index, digest in await session.execute(query):
            found[(level, index)] = bytes(digest)
    missing = [k for k in wanted if k not in found]
    if missing:
        raise LookupError(f"the audit tree lacks nodes {missing[:3]}: run the 0005 migration")
    return found


async def add_leaves(session: AsyncSession, first: int, leaf_hashes: list[bytes]) -> None:
    """Store leaves ``first, first+1, ...`` and the perfect nodes they complete, reading in one
    query the left siblings the batch does not produce itself (inside the append's transaction)."""
    produced: set[merkle.Node] = set()
    needed: set[merkle.Node] = set()
    for index in range(first, first + len(leaf_hashes)):
        produced.add((0, index))
        level, i = 0, index
        while i & 1:
            if (level, i - 1) not in produced:
                needed.add((level, i - 1))
            level, i = level + 1, i >> 1
            produced.add((level, i))
    known = await fetch(session, needed) if needed else {}
    rows: list[dict[str, object]] = []
    for index, h in enumerate(leaf_hashes, start=first):
        known[(0, index)] = h
        rows.append({"level": 0, "index": index, "hash": h})
        level, i = 0, index
        while i & 1:
            h = merkle.node_hash(known[(level, i - 1)], h)
            level, i = level + 1, i >> 1
            known[(level, i)] = h
            rows.append({"level": level, "index": i, "hash": h})
    await session.execute(insert(AuditNode), rows)


async def size(session: AsyncSession) -> int:
    return int((await session.execute(select(LedgerHead.size))).scalar_one())


async def root(session: AsyncSession, tree_size: int) -> bytes:
    keys = merkle.root_nodes(tree_size)
    nodes = await fetch(session, keys)
    return merkle.fold([nodes[k] for k in keys])


async def inclusion_proof(session: AsyncSession, index: int, tree_size: int) -> list[bytes]:
    ranges = merkle.inclusion_ranges(index, tree_size)
    return merkle.hashes_of(ranges, await fetch(session, merkle.nodes_of(ranges)))


async def consistency_proof(session: AsyncSession, first: int, second: int) -> list[bytes]:
    ranges = merkle.consistency_ranges(first, second)
    return merkle.hashes_of(ranges, await fetch(session, merkle.nodes_of(ranges)))


async def leaf_hashes(session: AsyncSession, tree_size: int) -> list[bytes]:
    query = (
        select(AuditNode.hash)
        .where(AuditNode.level == 0, AuditNode.index < tree_size)
        .order_by(AuditNode.index)
    )
    return [bytes(h) for h in (await session.execute(query)).scalars()]
