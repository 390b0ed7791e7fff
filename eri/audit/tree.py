"""The ledger's Merkle tree in the database: the perfect-subtree nodes (``audit_nodes``).

An append writes the leaf and the nodes it completes (amortised two rows, at most
``log2 n + 1``) after reading the left siblings it needs: O(log n). A root or a proof at any
size reads only the O(log n) nodes :mod:`eri.audit.merkle` names.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import and_, or_, select
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


async def add_leaf(session: AsyncSession, index: int, leaf_hash: bytes) -> None:
    """Store leaf ``index`` and the perfect nodes it completes (inside the append's transaction)."""
    siblings = []
    level, i = 0, index
    while i & 1:
        siblings.append((level, i - 1))
        level, i = level + 1, i >> 1
    known = await fetch(session, siblings) if siblings else {}
    h = leaf_hash
    session.add(AuditNode(level=0, index=index, hash=h))
    for level, left in siblings:
        h = merkle.node_hash(known[(level, left)], h)
        session.add(AuditNode(level=level + 1, index=left >> 1, hash=h))


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
