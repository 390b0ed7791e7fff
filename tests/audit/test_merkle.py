"""RFC 9162 Merkle math against a naive implementation of the RFC's recursive definitions."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from eri.audit import merkle

sha = hashlib.sha256


def mth(leaves: list[bytes]) -> bytes:
    """RFC 9162 2.1.1, literally."""
    n = len(leaves)
    if n == 0:
        return sha(b"").digest()
    if n == 1:
        return sha(b"\x00" + leaves[0]).digest()
    k = 1 << ((n - 1).bit_length() - 1)
    return sha(b"\x01" + mth(leaves[:k]) + mth(leaves[k:])).digest()


def path(m: int, leaves: list[bytes]) -> list[bytes]:
    n = len(leaves)
    if n <= 1:
        return []
    k = 1 << ((n - 1).bit_length() - 1)
    if m < k:
        return [*path(m, leaves[:k]), mth(leaves[k:])]
    return [*path(m - k, leaves[k:]), mth(leaves[:k])]


def subproof(m: int, leaves: list[bytes], whole: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if whole else [mth(leaves)]
    k = 1 << ((n - 1).bit_length() - 1)
    if m <= k:
        return [*subproof(m, leaves[:k], whole), mth(leaves[k:])]
    return [*subproof(m - k, leaves[k:], False), mth(leaves[:k])]


def leaves_of(n: int) -> list[bytes]:
    return [i.to_bytes(4, "big") for i in range(n)]


def stored(leaves: list[bytes]) -> dict[merkle.Node, bytes]:
    frontier = merkle.Frontier()
    nodes: dict[merkle.Node, bytes] = {}
    for leaf in leaves:
        nodes.update(frontier.append(merkle.leaf_hash(leaf)))
    return nodes


def test_rfc_example_shapes_and_empty_tree() -> None:
    assert merkle.EMPTY_ROOT.hex() == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
    # RFC 9162 2.1.5: the 7-leaf example tree
    assert merkle.inclusion_ranges(0, 7) == [(1, 2), (2, 4), (4, 7)]
    assert merkle.inclusion_ranges(3, 7) == [(2, 3), (0, 2), (4, 7)]
    assert merkle.inclusion_ranges(4, 7) == [(5, 6), (6, 7), (0, 4)]
    assert merkle.inclusion_ranges(6, 7) == [(4, 6), (0, 4)]
    assert merkle.consistency_ranges(3, 7) == [(2, 3), (3, 4), (0, 2), (4, 7)]
    assert merkle.consistency_ranges(4, 7) == [(4, 7)]
    assert merkle.consistency_ranges(6, 7) == [(4, 6), (6, 7), (0, 4)]


def test_known_root_of_the_ct_test_vectors() -> None:
    # The 8 leaves used by the Certificate Transparency reference tests (merkle_tree_test.cc).
    ct = [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
    leaves = [bytes.fromhex(h) for h in ct]
    roots = {
        1: "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        2: "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        3: "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        4: "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        5: "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        6: "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        7: "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        8: "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    }
    nodes = stored(leaves)
    for n, expected in roots.items():
        assert merkle.fold([nodes[x] for x in merkle.root_nodes(n)]).hex() == expected
        assert mth(leaves[:n]).hex() == expected


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 300).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n - 1))))
def test_inclusion_proofs_match_the_definition_and_verify(case: tuple[int, int]) -> None:
    n, m = case
    leaves = leaves_of(n)
    nodes = stored(leaves)
    root = mth(leaves)
    proof = merkle.hashes_of(merkle.inclusion_ranges(m, n), nodes)
    assert proof == path(m, leaves)
    assert merkle.fold([nodes[x] for x in merkle.root_nodes(n)]) == root
    leaf = merkle.leaf_hash(leaves[m])
    assert merkle.verify_inclusion(m, n, leaf, proof, root)
    assert not merkle.verify_inclusion(m, n, merkle.leaf_hash(b"x"), proof, root)
    assert not merkle.verify_inclusion(n, n, leaf, proof, root)
    if proof:
        bad = [*proof]
        bad[-1] = sha(bad[-1]).digest()
        assert not merkle.verify_inclusion(m, n, leaf, bad, root)
        assert not merkle.verify_inclusion(m, n, leaf, proof[:-1], root)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 300).flatmap(lambda n: st.tuples(st.integers(1, n), st.just(n))))
def test_consistency_proofs_match_the_definition_and_verify(case: tuple[int, int]) -> None:
    m, n = case
    leaves = leaves_of(n)
    nodes = stored(leaves)
    proof = merkle.hashes_of(merkle.consistency_ranges(m, n), nodes)
    assert proof == (subproof(m, leaves, True) if m < n else [])
    old, new = mth(leaves[:m]), mth(leaves)
    assert merkle.verify_consistency(m, n, old, new, proof)
    forged = mth([b"forged", *leaves[1:m]])
    assert not merkle.verify_consistency(m, n, forged, new, proof)
    assert not merkle.verify_consistency(m, n, old, sha(new).digest(), proof)
    if proof:
        assert not merkle.verify_consistency(m, n, old, new, proof[:-1])
        assert not merkle.verify_consistency(m, n, old, new, [*proof, new])


def test_frontier_root_equals_the_definition_at_every_size() -> None:
    frontier = merkle.Frontier()
    leaves = leaves_of(70)
    assert frontier.root() == mth([])
    for i, leaf in enumerate(leaves):
        frontier.append(merkle.leaf_hash(leaf))
        assert frontier.root() == mth(leaves[: i + 1])
