"""`make demo`: the leaky doJobs (threads, then asyncio) with its report, then both fixes passing."""

from __future__ import annotations

import asyncio
import sys

import dojobs_asyncio
import dojobs_threads


def main() -> int:
    expected = {"leaky": False, "buffered": True, "cancellable": True}
    outcomes = {f"threads {v}": (dojobs_threads.run(v), ok) for v, ok in expected.items()}
    for variant, ok in expected.items():
        outcomes[f"asyncio {variant}"] = (asyncio.run(dojobs_asyncio.main([variant])), ok)
    surprises = [name for name, (clean, ok) in outcomes.items() if clean is not ok]
    print()
    if surprises:
        print(f"demo: unexpected outcome for {', '.join(surprises)}")
        return 1
    print("demo: the leaky versions were caught with their report; both fixes passed.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
