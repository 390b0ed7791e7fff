"""The audit trail for committees: the ledger as an RFC 9162 Merkle log with signed checkpoints.

- :mod:`eri.audit.leaf`: the canonical, versioned bytes of a ledger entry.
- :mod:`eri.audit.merkle`: RFC 9162 hashes, roots and proofs (pure).
- :mod:`eri.audit.tree`: the tree's nodes in the database, appended with each entry.
- :mod:`eri.audit.note`: C2SP signed notes, checkpoints and witness cosignatures.
- :mod:`eri.audit.log`: checkpoints signed by the deployment's log key, cosignatures, exports.
- :mod:`eri.audit.verify`: the offline verifier of an export.
- :mod:`eri.audit.report`: compliance reports with k-anonymity suppression, CSV and SVG.
"""
