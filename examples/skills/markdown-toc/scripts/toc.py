"""Print a table of contents for the Markdown document on stdin."""
import argparse
import re
import sys

HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def anchor(text, seen):
    slug = re.sub(r"[^\w\- ]", "", text.lower()).strip().replace(" ", "-")
    n = seen.get(slug, 0)
    seen[slug] = n + 1
    return slug if n == 0 else f"{slug}-{n}"


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--max-depth", type=int, default=3, choices=range(1, 7))
    parser.add_argument("--numbered", action="store_true")
    args = parser.parse_args()

    seen, counters, fenced = {}, [0] * 7, False
    for line in sys.stdin:
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
            continue
        m = None if fenced else HEADING.match(line.rstrip("\n"))
        if not m:
            continue
        level, title = len(m.group(1)), m.group(2)
        if level > args.max_depth:
            continue
        indent = "  " * (level - 1)
        if args.numbered:
            counters[level] += 1
            for deeper in range(level + 1, 7):
                counters[deeper] = 0
            marker = f"{counters[level]}."
        else:
            marker = "-"
        print(f"{indent}{marker} [{title}](#{anchor(title, seen)})")


if __name__ == "__main__":
    main()
