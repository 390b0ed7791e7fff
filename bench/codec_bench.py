"""Per-payload cost of the ERI codec (encode + decode) with a cached per-case key.

Run: ``.venv/bin/python bench/codec_bench.py [--payloads N] [--rounds R]``

Measures, for a ~280-byte JSON payload (the size ../shared/research/temporal-feasibility.md
used), three things per payload:

- ``codec``: ``CaseKeyCodec.encode`` + ``decode`` on already-converted payloads, key cached;
- ``with_context``: the same, plus binding the codec to the case's workflow context first, as the
  SDK does for every operation;
- ``converter``: the full ``DataConverter`` (JSON conversion + codec) minus the plain default
  converter, i.e. what the codec adds end to end (the figure comparable to the ~35 µs measured
  for a single-key codec).

Real AES-256-GCM, real keys (in-memory key store; the cached path never touches the store).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from temporalio.converter import DataConverter, WorkflowSerializationContext

from eri.crypto.codec import CaseKeyCodec, data_converter
from eri.crypto.kek import EnvKEK
from eri.crypto.keys import Keyring
from eri.crypto.testing import MemoryDataKeyStore

VALUE = {
    "case_id": "case_01JD8Q3M6Z4K2V7T9W1X5Y0B3C",
    "step": "intake.interview",
    "statement": "x" * 160,
    "flags": ["minor", "needs_shelter"],
    "version": 7,
}


async def _time(n: int, op: Callable[[], Awaitable[object]]) -> float:
    start = time.perf_counter()
    for _ in range(n):
        await op()
    return (time.perf_counter() - start) / n * 1e6


async def main(payloads: int, rounds: int) -> None:
    kek = EnvKEK(base64.b64encode(os.urandom(32)).decode())
    keyring = Keyring(MemoryDataKeyStore(), kek, cache_ttl=3600)
    ctx = WorkflowSerializationContext(namespace="eri", workflow_id="case_01JD8Q3M6Z4K2V7T9W1X5Y")
    for i in range(200):  # other cases in the cache, as on a busy worker
        await keyring.case_key(f"case_other{i:04d}")
    codec = CaseKeyCodec(keyring)
    bound = codec.with_context(ctx)
    plain = DataConverter.default
    eri = data_converter(keyring)
    [payload] = await plain.encode([VALUE])
    encoded = await bound.encode([payload])
    assert await bound.decode(encoded) == [payload]  # warms the cache

    async def codec_only() -> None:
        await bound.decode(await bound.encode([payload]))

    async def with_context() -> None:
        c = codec.with_context(ctx)
        await c.decode(await c.encode([payload]))

    async def plain_converter() -> None:
        await plain.decode(await plain.encode([VALUE]))

    async def eri_converter() -> None:
        dc = eri.with_context(ctx)
        await dc.decode(await dc.encode([VALUE]))

    results: dict[str, list[float]] = {"codec": [], "with_context": [], "converter": []}
    for op in (codec_only, with_context, plain_converter, eri_converter):
        await _time(2000, op)  # warm-up
    for _ in range(rounds):
        results["codec"].append(await _time(payloads, codec_only))
        results["with_context"].append(await _time(payloads, with_context))
        base = await _time(payloads, plain_converter)
        full = await _time(payloads, eri_converter)
        results["converter"].append(full - base)

    print(
        f"payload: {len(payload.SerializeToString())} bytes serialized, "
        f"{len(encoded[0].SerializeToString())} bytes encrypted; "
        f"{rounds} rounds x {payloads} payloads; python {sys.version.split()[0]}"
    )
    for name, values in results.items():
        print(
            f"{name:>13}: median {statistics.median(values):6.1f} µs/payload "
            f"(min {min(values):5.1f}, max {max(values):5.1f}) encode+decode"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--payloads", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.payloads, args.rounds))
