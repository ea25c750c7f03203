"""The original entry point, unchanged in use: `python3 process.py folder/` writes
process_results.json (file name -> "male"/"female") with facegender's shipped model."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "src"))

from facegender.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["process", *sys.argv[1:]]))
