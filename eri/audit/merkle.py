"""RFC 9162 Merkle tree math (section 2.1): hashes, roots, inclusion and consistency proofs.

Leaf hash ``SHA-256(0x00 || leaf)``, interior node ``SHA-256(0x01 || left || right)``, the
empty tree ``SHA-256("")``. A tree of size ``n`` splits at the largest power of two below
``n``, so every range the RFC's recursions ask for is a run of *perfect* subtrees: a node
``(level, index)`` covers leaves ``[index * 2**level, (index + 1) * 2**level)``. The store keeps
those nodes (:mod:`eri.audit.tree`); this module says which ones a root or a proof needs
(``*_nodes``) and folds their hashes, so a proof at any size costs O(log n) reads.

The verifiers are the RFC's algorithms (2.1.3.2 and 2.1.4.2), written from its text; the tests
check everything against a naive recursive implementation of the definitions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence

Node = tuple[int, int]  # (level, index) of a perfect subtree
EMPTY_ROOT = hashlib.sha256(b"").digest()
_sha = hashlib.sha256


def leaf_hash(leaf: bytes) -> bytes:
    return _sha(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return _sha(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def range_nodes(start: int, end: int) -> list[Node]:
    """The perfect subtrees whose right fold is MTH(D[start:end]), left to right.

    Valid for the ranges RFC 9162's recursions produce (``start`` aligned to a power of two at
    least as large as the range's first subtree), which includes every ``[0, n)``.
    """
    nodes: list[Node] = []
    size = end - start
    while size:
        level = size.bit_length() - 1
        nodes.append((level, start >> level))
        start += 1 << level
        size -= 1 << level
    return nodes


def fold(hashes: Sequence[bytes]) -> bytes:
    """Right fold: ``H(h0, H(h1, ... H(h_{k-2}, h_{k-1})))``; the root of a range."""
    if not hashes:
        return EMPTY_ROOT
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


def root_nodes(size: int) -> list[Node]:
    return range_nodes(0, size)


def _path(m: int, start: int, end: int, out: list[tuple[int, int]]) -> None:
    n = end - start
    if n <= 1:
        return
    k = _split(n)
    if m < k:
        _path(m, start, start + k, out)
        out.append((start + k, end))
    else:
        _path(m - k, start + k, end, out)
        out.append((start, start + k))


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The ranges whose roots form PATH(index, D[size]) (RFC 9162 2.1.3.1), in order."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is outside a tree of size {size}")
    out: list[tuple[int, int]] = []
    _path(index, 0, size, out)
    return out


def _subproof(m: int, start: int, end: int, whole: bool, out: list[tuple[int, int]]) -> None:
    n = end - start
    if m == n:
        if not whole:
            out.append((start, end))
        return
    k = _split(n)
    if m <= k:
        _subproof(m, start, start + k, whole, out)
        out.append((start + k, end))
    else:
        _subproof(m - k, start + k, end, False, out)
        out.append((start, start + k))


def consistency_ranges(first: int, second: int) -> list[tuple[int, int]]:
    """The ranges whose roots form PROOF(first, D[second]) (RFC 9162 2.1.4.1), in order."""
    if not 0 <= first <= second:
        raise ValueError(f"no consistency proof from size {first} to size {second}")
    out: list[tuple[int, int]] = []
    if 0 < first < second:
        _subproof(first, 0, second, True, out)
    return out


def nodes_of(ranges: Iterable[tuple[int, int]]) -> set[Node]:
    return {node for start, end in ranges for node in range_nodes(start, end)}


def hashes_of(ranges: Iterable[tuple[int, int]], nodes: Mapping[Node, bytes]) -> list[bytes]:
    return [fold([nodes[n] for n in range_nodes(s, e)]) for s, e in ranges]


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 2.1.3.2; ``leaf`` is the leaf *hash*."""
    if index >= size or index < 0:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 2.1.4.2 (size 0 is consistent with anything; equal sizes need equal roots)."""
    if first < 0 or first > second:
        return False
    if first == 0:
        return not proof
    if first == second:
        return not proof and first_root == second_root
    path = list(proof)
    if first & (first - 1) == 0:
        path.insert(0, first_root)
    if not path:
        return False
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == first_root and sr == second_root and sn == 0


class Frontier:
    """The compact range ``[0, size)``: one perfect subtree hash per set bit of ``size``.

    Appending is amortised O(1) hashes; the root at the current size is O(log n). This is what
    the offline verifier streams a whole log through.
    """

    __slots__ = ("hashes", "levels", "size")

    def __init__(self) -> None:
        self.size = 0
        self.levels: list[int] = []
        self.hashes: list[bytes] = []

    def append(self, leaf: bytes) -> list[tuple[Node, bytes]]:
        """Add a leaf *hash*; return the perfect nodes it completed (the leaf first)."""
        index = self.size
        made: list[tuple[Node, bytes]] = [((0, index), leaf)]
        h, level = leaf, 0
        levels, hashes = self.levels, self.hashes
        while levels and levels[-1] == level:
            levels.pop()
            h = node_hash(hashes.pop(), h)
            level += 1
            made.append(((level, index >> level), h))
        levels.append(level)
        hashes.append(h)
        self.size += 1
        return made

    def root(self) -> bytes:
        return fold(self.hashes)
