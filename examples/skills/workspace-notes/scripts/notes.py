"""Add to or list notes.md in the workspace granted by skillcell."""
import argparse
import datetime
import os
import sys


def notes_file():
    root = os.environ.get("SKILLCELL_PATH_WORKSPACE")
    if not root or not os.path.isdir(root):
        print("no workspace granted (SKILLCELL_PATH_WORKSPACE is unset)", file=sys.stderr)
        sys.exit(2)
    return os.path.join(root, "notes.md")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    add = sub.add_parser("add")
    add.add_argument("text")
    show = sub.add_parser("list")
    show.add_argument("--last", type=int, default=10)
    args = parser.parse_args()

    path = notes_file()
    if args.command == "add":
        text = " ".join(args.text.split())
        if not text:
            parser.error("the note is empty")
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"- {stamp} UTC: {text}\n")
        print(f"noted in {os.path.basename(path)}")
    else:
        try:
            with open(path, encoding="utf-8") as f:
                lines = f.readlines()
        except FileNotFoundError:
            lines = []
        for line in lines[-args.last:]:
            print(line.rstrip("\n"))


if __name__ == "__main__":
    main()
