"""aiohttp's side of apiary-bench: sends REQUESTS GETs to URL from CONCURRENCY tasks sharing
one ClientSession (connector limit CONCURRENCY), and prints one JSON object:
{"requests", "elapsed_s", "p50_us", "p90_us", "p99_us"}.

Usage: python3 aiohttp_client.py URL CONCURRENCY REQUESTS
"""

import asyncio
import json
import sys
import time

import aiohttp


async def worker(session, url, count, latencies):
    for _ in range(count):
        sent = time.perf_counter_ns()
        async with session.get(url) as response:
            if not 200 <= response.status < 300:
                raise RuntimeError(f"the server answered {response.status}")
            await response.read()
        latencies.append(time.perf_counter_ns() - sent)


def percentile(sorted_values, quantile):
    index = min(len(sorted_values) - 1, int(quantile * len(sorted_values)))
    return sorted_values[index] / 1000.0


async def main(url, concurrency, requests):
    latencies = []
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        shares = [requests // concurrency + (1 if i < requests % concurrency else 0) for i in range(concurrency)]
        started = time.perf_counter()
        await asyncio.gather(*(worker(session, url, count, latencies) for count in shares))
        elapsed = time.perf_counter() - started
    latencies.sort()
    print(json.dumps({
        "requests": requests,
        "elapsed_s": elapsed,
        "p50_us": percentile(latencies, 0.50),
        "p90_us": percentile(latencies, 0.90),
        "p99_us": percentile(latencies, 0.99),
    }))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
