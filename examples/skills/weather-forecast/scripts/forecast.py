"""Daily forecast from Open-Meteo for one coordinate."""
import argparse
import json
import os
import sys
import urllib.parse
import urllib.request

API = "https://api.open-meteo.com/v1/forecast"


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lat", type=float, required=True)
    parser.add_argument("--lon", type=float, required=True)
    parser.add_argument("--days", type=int, default=3, choices=range(1, 8))
    args = parser.parse_args()
    if not (-90 <= args.lat <= 90 and -180 <= args.lon <= 180):
        parser.error("latitude must be within ±90 and longitude within ±180")

    unit = "fahrenheit" if os.environ.get("OPEN_METEO_UNITS") == "fahrenheit" else "celsius"
    query = urllib.parse.urlencode({
        "latitude": args.lat,
        "longitude": args.lon,
        "daily": "temperature_2m_min,temperature_2m_max,precipitation_sum",
        "forecast_days": args.days,
        "temperature_unit": unit,
        "timezone": "UTC",
    })
    try:
        with urllib.request.urlopen(f"{API}?{query}", timeout=15) as resp:
            data = json.load(resp)
    except OSError as e:
        print(f"forecast unavailable: {e}", file=sys.stderr)
        sys.exit(1)
    daily = data["daily"]
    symbol = "°F" if unit == "fahrenheit" else "°C"
    for day, lo, hi, rain in zip(daily["time"], daily["temperature_2m_min"],
                                 daily["temperature_2m_max"], daily["precipitation_sum"]):
        print(f"{day}  {lo:5.1f}{symbol} .. {hi:5.1f}{symbol}  rain {rain:.1f} mm")


if __name__ == "__main__":
    main()
