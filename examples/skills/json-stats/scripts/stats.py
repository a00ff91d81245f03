"""Summary statistics of {"values": [...]} read as JSON from stdin."""
import json
import math
import statistics
import sys


def fail(message):
    json.dump({"error": message}, sys.stdout)
    sys.stdout.write("\n")
    sys.exit(2)


def main():
    try:
        doc = json.load(sys.stdin)
    except json.JSONDecodeError as e:
        fail(f"input is not JSON: {e}")
    values = doc.get("values") if isinstance(doc, dict) else None
    if not isinstance(values, list) or not values:
        fail('expected {"values": [numbers...]} with at least one number')
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        fail("every value must be a number")
    if not all(math.isfinite(v) for v in values):
        fail("values must be finite")
    out = {
        "count": len(values),
        "mean": round(statistics.fmean(values), 4),
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "stdev": round(statistics.stdev(values), 4) if len(values) > 1 else 0.0,
    }
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
