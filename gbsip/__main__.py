"""``python -m gbsip`` runs the gbsip command line."""
import sys

from gbsip.cli import main

if __name__ == "__main__":
    sys.exit(main())
