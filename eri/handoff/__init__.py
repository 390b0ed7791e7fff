"""Case handoff to prosecutors and across the border: signed, sealed, acknowledged packages.

- :mod:`eri.handoff.keys`: recipient keys (HPKE ML-KEM-768+X25519) and institution keys
  (Ed25519 + ML-DSA-65), their files and ids.
- :mod:`eri.handoff.package`: the package format (``docs/handoff-format.md``): seal, verify,
  open.
- :mod:`eri.handoff.notices`: signed acknowledgements, rejections and recalls.
- :mod:`eri.handoff.evidence`: evidence attachments, stored encrypted under the case key.
"""
