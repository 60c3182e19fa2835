import sys

from quantsweep.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
